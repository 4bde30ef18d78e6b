/**
 * CLI commands for accounts (issue 16): `login` (an email and a password buy an API token, saved in the
 * user's config dir, mode 0600), `users invite/list/deactivate/role` (admins) and
 * `tokens create/list/revoke`. Every command takes `--json`.
 */
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { ValidationError } from '../domain/errors.ts';
import { ApiClient, forgetCredential, readCredentials, saveCredential } from './api-client.ts';
import { parseDuration } from './options.ts';
import { addClientOptions, type ClientFlags, client } from './server-commands.ts';

interface UserJson {
  id: string;
  email: string;
  name: string;
  role: string;
  status: string;
  createdAt: string;
  lastSeenAt: string | null;
}

interface TokenJson {
  id: string;
  name: string;
  prefix: string | null;
  createdAt: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
  token?: string;
}

type JsonFlags = ClientFlags & { json: boolean };

function print(json: boolean, value: unknown, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : text);
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows]
    .map(
      (row) =>
        `${row
          .map((v, i) => v.padEnd(widths[i]!))
          .join('  ')
          .trimEnd()}\n`,
    )
    .join('');
}

/** Reads a password: all of stdin (`--password-stdin`), or a prompt on the terminal without echo. */
async function readPassword(fromStdin: boolean): Promise<string> {
  if (fromStdin) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks)
      .toString('utf8')
      .replace(/\r?\n$/, '');
  }
  if (!process.stdin.isTTY) {
    throw new ValidationError(
      '--password-stdin',
      'no terminal to ask for the password on: pipe it with --password-stdin',
    );
  }
  process.stderr.write('Password: ');
  const stdin = process.stdin;
  stdin.setRawMode(true);
  stdin.resume();
  let password = '';
  try {
    for await (const chunk of stdin) {
      for (const ch of (chunk as Buffer).toString('utf8')) {
        if (ch === '\r' || ch === '\n') return password;
        if (ch === '\u0003') throw new ValidationError('password', 'cancelled');
        if (ch === '\u007f') password = password.slice(0, -1);
        else password += ch;
      }
    }
    return password;
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

/** A user named by id or email (emails compare without case). */
async function findUser(api: ApiClient, who: string): Promise<UserJson> {
  const users = await api.get<UserJson[]>('/api/users');
  const found = users.find((u) => u.id === who || u.email.toLowerCase() === who.toLowerCase());
  if (!found)
    throw new ValidationError('user', `no user '${who}' in this workspace; see \`almanac users list\``);
  return found;
}

/** `--expires 30d`, `12h`, or an ISO date: the token's expiry. */
function expiryOf(text: string | undefined): string | undefined {
  if (!text) return undefined;
  const days = /^(\d+)\s*d$/.exec(text.trim());
  if (days) return new Date(Date.now() + Number(days[1]) * 86_400_000).toISOString();
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const at = new Date(text);
    if (Number.isNaN(at.getTime())) throw new ValidationError('--expires', `'${text}' is not a date`);
    return at.toISOString();
  }
  return new Date(Date.now() + parseDuration(text, '--expires')).toISOString();
}

export function registerAccountCommands(program: Command): void {
  program
    .command('login')
    .description(
      'sign in to a server with your email and password; saves an API token in your config dir (mode 0600) that later commands use',
    )
    .option('--server <url>', 'the Almanac server (default ALMANAC_URL or http://127.0.0.1:3100)')
    .requiredOption('--email <email>', 'your email address')
    .option('--password-stdin', 'read the password from stdin instead of asking', false)
    .option('--workspace <id>', 'the workspace, when your address is in several')
    .option('--name <name>', 'what the token is called in `almanac tokens list`')
    .option('--json', 'print where the token went as JSON', false)
    .action(
      async (flags: {
        server?: string;
        email: string;
        passwordStdin: boolean;
        workspace?: string;
        name?: string;
        json: boolean;
      }) => {
        const server = flags.server ?? process.env['ALMANAC_URL'] ?? 'http://127.0.0.1:3100';
        if (!/^https?:\/\/[^/]+/.test(server)) {
          throw new ValidationError('--server', `'${server}' is not an http:// or https:// URL`);
        }
        const password = await readPassword(flags.passwordStdin);
        const api = new ApiClient(server, null);
        const { data } = await api.post<{ token: string; id: string }>('/api/auth/token', {
          email: flags.email,
          password,
          name: flags.name ?? `almanac CLI on ${hostname()}`,
          ...(flags.workspace ? { workspace: flags.workspace } : {}),
        });
        const path = saveCredential(
          api.baseUrl,
          { token: data.token, tokenId: data.id, email: flags.email },
          new Date(),
        );
        print(
          flags.json,
          { server: new URL(api.baseUrl).origin, email: flags.email, tokenId: data.id, credentials: path },
          `Signed in to ${new URL(api.baseUrl).origin} as ${flags.email}; the token is saved in ${path}\n`,
        );
      },
    );

  program
    .command('logout')
    .description('revoke the token `almanac login` saved for a server, and forget it')
    .option('--server <url>', 'the server (default ALMANAC_URL, or the one signed in to last)')
    .option('--json', 'print what was done as JSON', false)
    .action(async (flags: { server?: string; json: boolean }) => {
      const credentials = readCredentials();
      const server = flags.server ?? process.env['ALMANAC_URL'] ?? credentials.current;
      const entry = server ? credentials.servers[new URL(server).origin] : undefined;
      if (!server || !entry) {
        throw new ValidationError(
          '--server',
          `not signed in to ${server ?? 'any server'} with \`almanac login\``,
        );
      }
      let revoked = false;
      if (entry.tokenId) {
        try {
          await new ApiClient(server, entry.token).request(
            'DELETE',
            `/api/tokens/${encodeURIComponent(entry.tokenId)}`,
          );
          revoked = true;
        } catch {
          // Already revoked, or the server is gone: forgetting it is what is left to do.
        }
      }
      forgetCredential(server);
      const origin = new URL(server).origin;
      print(
        flags.json,
        { server: origin, revoked, forgotten: true },
        `Signed out of ${origin}${revoked ? '; the token is revoked' : ''}\n`,
      );
    });

  const users = program.command('users').description("the workspace's people (admins)");
  addClientOptions(users.command('list').description('list users with their role and status'))
    .option('--json', 'print JSON', false)
    .action(async (flags: JsonFlags) => {
      const list = await client(flags).get<UserJson[]>('/api/users');
      print(
        flags.json,
        list,
        table(
          ['EMAIL', 'NAME', 'ROLE', 'STATUS', 'LAST SEEN'],
          list.map((u) => [u.email, u.name, u.role, u.status, u.lastSeenAt ?? '-']),
        ),
      );
    });
  addClientOptions(
    users
      .command('invite')
      .description('invite someone by email: they get a link that works once, within 7 days')
      .argument('<email>', 'their email address'),
  )
    .option('--role <role>', 'their workspace role (admin, editor, member, guest)', 'member')
    .option('--name <name>', 'their name until they set it')
    .option('--json', 'print JSON', false)
    .action(async (email: string, flags: JsonFlags & { role: string; name?: string }) => {
      const { data } = await client(flags).post<{ user: UserJson; expiresAt: string; sentTo: string }>(
        '/api/users/invitations',
        { email, role: flags.role, ...(flags.name ? { name: flags.name } : {}) },
      );
      print(
        flags.json,
        data,
        `Invited ${data.sentTo} as ${data.user.role}; the link works until ${data.expiresAt}\n`,
      );
    });
  addClientOptions(
    users
      .command('deactivate')
      .description('deactivate a user: every session and API token of theirs stops working')
      .argument('<user>', 'their email or id'),
  )
    .option('--json', 'print JSON', false)
    .action(async (who: string, flags: JsonFlags) => {
      const api = client(flags);
      const user = await findUser(api, who);
      const { data } = await api.post<UserJson>(`/api/users/${encodeURIComponent(user.id)}/deactivate`);
      print(flags.json, data, `Deactivated ${data.email}; their sessions and tokens are revoked\n`);
    });
  addClientOptions(
    users
      .command('role')
      .description("change a user's workspace role")
      .argument('<user>', 'their email or id')
      .argument('<role>', 'admin, editor, member or guest'),
  )
    .option('--json', 'print JSON', false)
    .action(async (who: string, role: string, flags: JsonFlags) => {
      const api = client(flags);
      const user = await findUser(api, who);
      const { data } = await api.request<UserJson>('PUT', `/api/users/${encodeURIComponent(user.id)}/role`, {
        role,
      });
      print(flags.json, data, `${data.email} is now ${data.role}\n`);
    });

  const tokens = program.command('tokens').description('your API tokens');
  addClientOptions(
    tokens
      .command('create')
      .description('create an API token acting as you; it is printed once')
      .argument('<name>', 'what the token is for'),
  )
    .option('--expires <when>', 'when it stops working: 30d, 12h, or a date (default never)')
    .option('--json', 'print JSON', false)
    .action(async (name: string, flags: JsonFlags & { expires?: string }) => {
      const expiresAt = expiryOf(flags.expires);
      const { data } = await client(flags).post<TokenJson>('/api/tokens', {
        name,
        ...(expiresAt ? { expiresAt } : {}),
      });
      print(flags.json, data, `${data.token}\n`);
      if (!flags.json) process.stderr.write(`(shown once; token ${data.id}, '${data.name}')\n`);
    });
  addClientOptions(tokens.command('list').description('list your API tokens (never their secrets)'))
    .option('--json', 'print JSON', false)
    .action(async (flags: JsonFlags) => {
      const list = await client(flags).get<TokenJson[]>('/api/tokens');
      print(
        flags.json,
        list,
        table(
          ['ID', 'NAME', 'PREFIX', 'LAST USED', 'EXPIRES'],
          list.map((t) => [t.id, t.name, `${t.prefix ?? ''}…`, t.lastUsedAt ?? '-', t.expiresAt ?? 'never']),
        ),
      );
    });
  addClientOptions(
    tokens
      .command('revoke')
      .description('revoke one of your API tokens')
      .argument('<id>', "the token's id (from `almanac tokens list`)"),
  )
    .option('--json', 'print JSON', false)
    .action(async (id: string, flags: JsonFlags) => {
      await client(flags).request('DELETE', `/api/tokens/${encodeURIComponent(id)}`);
      print(flags.json, { id, revoked: true }, `Revoked token ${id}\n`);
    });
}
