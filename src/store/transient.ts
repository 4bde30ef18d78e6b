/**
 * Transient store errors: failures that another attempt of the same statement or transaction can get
 * past, listed in one table. Loops retry an operation on these with bounded exponential backoff
 * (`retryTransient`); every other error goes straight to the caller.
 *
 * Retrying is safe because every write the loops make is idempotent or guarded: claims and lease
 * renewals are guarded UPDATEs, fire times and deliveries have unique keys, and a run's completion is
 * guarded by its holder's fencing token (so a commit that did land, but whose answer was lost with the
 * connection, is not applied twice: the retry finds the run already finished and changes nothing).
 */

/** What makes an error transient, by PostgreSQL SQLSTATE, Node socket code, or SQLite code. */
export const TRANSIENT_ERRORS: readonly {
  match: string;
  store: 'postgres' | 'sqlite' | 'any';
  why: string;
}[] = [
  { match: '40001', store: 'postgres', why: 'serialization_failure: a concurrent transaction conflicted' },
  {
    match: '40P01',
    store: 'postgres',
    why: 'deadlock_detected: PostgreSQL chose this transaction as the victim',
  },
  { match: '55P03', store: 'postgres', why: 'lock_not_available: a lock timeout' },
  {
    match: '57P01',
    store: 'postgres',
    why: 'admin_shutdown: the backend was terminated (pg_terminate_backend, restart)',
  },
  { match: '57P02', store: 'postgres', why: 'crash_shutdown: the server is recovering from a crash' },
  { match: '57P03', store: 'postgres', why: 'cannot_connect_now: the server is starting up' },
  { match: '53300', store: 'postgres', why: 'too_many_connections' },
  { match: '08000', store: 'postgres', why: 'connection_exception' },
  { match: '08001', store: 'postgres', why: 'sqlclient_unable_to_establish_sqlconnection' },
  { match: '08003', store: 'postgres', why: 'connection_does_not_exist' },
  { match: '08006', store: 'postgres', why: 'connection_failure' },
  {
    match: 'ECONNREFUSED',
    store: 'any',
    why: 'the server is not accepting connections (down or restarting)',
  },
  { match: 'ECONNRESET', store: 'any', why: 'the connection was reset' },
  { match: 'EPIPE', store: 'any', why: 'the connection closed while writing' },
  { match: 'ETIMEDOUT', store: 'any', why: 'the connection timed out' },
  { match: 'Connection terminated', store: 'postgres', why: 'pg: the connection ended mid-query' },
  { match: 'is not queryable', store: 'postgres', why: 'pg: a client whose connection failed was used' },
  { match: 'the database system is shutting down', store: 'postgres', why: 'PostgreSQL is stopping' },
  { match: 'the database system is starting up', store: 'postgres', why: 'PostgreSQL is starting' },
  {
    match: 'timeout exceeded when trying to connect',
    store: 'postgres',
    why: 'pg pool: no connection in time',
  },
  {
    match: 'SQLITE_BUSY',
    store: 'sqlite',
    why: 'another connection holds the write lock beyond busy_timeout',
  },
  { match: 'database is locked', store: 'sqlite', why: 'another connection holds the write lock' },
];

/** The entry of TRANSIENT_ERRORS that `error` matches, or null. */
export function transientReason(error: unknown): string | null {
  if (!error || typeof error !== 'object') return null;
  const e = error as { code?: unknown; errcode?: unknown; message?: unknown; cause?: unknown };
  const code = typeof e.code === 'string' ? e.code : typeof e.errcode === 'string' ? e.errcode : '';
  const message = typeof e.message === 'string' ? e.message : '';
  for (const entry of TRANSIENT_ERRORS) {
    if (code === entry.match || message.includes(entry.match)) return entry.why;
  }
  return e.cause && e.cause !== error ? transientReason(e.cause) : null;
}

export interface RetryOptions {
  /** Attempts in all, including the first. @default 6 */
  attempts?: number;
  /** First delay, doubling, with jitter. @default 50 */
  baseMs?: number;
  /** @default 2000 */
  maxMs?: number;
  /** Told about each retry (metrics, logs). */
  onRetry?: (info: { operation: string; attempt: number; reason: string; delayMs: number }) => void;
}

/** Runs `fn`, retrying it on transient store errors (at most `attempts` times in all). */
export async function retryTransient<T>(
  operation: string,
  fn: () => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const attempts = options.attempts ?? 6;
  const base = options.baseMs ?? 50;
  const max = options.maxMs ?? 2000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      const reason = transientReason(error);
      if (!reason || attempt >= attempts) throw error;
      const delayMs = Math.round(Math.min(max, base * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2));
      options.onRetry?.({ operation, attempt, reason, delayMs });
      await new Promise((r) => setTimeout(r, delayMs));
    }
  }
}
