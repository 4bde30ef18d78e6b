/**
 * The store suite is written once and run against every database (STYLE.md, habit 4): a fresh SQLite
 * file, and a fresh PostgreSQL database (cloned from the suite's template), per test.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, type StoreDatabase } from '../../src/store/database.ts';
import { freshPostgresDatabase, postgresUnavailable } from './services.ts';

export interface StoreTarget {
  name: 'sqlite' | 'postgres';
  /** Why this target is skipped, or false. */
  skip: string | false;
  open<Schema>(): Promise<StoreDatabase<Schema> & { dispose(): Promise<void> }>;
}

export async function storeTargets(): Promise<StoreTarget[]> {
  const pgUnavailable = await postgresUnavailable();
  return [
    {
      name: 'sqlite',
      skip: false,
      async open<Schema>() {
        const dir = mkdtempSync(join(tmpdir(), 'almanac-store-'));
        const store = openDatabase<Schema>(join(dir, 'almanac.sqlite'));
        return {
          ...store,
          async dispose() {
            await store.close();
            rmSync(dir, { recursive: true, force: true });
          },
        };
      },
    },
    {
      name: 'postgres',
      skip: pgUnavailable ?? false,
      async open<Schema>() {
        const schema = await freshPostgresDatabase();
        const store = openDatabase<Schema>(schema.url);
        return {
          ...store,
          async dispose() {
            await store.close();
            await schema.drop();
          },
        };
      },
    },
  ];
}
