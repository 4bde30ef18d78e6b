/**
 * A PostgreSQL connection. Each run gets one client from a small pool; statements run with bound
 * parameters (`$1`…) and the session's time zone is UTC, so timestamps come back unambiguous. Values are
 * read from PostgreSQL's text format and converted here, so int8 and numeric never lose digits.
 */
import pg from 'pg';
import type { Column } from '../../domain/snapshot.ts';
import {
  decimalValue,
  integerValue,
  type SqlEngine,
  type SqlQuery,
  type SqlQueryResult,
  type SqlSession,
  toSqlExecutionError,
} from './sql-engine.ts';

/** Type names for the OIDs Almanac converts or names itself; others show as `oid:<n>`. */
const TYPE_NAMES: Record<number, string> = {
  16: 'boolean',
  17: 'bytea',
  20: 'bigint',
  21: 'smallint',
  23: 'integer',
  25: 'text',
  26: 'oid',
  114: 'json',
  700: 'real',
  701: 'double precision',
  1042: 'character',
  1043: 'character varying',
  1082: 'date',
  1083: 'time',
  1114: 'timestamp',
  1184: 'timestamp with time zone',
  1186: 'interval',
  1700: 'numeric',
  2950: 'uuid',
  3802: 'jsonb',
  1000: 'boolean[]',
  1005: 'smallint[]',
  1007: 'integer[]',
  1016: 'bigint[]',
  1009: 'text[]',
  1015: 'character varying[]',
  1231: 'numeric[]',
  1022: 'double precision[]',
};

const rawText = { getTypeParser: () => (value: string) => value };

export interface PostgresEngineOptions {
  id: string;
  connectionString: string;
  /** Clients kept per connection. @default 4 */
  maxClients?: number;
  connectTimeoutMs?: number;
}

export class PostgresEngine implements SqlEngine {
  readonly id: string;
  readonly dialect = 'postgres' as const;
  readonly #pool: pg.Pool;

  constructor(options: PostgresEngineOptions) {
    this.id = options.id;
    this.#pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.maxClients ?? 4,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
      idleTimeoutMillis: 30_000,
      application_name: 'almanac',
    });
    // An idle client that errors (server restart) must not crash the process; the pool drops it.
    this.#pool.on('error', () => {});
    // Nor may a client whose connection dies while checked out; its query rejects instead.
    this.#pool.on('connect', (client) => client.on('error', () => {}));
  }

  async openSession(): Promise<SqlSession> {
    return new PostgresSession(this.#pool, this.id);
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}

class PostgresSession implements SqlSession {
  readonly #pool: pg.Pool;
  readonly #id: string;
  #client: pg.PoolClient | null = null;
  #broken = false;

  constructor(pool: pg.Pool, id: string) {
    this.#pool = pool;
    this.#id = id;
  }

  async #connect(): Promise<pg.PoolClient> {
    if (this.#client) return this.#client;
    try {
      this.#client = await this.#pool.connect();
    } catch (error) {
      const e = error as Error & { code?: string };
      throw toSqlExecutionError(
        new Error(
          `Connection Error: cannot connect to connection '${this.#id}': ${e.message || e.code}; check that the server is running and the URL is right`,
        ),
        0,
        'postgres',
      );
    }
    await this.#client.query("SET TIME ZONE 'UTC'");
    return this.#client;
  }

  async query(query: SqlQuery): Promise<SqlQueryResult> {
    const client = await this.#connect();
    let result: pg.QueryResult<unknown[]> | null = null;
    for (const statement of query.statements) {
      try {
        result = await client.query({
          text: statement.text,
          values: statement.params.map(toPostgresParam),
          rowMode: 'array',
          types: rawText,
        });
      } catch (error) {
        if ((error as { code?: string }).code === undefined) this.#broken = true;
        throw toSqlExecutionError(error, statement.line, 'postgres', statement.text);
      }
    }
    if (!result) throw new Error('no statement to run');
    const fields = result.fields ?? [];
    const columns: Column[] = fields.map((f) => ({
      name: f.name,
      type: TYPE_NAMES[f.dataTypeID] ?? `oid:${f.dataTypeID}`,
    }));
    const rawRows = (result.rows ?? []) as (string | null)[][];
    const rows = rawRows.map((row) => {
      const object: Record<string, unknown> = {};
      fields.forEach((f, i) => {
        object[f.name] = scopeValue(row[i] ?? null, f.dataTypeID);
      });
      return object;
    });
    const table = rawRows
      .slice(0, query.rowLimit)
      .map((row) => fields.map((f, i) => jsonValue(row[i] ?? null, f.dataTypeID)));
    const changes =
      result.command !== 'SELECT' && result.rowCount !== null ? { rowsChanged: result.rowCount } : {};
    return {
      columns,
      rows,
      table: {
        kind: 'table',
        columns,
        rows: table,
        totalRows: rawRows.length,
        truncated: rawRows.length > query.rowLimit,
        ...changes,
      },
    };
  }

  interrupt(): void {
    // Destroying the client closes its socket; PostgreSQL cancels the statement of a closed session.
    this.#broken = true;
    this.#client?.release(new Error('interrupted'));
    this.#client = null;
  }

  async close(): Promise<void> {
    this.#client?.release(this.#broken ? new Error('session ended with an error') : undefined);
    this.#client = null;
  }
}

function toPostgresParam(value: unknown): unknown {
  if (value === undefined) return null;
  if (typeof value === 'bigint') return value.toString();
  return value;
}

/** Table output: exact text for int8, numeric, dates and times; JSON for numbers, booleans and json. */
function jsonValue(text: string | null, oid: number): unknown {
  if (text === null) return null;
  switch (oid) {
    case 16:
      return text === 't';
    case 21:
    case 23:
    case 26:
      return Number(text);
    case 700:
    case 701: {
      const n = Number(text);
      return Number.isFinite(n) ? n : text;
    }
    case 114:
    case 3802:
      return JSON.parse(text);
    default:
      return text;
  }
}

/** Values as cells see them: safe integers and exact decimals as numbers, dates as Date. */
function scopeValue(text: string | null, oid: number): unknown {
  if (text === null) return null;
  switch (oid) {
    case 20:
      return integerValue(text);
    case 1700:
      return decimalValue(text);
    case 1082:
      return new Date(`${text}T00:00:00Z`);
    case 1114:
      return new Date(`${text.replace(' ', 'T')}Z`);
    case 1184:
      return new Date(text.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00'));
    default: {
      const parse = pg.types.getTypeParser(oid, 'text') as (v: string) => unknown;
      return parse(text);
    }
  }
}
