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

/**
 * PostgreSQL databases for tests, in the pattern of graphile-worker's suite: each test file (process)
 * makes its own template database, and each test gets its own database cloned from it, so no suite
 * shares the `test` database or another suite's tables. The template stays empty: migrations are part
 * of what the store suite tests. Databases are named `almanac_t_<epoch seconds>_<hex>`; ones left by a
 * crashed run (older than two hours) are dropped when the next suite starts.
 */
const PREFIX = 'almanac_t_';
let template: Promise<string> | undefined;
let clones = Promise.resolve();

async function adminQuery(text: string): Promise<void> {
  const admin = new pg.Client({ connectionString: POSTGRES_URL, application_name: 'almanac-test-admin' });
  await admin.connect();
  try {
    await admin.query(text);
  } finally {
    await admin.end().catch(() => {});
  }
}

function newDatabaseName(): string {
  return `${PREFIX}${Math.floor(Date.now() / 1000)}_${randomBytes(5).toString('hex')}`;
}

function suiteTemplate(): Promise<string> {
  template ??= (async () => {
    const admin = new pg.Client({ connectionString: POSTGRES_URL, application_name: 'almanac-test-admin' });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ datname: string }>(
        'select datname from pg_database where datname like $1',
        [`${PREFIX}%`],
      );
      const stale = Math.floor(Date.now() / 1000) - 2 * 3600;
      for (const { datname } of rows) {
        const born = Number(/^almanac_t_(\d+)_/.exec(datname)?.[1] ?? Number.POSITIVE_INFINITY);
        if (born < stale)
          await admin.query(`drop database if exists ${datname} with (force)`).catch(() => {});
      }
      const name = newDatabaseName();
      await admin.query(`create database ${name} template template0 encoding 'UTF8'`);
      process.once('beforeExit', () => {
        void adminQuery(`drop database if exists ${name} with (force)`).catch(() => {});
      });
      return name;
    } finally {
      await admin.end().catch(() => {});
    }
  })();
  return template;
}

/** A URL naming `database` on the test server (same host, user and query as POSTGRES_URL). */
function urlOf(database: string): string {
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${database}`;
  return url.toString();
}

/** A fresh, empty database for one test (cloned from the suite's template), and a way to drop it. */
export async function freshPostgresDatabase(): Promise<{
  url: string;
  database: string;
  drop(): Promise<void>;
}> {
  const source = await suiteTemplate();
  const database = newDatabaseName();
  // One clone at a time per process: PostgreSQL refuses to copy a template another CREATE is reading.
  const created = clones.then(() =>
    adminQuery(`create database ${database} template ${source} strategy file_copy`),
  );
  clones = created.catch(() => {});
  await created;
  return {
    url: urlOf(database),
    database,
    async drop() {
      await adminQuery(`drop database if exists ${database} with (force)`);
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
