/**
 * Limits of the executor protocol that both sides apply the same way: the sandboxed child keeps to them
 * (so an honest notebook never breaks the protocol, and gets a cell error that says what to change),
 * and the host enforces them on whatever it receives (issue 14: the child is untrusted). This module is
 * bundled into the child runtime, so it imports nothing and depends on no package.
 */

/** Characters of one log line; a longer line keeps its start and ends with `LOG_LINE_CUT`. */
export const MAX_LOG_LINE_CHARS = 10_000;
/** What ends a log line cut at `MAX_LOG_LINE_CHARS`. */
export const LOG_LINE_CUT = '… (cut)';
/**
 * Bytes each log line costs on top of its text: its level, time and JSON framing when stored. It also
 * bounds the number of lines: a run with a 1 MiB log budget keeps at most 16,384 empty lines.
 */
export const LOG_LINE_OVERHEAD_BYTES = 64;
/** What ends the line at which a run's log budget ran out; later lines are dropped. */
export const LOG_CUT_NOTICE = '… (log output cut: this run reached its log limit; later output is dropped)';

/** SQL requests one run may make (SQL cells and `almanac.query` together). */
export const MAX_SQL_REQUESTS_PER_RUN = 10_000;
/**
 * SQL requests the child may have waiting for an answer at once; it queues the rest itself. Each
 * connection has one session, which runs one query at a time, so more would only hold host memory
 * (up to `MAX_SQL_PARAM_BYTES` each).
 */
export const MAX_SQL_PENDING = 8;
/** Statements in one SQL request. */
export const MAX_SQL_STATEMENTS = 1000;
/** Characters of the SQL text of one request, all statements together (a notebook is at most 1 MiB). */
export const MAX_SQL_TEXT_CHARS = 1024 * 1024;
/** Bound parameters of one statement. */
export const MAX_SQL_PARAMS = 10_000;
/** Bytes of the bound values of one SQL request (strings, byte arrays), counted by `approximateBytes`. */
export const MAX_SQL_PARAM_BYTES = 16 * 1024 * 1024;

/** Characters of a cell error's message and of its stack trace. */
export const MAX_ERROR_TEXT_CHARS = 64 * 1024;
/** Characters of an error's class name, a connection id, a column type, a cell name. */
export const MAX_SHORT_TEXT_CHARS = 1000;

const encoder = new TextEncoder();

/** The UTF-8 size of a string (lone surrogates count 3 bytes, as they are encoded). */
export function utf8Bytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** The longest start of `text` that fits in `maxBytes` of UTF-8, never splitting a character. */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (maxBytes <= 0) return '';
  if (text.length * 3 <= maxBytes) return text;
  const { read } = encoder.encodeInto(text, new Uint8Array(maxBytes));
  return text.slice(0, read);
}

/** One log line's text as kept, before the run's budget: at most `MAX_LOG_LINE_CHARS` characters. */
export function capLogLine(text: string): string {
  return text.length > MAX_LOG_LINE_CHARS
    ? `${text.slice(0, MAX_LOG_LINE_CHARS - LOG_LINE_CUT.length)}${LOG_LINE_CUT}`
    : text;
}

/**
 * The log budget of one run (`maxLogBytes`): each line costs its UTF-8 text plus
 * `LOG_LINE_OVERHEAD_BYTES`. The line that would pass the budget is cut to fit with `LOG_CUT_NOTICE`
 * (room for which is kept aside from the start), and every later line is dropped. The child and the
 * host run the same budget over the same lines, so what an honest child sends always fits the host's;
 * the host's copy is what is stored.
 */
export class LogBudget {
  #left: number;
  #cut = false;

  constructor(maxBytes: number) {
    this.#left = maxBytes;
  }

  /** True once a line was cut or dropped: later lines are dropped. */
  get cut(): boolean {
    return this.#cut;
  }

  /** The text to keep for this line, or null to drop it. */
  take(text: string): string | null {
    if (this.#cut) return null;
    const capped = capLogLine(text);
    const cost = utf8Bytes(capped) + LOG_LINE_OVERHEAD_BYTES;
    if (cost <= this.#left - NOTICE_COST) {
      this.#left -= cost;
      return capped;
    }
    this.#cut = true;
    if (cost <= this.#left && capped.endsWith(LOG_CUT_NOTICE)) {
      // A line this budget already cut (the child's, seen by the host): kept as it is.
      this.#left -= cost;
      return capped;
    }
    const room = this.#left - LOG_LINE_OVERHEAD_BYTES;
    if (room <= 0) return null;
    const notice = truncateUtf8(LOG_CUT_NOTICE, room);
    const kept = truncateUtf8(capped, room - utf8Bytes(notice)) + notice;
    this.#left -= utf8Bytes(kept) + LOG_LINE_OVERHEAD_BYTES;
    return kept;
  }
}

/** What the cut line's notice costs at most: kept aside so that it always fits. */
const NOTICE_COST = utf8Bytes(LOG_CUT_NOTICE) + LOG_LINE_OVERHEAD_BYTES;

/**
 * A lower bound of the memory a value holds: the UTF-8 size of its strings, the size of byte arrays,
 * 8 bytes for anything else, summed through arrays, plain objects, maps and sets. It stops counting
 * (and returns) once past `limit`, so a huge value costs little to refuse.
 */
export function approximateBytes(value: unknown, limit: number): number {
  let total = 0;
  const stack: unknown[] = [value];
  const seen = new Set<object>();
  while (stack.length > 0 && total <= limit) {
    const item = stack.pop();
    if (typeof item === 'string') {
      total += item.length > limit ? item.length : utf8Bytes(item);
    } else if (item !== null && typeof item === 'object') {
      if (seen.has(item)) continue;
      seen.add(item);
      total += 8;
      if (ArrayBuffer.isView(item)) total += item.byteLength;
      else if (item instanceof ArrayBuffer) total += item.byteLength;
      else if (Array.isArray(item)) for (const v of item) stack.push(v);
      else if (item instanceof Map) for (const [k, v] of item) stack.push(k, v);
      else if (item instanceof Set) for (const v of item) stack.push(v);
      else for (const [k, v] of Object.entries(item)) stack.push(k, v);
    } else {
      total += 8;
    }
  }
  return total;
}

/** What a SQL request breaks of the limits above, or null when it fits. */
export function sqlRequestProblem(
  statements: readonly { text: string; params: readonly unknown[] }[],
): string | null {
  if (statements.length === 0) return 'a SQL request needs at least one statement';
  if (statements.length > MAX_SQL_STATEMENTS) {
    return `a SQL request has ${statements.length} statements; at most ${MAX_SQL_STATEMENTS} are allowed`;
  }
  let chars = 0;
  for (const statement of statements) {
    chars += statement.text.length;
    if (chars > MAX_SQL_TEXT_CHARS) {
      return `the SQL text of a request is over ${MAX_SQL_TEXT_CHARS} characters; send less at once`;
    }
    if (statement.params.length > MAX_SQL_PARAMS) {
      return `a SQL statement has ${statement.params.length} parameters; at most ${MAX_SQL_PARAMS} are allowed`;
    }
  }
  const bytes = approximateBytes(
    statements.map((s) => s.params),
    MAX_SQL_PARAM_BYTES,
  );
  if (bytes > MAX_SQL_PARAM_BYTES) {
    return `the values bound to a SQL request are over ${MAX_SQL_PARAM_BYTES / 1048576} MiB; bind less (use a file or a table instead)`;
  }
  return null;
}
