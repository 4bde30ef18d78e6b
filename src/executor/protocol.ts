/**
 * Messages between the executor (host) and the sandboxed child process that runs a notebook's cells.
 * They travel over Node's IPC channel with `serialization: 'advanced'` (structured clone), so BigInt,
 * Date, Map and typed arrays cross the boundary intact.
 */
import type { Cell } from '../domain/notebook/notebook.ts';
import type { AlmanacRunInfo } from '../domain/run-context.ts';
import type { CellResult, Column, LogLevel, TableOutput } from '../domain/snapshot.ts';

/** Host → child: run these cells. Sent once per child. */
export interface RunMessage {
  type: 'run';
  cells: readonly Cell[];
  almanac: AlmanacRunInfo;
  /** Directory relative imports and bare package names resolve from first. */
  projectDir: string;
  /** Almanac's own package root: bare package names fall back to its node_modules. */
  packageRoot: string;
  rowLimit: number;
  /** A cell whose output (as JSON) is larger fails. */
  maxOutputBytes: number;
  /** Log text kept per run; the rest is cut with one notice. */
  maxLogBytes: number;
}

export interface SqlStatementRequest {
  text: string;
  params: unknown[];
  /** Notebook line where the statement starts, for error positions. */
  line: number;
}

/** Child → host: run SQL for a cell (or for `almanac.sql` in code). */
export interface SqlRequestMessage {
  type: 'sql';
  id: number;
  cell: string;
  connection: string;
  statements: SqlStatementRequest[];
  /** For SQL cells on DuckDB: keep the result as a temp table with this name for later SQL cells. */
  chainAs: string | null;
}

export interface SqlResultPayload {
  columns: Column[];
  /** Every row, as objects of JavaScript values, for the cell's scope. */
  rows: Record<string, unknown>[];
  table: TableOutput;
}

export interface SqlErrorPayload {
  name: string;
  message: string;
  line: number | null;
}

export type HostMessage =
  | RunMessage
  | { type: 'sql_result'; id: number; ok: true; result: SqlResultPayload }
  | { type: 'sql_result'; id: number; ok: false; error: SqlErrorPayload };

export type ChildMessage =
  | { type: 'ready' }
  | { type: 'cell_started'; index: number; name: string; startedAt: string }
  | { type: 'log'; index: number; level: LogLevel; text: string; at: number }
  | { type: 'cell_finished'; index: number; result: CellResult }
  | SqlRequestMessage
  | { type: 'done' };
