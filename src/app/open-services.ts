/**
 * Opens the store at `url`, migrates it, and builds the service context around it: the wake-up channel
 * the store's capabilities allow (LISTEN/NOTIFY or in-process), the clock and the secrets key.
 */

import { isPostgresUrl } from '../domain/connection-url.ts';
import { ValidationError } from '../domain/errors.ts';
import type { ServiceContext } from '../services/service-context.ts';
import { type Dialect, openDatabase, restrictSqliteFiles } from '../store/database.ts';
import { migrate } from '../store/migrations.ts';
import type { Schema } from '../store/schema.ts';
import { LocalWakeups, PostgresWakeups, type Wakeups } from '../store/wakeups.ts';

export interface OpenedServices {
  ctx: ServiceContext;
  close(): Promise<void>;
}

export async function openServices(
  url: string,
  options: { now?: () => Date; secretKey: (dialect: Dialect) => Buffer; auditRetentionDays?: number },
): Promise<OpenedServices> {
  const store = openDatabase<Schema>(url);
  try {
    await migrate(store.db, store.dialect);
    // The migration created the WAL and shared-memory files: owner-only like the store itself.
    if (store.dialect === 'sqlite') restrictSqliteFiles(url);
    const wakeups: Wakeups = store.capabilities.listenNotify
      ? await PostgresWakeups.open(url)
      : new LocalWakeups();
    const ctx: ServiceContext = {
      db: store.db,
      dialect: store.dialect,
      capabilities: store.capabilities,
      wakeups,
      now: options.now ?? (() => new Date()),
      secretKey: options.secretKey(store.dialect),
      ...(options.auditRetentionDays !== undefined ? { auditRetentionDays: options.auditRetentionDays } : {}),
    };
    return {
      ctx,
      async close() {
        await wakeups.close();
        await store.close();
      },
    };
  } catch (error) {
    await store.close();
    throw storeError(error, url);
  }
}

/** Opening the store failed: say what is wrong with DATABASE_URL in one line, or pass the error on. */
function storeError(error: unknown, url: string): unknown {
  const e = error as { code?: string; message?: string };
  const where = isPostgresUrl(url)
    ? (() => {
        const u = new URL(url);
        return `PostgreSQL at ${u.hostname}:${u.port || 5432}${u.pathname}`;
      })()
    : `the SQLite file ${url}`;
  if (
    e.code === 'ECONNREFUSED' ||
    e.code === 'ENOTFOUND' ||
    e.code === 'ETIMEDOUT' ||
    e.code === 'EHOSTUNREACH'
  ) {
    return new ValidationError(
      'DATABASE_URL',
      `cannot connect to ${where} (${e.code}); start it or fix the URL`,
    );
  }
  if (e.code === '3F000' || /no schema has been selected/.test(e.message ?? '')) {
    return new ValidationError(
      'DATABASE_URL',
      `the schema in its search_path does not exist in ${where}; create it (CREATE SCHEMA …) or fix the URL`,
    );
  }
  if (e.code === '3D000' || e.code === '28P01' || e.code === '28000') {
    return new ValidationError('DATABASE_URL', `${where} refused: ${e.message}`);
  }
  return error;
}
