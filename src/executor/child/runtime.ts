/**
 * The sandboxed child process that runs one notebook. It is started by the executor under Node's
 * permission model (it may write only inside its run directory), waits for one `run` message, runs the
 * cells top to bottom and reports each cell as it finishes. SQL is not run here: the child asks the host
 * over its channel, so database drivers, credentials and native addons never enter the sandbox.
 *
 * The channel is fd 3, a socketpair the host set up, carrying length-prefixed `v8.serialize` frames
 * (channel.ts). It is not Node's IPC channel: `process.send` does not exist here, and cell code that
 * writes to fd 3 itself can only end its own run (the host refuses anything that is not a valid frame).
 *
 * This file is the child's entry point and imports only what the sandbox may read.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { format } from 'node:util';
import type { Cell, ChartCell, CodeCell, ProseCell, SqlCell } from '../../domain/notebook/notebook.ts';
import type {
  CellError,
  CellOutput,
  CellResult,
  Column,
  LogLevel,
  LogLine,
  TableOutput,
} from '../../domain/snapshot.ts';
import { encodeValue, notRunCell } from '../../domain/snapshot.ts';
import { encodeFrame, FrameReader } from '../channel.ts';
import type {
  ChildMessage,
  HostMessage,
  RunMessage,
  SqlErrorPayload,
  SqlResultPayload,
  SqlStatementRequest,
} from '../protocol.ts';
import {
  LogBudget,
  MAX_ERROR_TEXT_CHARS,
  MAX_SHORT_TEXT_CHARS,
  MAX_SQL_PENDING,
  MAX_SQL_REQUESTS_PER_RUN,
  sqlRequestProblem,
} from '../protocol-limits.ts';
import { blockPrivateNetworks, installNetGuard } from './net-guard.ts';

// Before anything else runs: cells may not connect to the host's own services (net-guard.ts).
installNetGuard();

// Longer stack traces for cell errors. Set here rather than with `--stack-trace-limit` on the command
// line: a V8 flag there changes V8's flag hash, so Node rejects its embedded code cache and compiles its
// own internals from source, which cost 15-20 ms of CPU at every run's start (docs/performance.md).
Error.stackTraceLimit = 30;

/** The host's end is the socketpair the executor passed as fd 3 (sandbox.ts, `SandboxChannel`). */
const CHANNEL_FD = 3;
/**
 * The largest frame read from the host. The host is trusted, so this only keeps a broken stream
 * from buffering without end: 1 GiB, far above a run message (a notebook is at most 1 MiB) or a SQL result.
 */
const MAX_HOST_FRAME_BYTES = 1024 * 1024 * 1024;
const channel = new Socket({ fd: CHANNEL_FD, readable: true, writable: true });

const send = (message: ChildMessage): Promise<void> =>
  new Promise((resolve) => {
    if (!channel.writable) return resolve();
    channel.write(encodeFrame(message), () => resolve());
  });

/**
 * The cell logs go to: the one running, or the one that ran last until the next starts (its timers may
 * still log). The host checks the same (run-protocol.ts), so keep the two in step.
 */
let current: { index: number; started: number; logs: LogLine[] } | null = null;
/** Whether `current` is still running: SQL may be asked for only then. */
let cellRunning = false;
let sqlSeq = 0;
const pendingSql = new Map<number, { resolve: (r: SqlResultPayload) => void; reject: (e: Error) => void }>();
/** SQL requests waiting for a free slot: the host accepts at most MAX_SQL_PENDING at once. */
const sqlQueue: (() => void)[] = [];

class SqlError extends Error {
  readonly line: number | null;
  constructor(payload: SqlErrorPayload) {
    super(payload.message);
    this.name = payload.name;
    this.line = payload.line;
  }
}

/**
 * Log budget of the whole run (RunMessage.maxLogBytes): the host runs the same one over the same lines,
 * so what is sent here always fits what the host keeps.
 */
let logBudget = new LogBudget(Number.POSITIVE_INFINITY);

function log(level: LogLevel, text: string): void {
  if (!current || logBudget.cut) return;
  const at = Math.round(performance.now() - current.started);
  const kept = logBudget.take(text);
  if (kept === null) return;
  const line = { level, text: kept, at };
  current.logs.push(line);
  void send({ type: 'log', index: current.index, ...line });
}

function captureConsole(): void {
  for (const level of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    console[level] = (...args: unknown[]) => log(level, format(...args));
  }
  console.trace = (...args: unknown[]) => log('debug', format(...args));
  const wrap = (level: 'stdout' | 'stderr') =>
    ((chunk: unknown, ...rest: unknown[]) => {
      log(level, String(chunk).replace(/\n$/, ''));
      const callback = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
      callback?.();
      return true;
    }) as typeof process.stdout.write;
  process.stdout.write = wrap('stdout');
  process.stderr.write = wrap('stderr');
}

function requestSql(
  cell: string,
  connection: string,
  statements: SqlStatementRequest[],
  chainAs: string | null,
): Promise<SqlResultPayload> {
  // The host refuses a request past these limits as a protocol violation: fail the cell here instead.
  if (!cellRunning) {
    return Promise.reject(
      new Error(
        'SQL was requested after its cell finished; await every almanac.query in the cell that makes it',
      ),
    );
  }
  if (!runConnections.includes(connection)) {
    return Promise.reject(
      new Error(
        `connection '${connection}' is not listed in this notebook; add it under 'connections:' in the frontmatter (listed: ${runConnections.join(', ')})`,
      ),
    );
  }
  const problem = sqlRequestProblem(statements);
  if (problem) return Promise.reject(new Error(problem));
  if (sqlSeq >= MAX_SQL_REQUESTS_PER_RUN) {
    return Promise.reject(
      new Error(
        `this run made ${MAX_SQL_REQUESTS_PER_RUN} SQL requests, the most a run may make; query in bulk`,
      ),
    );
  }
  const id = ++sqlSeq;
  return new Promise((resolve, reject) => {
    const start = () => {
      pendingSql.set(id, { resolve, reject });
      void send({ type: 'sql', id, cell, connection, statements, chainAs });
    };
    if (pendingSql.size < MAX_SQL_PENDING) start();
    else sqlQueue.push(start);
  });
}

/** Connections `almanac.query` may name (RunMessage.connections). */
let runConnections: readonly string[] = [];

/** A host answer arrived: start a queued request in its slot, while the cell still runs. */
function nextSql(): void {
  const start = sqlQueue.shift();
  if (start) start();
}

/** Evaluates an interpolation `{{ expression }}` against the scope. */
function evaluate(expression: string, scope: Record<string, unknown>): unknown {
  // `with` resolves names from the scope first and falls back to globals, like cell code does.
  const fn = new Function('__scope', `with (__scope) { return (${expression}\n); }`);
  return fn(scope);
}

/** Text for a value interpolated into prose, before HTML escaping. */
function inlineText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  if (value instanceof Date) {
    const iso = value.toISOString();
    return iso.endsWith('T00:00:00.000Z') ? iso.slice(0, 10) : iso;
  }
  if (Array.isArray(value) && 'columns' in value) return `(table of ${value.length} rows)`;
  return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
}

function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** The value of a SQL cell in later cells: an array of row objects that also knows its columns. */
function tableValue(result: SqlResultPayload): Record<string, unknown>[] {
  const rows = result.rows;
  Object.defineProperty(rows, 'columns', { value: result.columns, enumerable: false });
  return rows;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (!value || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A JS value shown as a table when it is a non-empty array of plain objects. */
function toTable(value: unknown[], rowLimit: number): TableOutput {
  const names: string[] = [];
  const seen = new Set<string>();
  for (const row of value.slice(0, rowLimit) as Record<string, unknown>[]) {
    for (const key of Object.keys(row)) {
      if (!seen.has(key)) {
        seen.add(key);
        names.push(key);
      }
    }
  }
  const known = (value as { columns?: Column[] }).columns;
  const columns: Column[] = names.map((name) => {
    const fromSql = known?.find((c) => c.name === name);
    if (fromSql) return fromSql;
    const sample = value.find((r) => (r as Record<string, unknown>)[name] != null) as
      | Record<string, unknown>
      | undefined;
    return { name, type: jsType(sample?.[name]) };
  });
  const rows = value
    .slice(0, rowLimit)
    .map((row) => columns.map((c) => jsonCell((row as Record<string, unknown>)[c.name])));
  return { kind: 'table', columns, rows, totalRows: value.length, truncated: value.length > rowLimit };
}

function jsType(value: unknown): string {
  if (value instanceof Date) return 'date';
  if (typeof value === 'bigint') return 'bigint';
  if (typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean')
    return typeof value;
  return value === undefined || value === null ? 'null' : 'json';
}

/** One table cell as JSON, keeping exactness (see docs/run-snapshot.md). */
function jsonCell(value: unknown): unknown {
  if (value === undefined || value === null) return null;
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  return encodeValue(value);
}

/** Chart data for Vega-Lite: numbers stay numbers (bigints become numbers), dates become ISO text. */
function chartCell(value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (value instanceof Date) return value.toISOString();
  if (value === undefined) return null;
  if (typeof value === 'object' && value !== null) return encodeValue(value);
  return value;
}

function errorLine(error: unknown, cell: Cell, cellFile: string | null): number | null {
  if (error instanceof SqlError) return error.line;
  const stack = (error as Error | undefined)?.stack ?? '';
  if (cellFile) {
    const url = pathToFileURL(cellFile).href;
    for (const line of stack.split('\n')) {
      const at = line.indexOf(url);
      if (at >= 0) {
        const m = /:(\d+):\d+/.exec(line.slice(at + url.length));
        if (m) return cell.bodyLine + Number(m[1]) - 1;
      }
    }
  }
  return cell.line;
}

function toCellError(error: unknown, cell: Cell, cellFile: string | null): CellError {
  const e = error instanceof Error ? error : new Error(format(error));
  // The host refuses longer texts (protocol-limits.ts); a cell can throw anything.
  const cap = (text: unknown, max: number) => {
    const s = typeof text === 'string' ? text : format(text);
    return s.length > max ? `${s.slice(0, max - 8)}… (cut)` : s;
  };
  const result: CellError = {
    cell: cell.name,
    line: errorLine(error, cell, cellFile),
    name: cap(e.name, MAX_SHORT_TEXT_CHARS),
    message: cap(e.message, MAX_ERROR_TEXT_CHARS),
  };
  if (!(error instanceof SqlError) && typeof e.stack === 'string') {
    result.stack = cap(
      e.stack
        .split('\n')
        .filter((l) => !l.includes('/executor/child/runtime.') && !l.includes('node:internal'))
        .join('\n'),
      MAX_ERROR_TEXT_CHARS,
    );
  }
  return result;
}

async function runCell(
  cell: Cell,
  scope: Record<string, unknown>,
  run: RunMessage,
  cellsDir: string,
  setFile: (f: string) => void,
): Promise<{ value: unknown; output: CellOutput | null }> {
  switch (cell.kind) {
    case 'sql':
      return runSql(cell, scope);
    case 'js':
    case 'ts':
      return runCode(cell, scope, run, cellsDir, setFile);
    case 'chart':
      return runChart(cell, scope);
    case 'prose':
      return runProse(cell, scope);
  }
}

async function runSql(cell: SqlCell, scope: Record<string, unknown>) {
  const statements = cell.statements.map((s) => ({
    text: s.text,
    line: s.line,
    params: s.params.map((expression) => toSqlParam(evaluate(expression, scope))),
  }));
  const result = await requestSql(cell.name, cell.connection, statements, cell.name);
  return { value: tableValue(result), output: result.table };
}

/** Values bound to SQL parameters: plain data only. */
function toSqlParam(value: unknown): unknown {
  if (value === undefined) return null;
  if (Array.isArray(value) && 'columns' in value) {
    throw new TypeError('a whole table cannot be bound as a SQL parameter; use one of its values');
  }
  return value;
}

async function runCode(
  cell: CodeCell,
  scope: Record<string, unknown>,
  run: RunMessage,
  cellsDir: string,
  setFile: (f: string) => void,
) {
  const file = join(cellsDir, `${cell.name}.mjs`);
  setFile(file);
  writeFileSync(file, cell.module);
  const module = (await import(pathToFileURL(file).href)) as {
    default: (s: Record<string, unknown>) => unknown;
  };
  const args: Record<string, unknown> = {};
  for (const name of cell.scope) args[name] = scope[name];
  const value = await module.default(args);
  let output: CellOutput | null;
  if (value === undefined) output = null;
  else if (Array.isArray(value) && value.length > 0 && value.every(isPlainObject))
    output = toTable(value, run.rowLimit);
  else output = { kind: 'value', value: encodeValue(value) };
  return { value, output };
}

async function runChart(cell: ChartCell, scope: Record<string, unknown>) {
  const datasets: Record<string, Record<string, unknown>[]> = {};
  for (const name of cell.data) {
    const data = scope[name];
    if (!Array.isArray(data)) {
      throw new TypeError(
        `chart data '${name}' must be a table (an array of rows), but it is ${describe(data)}`,
      );
    }
    datasets[name] = data.map((row) => {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(row as Record<string, unknown>)) out[k] = chartCell(v);
      return out;
    });
  }
  return {
    value: { spec: cell.spec, datasets },
    output: { kind: 'chart' as const, spec: cell.spec, datasets },
  };
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

async function runProse(cell: ProseCell, scope: Record<string, unknown>) {
  const values = cell.expressions.map((expression) => escapeHtml(inlineText(evaluate(expression, scope))));
  const html = cell.html.replace(/\uE000(\d+)\uE001/g, (_m, i: string) => values[Number(i)] ?? '');
  return { value: html, output: { kind: 'html' as const, html } };
}

function makeAlmanac(run: RunMessage) {
  const info = run.almanac;
  const query = (text: string, params: unknown[] = [], options: { connection?: string } = {}) =>
    requestSql(
      current ? run.cells[current.index]!.name : 'almanac.sql',
      options.connection ?? 'duckdb',
      [{ text, params: params.map(toSqlParam), line: 0 }],
      null,
    ).then(tableValue);
  return Object.freeze({
    scheduled: info.scheduled,
    runContext: info.runContext,
    runId: info.runId,
    scheduledFor: info.scheduledFor,
    inputs: Object.freeze({ ...info.inputs }),
    /** Runs SQL with bound parameters: `await almanac.query('select $1', [x], { connection })`. */
    query,
    /** Tagged template: interpolated values become bound parameters, never SQL text. */
    sql(strings: TemplateStringsArray, ...values: unknown[]) {
      let text = strings[0]!;
      for (let i = 0; i < values.length; i++) text += `$${i + 1}${strings[i + 1]}`;
      return query(text, values);
    },
  });
}

async function runNotebook(run: RunMessage): Promise<void> {
  // Imports written in a cell resolve as if the cell lived in the project folder; bare package names
  // fall back to Almanac's own node_modules.
  const projectURL = pathToFileURL(`${run.projectDir}/`).href;
  const packageURL = pathToFileURL(`${run.packageRoot}/`).href;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      if (!context.parentURL?.includes('/.almanac-cells/')) return nextResolve(specifier, context);
      const bare = !/^(\.{0,2}\/|node:|file:|data:)/.test(specifier);
      try {
        return nextResolve(specifier, { ...context, parentURL: projectURL });
      } catch (error) {
        if (!bare) throw error;
        return nextResolve(specifier, { ...context, parentURL: packageURL });
      }
    },
  });
  const cellsDir = join(process.cwd(), '.almanac-cells');
  mkdirSync(cellsDir, { recursive: true });
  const almanac = makeAlmanac(run);
  const scope: Record<string, unknown> = { ...run.almanac.inputs, almanac };
  let failedCell: string | null = null;
  for (const [index, cell] of run.cells.entries()) {
    if (failedCell) {
      await send({
        type: 'cell_finished',
        index,
        result: { ...notRunCell(cell.name, cell.kind), status: 'skipped' },
      });
      continue;
    }
    const startedAt = new Date().toISOString();
    current = { index, started: performance.now(), logs: [] };
    cellRunning = true;
    await send({ type: 'cell_started', index, name: cell.name, startedAt });
    let file: string | null = null;
    // A child reports a cell as run or not; only the host marks one `cancelled` (the run was stopped).
    let result: CellResult & { status: 'succeeded' | 'failed' | 'skipped' };
    try {
      const { value, output } = await runCell(cell, scope, run, cellsDir, (f) => {
        file = f;
      });
      if (cell.kind !== 'prose') scope[cell.name] = value;
      const size = outputSize(output);
      if (size > run.maxOutputBytes) {
        throw new OutputLimitError(
          `the output of cell '${cell.name}' is ${megabytes(size)} MiB, above the limit of ${megabytes(run.maxOutputBytes)} MiB; return less (aggregate or filter it), or raise ALMANAC_RUN_MAX_OUTPUT_MB`,
        );
      }
      result = {
        name: cell.name,
        kind: cell.kind,
        status: 'succeeded',
        startedAt,
        durationMs: Math.round((performance.now() - current.started) * 10) / 10,
        output,
        logs: current.logs,
        error: null,
      };
    } catch (error) {
      failedCell = cell.name;
      result = {
        name: cell.name,
        kind: cell.kind,
        status: 'failed',
        startedAt,
        durationMs: Math.round((performance.now() - current.started) * 10) / 10,
        output: null,
        logs: current.logs,
        error: toCellError(error, cell, file),
      };
    }
    cellRunning = false;
    sqlQueue.length = 0;
    await send({ type: 'cell_finished', index, result });
  }
  current = null;
  await send({ type: 'done' });
  process.exit(0);
}

class OutputLimitError extends Error {
  override name = 'OutputLimitError';
}

function megabytes(bytes: number): string {
  return (bytes / 1048576).toFixed(bytes < 1048576 ? 2 : 1);
}

/** The size of a cell's output as it is stored (JSON); unknown shapes count as 0. */
function outputSize(output: unknown): number {
  try {
    return Buffer.byteLength(
      JSON.stringify(output, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) ?? '',
    );
  } catch {
    return 0;
  }
}

function onHostMessage(message: HostMessage): void {
  if (message.type === 'run') {
    logBudget = new LogBudget(message.maxLogBytes ?? Number.POSITIVE_INFINITY);
    runConnections = message.connections ?? [];
    if (message.blockPrivateNetworks) blockPrivateNetworks();
    // bubblewrap sets PWD; the environment is the same with it or without (the run dir is the cwd).
    delete process.env['PWD'];
    captureConsole();
    runNotebook(message).catch((error) => {
      log('error', format(error));
      process.exit(70);
    });
  } else if (message.type === 'sql_result') {
    const pending = pendingSql.get(message.id);
    if (!pending) return;
    pendingSql.delete(message.id);
    if (cellRunning) nextSql();
    if (message.ok) pending.resolve(message.result);
    else pending.reject(new SqlError(message.error));
  }
}

const fromHost = new FrameReader(MAX_HOST_FRAME_BYTES);
channel.on('data', (chunk: Buffer) => {
  let messages: unknown[];
  try {
    messages = fromHost.push(chunk);
  } catch (error) {
    // Not the host's frames (a cell wrote into the wrong end, or the stream broke): nothing can be trusted.
    log('error', `the executor's channel is broken: ${format(error)}`);
    process.exit(71);
  }
  for (const message of messages) onHostMessage(message as HostMessage);
});
// The host died (a worker killed mid-run), or a cell closed the channel: nothing can receive results
// any more, so stop at once rather than run on unowned; the run's lease expires and the queue hands it
// to another worker.
channel.on('end', () => process.exit(0));
channel.on('close', () => process.exit(0));
channel.on('error', () => process.exit(0));

process.on('uncaughtException', (error) => {
  log('error', `uncaught exception: ${format(error)}`);
});
process.on('unhandledRejection', (reason) => {
  log('error', `unhandled promise rejection: ${format(reason)}`);
});

void send({ type: 'ready' });
