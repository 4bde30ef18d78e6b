/**
 * The CLI's client for a running server, as a user's laptop would use it: base URL and API token,
 * JSON in and out, and Server-Sent Events for live progress. Errors keep the server's code, message
 * and field, so the CLI can print them as one line.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { AlmanacError, type ErrorCode } from '../domain/errors.ts';

export class ApiError extends AlmanacError {
  readonly field: string | undefined;
  readonly httpStatus: number;
  constructor(status: number, code: string, message: string, field?: string) {
    super(code as ErrorCode, field && !message.startsWith(field) ? `${field}: ${message}` : message, status);
    this.field = field;
    this.httpStatus = status;
  }
}

/** The server could not be reached, or failed (5xx): the CLI exits 1. (A 4xx is an `ApiError`: exit 2.) */
export class ServerUnavailableError extends Error {}

export class ApiClient {
  readonly baseUrl: string;
  readonly #token: string | null;

  constructor(baseUrl: string, token: string | null) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.#token = token;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<{ status: number; data: T }> {
    let response: Response;
    try {
      response = await fetch(this.baseUrl + path, {
        method,
        headers: {
          ...(this.#token ? { authorization: `Bearer ${this.#token}` } : {}),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
      throw new ServerUnavailableError(
        `cannot reach the Almanac server at ${this.baseUrl} (${cause}); start it with 'almanac serve' or pass --server`,
      );
    }
    const text = await response.text();
    let data: unknown = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = text;
    }
    if (!response.ok) {
      const error = (data as { error?: { code?: string; message?: string; field?: string } } | null)?.error;
      if (response.status >= 500) {
        throw new ServerUnavailableError(
          `the server failed (${response.status}): ${error?.message ?? text.slice(0, 200)}`,
        );
      }
      throw new ApiError(
        response.status,
        error?.code ?? 'internal',
        error?.message ?? `HTTP ${response.status}`,
        error?.field,
      );
    }
    return { status: response.status, data: data as T };
  }

  get<T>(path: string) {
    return this.request<T>('GET', path).then((r) => r.data);
  }

  post<T>(path: string, body: unknown = {}) {
    return this.request<T>('POST', path, body);
  }

  /** Yields each `event`/`data` pair of a Server-Sent Events stream until it ends. */
  async *events(path: string): AsyncGenerator<{ event: string; data: string }> {
    let response: Response;
    try {
      response = await fetch(this.baseUrl + path, {
        headers: {
          accept: 'text/event-stream',
          ...(this.#token ? { authorization: `Bearer ${this.#token}` } : {}),
        },
      });
    } catch (error) {
      throw new ServerUnavailableError(
        `cannot reach the Almanac server at ${this.baseUrl} (${(error as Error).message})`,
      );
    }
    if (!response.ok || !response.body) {
      const body = (await response.json().catch(() => null)) as {
        error?: { code: string; message: string };
      } | null;
      if (response.status >= 500) {
        throw new ServerUnavailableError(
          `the server failed (${response.status}): ${body?.error?.message ?? 'no details'}`,
        );
      }
      throw new ApiError(
        response.status,
        body?.error?.code ?? 'internal',
        body?.error?.message ?? `HTTP ${response.status}`,
      );
    }
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of response.body) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (data.length > 0) yield { event, data: data.join('\n') };
        end = buffer.indexOf('\n\n');
      }
    }
  }
}

/**
 * Where `almanac login` keeps tokens: `$XDG_CONFIG_HOME/almanac/credentials.json` (default
 * `~/.config/almanac/credentials.json`), mode 0600 in a 0700 folder. One token per server origin, and
 * the server signed in to last, which commands use when neither `--server` nor ALMANAC_URL is given.
 */
export interface StoredCredentials {
  /** The origin of the server `almanac login` signed in to last. */
  current: string | null;
  servers: Record<string, { token: string; tokenId?: string; email: string; savedAt: string }>;
}

export function credentialsPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env['XDG_CONFIG_HOME'] || join(homedir(), '.config');
  return join(base, 'almanac', 'credentials.json');
}

export function readCredentials(env: NodeJS.ProcessEnv = process.env): StoredCredentials {
  try {
    const parsed = JSON.parse(readFileSync(credentialsPath(env), 'utf8')) as Partial<StoredCredentials>;
    return { current: parsed.current ?? null, servers: parsed.servers ?? {} };
  } catch {
    return { current: null, servers: {} };
  }
}

/** The token `almanac login` stored for this server (by origin), if any. */
export function storedToken(server: string, env: NodeJS.ProcessEnv = process.env): string | null {
  let origin: string;
  try {
    origin = new URL(server).origin;
  } catch {
    return null;
  }
  return readCredentials(env).servers[origin]?.token ?? null;
}

/** Saves a server's token (replacing the one it had) and makes that server the current one. */
export function saveCredential(
  server: string,
  entry: { token: string; tokenId: string; email: string },
  now: Date,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const path = credentialsPath(env);
  const origin = new URL(server).origin;
  const credentials = readCredentials(env);
  credentials.servers[origin] = { ...entry, savedAt: now.toISOString() };
  credentials.current = origin;
  writeCredentials(path, credentials);
  return path;
}

/** Forgets a server's token (and, if it was the current server, the current server). */
export function forgetCredential(server: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const origin = new URL(server).origin;
  const credentials = readCredentials(env);
  if (!credentials.servers[origin]) return false;
  delete credentials.servers[origin];
  if (credentials.current === origin) credentials.current = null;
  writeCredentials(credentialsPath(env), credentials);
  return true;
}

function writeCredentials(path: string, credentials: StoredCredentials): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
}
