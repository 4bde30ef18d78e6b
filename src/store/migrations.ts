/**
 * One migration set for both databases, run automatically on start. Types that differ (timestamps) come
 * from `types(dialect)`. Migrations are append-only: never edit one that has shipped.
 */
import { type Kysely, sql } from 'kysely';
import { type Migration, type MigrationProvider, Migrator } from 'kysely/migration';
import type { Dialect } from './database.ts';

function types(dialect: Dialect) {
  return {
    /** Instants: timestamptz on PostgreSQL, ISO 8601 text on SQLite. */
    timestamp: dialect === 'postgres' ? ('timestamptz' as const) : ('text' as const),
    now: dialect === 'postgres' ? sql`now()` : sql`(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))`,
  };
}

function migrations(dialect: Dialect): Record<string, Migration> {
  const t = types(dialect);
  return {
    '0001_workspaces_and_users': {
      async up(db: Kysely<any>) {
        await db.schema
          .createTable('workspaces')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('created_at', t.timestamp, (c) => c.notNull().defaultTo(t.now))
          .execute();
        await db.schema
          .createTable('users')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('workspace_id', 'text', (c) =>
            c.notNull().references('workspaces.id').onDelete('cascade'),
          )
          .addColumn('email', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('role', 'text', (c) => c.notNull().check(sql`role in ('admin', 'editor', 'viewer')`))
          .addColumn('created_at', t.timestamp, (c) => c.notNull().defaultTo(t.now))
          .addUniqueConstraint('users_workspace_email', ['workspace_id', 'email'])
          .execute();
      },
    },
  };
}

/** Brings the schema up to date. Safe to call from several processes at once on PostgreSQL. */
export async function migrate(db: Kysely<any>, dialect: Dialect): Promise<string[]> {
  const provider: MigrationProvider = { getMigrations: async () => migrations(dialect) };
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error;
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
