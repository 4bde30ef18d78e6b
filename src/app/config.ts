/**
 * Configuration is resolved once, from flags, then environment, then defaults, into a frozen object
 * (STYLE.md, habit 8). Every option is documented in docs/configuration.md.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { isPostgresUrl } from '../domain/connection-url.ts';
import { ValidationError } from '../domain/errors.ts';
import { IDENTIFIER } from '../domain/notebook/frontmatter.ts';
import { EMBEDDED_CONNECTION } from '../domain/notebook/notebook.ts';
import { DEFAULT_LIMITS, type ExecutorLimits } from '../executor/executor.ts';
import { DEFAULT_DUCKDB_LIMITS, type DuckDbLimits } from '../executor/sql/duckdb-engine.ts';

export interface ConnectionConfig {
  id: string;
  kind: 'postgres';
  url: string;
}

export interface AlmanacConfig {
  /** Everything Almanac keeps: the workspace DuckDB file, run directories. @default `.almanac` in the working directory */
  dataDir: string;
  /** Where run directories are created. @default `<dataDir>/runs` */
  runDir: string;
  /** The embedded workspace database. @default `<dataDir>/workspace.duckdb` */
  duckdbPath: string;
  /** Each run's DuckDB instance: memory in MiB (`ALMANAC_DUCKDB_MEMORY_MB`, @default 512), threads (`ALMANAC_DUCKDB_THREADS`, @default 2) and temp files it may spill in MiB (`ALMANAC_DUCKDB_TEMP_MB`, @default 1024). */
  duckdb: Readonly<DuckDbLimits>;
  /** Extra connections, from `ALMANAC_CONNECTION_<ID>=postgres://…` or `--connection id=url`. */
  connections: readonly ConnectionConfig[];
  limits: ExecutorLimits;
  /** Start each run's process ahead of time. @default true */
  prewarm: boolean;
  /** OS isolation of runs: `auto` (bubblewrap when it works), `bwrap` (required), `permission` (Node's permission model only). @default auto (`ALMANAC_SANDBOX`) */
  sandbox: 'auto' | 'bwrap' | 'permission';
  /** The user and group runs start as when the server runs as root; null: 65534:65534 (nobody/nogroup). (`ALMANAC_SANDBOX_UID`, `ALMANAC_SANDBOX_GID`) */
  sandboxUser: { uid: number; gid: number } | null;
  /** Keep cells off private and reserved networks (10/8, 172.16/12, 192.168/16, fc00::/7…) as well as the host's own services, which are always refused. @default false (`ALMANAC_CELL_BLOCK_PRIVATE_NETWORKS`) */
  cellBlockPrivateNetworks: boolean;
  /** The store: a `postgres://` URL (scale-out) or a SQLite file. @default `<dataDir>/almanac.sqlite` (from `DATABASE_URL`) */
  databaseUrl: string;
  /** Key for secrets at rest, from `ALMANAC_SECRET_KEY`; null means a key file under the data dir (SQLite only). */
  secretKey: string | null;
  /** HTTP bind address. @default 127.0.0.1 (`ALMANAC_HOST`) */
  host: string;
  /** HTTP port. @default 3100 (`ALMANAC_PORT`) */
  port: number;
  /** The first admin's token instead of a random one (`ALMANAC_ADMIN_TOKEN`). */
  adminToken: string | null;
  /** The first admin's email, for password sign-in. @default admin@localhost (`ALMANAC_ADMIN_EMAIL`, `serve --admin-email`) */
  adminEmail: string | null;
  /** Runs a worker executes at once. @default 2 (`ALMANAC_WORKER_CONCURRENCY`) */
  workerConcurrency: number;
  /** How long a run's claim lasts without a heartbeat. @default 30000 (`ALMANAC_LEASE_MS`) */
  leaseMs: number;
  /** pino level: fatal, error, warn, info, debug, trace or silent. @default info (`ALMANAC_LOG_LEVEL`) */
  logLevel: string;
  /** Where people reach this server, for links in notifications. @default `http://<host>:<port>` (`ALMANAC_PUBLIC_URL`) */
  publicUrl: string | null;
  /** Email written when no SMTP server is configured. @default `<dataDir>/outbox` */
  outboxDir: string;
  /** Chromium for screenshots. @default `/usr/bin/chromium` when it exists (`ALMANAC_CHROMIUM`) */
  chromium: string | null;
  /** Slack's Web API base URL. @default https://slack.com/api/ (`ALMANAC_SLACK_API_URL`) */
  slackApiUrl: string | null;
  /** Bearer token Prometheus sends to `/metrics`; admins' API tokens work too. (`ALMANAC_METRICS_TOKEN`) */
  metricsToken: string | null;
  /** On SIGTERM, how long runs in progress may finish before they are handed back. @default 30000 (`ALMANAC_SHUTDOWN_GRACE_MS`) */
  shutdownGraceMs: number;
  /** A web process's URL, for notifiers without the web role to render screenshots from. @default the public URL (`ALMANAC_WEB_URL`) */
  webUrl: string | null;
  /** Housekeeping (reaping lost runs, retention) interval. @default 5000 (`ALMANAC_HOUSEKEEPING_MS`) */
  housekeepingMs: number;
  /** How long the audit log keeps events, in days (housekeeping prunes older ones). @default 365 (`ALMANAC_AUDIT_RETENTION_DAYS`) */
  auditRetentionDays: number;
  /** How long a webhook receiver may take to answer. @default 10000 (`ALMANAC_WEBHOOK_TIMEOUT_MS`) */
  webhookTimeoutMs: number;
  /** Tests only: a file holding the instant every process of a test takes as now (`ALMANAC_TEST_CLOCK`). */
  testClock: string | null;
  /** The largest request body, except a publish, in bytes. @default 1 MiB (`ALMANAC_MAX_BODY_MB`) */
  maxBodyBytes: number;
  /** The largest publish body (notebook and files in base64), in bytes. @default 72 MiB (`ALMANAC_MAX_PUBLISH_MB`) */
  maxPublishBytes: number;
  /** Trust `X-Forwarded-Proto`/`X-Forwarded-Host` from a reverse proxy (Secure cookies, same-origin checks). @default false (`ALMANAC_TRUST_PROXY`) */
  trustProxy: boolean;
}

/** Every setting that comes from the environment (or a config file), as documented in docs/configuration.md. */
export const CONFIG_KEYS = [
  'DATABASE_URL',
  'ALMANAC_ADMIN_EMAIL',
  'ALMANAC_ADMIN_TOKEN',
  'ALMANAC_AUDIT_RETENTION_DAYS',
  'ALMANAC_CELL_BLOCK_PRIVATE_NETWORKS',
  'ALMANAC_CHROMIUM',
  'ALMANAC_DATA_DIR',
  'ALMANAC_DUCKDB_MEMORY_MB',
  'ALMANAC_DUCKDB_PATH',
  'ALMANAC_DUCKDB_TEMP_MB',
  'ALMANAC_DUCKDB_THREADS',
  'ALMANAC_HOST',
  'ALMANAC_HOUSEKEEPING_MS',
  'ALMANAC_LEASE_MS',
  'ALMANAC_LOG_LEVEL',
  'ALMANAC_MAX_BODY_MB',
  'ALMANAC_MAX_PUBLISH_MB',
  'ALMANAC_METRICS_TOKEN',
  'ALMANAC_PORT',
  'ALMANAC_PREWARM',
  'ALMANAC_PUBLIC_URL',
  'ALMANAC_ROLES',
  'ALMANAC_ROW_LIMIT',
  'ALMANAC_RUN_CPU_SECONDS',
  'ALMANAC_RUN_DIR',
  'ALMANAC_RUN_MAX_FILE_MB',
  'ALMANAC_RUN_MAX_LOG_KB',
  'ALMANAC_RUN_MAX_OUTPUT_MB',
  'ALMANAC_RUN_MEMORY_MB',
  'ALMANAC_RUN_TIMEOUT_MS',
  'ALMANAC_SANDBOX',
  'ALMANAC_SANDBOX_GID',
  'ALMANAC_SANDBOX_UID',
  'ALMANAC_SECRET_KEY',
  'ALMANAC_SHUTDOWN_GRACE_MS',
  'ALMANAC_SLACK_API_URL',
  'ALMANAC_TEST_CLOCK',
  'ALMANAC_TRUST_PROXY',
  'ALMANAC_WEB_URL',
  'ALMANAC_WEBHOOK_TIMEOUT_MS',
  'ALMANAC_WORKER_CONCURRENCY',
] as const;

/**
 * Reads a config file: a JSON object whose keys are the environment variables above (or
 * `ALMANAC_CONNECTION_<ID>`), with string, number or boolean values. Unknown keys are errors, so a typo
 * is caught at start rather than silently ignored.
 */
export function readConfigFile(path: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ValidationError('--config', `cannot read '${path}' (${(error as NodeJS.ErrnoException).code})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ValidationError('--config', `'${path}' is not valid JSON: ${(error as Error).message}`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ValidationError('--config', `'${path}' must hold a JSON object of settings`);
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(parsed)) {
    const known =
      (CONFIG_KEYS as readonly string[]).includes(key) || /^ALMANAC_CONNECTION_[A-Z0-9_]+$/.test(key);
    if (!known) {
      const near = closest(key.toUpperCase().replace(/-/g, '_'), CONFIG_KEYS);
      throw new ValidationError(
        key,
        `is not a setting (in ${path})${near ? `; did you mean ${near}?` : '; see docs/configuration.md'}`,
      );
    }
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new ValidationError(key, `must be a string, number or boolean (in ${path})`);
    }
    out[key] = String(value);
  }
  return out;
}

export interface ConfigOverrides {
  dataDir?: string;
  connections?: readonly string[];
  timeoutMs?: number;
  memoryLimitMb?: number;
  rowLimit?: number;
  port?: number;
  host?: string;
  adminEmail?: string;
}

export function resolveConfig(
  overrides: ConfigOverrides = {},
  env: Readonly<Record<string, string | undefined>> = process.env,
): Readonly<AlmanacConfig> {
  const dataDir = resolve(overrides.dataDir ?? env['ALMANAC_DATA_DIR'] ?? '.almanac');
  const connections = new Map<string, ConnectionConfig>();
  for (const [key, value] of Object.entries(env)) {
    const match = /^ALMANAC_CONNECTION_([A-Z0-9_]+)$/.exec(key);
    if (match && value) {
      const id = match[1]!.toLowerCase();
      connections.set(id, parseConnection(id, value, key));
    }
  }
  for (const flag of overrides.connections ?? []) {
    const eq = flag.indexOf('=');
    if (eq <= 0) throw new ValidationError('--connection', `expected id=url, got '${flag}'`);
    const id = flag.slice(0, eq);
    connections.set(id, parseConnection(id, flag.slice(eq + 1), '--connection'));
  }
  const limits: ExecutorLimits = {
    timeoutMs: overrides.timeoutMs ?? numberFrom(env, 'ALMANAC_RUN_TIMEOUT_MS', DEFAULT_LIMITS.timeoutMs),
    memoryLimitMb:
      overrides.memoryLimitMb ?? numberFrom(env, 'ALMANAC_RUN_MEMORY_MB', DEFAULT_LIMITS.memoryLimitMb),
    rowLimit: overrides.rowLimit ?? numberFrom(env, 'ALMANAC_ROW_LIMIT', DEFAULT_LIMITS.rowLimit),
    cpuSeconds: positive(
      numberFrom(env, 'ALMANAC_RUN_CPU_SECONDS', DEFAULT_LIMITS.cpuSeconds),
      'ALMANAC_RUN_CPU_SECONDS',
    ),
    maxOutputBytes:
      positive(
        numberFrom(env, 'ALMANAC_RUN_MAX_OUTPUT_MB', DEFAULT_LIMITS.maxOutputBytes / 1048576),
        'ALMANAC_RUN_MAX_OUTPUT_MB',
      ) * 1048576,
    maxLogBytes:
      positive(
        numberFrom(env, 'ALMANAC_RUN_MAX_LOG_KB', DEFAULT_LIMITS.maxLogBytes / 1024),
        'ALMANAC_RUN_MAX_LOG_KB',
      ) * 1024,
    maxFileBytes:
      positive(
        numberFrom(env, 'ALMANAC_RUN_MAX_FILE_MB', DEFAULT_LIMITS.maxFileBytes / 1048576),
        'ALMANAC_RUN_MAX_FILE_MB',
      ) * 1048576,
  };
  return Object.freeze({
    dataDir,
    runDir: resolve(env['ALMANAC_RUN_DIR'] ?? resolve(dataDir, 'runs')),
    duckdbPath: resolve(env['ALMANAC_DUCKDB_PATH'] ?? resolve(dataDir, 'workspace.duckdb')),
    duckdb: Object.freeze({
      memoryLimitMb: positive(
        numberFrom(env, 'ALMANAC_DUCKDB_MEMORY_MB', DEFAULT_DUCKDB_LIMITS.memoryLimitMb),
        'ALMANAC_DUCKDB_MEMORY_MB',
      ),
      threads: positive(
        numberFrom(env, 'ALMANAC_DUCKDB_THREADS', DEFAULT_DUCKDB_LIMITS.threads),
        'ALMANAC_DUCKDB_THREADS',
      ),
      tempLimitMb: positive(
        numberFrom(env, 'ALMANAC_DUCKDB_TEMP_MB', DEFAULT_DUCKDB_LIMITS.tempLimitMb),
        'ALMANAC_DUCKDB_TEMP_MB',
      ),
    }),
    connections: Object.freeze([...connections.values()]),
    limits: Object.freeze(limits),
    prewarm: env['ALMANAC_PREWARM'] !== 'false',
    sandbox: sandboxMode(env['ALMANAC_SANDBOX']),
    sandboxUser: sandboxUser(env),
    cellBlockPrivateNetworks:
      env['ALMANAC_CELL_BLOCK_PRIVATE_NETWORKS'] === 'true' ||
      env['ALMANAC_CELL_BLOCK_PRIVATE_NETWORKS'] === '1',
    databaseUrl: databaseUrl(env['DATABASE_URL'], dataDir),
    secretKey: env['ALMANAC_SECRET_KEY'] || null,
    host: overrides.host ?? env['ALMANAC_HOST'] ?? '127.0.0.1',
    port: overrides.port ?? numberFrom(env, 'ALMANAC_PORT', 3100),
    adminToken: adminToken(env['ALMANAC_ADMIN_TOKEN']),
    adminEmail: adminEmail(overrides.adminEmail ?? env['ALMANAC_ADMIN_EMAIL']),
    workerConcurrency: positive(
      numberFrom(env, 'ALMANAC_WORKER_CONCURRENCY', 2),
      'ALMANAC_WORKER_CONCURRENCY',
    ),
    leaseMs: positive(numberFrom(env, 'ALMANAC_LEASE_MS', 30_000), 'ALMANAC_LEASE_MS'),
    logLevel: logLevel(env['ALMANAC_LOG_LEVEL'] ?? 'info'),
    publicUrl: publicUrl(env['ALMANAC_PUBLIC_URL']),
    outboxDir: resolve(dataDir, 'outbox'),
    chromium: env['ALMANAC_CHROMIUM'] || null,
    slackApiUrl: env['ALMANAC_SLACK_API_URL']
      ? httpUrl(env['ALMANAC_SLACK_API_URL'], 'ALMANAC_SLACK_API_URL')
      : null,
    metricsToken: metricsToken(env['ALMANAC_METRICS_TOKEN']),
    shutdownGraceMs: numberFrom(env, 'ALMANAC_SHUTDOWN_GRACE_MS', 30_000),
    webUrl: env['ALMANAC_WEB_URL']
      ? httpUrl(env['ALMANAC_WEB_URL'], 'ALMANAC_WEB_URL').replace(/\/+$/, '')
      : null,
    housekeepingMs: positive(numberFrom(env, 'ALMANAC_HOUSEKEEPING_MS', 5000), 'ALMANAC_HOUSEKEEPING_MS'),
    auditRetentionDays: positive(
      numberFrom(env, 'ALMANAC_AUDIT_RETENTION_DAYS', 365),
      'ALMANAC_AUDIT_RETENTION_DAYS',
    ),
    webhookTimeoutMs: positive(
      numberFrom(env, 'ALMANAC_WEBHOOK_TIMEOUT_MS', 10_000),
      'ALMANAC_WEBHOOK_TIMEOUT_MS',
    ),
    testClock: env['ALMANAC_TEST_CLOCK'] ? resolve(env['ALMANAC_TEST_CLOCK']) : null,
    maxBodyBytes: Math.round(
      positive(numberFrom(env, 'ALMANAC_MAX_BODY_MB', 1), 'ALMANAC_MAX_BODY_MB') * 1048576,
    ),
    maxPublishBytes: Math.round(
      positive(numberFrom(env, 'ALMANAC_MAX_PUBLISH_MB', 72), 'ALMANAC_MAX_PUBLISH_MB') * 1048576,
    ),
    trustProxy: env['ALMANAC_TRUST_PROXY'] === 'true' || env['ALMANAC_TRUST_PROXY'] === '1',
  });
}

/** The known key nearest to `key` (edit distance at most 2), for "did you mean". */
function closest(key: string, keys: readonly string[]): string | null {
  let best: { key: string; d: number } | null = null;
  for (const candidate of keys) {
    const d = distance(key, candidate);
    if (d <= 2 && (!best || d < best.d)) best = { key: candidate, d };
  }
  return best?.key ?? null;
}

/** Levenshtein distance, with a swap of two neighbours counting as one edit. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
      }
    }
  }
  return d[a.length]![b.length]!;
}

/** `ALMANAC_SANDBOX_UID` and `ALMANAC_SANDBOX_GID`, both or neither; null keeps the default. */
function sandboxUser(env: Readonly<Record<string, string | undefined>>): { uid: number; gid: number } | null {
  const uid = env['ALMANAC_SANDBOX_UID'];
  const gid = env['ALMANAC_SANDBOX_GID'];
  if (!uid && !gid) return null;
  if (!uid || !gid) {
    throw new ValidationError(
      uid ? 'ALMANAC_SANDBOX_GID' : 'ALMANAC_SANDBOX_UID',
      'is missing: set ALMANAC_SANDBOX_UID and ALMANAC_SANDBOX_GID together (numbers, like 65534)',
    );
  }
  return {
    uid: numberFrom(env, 'ALMANAC_SANDBOX_UID', 0),
    gid: numberFrom(env, 'ALMANAC_SANDBOX_GID', 0),
  };
}

function sandboxMode(raw: string | undefined): 'auto' | 'bwrap' | 'permission' {
  const value = raw || 'auto';
  if (value === 'auto' || value === 'bwrap' || value === 'permission') return value;
  throw new ValidationError('ALMANAC_SANDBOX', `must be auto, bwrap or permission, got '${raw}'`);
}

function metricsToken(raw: string | undefined): string | null {
  if (!raw) return null;
  if (raw.length < 16) {
    throw new ValidationError(
      'ALMANAC_METRICS_TOKEN',
      'must be at least 16 characters; use a long random string',
    );
  }
  return raw;
}

function publicUrl(raw: string | undefined): string | null {
  return raw ? httpUrl(raw, 'ALMANAC_PUBLIC_URL').replace(/\/+$/, '') : null;
}

function httpUrl(raw: string, field: string): string {
  try {
    const url = new URL(raw);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error();
    return url.toString();
  } catch {
    throw new ValidationError(field, `'${raw}' is not an http(s) URL, like https://almanac.example.com`);
  }
}

function parseConnection(id: string, url: string, field: string): ConnectionConfig {
  if (!IDENTIFIER.test(id)) throw new ValidationError(field, `connection id '${id}' must be an identifier`);
  if (id === EMBEDDED_CONNECTION) {
    throw new ValidationError(
      field,
      `'${EMBEDDED_CONNECTION}' is the embedded database and cannot be redefined`,
    );
  }
  if (!isPostgresUrl(url)) {
    throw new ValidationError(field, `connection '${id}' must be a postgres://user@host:port/db URL`);
  }
  return { id, kind: 'postgres', url };
}

function numberFrom(
  env: Readonly<Record<string, string | undefined>>,
  key: string,
  fallback: number,
): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new ValidationError(key, `must be a whole number, got '${raw}'`);
  return n;
}

function databaseUrl(raw: string | undefined, dataDir: string): string {
  if (!raw) return resolve(dataDir, 'almanac.sqlite');
  if (isPostgresUrl(raw)) return raw;
  if (/^[a-z]+:\/\//i.test(raw)) {
    throw new ValidationError(
      'DATABASE_URL',
      `must be a postgres:// URL or a SQLite file path, not '${raw.split(':')[0]}:'`,
    );
  }
  return resolve(raw);
}

function adminEmail(raw: string | undefined): string | null {
  if (!raw) return null;
  if (!/^[^\s@]+@[^\s@]+$/.test(raw.trim())) {
    throw new ValidationError(
      'ALMANAC_ADMIN_EMAIL',
      `'${raw.slice(0, 80)}' is not an email address (like ada@example.com)`,
    );
  }
  return raw.trim();
}

function adminToken(raw: string | undefined): string | null {
  if (!raw) return null;
  if (!/^alm_[A-Za-z0-9_-]{16,}$/.test(raw)) {
    throw new ValidationError(
      'ALMANAC_ADMIN_TOKEN',
      "must start with 'alm_' followed by at least 16 letters, digits, - or _",
    );
  }
  return raw;
}

function positive(n: number, field: string): number {
  if (n < 1) throw new ValidationError(field, 'must be at least 1');
  return n;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
function logLevel(raw: string): string {
  if (!LOG_LEVELS.includes(raw))
    throw new ValidationError('ALMANAC_LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}`);
  return raw;
}
