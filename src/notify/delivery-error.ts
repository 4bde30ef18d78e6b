/** A delivery that did not go out, and whether another attempt could succeed. */
export class DeliveryError extends Error {
  readonly retryable: boolean;
  /** When the receiver said to try again (HTTP `Retry-After`, Slack's rate limit), in ms from now. */
  readonly retryAfterMs: number | null;

  constructor(
    message: string,
    retryable: boolean,
    options?: ErrorOptions & { retryAfterMs?: number | null },
  ) {
    super(message, options);
    this.name = 'DeliveryError';
    this.retryable = retryable;
    this.retryAfterMs = options?.retryAfterMs ?? null;
  }
}

/** An HTTP `Retry-After` value (seconds, or an HTTP date) in ms from `now`; null when absent or invalid. */
export function parseRetryAfter(header: string | string[] | undefined, now = Date.now()): number | null {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}
