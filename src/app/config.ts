/**
 * Configuration is resolved once, from flags, then environment, then defaults, into a frozen object
 * (STYLE.md, habit 8). Every option is documented in docs/configuration.md.
 */
import { resolve } from 'node:path';
import { ValidationError } from '../domain/errors.ts';
import { IDENTIFIER } from '../domain/notebook/frontmatter.ts';
import { EMBEDDED_CONNECTION } from '../domain/notebook/notebook.ts';
import { DEFAULT_LIMITS, type ExecutorLimits } from '../executor/executor.ts';

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
  /** Extra connections, from `ALMANAC_CONNECTION_<ID>=postgres://…` or `--connection id=url`. */
  connections: readonly ConnectionConfig[];
  limits: ExecutorLimits;
  /** Start each run's process ahead of time. @default true */
  prewarm: boolean;
}

export interface ConfigOverrides {
  dataDir?: string;
  connections?: readonly string[];
  timeoutMs?: number;
  memoryLimitMb?: number;
  rowLimit?: number;
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
  };
  return Object.freeze({
    dataDir,
    runDir: resolve(env['ALMANAC_RUN_DIR'] ?? resolve(dataDir, 'runs')),
    duckdbPath: resolve(env['ALMANAC_DUCKDB_PATH'] ?? resolve(dataDir, 'workspace.duckdb')),
    connections: Object.freeze([...connections.values()]),
    limits: Object.freeze(limits),
    prewarm: env['ALMANAC_PREWARM'] !== 'false',
  });
}

function parseConnection(id: string, url: string, field: string): ConnectionConfig {
  if (!IDENTIFIER.test(id)) throw new ValidationError(field, `connection id '${id}' must be an identifier`);
  if (id === EMBEDDED_CONNECTION) {
    throw new ValidationError(
      field,
      `'${EMBEDDED_CONNECTION}' is the embedded database and cannot be redefined`,
    );
  }
  if (!/^postgres(ql)?:\/\//.test(url)) {
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
