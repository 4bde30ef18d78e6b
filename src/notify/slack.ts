/**
 * Slack through @slack/web-api with a workspace's bot token: list channels, post a message with blocks,
 * upload the screenshot and CSV files into the message's thread (files.getUploadURLExternal, then
 * files.completeUploadExternal, as `filesUploadV2` does), and DM users found by email. A channel the bot
 * cannot see or post in gives "invite the Almanac bot to #channel", on the rule and in the delivery log.
 *
 * `apiUrl` points the client at another Web API endpoint (tests use a local server that speaks it).
 */
import { WebClient } from '@slack/web-api';
import {
  type Attachment,
  cutSlackText,
  escapeSlackText,
  type Message,
} from '../domain/notification/message.ts';
import { DeliveryError } from './delivery-error.ts';
import type { SlackSender } from './notifier.ts';

export interface SlackChannelInfo {
  id: string;
  name: string;
  isPrivate: boolean;
  isMember: boolean;
}

const FINAL_ERRORS: Record<string, string> = {
  invalid_auth: 'Slack rejected the bot token (invalid_auth); an admin sets a new one',
  token_revoked: 'the Slack bot token was revoked; an admin sets a new one',
  account_inactive: 'the Slack bot was deactivated; an admin sets a new token',
  missing_scope:
    'the Slack bot lacks a scope it needs (chat:write, files:write, channels:read, groups:read, users:read.email, im:write)',
  is_archived: 'the Slack channel is archived',
  msg_too_long: 'the message is too long for Slack',
};

function slackError(error: unknown, channel: string): DeliveryError {
  if ((error as { code?: string }).code === 'slack_webapi_rate_limited_error') {
    const seconds = Number((error as { retryAfter?: number }).retryAfter ?? 0);
    return new DeliveryError(`Slack rate-limited the bot (retry after ${seconds} s)`, true, {
      retryAfterMs: seconds * 1000,
    });
  }
  const code = (error as { data?: { error?: string } }).data?.error;
  if (code === 'not_in_channel' || code === 'channel_not_found') {
    return new DeliveryError(`invite the Almanac bot to #${channel}`, false);
  }
  if (code === 'users_not_found') return new DeliveryError(`no Slack user has the email ${channel}`, false);
  if (code && FINAL_ERRORS[code]) return new DeliveryError(FINAL_ERRORS[code]!, false);
  if (code === 'ratelimited') return new DeliveryError('Slack rate-limited the bot; retrying later', true);
  const message = code ? `Slack answered ${code}` : `Slack: ${(error as Error).message}`;
  return new DeliveryError(
    message,
    code === undefined || code === 'internal_error' || code === 'fatal_error',
  );
}

export class SlackClient implements SlackSender {
  readonly #apiUrl: string | undefined;
  readonly #clients = new Map<string, WebClient>();
  readonly #channels = new Map<string, { at: number; list: SlackChannelInfo[] }>();

  constructor(options: { apiUrl?: string | null } = {}) {
    this.#apiUrl = options.apiUrl ?? undefined;
  }

  #client(token: string): WebClient {
    let client = this.#clients.get(token);
    if (!client) {
      client = new WebClient(token, {
        ...(this.#apiUrl ? { slackApiUrl: this.#apiUrl.replace(/\/?$/, '/') } : {}),
        // The notifier retries with its own backoff and records each attempt.
        retryConfig: { retries: 0 },
        rejectRateLimitedCalls: true,
        timeout: 15_000,
      });
      this.#clients.set(token, client);
    }
    return client;
  }

  /** Checks a token, for the integrations form. */
  async authTest(token: string): Promise<{ team: string; user: string }> {
    try {
      const result = await this.#client(token).auth.test();
      return { team: String(result.team ?? ''), user: String(result.user ?? '') };
    } catch (error) {
      throw slackError(error, '');
    }
  }

  /** Public and private channels the bot can see, cached for a minute. */
  async listChannels(token: string, fresh = false): Promise<SlackChannelInfo[]> {
    const cached = this.#channels.get(token);
    if (!fresh && cached && Date.now() - cached.at < 60_000) return cached.list;
    const list: SlackChannelInfo[] = [];
    let cursor: string | undefined;
    try {
      do {
        const page = await this.#client(token).conversations.list({
          types: 'public_channel,private_channel',
          exclude_archived: true,
          limit: 200,
          ...(cursor ? { cursor } : {}),
        });
        for (const c of page.channels ?? []) {
          if (c.id && c.name) {
            list.push({
              id: c.id,
              name: c.name,
              isPrivate: c.is_private === true,
              isMember: c.is_member === true,
            });
          }
        }
        cursor = page.response_metadata?.next_cursor || undefined;
      } while (cursor);
    } catch (error) {
      throw slackError(error, '');
    }
    this.#channels.set(token, { at: Date.now(), list });
    return list;
  }

  /** Throws "invite the Almanac bot to #channel" unless the bot can post there. */
  async checkChannel(token: string, channel: string): Promise<SlackChannelInfo> {
    const name = channel.replace(/^#/, '');
    const found = (await this.listChannels(token, true)).find((c) => c.name === name || c.id === name);
    if (!found || (found.isPrivate && !found.isMember)) {
      throw new DeliveryError(`invite the Almanac bot to #${name}`, false);
    }
    return found;
  }

  async #resolve(token: string, target: string, dm: boolean): Promise<string> {
    const client = this.#client(token);
    if (dm) {
      try {
        const user = await client.users.lookupByEmail({ email: target });
        const opened = await client.conversations.open({ users: user.user!.id! });
        return opened.channel!.id!;
      } catch (error) {
        throw slackError(error, target);
      }
    }
    if (/^[CGD][A-Z0-9]{6,}$/.test(target)) return target;
    const found = (await this.listChannels(token)).find((c) => c.name === target);
    if (!found) throw new DeliveryError(`invite the Almanac bot to #${target}`, false);
    return found.id;
  }

  async post(
    token: string,
    request: { channel: string; dm: boolean; message: Message; files: Attachment[] },
  ): Promise<string | null> {
    const { message } = request;
    const channel = await this.#resolve(token, request.channel, request.dm);
    const blocks: Record<string, unknown>[] = [
      { type: 'header', text: { type: 'plain_text', text: message.subject.slice(0, 150) } },
      // The text carries cell values and error messages: escaped, so they cannot mention or link.
      { type: 'section', text: { type: 'mrkdwn', text: cutSlackText(escapeSlackText(message.text), 2900) } },
      {
        type: 'actions',
        elements: [
          { type: 'button', text: { type: 'plain_text', text: 'Open the app' }, url: message.runUrl },
        ],
      },
    ];
    const client = this.#client(token);
    let ts: string | undefined;
    try {
      const posted = await client.chat.postMessage({
        channel,
        // The notification's fallback text is parsed as mrkdwn too.
        text: escapeSlackText(message.subject),
        blocks: blocks as never,
      });
      ts = posted.ts;
    } catch (error) {
      throw slackError(error, request.channel);
    }
    if (request.files.length === 0) return null;
    try {
      await client.filesUploadV2({
        channel_id: channel,
        ...(ts ? { thread_ts: ts } : {}),
        file_uploads: request.files.map((f) => ({
          file: f.content,
          filename: f.filename,
          title: f.filename,
        })),
      } as never);
      return null;
    } catch (error) {
      // The message is out; posting it again would be a duplicate, so the delivery ends with a note.
      return `the message was posted, but uploading its files failed: ${slackError(error, request.channel).message}`;
    }
  }
}
