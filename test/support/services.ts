/**
 * Access to the real services tests use. Without them, suites skip and say so loudly; with
 * ALMANAC_REQUIRE_SERVICES=1 (set by .ci/run) a missing service fails the suite instead.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { detectIsolation } from '../../src/executor/sandbox.ts';

export const REQUIRE_SERVICES = process.env['ALMANAC_REQUIRE_SERVICES'] === '1';
export const POSTGRES_URL =
  process.env['ALMANAC_TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

let reachable: Promise<string | null> | undefined;

/** Resolves to the reason PostgreSQL cannot be used, or null when it can. */
export function postgresUnavailable(): Promise<string | null> {
  reachable ??= (async () => {
    const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.query('select 1');
      return null;
    } catch (error) {
      const reason = `PostgreSQL at ${POSTGRES_URL} is not reachable (${(error as Error).message})`;
      if (REQUIRE_SERVICES) throw new Error(`${reason}, and ALMANAC_REQUIRE_SERVICES=1 requires it`);
      process.stderr.write(
        `\n${'!'.repeat(78)}\n!! SKIPPING PostgreSQL suites: ${reason}\n!! Start PostgreSQL or set ALMANAC_TEST_POSTGRES_URL to run them.\n${'!'.repeat(78)}\n\n`,
      );
      return reason;
    } finally {
      await client.end().catch(() => {});
    }
  })();
  return reachable;
}

/** A fresh schema for one test, and a connection URL whose search_path points at it. */
export async function freshPostgresSchema(): Promise<{ url: string; schema: string; drop(): Promise<void> }> {
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  await admin.query(`create schema ${schema}`);
  await admin.end();
  const url = `${POSTGRES_URL}${POSTGRES_URL.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  return {
    url,
    schema,
    async drop() {
      const c = new pg.Client({ connectionString: POSTGRES_URL });
      await c.connect();
      await c.query(`drop schema if exists ${schema} cascade`);
      await c.end();
    },
  };
}

/**
 * Whether bubblewrap can start a sandbox here. Without it, `what` is skipped loudly, or (under
 * ALMANAC_REQUIRE_SERVICES=1, as in CI) the suite fails.
 */
export function bubblewrapWorks(what: string): boolean {
  let works = false;
  try {
    works = detectIsolation({ hide: [] }).bwrap !== null;
  } catch {
    works = false;
  }
  if (!works) {
    const reason = 'bubblewrap (bwrap) is missing or cannot create namespaces here';
    if (REQUIRE_SERVICES) throw new Error(`${reason}, and ALMANAC_REQUIRE_SERVICES=1 requires it`);
    process.stderr.write(
      `\n${'!'.repeat(78)}\n!! SKIPPING ${what}: ${reason}.\n!! apt-get install bubblewrap to run it.\n${'!'.repeat(78)}\n\n`,
    );
  }
  return works;
}
