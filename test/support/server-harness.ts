/**
 * A whole server on a real store (a fresh SQLite file or PostgreSQL database), with a fake clock and its
 * loops stopped, so tests drive the worker with `drain()` and housekeeping with `tick(now)`. Requests
 * go through `app.request` without sockets unless `listen` is set.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../../src/app/config.ts';
import { type AlmanacServer, createServer, type ServerOptions } from '../../src/app/create-server.ts';
import { freshPostgresDatabase, postgresUnavailable } from './services.ts';

export class FakeClock {
  #now: number;
  constructor(start = Date.parse('2026-03-01T09:00:00.000Z')) {
    this.#now = start;
  }
  now = (): Date => new Date(this.#now);
  /** Moves time forward; each call also moves at least 1 ms, so created_at orders runs. */
  advance(ms: number): Date {
    this.#now += ms;
    return this.now();
  }
  /** Moves time to `at`, never backwards. */
  set(at: number): Date {
    this.#now = Math.max(this.#now, at);
    return this.now();
  }
}

export interface TestServer {
  server: AlmanacServer;
  clock: FakeClock;
  token: string;
  dataDir: string;
  /** The store's location (a SQLite file or a PostgreSQL URL). */
  url: string;
  /** Calls the API without sockets; JSON bodies are encoded for you. */
  api(method: string, path: string, body?: unknown, token?: string | null): Promise<Response>;
  json<T = any>(
    method: string,
    path: string,
    body?: unknown,
    token?: string | null,
  ): Promise<{ status: number; body: T }>;
  close(): Promise<void>;
}

export interface TestStore {
  name: 'sqlite' | 'postgres';
  skip: string | false;
  /** A database URL for one test, and how to drop it. */
  location(dataDir: string): Promise<{ url: string; drop(): Promise<void> }>;
}

export async function testStores(): Promise<TestStore[]> {
  const pgUnavailable = await postgresUnavailable();
  return [
    {
      name: 'sqlite',
      skip: false,
      async location(dataDir) {
        return { url: join(dataDir, 'almanac.sqlite'), drop: async () => {} };
      },
    },
    {
      name: 'postgres',
      skip: pgUnavailable ?? false,
      async location() {
        const schema = await freshPostgresDatabase();
        return { url: schema.url, drop: () => schema.drop() };
      },
    },
  ];
}

export interface SharedLocation {
  dataDir: string;
  url: string;
}

export async function startTestServer(
  store: TestStore,
  options: ServerOptions & {
    env?: Record<string, string>;
    /** Use this data dir and database instead of fresh ones (several servers on one store). */
    shared?: SharedLocation;
    clockStart?: number;
    /** Rewrites the store URL (for example to tag its connections with an application_name). */
    locationTransform?: (url: string) => string;
  } = {},
): Promise<TestServer> {
  const dataDir = options.shared?.dataDir ?? mkdtempSync(join(tmpdir(), 'almanac-server-'));
  const location = options.shared
    ? { url: options.shared.url, drop: async () => {} }
    : await store.location(dataDir);
  const clock = new FakeClock(options.clockStart);
  const config = resolveConfig(
    { dataDir, port: 0 },
    {
      DATABASE_URL: options.locationTransform ? options.locationTransform(location.url) : location.url,
      ALMANAC_SECRET_KEY: 'test-secret-key',
      ALMANAC_LOG_LEVEL: 'silent',
      ALMANAC_PREWARM: 'false',
      ...options.env,
    },
  );
  const server = await createServer(config, {
    now: clock.now,
    webDir: null,
    listen: false,
    autostart: false,
    ...options,
  });
  const token = server.adminToken ?? options.env?.['ALMANAC_ADMIN_TOKEN'] ?? '';
  const api = (method: string, path: string, body?: unknown, auth: string | null = token) =>
    server.http.app.request(path, {
      method,
      headers: {
        ...(auth ? { authorization: `Bearer ${auth}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    }) as Promise<Response>;
  return {
    server,
    clock,
    token,
    dataDir,
    url: location.url,
    api,
    async json(method, path, body, auth) {
      const response = await api(method, path, body, auth);
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : null };
    },
    async close() {
      await server.stop();
      if (!options.shared) {
        await location.drop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}

/** A notebook for tests, from frontmatter and fenced cells. */
export function notebook(title: string, cells: string, frontmatter = ''): string {
  return `---\ntitle: ${title}\n${frontmatter}---\n\n${cells}`;
}
