/**
 * A connection (glossary "Connection") as the executor sees it: something that opens a session per run
 * and runs statements with bound parameters. SQL always runs in the host process, never in the sandbox.
 */
import type { Column, TableOutput } from '../../domain/snapshot.ts';

export interface SqlStatementInput {
  text: string;
  params: readonly unknown[];
  /** Notebook line of the statement's first line (0 when unknown), for error positions. */
  line: number;
}

export interface SqlQuery {
  statements: readonly SqlStatementInput[];
  /** Keep a query's result as a temp table with this name, so later cells can select from it. */
  chainAs: string | null;
  /** Rows kept in the table output; the scope still gets every row. */
  rowLimit: number;
}

export interface SqlQueryResult {
  columns: Column[];
  rows: Record<string, unknown>[];
  table: TableOutput;
}

/** One run's use of a connection. DuckDB temp tables live as long as the session. */
export interface SqlSession {
  query(query: SqlQuery): Promise<SqlQueryResult>;
  /**
   * Makes a stored result available to later statements under `name`, as `query` with `chainAs` would
   * (DuckDB temp tables). Used when a `cache=schedule` cell is served from the cache.
   */
  adopt?(name: string, result: SqlQueryResult): Promise<void>;
  /** Stops the statement in flight, if any (timeouts and cancels). */
  interrupt(): void;
  close(): Promise<void>;
}

export interface SqlSessionOptions {
  projectDir: string;
  runDir: string;
}

export interface SqlEngine {
  readonly id: string;
  readonly dialect: 'duckdb' | 'postgres';
  /**
   * `projectDir` is the run's version files (read-only; relative reads resolve here) and `runDir` the
   * run's own directory (the only place SQL may write files; removed after the run).
   */
  openSession(options: SqlSessionOptions): Promise<SqlSession>;
  close(): Promise<void>;
}

/** A database error with the notebook line it points at. */
export class SqlExecutionError extends Error {
  readonly line: number | null;
  constructor(name: string, message: string, line: number | null) {
    super(message);
    this.name = name;
    this.line = line;
  }
}

/**
 * Splits a driver message like "Catalog Error: Table with name x does not exist!" into its kind and
 * text, and maps "LINE n:" inside it to a notebook line.
 */
export function toSqlExecutionError(
  error: unknown,
  statementLine: number,
  dialect: string,
  statementText = '',
): SqlExecutionError {
  const raw = error instanceof Error ? error.message : String(error);
  const firstLine = raw.split('\n')[0] ?? raw;
  const kind = /^([A-Z][A-Za-z ]*Error):\s*/.exec(firstLine);
  const lineMatch = /LINE (\d+):/.exec(raw);
  const position = (error as { position?: string } | undefined)?.position;
  let line: number | null = statementLine > 0 ? statementLine : null;
  if (line !== null && lineMatch) line += Number(lineMatch[1]) - 1;
  else if (line !== null && position && Number(position) > 0) {
    // PostgreSQL reports a 1-based character offset into the statement.
    line += statementText.slice(0, Number(position) - 1).split('\n').length - 1;
  }
  const message = (kind ? raw.slice(kind[0].length) : raw)
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(0, 3)
    .join(' ')
    .trim();
  const name = kind ? kind[1]! : dialect === 'postgres' ? 'PostgreSQL Error' : 'SQL Error';
  return new SqlExecutionError(name, message, line);
}

/** `12345.60` as a JS number if a double holds it exactly, else the exact text. */
export function decimalValue(text: string): number | string {
  const n = Number(text);
  if (!Number.isFinite(n)) return text;
  const scale = text.includes('.') ? text.length - text.indexOf('.') - 1 : 0;
  const back = scale <= 100 ? n.toFixed(scale) : String(n);
  return back === text || back === text.replace(/^(-?)0+(\d)/, '$1$2') ? n : text;
}

/** A 64-bit or larger integer as a JS number when it is safe, else as a BigInt. */
export function integerValue(value: bigint | string): number | bigint {
  const big = typeof value === 'bigint' ? value : BigInt(value);
  return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
}
