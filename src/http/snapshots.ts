/**
 * Snapshots as the API sends them: stored gzip bytes with a strong ETag, and a small cache of finished
 * runs' snapshots (immutable) so the hot path of opening an app does not re-read them.
 */
import type { Context } from 'hono';
import type { StoredSnapshot } from '../store/run-store.ts';

/**
 * A stored snapshot as is: gzip bytes when the client accepts them (nearly always), with a strong
 * ETag so a client that has it gets 304 without a body.
 */
export function sendSnapshot(
  c: Context,
  snapshot: StoredSnapshot,
  cacheControl: string,
  headers: Record<string, string> = {},
) {
  const common: Record<string, string> = {
    ETag: snapshot.etag,
    'Cache-Control': cacheControl,
    Vary: 'Accept-Encoding',
    ...headers,
  };
  const match = c.req.header('if-none-match');
  if (match?.split(',').some((t) => t.trim() === snapshot.etag)) {
    return new Response(null, { status: 304, headers: common });
  }
  const gzip = /\bgzip\b/.test(c.req.header('accept-encoding') ?? '');
  return new Response(gzip ? snapshot.gzip : snapshot.body, {
    status: 200,
    headers: {
      ...common,
      'Content-Type': 'application/json; charset=utf-8',
      ...(gzip ? { 'Content-Encoding': 'gzip' } : {}),
    },
  });
}

/** Immutable snapshots (a finished run's) by run id, so the cached app open does not re-read them. */
export class SnapshotCache {
  readonly #entries = new Map<string, StoredSnapshot>();
  readonly #max: number;
  constructor(max = 64) {
    this.#max = max;
  }
  get(runId: string): StoredSnapshot | undefined {
    return this.#entries.get(runId);
  }
  /** The cached snapshot of a run, or `read()`'s (cached when there is one). */
  async load(runId: string, read: () => Promise<StoredSnapshot | null>): Promise<StoredSnapshot | null> {
    const cached = this.#entries.get(runId);
    if (cached) return cached;
    const stored = await read();
    if (stored) this.set(runId, stored);
    return stored;
  }
  set(runId: string, snapshot: StoredSnapshot): void {
    this.#entries.set(runId, snapshot);
    if (this.#entries.size > this.#max) this.#entries.delete(this.#entries.keys().next().value!);
  }
}
