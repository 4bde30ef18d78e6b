/**
 * Opens the store at `url`, migrates it, and builds the service context around it: the wake-up channel
 * the store's capabilities allow (LISTEN/NOTIFY or in-process), the clock and the secrets key.
 */
import type { ServiceContext } from '../services/service-context.ts';
import { type Dialect, openDatabase } from '../store/database.ts';
import { migrate } from '../store/migrations.ts';
import type { Schema } from '../store/schema.ts';
import { LocalWakeups, PostgresWakeups, type Wakeups } from '../store/wakeups.ts';

export interface OpenedServices {
  ctx: ServiceContext;
  close(): Promise<void>;
}

export async function openServices(
  url: string,
  options: { now?: () => Date; secretKey: (dialect: Dialect) => Buffer },
): Promise<OpenedServices> {
  const store = openDatabase<Schema>(url);
  try {
    await migrate(store.db, store.dialect);
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
    throw error;
  }
}
