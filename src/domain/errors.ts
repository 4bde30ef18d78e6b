/**
 * Errors are values with names (STYLE.md, habit 7). Every error Almanac raises on purpose is an
 * `AlmanacError` with a stable string `code`, the HTTP status it maps to, and structured fields.
 * Messages say what was wrong and what to do.
 */

/** Stable error codes. Switches over them must be exhaustive. */
export type ErrorCode =
  | 'invalid_input'
  | 'notebook_invalid'
  | 'connection_unknown'
  | 'connection_failed'
  | 'not_found'
  | 'unauthorized'
  | 'conflict'
  | 'forbidden'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'internal';

export class AlmanacError extends Error {
  readonly code: ErrorCode;
  /** The HTTP status this error maps to when it reaches the API. */
  readonly status: number;

  constructor(code: ErrorCode, message: string, status: number, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message };
  }
}

/** A value supplied by a person or program is wrong. `field` names it (`inputs.region`, `timeout`). */
export class ValidationError extends AlmanacError {
  readonly field: string;

  constructor(field: string, message: string, status = 400) {
    super('invalid_input', `${field}: ${message}`, status);
    this.field = field;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), field: this.field };
  }
}

/** A value is bigger than a limit of `domain/limits.ts` allows (HTTP 413). The message names the limit. */
export class TooLargeError extends ValidationError {
  readonly limit: number;

  constructor(field: string, limit: number, message: string) {
    super(field, message, 413);
    this.limit = limit;
  }
}

/** One problem found while parsing a notebook, located by line (1-based) and, when known, cell. */
export interface NotebookProblem {
  line: number;
  cell?: string;
  message: string;
}

/** A notebook cannot be parsed. Carries every problem found, not only the first. */
export class NotebookError extends AlmanacError {
  readonly problems: readonly NotebookProblem[];
  readonly file: string | undefined;

  constructor(problems: readonly NotebookProblem[], file?: string) {
    const where = file ? `${file}:` : 'line ';
    const first = problems[0];
    const head = first
      ? `${where}${first.line}: ${first.cell ? `cell '${first.cell}': ` : ''}${first.message}`
      : 'notebook is invalid';
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem(s))` : '';
    super('notebook_invalid', head + more, 422);
    this.problems = problems;
    this.file = file;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), problems: this.problems };
  }
}

/** The thing asked for does not exist, or the caller may not see it (both answer 404). */
export class NotFoundError extends AlmanacError {
  constructor(what: string, id: string) {
    super('not_found', `${what} '${id}' was not found`, 404);
  }
}

/** No credentials, or credentials that are not valid. */
export class UnauthorizedError extends AlmanacError {
  constructor(message = 'a valid API token is required: send Authorization: Bearer <token>') {
    super('unauthorized', message, 401);
  }
}

/** The request is valid but the thing is in a state that does not allow it. */
export class ConflictError extends AlmanacError {
  constructor(message: string) {
    super('conflict', message, 409);
  }
}

/** The caller is known but its role does not allow this. */
export class ForbiddenError extends AlmanacError {
  constructor(message: string) {
    super('forbidden', message, 403);
  }
}

/** A request body is larger than the server accepts (HTTP 413). `limit` is in bytes. */
export class PayloadTooLargeError extends AlmanacError {
  readonly limit: number;

  constructor(limit: number, message: string) {
    super('payload_too_large', message, 413);
    this.limit = limit;
  }
}

/** A request body is not of the media type the route reads (HTTP 415). `header` names what to send. */
export class UnsupportedMediaTypeError extends AlmanacError {
  readonly header: string;

  constructor(header: string, message: string) {
    super('unsupported_media_type', message, 415);
    this.header = header;
  }
}

/** A notebook or request names a connection that is not configured. */
export class UnknownConnectionError extends AlmanacError {
  readonly connection: string;

  constructor(connection: string, known: readonly string[]) {
    super(
      'connection_unknown',
      `connection '${connection}' is not configured; known connections: ${known.join(', ') || 'none'}. ` +
        `Add it with --connection ${connection}=postgres://… or ALMANAC_CONNECTION_${connection.toUpperCase()}`,
      400,
    );
    this.connection = connection;
  }
}

/** Returns the closest candidate to `word` (Levenshtein distance ≤ 2), for "did you mean" hints. */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

/** For exhaustive switches: the compiler proves this is unreachable. */
export function assertExhaustive(value: never, what = 'value'): never {
  throw new Error(`unexpected ${what}: ${String(value)}`);
}
