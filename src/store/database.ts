/**
 * Opens the store: Kysely on `node:sqlite` (the embedded default, a file under the data dir) or on
 * PostgreSQL (`postgres://…`, for scale-out). Everything that differs between the two is in
 * `Capabilities`, so callers branch on a named capability, never on a dialect name.
 */
import { chmodSync, existsSync } from 'node:fs';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import { isPostgresUrl } from '../domain/connection-url.ts';
import type { Schema } from './schema.ts';
import { openNodeSqlite } from './sqlite/node-sqlite-database.ts';

export type Dialect = 'sqlite' | 'postgres';

/**
 * A handle on the store: the whole database, or a transaction in it (every query function takes
 * either). Layers above `store/` hold it and pass it back to store functions; they never build queries
 * on it (test/layering.test.ts checks that), so they need not import Kysely either.
 */
export type Db = Kysely<Schema>;

/**
 * Runs `fn` in one transaction: it commits when `fn` resolves and rolls back when it throws. The way
 * services group store calls into one use case without touching the query builder.
 */
export function transaction<T>(db: Db, fn: (trx: Db) => Promise<T>): Promise<T> {
  return db.transaction().execute(fn);
}

/** Asks the store for nothing (`select 1`): rejects when it cannot be reached. */
export async function ping(db: Db): Promise<void> {
  await sql`select 1`.execute(db);
}

/** What each database can do that the other cannot. */
export interface Capabilities {
  /** `SELECT … FOR UPDATE SKIP LOCKED` for claiming work. */
  skipLocked: boolean;
  /** LISTEN/NOTIFY for cross-process wake-ups (else an in-process signal). */
  listenNotify: boolean;
}

export const CAPABILITIES: Readonly<Record<Dialect, Capabilities>> = Object.freeze({
  sqlite: { skipLocked: false, listenNotify: false },
  postgres: { skipLocked: true, listenNotify: true },
});

export interface StoreDatabase<Schema> {
  db: Kysely<Schema>;
  dialect: Dialect;
  capabilities: Capabilities;
  close(): Promise<void>;
}

/** `location` is a `postgres://` URL or a SQLite file path (`:memory:` for tests). */
export function openDatabase<Schema>(location: string): StoreDatabase<Schema> {
  if (isPostgresUrl(location)) {
    const pool = new pg.Pool({ connectionString: location, max: 10, application_name: 'almanac-store' });
    pool.on('error', () => {});
    // A client whose connection dies while checked out (a backend terminated mid-transaction) emits
    // 'error' with no pool listener attached, which would crash the process; the failed query already
    // rejects, and the pool drops the broken client on release.
    pool.on('connect', (client) => client.on('error', () => {}));
    const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
    return { db, dialect: 'postgres', capabilities: CAPABILITIES.postgres, close: () => db.destroy() };
  }
  const sqlite = openNodeSqlite(location);
  restrictSqliteFiles(location);
  const db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: sqlite }) });
  return { db, dialect: 'sqlite', capabilities: CAPABILITIES.sqlite, close: () => db.destroy() };
}

/**
 * Makes a SQLite store and its WAL, shared-memory and journal files readable by their owner only
 * (0600): the store holds token hashes, encrypted credentials and every run's inputs and outputs.
 * The CLI's umask 077 covers files created later; this covers a store opened by other code, and files
 * an older version created world-readable (issue 14).
 */
export function restrictSqliteFiles(location: string): void {
  if (location === ':memory:' || location.startsWith('file:')) return;
  for (const suffix of ['', '-wal', '-shm', '-journal']) {
    const file = location + suffix;
    try {
      if (existsSync(file)) chmodSync(file, 0o600);
    } catch {
      // Not ours to change (a read-only mount, another owner): the store still works.
    }
  }
}

/**
 * Serializes one kind of work across processes until the surrounding transaction ends: on PostgreSQL an
 * advisory lock named after `name` and the schema (so installs in other schemas do not wait); on
 * SQLite nothing, since one process owns the file and its writes are serialized anyway.
 */
export async function lockForTransaction(trx: Kysely<any>, dialect: Dialect, name: string): Promise<void> {
  if (dialect !== 'postgres') return;
  await sql`select pg_advisory_xact_lock(hashtext(${`almanac_${name}:`} || current_schema()))`.execute(trx);
}
