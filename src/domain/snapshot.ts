/**
 * The run snapshot format (docs/run-snapshot.md): what a run produced, cell by cell. It is JSON, so the
 * run log and the app cache can store it as is, and it keeps BigInts, dates and decimals exact.
 */
import type { AlmanacRunInfo, InputValue, RunContext, RunFailureReason, RunOutcome } from './run-context.ts';

export interface Column {
  name: string;
  /** The source type: DuckDB or PostgreSQL type names for SQL, or `number`, `string`, `boolean`, `date`, `bigint`, `json` for tables made in code. */
  type: string;
}

/**
 * A table. Values are JSON: numbers, strings, booleans, null, arrays and objects. Types that JSON cannot
 * hold exactly (64-bit and larger integers, decimals, dates, timestamps, intervals, blobs) are strings in
 * a canonical text form, and `columns[i].type` says how to read them.
 */
export interface TableOutput {
  kind: 'table';
  columns: Column[];
  rows: unknown[][];
  /** Rows the query or value really had, before the row limit. */
  totalRows: number;
  truncated: boolean;
  /** For statements that change data: how many rows they changed. */
  rowsChanged?: number;
}

/** Any other value, in the tagged encoding of `encodeValue`. */
export interface ValueOutput {
  kind: 'value';
  value: unknown;
}

export interface HtmlOutput {
  kind: 'html';
  html: string;
}

export interface ChartOutput {
  kind: 'chart';
  /** The Vega-Lite spec as written. */
  spec: Record<string, unknown>;
  /** Named datasets for the spec, as row objects (values JSON-encoded like table rows). */
  datasets: Record<string, Record<string, unknown>[]>;
}

export type CellOutput = TableOutput | ValueOutput | HtmlOutput | ChartOutput;

export type LogLevel = 'log' | 'info' | 'warn' | 'error' | 'debug' | 'stdout' | 'stderr';

export interface LogLine {
  level: LogLevel;
  text: string;
  /** Milliseconds since the cell started. */
  at: number;
}

export interface CellError {
  cell: string;
  /** Notebook line (1-based) the error points at, when known. */
  line: number | null;
  /** The error class name: `TypeError`, `Binder Error`, `ReferenceError`… */
  name: string;
  message: string;
  stack?: string;
}

/** `cancelled`: the cell was running when the run was cancelled; its `error` says who cancelled. */
export type CellStatus = 'succeeded' | 'failed' | 'cancelled' | 'skipped';

export interface CellResult {
  name: string;
  kind: 'sql' | 'js' | 'ts' | 'chart' | 'prose';
  status: CellStatus;
  startedAt: string | null;
  durationMs: number;
  output: CellOutput | null;
  logs: LogLine[];
  error: CellError | null;
}

/** The result of a cell that did not run (yet): `skipped`, with no output. */
export function notRunCell(name: string, kind: CellResult['kind']): CellResult {
  return {
    name,
    kind,
    status: 'skipped',
    startedAt: null,
    durationMs: 0,
    output: null,
    logs: [],
    error: null,
  };
}

/** The outputs of one run: the historic state of the app (glossary "Snapshot"). */
export interface RunSnapshot {
  format: 1;
  runId: string;
  title: string;
  status: RunOutcome;
  reason: RunFailureReason | null;
  /** One line: what went wrong, naming the failing cell. */
  message: string | null;
  context: RunContext;
  scheduledFor: string | null;
  inputs: Record<string, InputValue>;
  startedAt: string;
  finishedAt: string;
  cells: CellResult[];
}

/** Values of `almanac` as they are interpolated into SQL and prose, and as they appear in snapshots. */
export type AlmanacInfoJson = Omit<AlmanacRunInfo, 'scheduledFor'> & { scheduledFor: string | null };

const TAG = '$type';
const MAX_DEPTH = 12;
const MAX_ITEMS = 10_000;

/**
 * Encodes any JavaScript value as JSON without losing what matters:
 * - JSON primitives stay as they are;
 * - `bigint` → `{ "$type": "bigint", "value": "123" }`;
 * - `Date` → `{ "$type": "date", "value": "2024-02-29T00:00:00.000Z" }` (invalid dates: value null);
 * - `undefined`, `NaN`, `±Infinity` → `{ "$type": "undefined" }`, `{ "$type": "number", "value": "NaN" }`;
 * - `Map`, `Set`, byte arrays, functions, errors and class instances get their own tags;
 * - an object that itself has a `$type` key is wrapped as `{ "$type": "object", "value": … }`;
 * - cycles become `{ "$type": "circular" }`, and arrays longer than 10,000 items are cut with a marker.
 */
export function encodeValue(value: unknown): unknown {
  return encode(value, 0, new WeakSet());
}

function encode(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : { [TAG]: 'number', value: String(value) };
    case 'bigint':
      return { [TAG]: 'bigint', value: value.toString() };
    case 'undefined':
      return { [TAG]: 'undefined' };
    case 'symbol':
      return { [TAG]: 'symbol', value: value.description ?? '' };
    case 'function':
      return { [TAG]: 'function', name: value.name || '(anonymous)' };
  }
  if (value === null) return null;
  const object = value as object;
  if (object instanceof Date) {
    return { [TAG]: 'date', value: Number.isNaN(object.getTime()) ? null : object.toISOString() };
  }
  if (seen.has(object)) return { [TAG]: 'circular' };
  if (depth >= MAX_DEPTH) return { [TAG]: 'truncated', reason: `deeper than ${MAX_DEPTH} levels` };
  seen.add(object);
  try {
    if (Array.isArray(object)) return encodeList(object, depth, seen);
    if (object instanceof Map) {
      const entries = [...object.entries()].slice(0, MAX_ITEMS);
      return {
        [TAG]: 'map',
        entries: entries.map(([k, v]) => [encode(k, depth + 1, seen), encode(v, depth + 1, seen)]),
      };
    }
    if (object instanceof Set) {
      return { [TAG]: 'set', values: encodeList([...object].slice(0, MAX_ITEMS), depth, seen) };
    }
    if (ArrayBuffer.isView(object) && !(object instanceof DataView)) {
      const bytes = new Uint8Array(object.buffer, object.byteOffset, object.byteLength);
      return { [TAG]: 'bytes', base64: Buffer.from(bytes).toString('base64') };
    }
    if (object instanceof Error) {
      return { [TAG]: 'error', name: object.name, message: object.message };
    }
    const proto = Object.getPrototypeOf(object);
    const plain = proto === Object.prototype || proto === null;
    const fields: Record<string, unknown> = {};
    let count = 0;
    for (const [k, v] of Object.entries(object)) {
      if (count++ >= MAX_ITEMS) break;
      fields[k] = encode(v, depth + 1, seen);
    }
    if (!plain) {
      return { [TAG]: 'object', class: proto?.constructor?.name ?? 'Object', value: fields };
    }
    return TAG in fields ? { [TAG]: 'object', value: fields } : fields;
  } finally {
    seen.delete(object);
  }
}

function encodeList(list: readonly unknown[], depth: number, seen: WeakSet<object>): unknown[] {
  const out = list.slice(0, MAX_ITEMS).map((item) => encode(item, depth + 1, seen));
  if (list.length > MAX_ITEMS) out.push({ [TAG]: 'truncated', remaining: list.length - MAX_ITEMS });
  return out;
}

/**
 * Decodes the tagged encoding back into JavaScript values where that is possible (bigint, date, map,
 * set, bytes, undefined, non-finite numbers). Tags for things that cannot travel (functions, symbols)
 * stay as their tag objects.
 */
export function decodeValue(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(decodeValue);
  if (value === null || typeof value !== 'object') return value;
  const record = value as Record<string, unknown>;
  switch (record[TAG]) {
    case 'bigint':
      return BigInt(record['value'] as string);
    case 'date':
      return record['value'] === null ? new Date(Number.NaN) : new Date(record['value'] as string);
    case 'undefined':
      return undefined;
    case 'number':
      return Number(record['value']);
    case 'map':
      return new Map((record['entries'] as unknown[][]).map(([k, v]) => [decodeValue(k), decodeValue(v)]));
    case 'set':
      return new Set((record['values'] as unknown[]).map(decodeValue));
    case 'bytes':
      return new Uint8Array(Buffer.from(record['base64'] as string, 'base64'));
    case 'object':
      if (record['class'] === undefined) return decodeFields(record['value'] as Record<string, unknown>);
      return value;
    case undefined:
      return decodeFields(record);
    default:
      return value;
  }
}

function decodeFields(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) out[k] = decodeValue(v);
  return out;
}
