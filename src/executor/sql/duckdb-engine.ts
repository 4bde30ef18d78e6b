/**
 * The embedded default connection: one DuckDB database file per workspace under the data dir, opened by
 * a fresh DuckDB instance for each run (docs/decisions.md, "Each run gets its own DuckDB instance").
 * DuckDB's settings are global to an instance, so a run's own instance is what lets each run have its
 * own file confinement and limits:
 * - `allowed_directories` is the run's version files and its run directory, nothing else, with
 *   `enable_external_access = false` (no network reads, extension downloads or other files);
 * - writes (`COPY … TO`, `EXPORT DATABASE`, `ATTACH`) go only to the run directory (duckdb-paths.ts);
 * - memory, temp files (in a private folder next to the run directory) and threads are capped by the
 *   host, and `lock_configuration` keeps user SQL from changing any setting.
 * One instance at a time may have the file open in this process (file-mutex.ts); a run waiting for it
 * still stops on its timeout or cancel.
 */
import { chmodSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { type DuckDBConnection, DuckDBInstance, StatementType } from '@duckdb/node-api';
import { MAX_SQL_RESULT_ROWS } from '../../domain/limits.ts';
import type { Column } from '../../domain/snapshot.ts';
import { confineFilePaths } from './duckdb-paths.ts';
import { acquireFile, fileKey, openInThisProcess } from './file-mutex.ts';
import {
  decimalValue,
  integerValue,
  type SqlEngine,
  SqlExecutionError,
  type SqlQuery,
  type SqlQueryResult,
  type SqlSession,
  type SqlSessionOptions,
  toSqlExecutionError,
} from './sql-engine.ts';

/** Limits of a run's DuckDB instance, set by the host (docs/configuration.md, `ALMANAC_DUCKDB_*`). */
export interface DuckDbLimits {
  /** DuckDB's `memory_limit` in MiB. */
  memoryLimitMb: number;
  /** DuckDB's `threads`. */
  threads: number;
  /** DuckDB's `max_temp_directory_size` in MiB: what a query may spill to disk. */
  tempLimitMb: number;
}

export const DEFAULT_DUCKDB_LIMITS: Readonly<DuckDbLimits> = Object.freeze({
  memoryLimitMb: 512,
  threads: 2,
  tempLimitMb: 1024,
});

export interface DuckDbEngineOptions {
  id?: string;
  /** The database file, or ':memory:' (then every run starts from an empty database). */
  path: string;
  /** Folders a session's `projectDir` must lie in (the versions folder, or the CLI's project). */
  allowedDirectories: readonly string[];
  limits?: Partial<DuckDbLimits>;
}

export class DuckDbEngine implements SqlEngine {
  readonly id: string;
  readonly dialect = 'duckdb' as const;
  readonly #path: string;
  readonly #roots: readonly string[];
  readonly #limits: DuckDbLimits;
  readonly #sessions = new Set<DuckDbSession>();

  private constructor(id: string, path: string, roots: readonly string[], limits: DuckDbLimits) {
    this.id = id;
    this.#path = path;
    this.#roots = roots;
    this.#limits = limits;
  }

  /** Checks that the file opens (it is created if missing); runs open their own instances later. */
  static async open(options: DuckDbEngineOptions): Promise<DuckDbEngine> {
    const limits = { ...DEFAULT_DUCKDB_LIMITS, ...options.limits };
    for (const [key, value] of Object.entries(limits)) {
      if (!Number.isInteger(value) || value < 1) throw new RangeError(`DuckDB ${key} must be at least 1`);
    }
    const path = options.path === ':memory:' ? options.path : resolve(options.path);
    if (path !== ':memory:') {
      const release = await acquireFile(fileKey(path), new AbortController().signal);
      try {
        const instance = await DuckDBInstance.create(path);
        instance.closeSync();
        // The workspace database holds every project's write-backs: owner only, like the store.
        for (const file of [path, `${path}.wal`]) if (existsSync(file)) chmodSync(file, 0o600);
      } finally {
        release();
      }
    }
    return new DuckDbEngine(
      options.id ?? 'duckdb',
      path,
      options.allowedDirectories.map((d) => resolve(d)),
      limits,
    );
  }

  async openSession({ projectDir, runDir }: SqlSessionOptions): Promise<SqlSession> {
    const project = resolve(projectDir);
    if (!this.#roots.some((root) => within(root, project))) {
      throw new SqlExecutionError(
        'Permission Error',
        `the project folder ${project} is not under a folder the embedded database may read`,
        null,
      );
    }
    const session = new DuckDbSession({
      path: this.#path,
      projectDir: project,
      runDir: resolve(runDir),
      limits: this.#limits,
      onClose: () => this.#sessions.delete(session),
    });
    this.#sessions.add(session);
    return session;
  }

  async close(): Promise<void> {
    await Promise.all(
      [...this.#sessions].map((s) => {
        s.interrupt();
        return s.close();
      }),
    );
  }
}

interface SessionSettings {
  path: string;
  projectDir: string;
  runDir: string;
  limits: DuckDbLimits;
  onClose: () => void;
}

interface OpenInstance {
  instance: DuckDBInstance;
  connection: DuckDBConnection;
  tempDir: string;
  release: () => void;
}

/**
 * One run's use of the embedded database. The instance opens on the first statement (runs without
 * DuckDB SQL never wait for the file) and closes with the session, which removes its temp files.
 */
class DuckDbSession implements SqlSession {
  readonly #settings: SessionSettings;
  readonly #stop = new AbortController();
  #opening: Promise<OpenInstance> | null = null;
  #open: OpenInstance | null = null;
  /** Statements in flight, which must settle before the instance closes. */
  readonly #busy = new Set<Promise<unknown>>();
  #closing: Promise<void> | null = null;

  constructor(settings: SessionSettings) {
    this.#settings = settings;
  }

  async #connection(): Promise<DuckDBConnection> {
    if (this.#stop.signal.aborted) throw this.#stop.signal.reason;
    this.#opening ??= this.#openInstance();
    return (await this.#opening).connection;
  }

  async #openInstance(): Promise<OpenInstance> {
    const { path, projectDir, runDir, limits } = this.#settings;
    const key = path === ':memory:' ? null : fileKey(path);
    const release = key ? await acquireFile(key, this.#stop.signal) : () => {};
    let instance: DuckDBInstance | null = null;
    let connection: DuckDBConnection | null = null;
    // Spill files go next to the run directory: not in it (user code sees that), not in a shared /tmp.
    const tempDir = `${runDir}.duckdb-tmp`;
    try {
      // A request the child sent just before it was killed can arrive after the run's sessions were
      // closed; its run directory is gone by then, and a session nobody closes must not hold the file.
      if (!existsSync(runDir)) {
        throw new SqlExecutionError('Interrupted', 'the run has ended', null);
      }
      if (key && openInThisProcess(key)) {
        throw new SqlExecutionError(
          'Internal Error',
          'the workspace database is still open from an earlier run in this process; retry the run, and report this if it repeats',
          null,
        );
      }
      mkdirSync(tempDir, { recursive: true, mode: 0o700 });
      instance = await DuckDBInstance.create(path, {
        memory_limit: `${limits.memoryLimitMb}MiB`,
        threads: String(limits.threads),
        temp_directory: tempDir,
        max_temp_directory_size: `${limits.tempLimitMb}MiB`,
        autoinstall_known_extensions: 'false',
        autoload_known_extensions: 'false',
        allow_community_extensions: 'false',
        allow_unsigned_extensions: 'false',
      });
      connection = await instance.connect();
      const dirs = [projectDir, runDir].map((d) => `'${`${d}/`.replace(/'/g, "''")}'`);
      await connection.run(`SET allowed_directories = [${dirs.join(', ')}]`);
      await connection.run('SET enable_external_access = false');
      // Last: from here on no statement can change a setting, SET GLOBAL/SESSION, RESET and PRAGMA alike.
      await connection.run('SET lock_configuration = true');
      if (this.#stop.signal.aborted) throw this.#stop.signal.reason;
      this.#open = { instance, connection, tempDir, release };
      return this.#open;
    } catch (error) {
      connection?.closeSync();
      instance?.closeSync();
      rmSync(tempDir, { recursive: true, force: true });
      release();
      throw error;
    }
  }

  async query(query: SqlQuery): Promise<SqlQueryResult> {
    return this.#track(this.#query(query));
  }

  #track<T>(work: Promise<T>): Promise<T> {
    const settled: Promise<unknown> = work.then(
      () => this.#busy.delete(settled),
      () => this.#busy.delete(settled),
    );
    this.#busy.add(settled);
    return work;
  }

  async #query(query: SqlQuery): Promise<SqlQueryResult> {
    const folders = { projectDir: this.#settings.projectDir, runDir: this.#settings.runDir };
    // Refused statements are refused before the run waits for the database file.
    const texts = query.statements.map((s) => confineFilePaths(s.text, folders, s.line > 0 ? s.line : null));
    const connection = await this.#connection();
    let reader = null;
    let rowsChanged: number | undefined;
    for (const [index, statement] of query.statements.entries()) {
      const text = texts[index]!;
      const params = statement.params.map(toDuckDbParam);
      const last = index === query.statements.length - 1;
      let prepared: Awaited<ReturnType<DuckDBConnection['prepare']>> | null = null;
      try {
        prepared = await connection.prepare(text);
        if (last && query.chainAs && prepared.statementType === StatementType.SELECT) {
          prepared.destroySync();
          prepared = null;
          const table = `"${query.chainAs}"`;
          await connection.run(`CREATE OR REPLACE TEMP TABLE ${table} AS ${text}`, params as never);
          reader = await connection.runAndReadAll(
            `SELECT * FROM temp.${table} LIMIT ${MAX_SQL_RESULT_ROWS + 1}`,
          );
        } else if (prepared.statementType === StatementType.SELECT) {
          prepared.destroySync();
          prepared = null;
          // Read into JavaScript no further than the limit, and read whole: a result left half-read
          // keeps the instance (and the workspace file) open after it is closed.
          const bounded = `SELECT * FROM (\n${text.replace(/;\s*$/, '')}\n) LIMIT ${MAX_SQL_RESULT_ROWS + 1}`;
          reader = await connection.runAndReadAll(bounded, params as never);
        } else {
          if (params.length > 0) prepared.bind(params as never);
          reader = await prepared.runAndReadUntil(MAX_SQL_RESULT_ROWS + 1);
          rowsChanged = reader.rowsChanged;
        }
      } catch (error) {
        throw this.#explain(toSqlExecutionError(error, statement.line, 'duckdb'));
      } finally {
        prepared?.destroySync();
      }
    }
    if (!reader) throw new Error('no statement to run');
    if (reader.currentRowCount > MAX_SQL_RESULT_ROWS) {
      const line = query.statements.at(-1)?.line ?? null;
      throw new SqlExecutionError(
        'Result Too Large',
        `the query returned more than ${MAX_SQL_RESULT_ROWS.toLocaleString('en')} rows (MAX_SQL_RESULT_ROWS); aggregate or filter in SQL, or add a LIMIT`,
        line !== null && line > 0 ? line : null,
      );
    }
    const names = reader.deduplicatedColumnNames();
    const types = reader.columnTypes();
    const columns: Column[] = names.map((name, i) => ({ name, type: String(types[i]) }));
    const decimalColumns = new Set(types.flatMap((t, i) => (String(t).startsWith('DECIMAL') ? [i] : [])));
    const jsRows = reader.getRowsJS();
    const jsonRows = reader.getRowsJson();
    const rows = jsRows.map((row, r) => {
      const object: Record<string, unknown> = {};
      row.forEach((value, c) => {
        object[names[c]!] =
          decimalColumns.has(c) && value !== null ? decimalValue(String(jsonRows[r]![c])) : scopeValue(value);
      });
      return object;
    });
    const limited = jsonRows.slice(0, query.rowLimit) as unknown[][];
    return {
      columns,
      rows,
      table: {
        kind: 'table',
        columns,
        rows: limited,
        totalRows: jsonRows.length,
        truncated: jsonRows.length > query.rowLimit,
        ...(rowsChanged !== undefined ? { rowsChanged } : {}),
      },
    };
  }

  /** Adds what to do to DuckDB's own words where the host's limits were the cause. */
  #explain(error: SqlExecutionError): SqlExecutionError {
    const { limits } = this.#settings;
    if (/out of memory/i.test(error.name) || /max_temp_directory_size|temp directory/i.test(error.message)) {
      return new SqlExecutionError(
        error.name,
        `${error.message} — a run's SQL on the embedded database may use ${limits.memoryLimitMb} MiB of memory (ALMANAC_DUCKDB_MEMORY_MB) and ${limits.tempLimitMb} MiB of temp files (ALMANAC_DUCKDB_TEMP_MB): filter or aggregate earlier, or raise these limits`,
        error.line,
      );
    }
    if (/the configuration has been locked/i.test(error.message)) {
      return new SqlExecutionError(
        error.name,
        `${error.message} — the embedded database's settings are fixed by the host for every run (ALMANAC_DUCKDB_* in docs/configuration.md); remove the SET/PRAGMA/RESET statement`,
        error.line,
      );
    }
    return error;
  }

  async adopt(name: string, result: SqlQueryResult): Promise<void> {
    return this.#track(this.#adopt(name, result));
  }

  async #adopt(name: string, result: SqlQueryResult): Promise<void> {
    const connection = await this.#connection();
    const table = `temp."${name.replace(/"/g, '""')}"`;
    const quoted = result.columns.map((c) => `"${c.name.replace(/"/g, '""')}"`);
    const definition = result.columns.map((c, i) => `${quoted[i]} ${c.type}`).join(', ');
    await connection.run(`CREATE OR REPLACE TEMP TABLE ${table} (${definition})`);
    const batch = Math.max(1, Math.floor(1000 / Math.max(1, result.columns.length)));
    for (let start = 0; start < result.rows.length; start += batch) {
      const rows = result.rows.slice(start, start + batch);
      const params: unknown[] = [];
      const tuples = rows.map((row) => {
        const marks = result.columns.map((c) => {
          params.push(toDuckDbParam(row[c.name]));
          return `$${params.length}`;
        });
        return `(${marks.join(', ')})`;
      });
      await connection.run(`INSERT INTO ${table} VALUES ${tuples.join(', ')}`, params as never);
    }
  }

  /** Stops the statement in flight, and a wait for the database file (the session is then done). */
  interrupt(): void {
    if (!this.#open) {
      this.#stop.abort(
        new SqlExecutionError(
          'Interrupted',
          'the run stopped while waiting for the workspace database, which another run was using',
          null,
        ),
      );
    }
    this.#open?.connection.interrupt();
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#stop.abort(new SqlExecutionError('Interrupted', 'the run has ended', null));
    await this.#opening?.catch(() => {});
    const open = this.#open;
    if (open) {
      // A statement still running would keep the instance (and the file) open: stop it and wait.
      open.connection.interrupt();
      await Promise.all(this.#busy);
      try {
        open.connection.closeSync();
        open.instance.closeSync();
      } finally {
        rmSync(open.tempDir, { recursive: true, force: true });
        open.release();
      }
    }
    this.#settings.onClose();
  }
}

function within(root: string, path: string): boolean {
  const inside = relative(root, path);
  return inside === '' || (inside !== '..' && !inside.startsWith(`..${sep}`) && !isAbsolute(inside));
}

/** BigInts that fit a double become numbers; everything else is kept as DuckDB's JS conversion gives it. */
function scopeValue(value: unknown): unknown {
  if (typeof value === 'bigint') return integerValue(value);
  if (Array.isArray(value)) return value.map(scopeValue);
  if (value && typeof value === 'object' && !(value instanceof Date) && !ArrayBuffer.isView(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = scopeValue(v);
    return out;
  }
  return value;
}

function toDuckDbParam(value: unknown): unknown {
  if (value === undefined) return null;
  if (value instanceof Date) return value.toISOString();
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) return JSON.stringify(value);
  return value;
}
