/**
 * The subset of a SQLite driver that Kysely's SqliteDialect needs, implemented on Node's built-in
 * `node:sqlite` (STYLE.md, habit 3: depend on the smallest interface). No native addon to install.
 */
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import type { SqliteDatabase, SqliteStatement } from 'kysely';

export function openNodeSqlite(path: string): SqliteDatabase & { raw: DatabaseSync } {
  const raw = new DatabaseSync(path);
  // WAL lets readers proceed while a writer commits; busy_timeout waits for a lock instead of failing.
  raw.exec('PRAGMA journal_mode = WAL');
  raw.exec('PRAGMA busy_timeout = 5000');
  raw.exec('PRAGMA foreign_keys = ON');
  raw.exec('PRAGMA synchronous = NORMAL');
  return {
    raw,
    close: () => raw.close(),
    prepare: (sql: string): SqliteStatement => wrap(raw.prepare(sql)),
  };
}

type Param = null | number | bigint | string | NodeJS.ArrayBufferView;

function wrap(statement: StatementSync): SqliteStatement {
  const params = (values: ReadonlyArray<unknown>) => values as Param[];
  return {
    reader: statement.columns().length > 0,
    all: (values) => statement.all(...params(values)),
    run: (values) => statement.run(...params(values)),
    iterate: (values) => statement.iterate(...params(values)),
  };
}
