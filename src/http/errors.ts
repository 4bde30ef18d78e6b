/**
 * The one error → response mapping of every HTTP route: the API, the browser sign-in, the web files
 * and the operations endpoints (/healthz, /readyz, /metrics) of every process, with or without the web
 * role. Each answers `{ error: { code, message, field?, … } }`:
 * - an `AlmanacError` with its own status and structured fields (`ValidationError` → 400 with `field`,
 *   `NotFoundError` 404, `ForbiddenError` 403, `ConflictError` 409, `PayloadTooLargeError` 413 with
 *   `limit`, `UnsupportedMediaTypeError` 415 with `header`, `NotebookError` 422 with `problems`…);
 * - a transient store error (`store/transient.ts`) → 503 with `Retry-After`: nothing was committed and
 *   the same request can pass in a moment;
 * - Hono's own `HTTPException` with its status;
 * - anything else → 500, told to `onUnexpected` (the log), never shown to the caller.
 */
import type { Context, Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { AlmanacError, ValidationError } from '../domain/errors.ts';
import { transientReason } from '../store/transient.ts';

/** The body of every error response (`#/components/schemas/Error` in the OpenAPI document). */
export interface ErrorJson {
  error: { code: string; message: string; field?: string; [detail: string]: unknown };
}

/** Seconds a client waits before retrying after a transient store error (503). */
export const RETRY_AFTER_SECONDS = 1;

/** How an error answers: status, body, extra headers. Pure, so both apps and tests share it. */
export function errorResult(error: unknown): {
  status: number;
  body: ErrorJson;
  headers: Record<string, string>;
  unexpected: boolean;
} {
  if (error instanceof AlmanacError) {
    const body: ErrorJson['error'] = { code: error.code, message: error.message };
    if (error instanceof ValidationError) body.field = error.field;
    // Structured fields of the subclasses (problems, limit, header) travel with the error.
    for (const key of ['problems', 'limit', 'header'] as const) {
      if (key in error) body[key] = (error as unknown as Record<string, unknown>)[key];
    }
    return { status: error.status, body: { error: body }, headers: {}, unexpected: false };
  }
  const transient = transientReason(error);
  if (transient) {
    return {
      status: 503,
      body: {
        error: { code: 'unavailable', message: `the store is briefly unavailable (${transient}); try again` },
      },
      headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) },
      unexpected: false,
    };
  }
  if (error instanceof HTTPException) {
    return {
      status: error.status,
      body: { error: { code: codeOfStatus(error.status), message: error.message || `HTTP ${error.status}` } },
      headers: {},
      unexpected: error.status >= 500,
    };
  }
  return {
    status: 500,
    body: { error: { code: 'internal', message: 'an unexpected error occurred; see the server log' } },
    headers: {},
    unexpected: true,
  };
}

function codeOfStatus(status: number): string {
  switch (status) {
    case 400:
      return 'invalid_input';
    case 401:
      return 'unauthorized';
    case 403:
      return 'forbidden';
    case 404:
      return 'not_found';
    case 409:
      return 'conflict';
    case 413:
      return 'payload_too_large';
    case 415:
      return 'unsupported_media_type';
    case 503:
      return 'unavailable';
    default:
      return status >= 500 ? 'internal' : 'invalid_input';
  }
}

/** The error response for `error`, told to `onUnexpected` when it is not one we raised or expect. */
export function errorResponse(
  error: unknown,
  c: Context,
  onUnexpected?: (error: unknown, c: Context) => void,
): Response {
  const result = errorResult(error);
  if (result.unexpected) onUnexpected?.(error, c);
  for (const [name, value] of Object.entries(result.headers)) c.header(name, value);
  return c.json(result.body, result.status as 400);
}

/** Installs the one mapping as `app.onError`. */
export function handleErrors(app: Hono, onUnexpected?: (error: unknown, c: Context) => void): void {
  app.onError((error, c) => errorResponse(error, c, onUnexpected));
}

/** The JSON 404 of a path no route serves. */
export function notFoundResponse(c: Context, message: string): Response {
  return c.json({ error: { code: 'not_found', message } } satisfies ErrorJson, 404);
}
