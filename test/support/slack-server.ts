/**
 * A local HTTP server that speaks the part of Slack's Web API Almanac uses: auth.test,
 * conversations.list, conversations.open, users.lookupByEmail, chat.postMessage and the external file
 * upload (files.getUploadURLExternal, the upload itself, files.completeUploadExternal). It checks the bot
 * token and answers the errors Slack answers (invalid_auth, not_in_channel, channel_not_found,
 * users_not_found), and records what was posted and uploaded.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SlackChannel {
  id: string;
  name: string;
  isPrivate: boolean;
  isMember: boolean;
}

export interface PostedMessage {
  channel: string;
  text: string;
  blocks: unknown[];
  ts: string;
}

export interface UploadedFile {
  id: string;
  filename: string;
  bytes: Buffer;
  channel: string | null;
  threadTs: string | null;
}

export interface FakeSlack {
  /** Base URL for the Web API (give it to ALMANAC_SLACK_API_URL). */
  apiUrl: string;
  token: string;
  messages: PostedMessage[];
  files: UploadedFile[];
  /** The workspace's channels; a test may change membership (`isMember`) as an invite would. */
  channels: SlackChannel[];
  /** Make the next calls of a method answer an error code. */
  failNext: Map<string, string[]>;
  close(): Promise<void>;
}

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function params(req: IncomingMessage, raw: Buffer): Record<string, string> {
  const type = req.headers['content-type'] ?? '';
  if (type.includes('application/json')) {
    const parsed = JSON.parse(raw.toString() || '{}') as Record<string, unknown>;
    return Object.fromEntries(
      Object.entries(parsed).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
    );
  }
  return Object.fromEntries(new URLSearchParams(raw.toString()));
}

export async function startFakeSlack(
  options: { token?: string; users?: Record<string, string>; channels?: SlackChannel[] } = {},
): Promise<FakeSlack> {
  const token = options.token ?? 'xoxb-test-token';
  const users = options.users ?? { 'ada@example.com': 'U100' };
  const channels = options.channels ?? [
    { id: 'C100', name: 'general', isPrivate: false, isMember: true },
    { id: 'C200', name: 'ops', isPrivate: false, isMember: true },
    { id: 'C300', name: 'public-not-joined', isPrivate: false, isMember: false },
    { id: 'G400', name: 'secret', isPrivate: true, isMember: false },
  ];
  const messages: PostedMessage[] = [];
  const files: UploadedFile[] = [];
  const pending = new Map<string, { filename: string; bytes: Buffer | null }>();
  const failNext = new Map<string, string[]>();
  let seq = 0;
  let base = '';

  const server: Server = createServer(async (req, res) => {
    const raw = await body(req);
    const url = new URL(req.url ?? '/', 'http://localhost');
    const reply = (payload: object) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
    };
    if (url.pathname.startsWith('/upload/')) {
      const id = url.pathname.slice('/upload/'.length);
      const file = pending.get(id);
      if (!file) return void res.writeHead(404).end();
      // Slack accepts the bytes raw or as a multipart form (which the client sends); read either.
      const type = req.headers['content-type'] ?? '';
      if (type.startsWith('multipart/form-data')) {
        const form = await new Request('http://upload', {
          method: 'POST',
          headers: { 'content-type': type },
          body: raw,
        }).formData();
        const part = [...form.values()].find((v) => typeof v !== 'string') as Blob | undefined;
        file.bytes = part ? Buffer.from(await part.arrayBuffer()) : Buffer.alloc(0);
      } else {
        file.bytes = raw;
      }
      return void res.writeHead(200).end('OK');
    }
    const method = url.pathname.replace(/^\/api\//, '');
    const p = params(req, raw);
    const auth = req.headers.authorization?.replace(/^Bearer /, '') ?? p['token'];
    if (auth !== token) return reply({ ok: false, error: 'invalid_auth' });
    const forced = failNext.get(method)?.shift();
    if (forced) return reply({ ok: false, error: forced });
    const visible = (id: string) => channels.find((c) => c.id === id && (!c.isPrivate || c.isMember));
    switch (method) {
      case 'auth.test':
        return reply({ ok: true, team: 'Test team', user: 'almanac', user_id: 'UBOT' });
      case 'conversations.list':
        return reply({
          ok: true,
          channels: channels
            .filter((c) => !c.isPrivate || c.isMember)
            .map((c) => ({ id: c.id, name: c.name, is_private: c.isPrivate, is_member: c.isMember })),
          response_metadata: { next_cursor: '' },
        });
      case 'users.lookupByEmail': {
        const id = users[p['email'] ?? ''];
        return reply(id ? { ok: true, user: { id } } : { ok: false, error: 'users_not_found' });
      }
      case 'conversations.open':
        return reply({ ok: true, channel: { id: `D${p['users']}` } });
      case 'chat.postMessage': {
        const channel = p['channel'] ?? '';
        if (!channel.startsWith('D')) {
          const c = visible(channel);
          if (!c) return reply({ ok: false, error: 'channel_not_found' });
          if (!c.isMember) return reply({ ok: false, error: 'not_in_channel' });
        }
        const ts = `1700000000.${String(++seq).padStart(6, '0')}`;
        messages.push({ channel, text: p['text'] ?? '', blocks: JSON.parse(p['blocks'] ?? '[]'), ts });
        return reply({ ok: true, channel, ts });
      }
      case 'files.getUploadURLExternal': {
        const id = `F${++seq}`;
        pending.set(id, { filename: p['filename'] ?? '', bytes: null });
        return reply({ ok: true, upload_url: `${base}/upload/${id}`, file_id: id });
      }
      case 'files.completeUploadExternal': {
        const list = JSON.parse(p['files'] ?? '[]') as { id: string; title?: string }[];
        const channel = p['channel_id'] ?? null;
        if (channel && !channel.startsWith('D') && !visible(channel)?.isMember) {
          return reply({ ok: false, error: 'not_in_channel' });
        }
        const done = [];
        for (const f of list) {
          const file = pending.get(f.id);
          if (!file?.bytes) return reply({ ok: false, error: 'file_not_found' });
          files.push({
            id: f.id,
            filename: file.filename,
            bytes: file.bytes,
            channel,
            threadTs: p['thread_ts'] ?? null,
          });
          done.push({ id: f.id, title: f.title ?? file.filename });
        }
        return reply({ ok: true, files: done });
      }
      default:
        return reply({ ok: false, error: 'unknown_method' });
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    apiUrl: `${base}/api/`,
    token,
    messages,
    files,
    channels,
    failNext,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
