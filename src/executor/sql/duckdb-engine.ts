/**
 * The embedded default connection: one DuckDB database file per workspace under the data dir.
 * File access is confined with DuckDB's own settings: `allowed_directories` (project folders) and
 * `enable_external_access = false`, which also blocks extension downloads and network reads. Relative
 * file paths in string literals (`read_csv('data/orders.csv')`) resolve against the project folder.
 */
import { isAbsolute, join, resolve } from 'node:path';
import { type DuckDBConnection, DuckDBInstance, StatementType } from '@duckdb/node-api';
import { tokenizeSql } from '../../domain/notebook/sql-template.ts';
import type { Column } from '../../domain/snapshot.ts';
import {
  decimalValue,
  integerValue,
  type SqlEngine,
  type SqlQuery,
  type SqlQueryResult,
  type SqlSession,
  type SqlSessionOptions,
  toSqlExecutionError,
} from './sql-engine.ts';

export interface DuckDbEngineOptions {
  id?: string;
  /** The database file, or ':memory:'. */
  path: string;
  /** Directories SQL may read and write files in (CSV, Parquet, JSON). */
  allowedDirectories: readonly string[];
  /** DuckDB's own memory limit, for example '1GB'. */
  memoryLimit?: string;
  threads?: number;
}

const FILE_LITERAL = /^[^:'"]*\.(csv|tsv|txt|parquet|json|jsonl|ndjson|xlsx)(\.gz|\.zst)?$/i;

export class DuckDbEngine implements SqlEngine {
  readonly id: string;
  readonly dialect = 'duckdb' as const;
  readonly #instance: DuckDBInstance;

  private constructor(id: string, instance: DuckDBInstance) {
    this.id = id;
    this.#instance = instance;
  }

  static async open(options: DuckDbEngineOptions): Promise<DuckDbEngine> {
    const config: Record<string, string> = {};
    if (options.memoryLimit) config['memory_limit'] = options.memoryLimit;
    if (options.threads) config['threads'] = String(options.threads);
    const instance = await DuckDBInstance.create(options.path, config);
    const connection = await instance.connect();
    try {
      const dirs = options.allowedDirectories.map((d) => `'${resolve(d).replace(/'/g, "''")}/'`);
      await connection.run(`SET allowed_directories = [${dirs.join(', ')}]`);
      await connection.run('SET enable_external_access = false');
      await connection.run('SET autoinstall_known_extensions = false');
      await connection.run('SET autoload_known_extensions = false');
    } finally {
      connection.closeSync();
    }
    return new DuckDbEngine(options.id ?? 'duckdb', instance);
  }

  async openSession({ projectDir }: SqlSessionOptions): Promise<SqlSession> {
    return new DuckDbSession(await this.#instance.connect(), projectDir);
  }

  async close(): Promise<void> {
    this.#instance.closeSync();
  }
}

class DuckDbSession implements SqlSession {
  readonly #connection: DuckDBConnection;
  readonly #projectDir: string;

  constructor(connection: DuckDBConnection, projectDir: string) {
    this.#connection = connection;
    this.#projectDir = projectDir;
  }

  async query(query: SqlQuery): Promise<SqlQueryResult> {
    let reader = null;
    let rowsChanged: number | undefined;
    for (const [index, statement] of query.statements.entries()) {
      const text = resolveFilePaths(statement.text, this.#projectDir);
      const params = statement.params.map(toDuckDbParam);
      const last = index === query.statements.length - 1;
      try {
        const prepared = await this.#connection.prepare(text);
        if (last && query.chainAs && prepared.statementType === StatementType.SELECT) {
          prepared.destroySync();
          const table = `"${query.chainAs}"`;
          await this.#connection.run(`CREATE OR REPLACE TEMP TABLE ${table} AS ${text}`, params as never);
          reader = await this.#connection.runAndReadAll(`SELECT * FROM temp.${table}`);
        } else {
          if (params.length > 0) prepared.bind(params as never);
          reader = await prepared.runAndReadAll();
          prepared.destroySync();
          if (prepared.statementType !== StatementType.SELECT) rowsChanged = reader.rowsChanged;
        }
      } catch (error) {
        throw toSqlExecutionError(error, statement.line, 'duckdb');
      }
    }
    if (!reader) throw new Error('no statement to run');
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

  async adopt(name: string, result: SqlQueryResult): Promise<void> {
    const table = `temp."${name.replace(/"/g, '""')}"`;
    const quoted = result.columns.map((c) => `"${c.name.replace(/"/g, '""')}"`);
    const definition = result.columns.map((c, i) => `${quoted[i]} ${c.type}`).join(', ');
    await this.#connection.run(`CREATE OR REPLACE TEMP TABLE ${table} (${definition})`);
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
      await this.#connection.run(`INSERT INTO ${table} VALUES ${tuples.join(', ')}`, params as never);
    }
  }

  interrupt(): void {
    this.#connection.interrupt();
  }

  async close(): Promise<void> {
    this.#connection.closeSync();
  }
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

/** Rewrites relative file paths in string literals to absolute paths inside the project folder. */
export function resolveFilePaths(sql: string, projectDir: string): string {
  let out = '';
  for (const token of tokenizeSql(sql)) {
    const raw = sql.slice(token.start, token.end);
    if (
      token.kind === 'string' &&
      FILE_LITERAL.test(token.value) &&
      !isAbsolute(token.value) &&
      !/^[a-z]+:\/\//i.test(token.value)
    ) {
      out += `'${join(projectDir, token.value).replace(/'/g, "''")}'`;
    } else {
      out += raw;
    }
  }
  return out;
}
