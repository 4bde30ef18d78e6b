/**
 * A cluster of real Almanac processes (`almanac serve --role …`) on a fresh PostgreSQL schema (or a
 * SQLite file), sharing one injectable clock (a file every process reads: ALMANAC_TEST_CLOCK). Tests
 * start, SIGKILL and restart processes, arm crash points (ALMANAC_CRASH_AT), move time, and read the
 * store directly to check what the system promises.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { freshPostgresDatabase } from '../../support/services.ts';

const MAIN = resolve(import.meta.dirname, '../../../src/cli/main.ts');
export const ADMIN_TOKEN = 'alm_reliability_admin_token_0123456789abcdef';

export interface ProcessSpec {
  roles: string;
  env?: Record<string, string>;
}

export interface Member {
  name: string;
  spec: ProcessSpec;
  child: ChildProcess;
  url: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Lines of stderr that name a crash point. */
  crashed: string | null;
}

export class Cluster {
  readonly dir: string;
  readonly clockFile: string;
  readonly databaseUrl: string;
  readonly members = new Map<string, Member>();
  readonly #drop: () => Promise<void>;
  readonly #baseEnv: Record<string, string>;
  #clock: number;
  pg: pg.Client | null = null;
  /** Keep the directory (logs) after close: set when something went wrong. */
  keepLogs = false;

  private constructor(
    dir: string,
    databaseUrl: string,
    drop: () => Promise<void>,
    start: number,
    env: Record<string, string>,
  ) {
    this.dir = dir;
    this.databaseUrl = databaseUrl;
    this.#drop = drop;
    this.clockFile = join(dir, 'clock');
    this.#clock = start;
    writeFileSync(this.clockFile, String(start));
    this.#baseEnv = env;
  }

  /** A cluster on a fresh PostgreSQL schema (or SQLite with `sqlite: true`). `clock: null` uses real time. */
  static async create(
    options: { sqlite?: boolean; clock?: number | null; env?: Record<string, string> } = {},
  ): Promise<Cluster> {
    const dir = mkdtempSync(join(tmpdir(), 'almanac-reliability-'));
    let url: string;
    let drop = async () => {};
    if (options.sqlite) url = join(dir, 'almanac.sqlite');
    else {
      const schema = await freshPostgresDatabase();
      url = schema.url;
      drop = () => schema.drop();
    }
    const start = options.clock === undefined ? Date.parse('2026-01-05T00:00:30Z') : options.clock;
    const cluster = new Cluster(dir, url, drop, start ?? Date.now(), {
      ...(start !== null ? { ALMANAC_TEST_CLOCK: join(dir, 'clock') } : {}),
      ...options.env,
    });
    if (!options.sqlite) {
      cluster.pg = new pg.Client({ connectionString: url });
      await cluster.pg.connect();
      cluster.pg.on('error', () => {});
    }
    return cluster;
  }

  get now(): number {
    return this.#clock;
  }

  /** Moves the shared clock (every process sees it within 20 ms, and its loops are poked). */
  setClock(at: number): void {
    this.#clock = at;
    // Whole or not at all: processes read the file on every `now()`.
    writeFileSync(`${this.clockFile}.next`, String(at));
    renameSync(`${this.clockFile}.next`, this.clockFile);
  }

  advance(ms: number): number {
    this.setClock(this.#clock + ms);
    return this.#clock;
  }

  /** Starts a process and waits until it serves. */
  async start(name: string, spec: ProcessSpec): Promise<Member> {
    const dataDir = join(this.dir, name);
    mkdirSync(dataDir, { recursive: true });
    const log = createWriteStream(join(this.dir, `${name}.log`), { flags: 'a' });
    const child = spawn(
      process.execPath,
      [MAIN, 'serve', '--role', spec.roles, '--port', '0', '--data-dir', dataDir],
      {
        env: {
          PATH: process.env['PATH'] ?? '/usr/bin:/bin',
          HOME: this.dir,
          DATABASE_URL: this.databaseUrl,
          ALMANAC_SECRET_KEY: 'reliability-secret-key',
          ALMANAC_ADMIN_TOKEN: ADMIN_TOKEN,
          ALMANAC_LOG_LEVEL: 'warn',
          ALMANAC_CHROMIUM: '/nonexistent',
          ...this.#baseEnv,
          ...spec.env,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const member: Member = {
      name,
      spec,
      child,
      url: '',
      crashed: null,
      exited: new Promise((r) => child.once('exit', (code, signal) => r({ code, signal }))),
    };
    // Known at once, so close() kills it even if it never comes up.
    this.members.set(name, member);
    child.stderr!.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      log.write(text);
      const crash = /ALMANAC_CRASH_AT: crashing at (\w+)/.exec(text);
      if (crash) member.crashed = crash[1]!;
    });
    let served = false;
    member.url = await new Promise<string>((ready, fail) => {
      let out = '';
      const timer = setTimeout(() => {
        this.keepLogs = true;
        fail(new Error(`${name} did not start within 60 s; see ${join(this.dir, `${name}.log`)}`));
      }, 60_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        log.write(chunk);
        const match = /serving at (http:\/\/\S+)/.exec(out);
        if (match && !served) {
          served = true;
          clearTimeout(timer);
          ready(match[1]!);
        }
      });
      void member.exited.then(({ code, signal }) => {
        if (served) return;
        clearTimeout(timer);
        this.keepLogs = true;
        fail(
          new Error(
            `${name} exited before serving (${signal ?? code}); see ${join(this.dir, `${name}.log`)}`,
          ),
        );
      });
    });
    void member.exited.finally(() => log.end());
    return member;
  }

  /** SIGKILLs a process (if alive) and waits for it to be gone. */
  async kill(name: string): Promise<void> {
    const member = this.members.get(name);
    if (!member) return;
    if (member.child.exitCode === null && member.child.signalCode === null) member.child.kill('SIGKILL');
    await member.exited;
  }

  async restart(name: string, spec?: ProcessSpec): Promise<Member> {
    const old = this.members.get(name);
    await this.kill(name);
    return this.start(name, spec ?? old!.spec);
  }

  /** Calls the API of a process with the admin token. */
  async api<T = any>(
    name: string,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> {
    const member = this.members.get(name)!;
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(`${member.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${ADMIN_TOKEN}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      // A store hiccup answers 503 with Retry-After: a client tries again.
      if (res.status === 503 && attempt < 20) {
        await new Promise((r) => setTimeout(r, 250));
        continue;
      }
      return { status: res.status, body: text ? JSON.parse(text) : null };
    }
  }

  /** One row-returning query on the store (PostgreSQL). */
  #busySince: number | null = null;

  /**
   * Moves the clock by `ms` unless a live member holds a running run. The suites compress time
   * (seconds of clock per tens of milliseconds), so moving the clock while a live worker is mid-run
   * races its heartbeat against the others' housekeeping, which real time never does (a 30 s lease
   * renewed every 10 s). Time moves to expire dead processes' leases, so it waits for the live ones
   * first, but for at most `patience` ms of real time: a live worker can hold a run it does not know
   * it claimed (the claim's reply was lost with a cut connection), and only the lease frees that one.
   */
  async advanceUnlessBusy(ms: number, patience = 2_000): Promise<boolean> {
    const live = new Set(
      [...this.members.values()]
        .filter((m) => m.child.exitCode === null && m.child.signalCode === null && m.child.pid !== undefined)
        .map((m) => String(m.child.pid)),
    );
    const rows = await this.query<{ worker: string | null }>(
      "select worker from runs where status = 'running'",
    );
    const busy = rows.some((r) => r.worker !== null && live.has(r.worker.split(':')[1] ?? ''));
    if (busy) {
      this.#busySince ??= Date.now();
      if (Date.now() - this.#busySince < patience) return false;
    }
    this.#busySince = null;
    this.advance(ms);
    return true;
  }

  async query<T extends Record<string, unknown>>(text: string, values: unknown[] = []): Promise<T[]> {
    if (!this.pg) throw new Error('query() needs the PostgreSQL store');
    for (let attempt = 0; ; attempt++) {
      try {
        return (await this.pg.query<T>(text, values)).rows;
      } catch (error) {
        // The suite cuts connections and restarts PostgreSQL: reconnect and ask again.
        if (attempt > 40) throw error;
        await new Promise((r) => setTimeout(r, 250));
        await this.pg.end().catch(() => {});
        this.pg = new pg.Client({ connectionString: this.databaseUrl });
        this.pg.on('error', () => {});
        await this.pg.connect().catch(() => {});
      }
    }
  }

  /** Polls `check` (every 50 ms, real time) until it returns true; throws with `what` after `ms`. */
  async until(what: string, check: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (await check()) return;
      if (Date.now() > deadline) {
        this.keepLogs = true;
        throw new Error(`timed out after ${ms} ms waiting for ${what} (logs: ${this.dir})`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.members.keys()].map((name) => this.kill(name)));
    await this.pg?.end().catch(() => {});
    await this.#drop().catch(() => {});
    if (this.keepLogs || process.env['ALMANAC_KEEP_RELIABILITY']) {
      process.stderr.write(`reliability: logs kept in ${this.dir}\n`);
    } else rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A notebook with one trivial cell (a cheap run), or the given cells. */
export function notebook(title: string, cells = '```sql one\nselect 1 as x\n```\n'): string {
  return `---\ntitle: ${title}\n---\n\n${cells}`;
}

/** A webhook receiver counting what it received per run and per delivery. */
export async function webhookReceiver(): Promise<{
  url: string;
  received: { runId: string; deliveryId: string }[];
  close(): Promise<void>;
}> {
  const received: { runId: string; deliveryId: string }[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      try {
        const json = JSON.parse(body) as { runId: string; deliveryId: string };
        received.push({ runId: json.runId, deliveryId: json.deliveryId });
      } catch {}
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** Random choice, from a seeded generator so a failing iteration can be replayed. */
export function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
