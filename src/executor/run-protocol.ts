/**
 * The host's side of the executor protocol for one run: every message the child sends is parsed
 * (`protocol.ts`) and must fit the run's state, or the run ends as `failed` with reason
 * `protocol_violation` (issue 14, "Hostile notebooks"). Notebook code runs in the child and can write
 * to the IPC channel itself (`process.send`), so nothing the child says is taken on trust:
 * - cells start in order, each once, one at a time; a cell is skipped only after an earlier one failed;
 * - only the current cell logs, and only the running cell finishes, once, with a result whose name,
 *   kind, status, output kind and shape fit the notebook's cell (a chart's spec is the notebook's; a
 *   prose cell's HTML is its template with escaped values);
 * - outputs, logs, rows and SQL requests stay within the run's limits, measured here;
 * - SQL comes only from the running cell, with a fresh id, for a connection the notebook lists;
 * - `done` comes only after every cell ended.
 */
import { isDeepStrictEqual } from 'node:util';
import { AlmanacError } from '../domain/errors.ts';
import { type Cell, EMBEDDED_CONNECTION, type Notebook } from '../domain/notebook/notebook.ts';
import { assertExhaustive } from '../domain/run-lifecycle.ts';
import type { CellResult, LogLine } from '../domain/snapshot.ts';
import { childMessageSchema, jsonByteLength, type SqlRequestMessage } from './protocol.ts';
import {
  LogBudget,
  MAX_SQL_PENDING,
  MAX_SQL_REQUESTS_PER_RUN,
  sqlRequestProblem,
} from './protocol-limits.ts';

/** The child broke the protocol: the run ends `failed` with reason `protocol_violation`. */
export class ProtocolViolationError extends AlmanacError {
  constructor(message: string) {
    super('internal', message, 500);
  }
}

/**
 * Log messages the host drops after the run's log budget ran out before it gives up on the child: an
 * honest child stops sending at the same line (it runs the same budget), so a flood past it is forged.
 */
export const MAX_DROPPED_LOG_LINES = 1000;

export interface RunProtocolLimits {
  rowLimit: number;
  maxOutputBytes: number;
  maxLogBytes: number;
}

/** What an accepted message means for the run. */
export type Accepted =
  | { type: 'cell_started'; index: number; name: string; startedAt: string }
  /** `line` is null when the run's log budget dropped it. */
  | { type: 'log'; index: number; line: LogLine | null }
  /** The result as stored: its `logs` are left for the host to fill with the lines it kept. */
  | { type: 'cell_finished'; index: number; result: CellResult }
  | { type: 'sql'; request: SqlRequestMessage }
  | { type: 'done' };

/** The connections a notebook may use: the embedded one, those it lists, those its SQL cells name. */
export function notebookConnections(notebook: Pick<Notebook, 'connections' | 'cells'>): string[] {
  const ids = new Set([EMBEDDED_CONNECTION, ...notebook.connections]);
  for (const cell of notebook.cells) if (cell.kind === 'sql') ids.add(cell.connection);
  return [...ids];
}

export class RunProtocol {
  readonly #cells: readonly Cell[];
  readonly #connections: ReadonlySet<string>;
  readonly #limits: RunProtocolLimits;
  readonly #budget: LogBudget;
  /** Lines kept per cell. */
  readonly #logCounts: number[];
  readonly #startedAt: (string | null)[];
  readonly #sqlIds = new Set<number>();
  readonly #chained = new Set<number>();
  #running: number | null = null;
  #current: number | null = null;
  #next = 0;
  #failed = false;
  #done = false;
  #dropped = 0;
  #pendingSql = 0;

  constructor(cells: readonly Cell[], connections: Iterable<string>, limits: RunProtocolLimits) {
    this.#cells = cells;
    this.#connections = new Set(connections);
    this.#limits = limits;
    this.#budget = new LogBudget(limits.maxLogBytes);
    this.#logCounts = cells.map(() => 0);
    this.#startedAt = cells.map(() => null);
  }

  /** The cell that started and has not finished, if any. */
  get running(): number | null {
    return this.#running;
  }

  /** Parses and checks one message from the child. Throws `ProtocolViolationError`, never anything else. */
  accept(raw: unknown): Accepted {
    try {
      return this.#accept(raw);
    } catch (error) {
      if (error instanceof ProtocolViolationError) throw error;
      throw new ProtocolViolationError(
        `a message could not be checked: ${(error as Error)?.message ?? error}`,
      );
    }
  }

  /** The host answered a SQL request. */
  sqlAnswered(): void {
    if (this.#pendingSql > 0) this.#pendingSql--;
  }

  #accept(raw: unknown): Accepted {
    const parsed = childMessageSchema.safeParse(raw);
    if (!parsed.success) throw violation(describeInvalid(raw, parsed.error.issues));
    const message = parsed.data;
    if (this.#done) throw violation(`'${message.type}' after 'done'`);
    switch (message.type) {
      case 'ready':
        throw violation("a second 'ready'");
      case 'cell_started': {
        const { index } = message;
        if (this.#running !== null) {
          throw violation(
            `'cell_started' for cell ${index} while ${this.#describe(this.#running)} is running`,
          );
        }
        if (index !== this.#next) {
          throw violation(`'cell_started' for cell ${index}, but the next cell is ${this.#nextText()}`);
        }
        if (this.#failed) throw violation(`'cell_started' for cell ${index} after a cell failed`);
        if (message.name !== this.#cells[index]!.name) {
          throw violation(
            `'cell_started' for cell ${index} names '${message.name}', not '${this.#cells[index]!.name}'`,
          );
        }
        this.#running = index;
        this.#current = index;
        this.#startedAt[index] = message.startedAt;
        return { type: 'cell_started', index, name: message.name, startedAt: message.startedAt };
      }
      case 'log': {
        const { index } = message;
        if (index !== this.#current) {
          throw violation(
            `'log' for cell ${index}, but ${this.#current === null ? 'no cell started yet' : `the current cell is ${this.#describe(this.#current)}`}`,
          );
        }
        const text = this.#budget.take(message.text);
        if (text === null) {
          if (++this.#dropped > MAX_DROPPED_LOG_LINES) {
            throw violation(
              `more than ${MAX_DROPPED_LOG_LINES} log lines after the run's log limit of ${this.#limits.maxLogBytes} bytes was reached`,
            );
          }
          return { type: 'log', index, line: null };
        }
        this.#logCounts[index]!++;
        return { type: 'log', index, line: { level: message.level, text, at: message.at } };
      }
      case 'cell_finished':
        return {
          type: 'cell_finished',
          index: message.index,
          result: this.#finish(message.index, message.result),
        };
      case 'sql':
        this.#checkSql(message);
        return { type: 'sql', request: message };
      case 'done':
        if (this.#running !== null)
          throw violation(`'done' while ${this.#describe(this.#running)} is running`);
        if (this.#next !== this.#cells.length) {
          throw violation(`'done' after ${this.#next} of ${this.#cells.length} cells ended`);
        }
        this.#done = true;
        return { type: 'done' };
      default:
        return assertExhaustive(message, 'child message');
    }
  }

  /** A child reports a cell as run or not; `cancelled` is the host's to write, never the child's. */
  #finish(index: number, result: CellResult & { status: 'succeeded' | 'failed' | 'skipped' }): CellResult {
    const running = this.#running;
    const skipped = result.status === 'skipped';
    if (running === null) {
      // Only a cell that never started may be finished without running, as skipped after a failure.
      if (index !== this.#next) {
        throw violation(
          `'cell_finished' for cell ${index}, which ${index < this.#next ? 'already finished' : 'did not start'} (the next cell is ${this.#nextText()})`,
        );
      }
      if (!skipped || !this.#failed) {
        throw violation(`'cell_finished' for cell ${index}, which did not start`);
      }
    } else if (index !== running) {
      throw violation(`'cell_finished' for cell ${index} while ${this.#describe(running)} is running`);
    } else if (skipped) {
      throw violation(`'cell_finished' with status 'skipped' for cell ${index}, which started`);
    }
    const cell = this.#cells[index]!;
    if (result.name !== cell.name || result.kind !== cell.kind) {
      throw violation(
        `the result for cell ${index} is for ${result.kind} cell '${result.name}', not ${cell.kind} cell '${cell.name}'`,
      );
    }
    if (result.logs.length > this.#logCounts[index]!) {
      throw violation(
        `the result of cell '${cell.name}' has ${result.logs.length} log lines; the host received ${this.#logCounts[index]}`,
      );
    }
    let output = result.output;
    switch (result.status) {
      case 'skipped':
        if (output !== null || result.error !== null || result.startedAt !== null || result.logs.length > 0) {
          throw violation(
            `the skipped cell '${cell.name}' carries an output, an error, a start time or logs`,
          );
        }
        break;
      case 'failed':
        if (output !== null || result.error === null || result.error.cell !== cell.name) {
          throw violation(`the failed cell '${cell.name}' must carry its own error and no output`);
        }
        break;
      case 'succeeded':
        if (result.error !== null) throw violation(`the succeeded cell '${cell.name}' carries an error`);
        output = this.#checkOutput(cell, output);
        break;
      default:
        assertExhaustive(result.status, 'cell status');
    }
    if (!skipped) {
      this.#running = null;
      if (result.status === 'failed') this.#failed = true;
    }
    this.#next = index + 1;
    return {
      ...result,
      output,
      // The start the host was told when the cell started; the logs are the host's own (filled later).
      startedAt: this.#startedAt[index] ?? null,
      logs: [],
    };
  }

  /** Checks a succeeded cell's output against its cell and the limits; returns the output to store. */
  #checkOutput(cell: Cell, output: CellResult['output']): CellResult['output'] {
    const expected =
      cell.kind === 'sql'
        ? ['table']
        : cell.kind === 'chart'
          ? ['chart']
          : cell.kind === 'prose'
            ? ['html']
            : ['value', 'table', null];
    const kind = output?.kind ?? null;
    if (!expected.includes(kind)) {
      throw violation(
        `a ${cell.kind} cell ('${cell.name}') cannot output ${kind === null ? 'nothing' : `a ${kind}`}`,
      );
    }
    let measured: unknown = output;
    let extraBytes = 0;
    if (output?.kind === 'table') {
      const width = output.columns.length;
      if (output.rows.length > this.#limits.rowLimit) {
        throw violation(
          `the table of cell '${cell.name}' has ${output.rows.length} rows; the row limit is ${this.#limits.rowLimit}`,
        );
      }
      if (output.totalRows < output.rows.length) {
        throw violation(`the table of cell '${cell.name}' has more rows than its totalRows`);
      }
      if (output.rows.some((row) => row.length !== width)) {
        throw violation(`a row of the table of cell '${cell.name}' does not have ${width} values`);
      }
    } else if (output?.kind === 'chart' && cell.kind === 'chart') {
      if (!isDeepStrictEqual(output.spec, cell.spec)) {
        throw violation(`the chart of cell '${cell.name}' does not carry the notebook's spec`);
      }
      const datasets = output.datasets;
      const names = Object.keys(datasets);
      if (names.length !== cell.data.length || !cell.data.every((name) => Object.hasOwn(datasets, name))) {
        throw violation(
          `the chart of cell '${cell.name}' has datasets other than ${JSON.stringify(cell.data)}`,
        );
      }
      // The spec stored is the notebook's own (checked at parse time); only the datasets are measured.
      output = { ...output, spec: cell.spec };
      measured = { ...output, spec: {} };
      extraBytes = Buffer.byteLength(JSON.stringify(cell.spec)) - 2;
    } else if (output?.kind === 'html' && cell.kind === 'prose') {
      if (!fillsTemplate(cell.html, output.html)) {
        throw violation(`the HTML of prose cell '${cell.name}' is not its template with escaped values`);
      }
    }
    const size = jsonByteLength(measured, this.#limits.maxOutputBytes);
    if (typeof size === 'string') throw violation(`the output of cell '${cell.name}' holds ${size}`);
    if (size + extraBytes > this.#limits.maxOutputBytes) {
      throw violation(
        `the output of cell '${cell.name}' is over its limit of ${this.#limits.maxOutputBytes} bytes (at least ${size + extraBytes})`,
      );
    }
    return output;
  }

  #checkSql(message: SqlRequestMessage): void {
    const running = this.#running;
    if (running === null) throw violation(`a SQL request (id ${message.id}) while no cell is running`);
    const cell = this.#cells[running]!;
    if (message.cell !== cell.name) {
      throw violation(`a SQL request for cell '${message.cell}' while cell '${cell.name}' is running`);
    }
    if (this.#sqlIds.has(message.id)) throw violation(`a second SQL request with id ${message.id}`);
    if (this.#sqlIds.size >= MAX_SQL_REQUESTS_PER_RUN) {
      throw violation(`more than ${MAX_SQL_REQUESTS_PER_RUN} SQL requests in one run`);
    }
    if (this.#pendingSql >= MAX_SQL_PENDING) {
      throw violation(`more than ${MAX_SQL_PENDING} SQL requests waiting at once`);
    }
    if (!this.#connections.has(message.connection)) {
      throw violation(
        `a SQL request for connection '${message.connection}', which the notebook does not list (it may use ${[...this.#connections].map((c) => `'${c}'`).join(', ')})`,
      );
    }
    const problem = sqlRequestProblem(message.statements);
    if (problem) throw violation(problem);
    if (message.chainAs !== null) {
      // A SQL cell's own query: it must be exactly the notebook's (its result may be cached and chained).
      const same =
        cell.kind === 'sql' &&
        !this.#chained.has(running) &&
        message.chainAs === cell.name &&
        message.connection === cell.connection &&
        message.statements.length === cell.statements.length &&
        message.statements.every(
          (s, i) =>
            s.text === cell.statements[i]!.text &&
            s.line === cell.statements[i]!.line &&
            s.params.length === cell.statements[i]!.params.length,
        );
      if (!same)
        throw violation(`a SQL request as cell '${message.chainAs}' that is not that SQL cell's own query`);
      this.#chained.add(running);
    }
    this.#sqlIds.add(message.id);
    this.#pendingSql++;
  }

  #describe(index: number): string {
    return `cell ${index} ('${this.#cells[index]!.name}')`;
  }

  #nextText(): string {
    return this.#next < this.#cells.length ? String(this.#next) : `none (all ${this.#cells.length} ended)`;
  }
}

function violation(what: string): ProtocolViolationError {
  return new ProtocolViolationError(what);
}

/** One line about why a message does not parse, without echoing what it carried. */
function describeInvalid(raw: unknown, issues: readonly { path: PropertyKey[]; message: string }[]): string {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return `a message that is ${raw === null ? 'null' : Array.isArray(raw) ? 'an array' : `a ${typeof raw}`}, not an object`;
  }
  const type = (raw as { type?: unknown }).type;
  const name = typeof type === 'string' ? `'${type.slice(0, 40)}'` : 'untyped';
  const issue = issues[0];
  const where = issue?.path.length ? ` at ${issue.path.map(String).join('.').slice(0, 120)}` : '';
  return `a malformed ${name} message${where}: ${(issue?.message ?? 'invalid').slice(0, 200)}`;
}

const UNSAFE_IN_VALUE = /[<>"']/;

/**
 * Whether `html` is the prose template with each placeholder (`\uE000N\uE001`) replaced by escaped text
 * (no `<`, `>`, quotes). Earliest matches are enough: a value may hold any safe text, so choosing a
 * piece's first occurrence never rules out a fit that a later one allows. Linear in the HTML's size.
 */
export function fillsTemplate(template: string, html: string): boolean {
  const pieces = template.split(/\uE000\d+\uE001/);
  if (pieces.length === 1) return html === template;
  const first = pieces[0]!;
  const last = pieces[pieces.length - 1]!;
  const end = html.length - last.length;
  if (end < first.length || !html.startsWith(first) || !html.endsWith(last)) return false;
  let pos = first.length;
  for (let i = 1; i < pieces.length - 1; i++) {
    const piece = pieces[i]!;
    const at = html.indexOf(piece, pos);
    if (at < 0 || at + piece.length > end) return false;
    if (UNSAFE_IN_VALUE.test(html.slice(pos, at))) return false;
    pos = at + piece.length;
  }
  return !UNSAFE_IN_VALUE.test(html.slice(pos, end));
}
