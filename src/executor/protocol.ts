/**
 * Messages between the executor (host) and the sandboxed child process that runs a notebook's cells.
 * They travel as frames of `v8.serialize` output on the child's fd 3 (channel.ts; structured clone), so
 * BigInt, Date, Map and typed arrays cross the boundary intact.
 *
 * The child runs notebook code, and notebook code can write to that descriptor itself, so every
 * child → host message is untrusted (ARCHITECTURE.md, decision 10; issue 14). Each one is parsed with
 * the schemas below, whose types are the protocol's types; `run-protocol.ts` then checks it against the
 * run's state. The host → child messages are plain types: the host builds them.
 *
 * The child runtime imports only types from here (they vanish when it is built), so zod never enters
 * the sandbox.
 */
import { z } from 'zod';
import type { Cell } from '../domain/notebook/notebook.ts';
import type { AlmanacRunInfo } from '../domain/run-context.ts';
import type { CellResult, Column, TableOutput } from '../domain/snapshot.ts';
import {
  MAX_ERROR_TEXT_CHARS,
  MAX_LOG_LINE_CHARS,
  MAX_SHORT_TEXT_CHARS,
  MAX_SQL_PARAMS,
  MAX_SQL_STATEMENTS,
  MAX_SQL_TEXT_CHARS,
} from './protocol-limits.ts';

/** Host → child: run these cells. Sent once per child. */
export interface RunMessage {
  type: 'run';
  cells: readonly Cell[];
  almanac: AlmanacRunInfo;
  /** Connections the notebook lists or uses: the only ones `almanac.query` may name. */
  connections: readonly string[];
  /** Directory relative imports and bare package names resolve from first. */
  projectDir: string;
  /** Almanac's own package root: bare package names fall back to its node_modules. */
  packageRoot: string;
  rowLimit: number;
  /** A cell whose output (as JSON) is larger fails. */
  maxOutputBytes: number;
  /** Log text kept per run (see `LogBudget`); the rest is cut with one notice. */
  maxLogBytes: number;
  /** Refuse cells' connections to private and reserved networks too (ALMANAC_CELL_BLOCK_PRIVATE_NETWORKS). */
  blockPrivateNetworks: boolean;
}

const shortText = z.string().max(MAX_SHORT_TEXT_CHARS);
const index = z.int().min(0);
/** An ISO 8601 timestamp as `Date#toISOString` writes it. */
const isoTime = z
  .string()
  .max(40)
  .regex(/^[+-]?\d{4,6}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);

export const LOG_LEVELS = ['log', 'info', 'warn', 'error', 'debug', 'stdout', 'stderr'] as const;

const logLineSchema = z.strictObject({
  level: z.enum(LOG_LEVELS),
  text: z.string().max(MAX_LOG_LINE_CHARS),
  at: z.number().min(0),
});

const columnSchema = z.strictObject({ name: z.string(), type: shortText });

/**
 * Output shapes as in `domain/snapshot.ts`. Values inside tables, values and charts are checked to be
 * JSON (and measured) by `jsonByteLength`, not here.
 */
const tableOutputSchema = z.strictObject({
  kind: z.literal('table'),
  columns: z.array(columnSchema),
  // Rows and dataset rows are checked without copying: their values are measured by `jsonByteLength`.
  rows: z.array(z.custom<unknown[]>((row) => Array.isArray(row), 'each row must be an array')),
  totalRows: z.int().min(0),
  truncated: z.boolean(),
  rowsChanged: z.int().min(0).optional(),
});

const cellOutputSchema = z.discriminatedUnion('kind', [
  tableOutputSchema,
  z.strictObject({ kind: z.literal('value'), value: z.unknown() }),
  z.strictObject({ kind: z.literal('html'), html: z.string() }),
  z.strictObject({
    kind: z.literal('chart'),
    spec: z.record(z.string(), z.unknown()),
    datasets: z.record(
      z.string(),
      z.array(
        z.custom<Record<string, unknown>>(
          (row) => typeof row === 'object' && row !== null && !Array.isArray(row),
          'each dataset row must be an object',
        ),
      ),
    ),
  }),
]);

const cellErrorSchema = z.strictObject({
  cell: z.string(),
  line: z.int().min(0).nullable(),
  name: shortText,
  message: z.string().max(MAX_ERROR_TEXT_CHARS),
  stack: z.string().max(MAX_ERROR_TEXT_CHARS).optional(),
});

export const cellResultSchema = z.strictObject({
  name: z.string(),
  kind: z.enum(['sql', 'js', 'ts', 'chart', 'prose']),
  status: z.enum(['succeeded', 'failed', 'skipped']),
  startedAt: isoTime.nullable(),
  durationMs: z.number().min(0),
  output: cellOutputSchema.nullable(),
  logs: z.array(logLineSchema),
  error: cellErrorSchema.nullable(),
});

const sqlStatementSchema = z.strictObject({
  text: z.string().max(MAX_SQL_TEXT_CHARS),
  params: z.array(z.unknown()).max(MAX_SQL_PARAMS),
  /** Notebook line where the statement starts, for error positions. */
  line: z.int().min(0),
});

/** Child → host: run SQL for a cell (or for `almanac.sql` in code). */
export const sqlRequestSchema = z.strictObject({
  type: z.literal('sql'),
  id: z.int().min(1),
  cell: z.string(),
  connection: shortText,
  statements: z.array(sqlStatementSchema).min(1).max(MAX_SQL_STATEMENTS),
  /** For SQL cells on DuckDB: keep the result as a temp table with this name for later SQL cells. */
  chainAs: z.string().nullable(),
});

/** Every message the child may send. Anything else is a protocol violation. */
export const childMessageSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('ready') }),
  z.strictObject({ type: z.literal('cell_started'), index, name: z.string(), startedAt: isoTime }),
  z.strictObject({ type: z.literal('log'), index, ...logLineSchema.shape }),
  z.strictObject({ type: z.literal('cell_finished'), index, result: cellResultSchema }),
  sqlRequestSchema,
  z.strictObject({ type: z.literal('done') }),
]);

export type ChildMessage = z.infer<typeof childMessageSchema>;
export type SqlRequestMessage = z.infer<typeof sqlRequestSchema>;
export type SqlStatementRequest = SqlRequestMessage['statements'][number];

// The parsed result must be a domain `CellResult` (the snapshot's type): a compile-time check.
type Assignable<T extends U, U> = T;
export type ParsedCellResult = Assignable<z.infer<typeof cellResultSchema>, CellResult>;

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

/** Nesting depth of a JSON value in an output (the value encoding stops at 12; SQL JSON may go deeper). */
export const MAX_JSON_DEPTH = 64;

const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** UTF-8 bytes of a string as JSON text, quotes included. */
function jsonStringBytes(text: string): number {
  return NEEDS_ESCAPE.test(text) ? Buffer.byteLength(JSON.stringify(text)) : Buffer.byteLength(text) + 2;
}

/** Ends a measurement early: with why the value is not JSON, or (null) because it passed the limit. */
class StopMeasuring {
  readonly problem: string | null;
  constructor(problem: string | null) {
    this.problem = problem;
  }
}

/**
 * The size of `value` as JSON (UTF-8 bytes of `JSON.stringify(value)`), or a description of why it is
 * not plain JSON data: only null, booleans, finite numbers, strings, arrays and plain objects, at most
 * `MAX_JSON_DEPTH` deep (undefined properties are left out and undefined items are null, as in JSON).
 * Counting stops past `limit` (the size returned is then only known to be larger), so an oversize value
 * costs little to refuse.
 */
export function jsonByteLength(value: unknown, limit: number): number | string {
  let total = 0;
  const visit = (item: unknown, depth: number): void => {
    switch (typeof item) {
      case 'string':
        total += item.length > limit ? item.length : jsonStringBytes(item);
        break;
      case 'boolean':
        total += item ? 4 : 5;
        break;
      case 'number':
        if (!Number.isFinite(item)) throw new StopMeasuring(`a number that JSON cannot hold (${item})`);
        total += String(item).length;
        break;
      case 'object': {
        if (item === null) {
          total += 4;
          break;
        }
        if (depth >= MAX_JSON_DEPTH)
          throw new StopMeasuring(`a value nested deeper than ${MAX_JSON_DEPTH} levels`);
        if (Array.isArray(item)) {
          if (Object.getPrototypeOf(item) !== Array.prototype)
            throw new StopMeasuring('an array of another class');
          total += 2 + Math.max(0, item.length - 1);
          // Holes and undefined items are null in JSON, as JSON.stringify writes them.
          for (let i = 0; i < item.length; i++) visit(item[i] ?? null, depth + 1);
          break;
        }
        const proto = Object.getPrototypeOf(item);
        if (proto !== Object.prototype && proto !== null) {
          throw new StopMeasuring(
            `an object of class ${(item as object).constructor?.name ?? 'unknown'}, which is not JSON`,
          );
        }
        let fields = 0;
        for (const key of Object.keys(item)) {
          const field = (item as Record<string, unknown>)[key];
          if (field === undefined) continue;
          fields++;
          total += jsonStringBytes(key) + 1;
          visit(field, depth + 1);
        }
        total += 2 + Math.max(0, fields - 1);
        break;
      }
      default:
        throw new StopMeasuring(`a ${typeof item}, which is not JSON`);
    }
    if (total > limit) throw new StopMeasuring(null);
  };
  try {
    visit(value, 0);
  } catch (error) {
    if (error instanceof StopMeasuring) return error.problem ?? total;
    throw error;
  }
  return total;
}
