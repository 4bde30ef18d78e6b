/**
 * The web app's calls to the API, typed from the OpenAPI document (`npm run gen:api` writes
 * api/schema.d.ts; never edit it by hand). The browser sends the session cookie; a failed call throws
 * an ApiError carrying the server's own message (`error.message`), never raw JSON.
 */
import createClient from 'openapi-fetch';
import type { InputSpec } from '../../src/domain/notebook/notebook.ts';
import type { CellOutput, CellResult, Column, RunSnapshot } from '../../src/domain/snapshot.ts';
import type { components, paths } from './api/schema.d.ts';

/** The domain's own types, so the glossary means the same in the UI (docs/glossary.md). */
export type { CellOutput, CellResult, Column, InputSpec };
export type Snapshot = RunSnapshot;

type Schemas = components['schemas'];
export type Manifest = Schemas['AppManifest'];
export type Run = Schemas['Run'];
export type LiveRun = Schemas['RunWithCells'];
export type RunStatus = Run['status'];
export type Project = Schemas['Project'];
export type Schedule = Schemas['Schedule'];
export type Cadence = Schemas['Cadence'];
export type VersionListing = Schemas['VersionListing'];
export type AppSettings = Schemas['AppSettings'];
export type Delivery = Schemas['Delivery'];
export type Me = paths['/api/me']['get']['responses'][200]['content']['application/json'];
export type OutboxEntry =
  paths['/api/outbox']['get']['responses'][200]['content']['application/json'][number];
export type OutboxMessage =
  paths['/api/outbox/{file}/message']['get']['responses'][200]['content']['application/json'];
export type RunsPage = paths['/api/runs']['get']['responses'][200]['content']['application/json'];

/** A failed API call: its HTTP status and the server's sentence about it. */
export class ApiError extends Error {
  readonly status: number;
  readonly field: string | null;
  constructor(status: number, message: string, field: string | null = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.field = field;
  }
}

export const client = createClient<paths>({ baseUrl: '', credentials: 'same-origin' });

/**
 * The data of an openapi-fetch answer, or an ApiError with the server's message. Usage:
 * `unwrap(await client.GET('/api/runs/{run}', { params: { path: { run } }, signal }))`.
 */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  const { response } = result;
  if (!response.ok || result.data === undefined) {
    const body = result.error as { error?: { message?: string; field?: string } } | undefined;
    const message =
      body?.error?.message ??
      (response.status === 404
        ? 'not found'
        : `the server answered ${response.status} ${response.statusText}`.trim());
    throw new ApiError(response.status, message, body?.error?.field ?? null);
  }
  return result.data;
}

/** Like `unwrap`, for answers without a body (202, 204): throws on an error status, else returns. */
export function expectOk(result: { error?: unknown; response: Response }): void {
  if (!result.response.ok) unwrap(result);
}

/** The app's default state: its snapshot (200), or the run that makes it (202, show_last_run off). */
export async function openApp(
  project: string,
  signal?: AbortSignal,
): Promise<{ snapshot: Snapshot } | { run: Run }> {
  const result = await client.GET('/api/projects/{project}/app', { params: { path: { project } }, signal });
  const data = unwrap(result as { data?: unknown; error?: unknown; response: Response });
  if (result.response.status === 202) return { run: (data as { run: Run }).run };
  return { snapshot: data as Snapshot };
}

export async function snapshotOf(run: string, signal?: AbortSignal): Promise<Snapshot> {
  const result = await client.GET('/api/runs/{run}/snapshot', { params: { path: { run } }, signal });
  return unwrap(result as { data?: unknown; error?: unknown; response: Response }) as Snapshot;
}

/**
 * Follows a run over Server-Sent Events until it ends, reporting each state. Aborting `signal` (the
 * query was cancelled: its view was left) closes the stream and rejects, so a run that is no longer
 * on screen never overwrites the one that is.
 */
export function followRun(id: string, onRun: (run: LiveRun) => void, signal?: AbortSignal): Promise<LiveRun> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const source = new EventSource(`/api/runs/${encodeURIComponent(id)}/events`);
    let last: LiveRun | null = null;
    const stop = () => {
      source.close();
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = () => {
      stop();
      reject(signal?.reason ?? new DOMException('left the run', 'AbortError'));
    };
    signal?.addEventListener('abort', onAbort);
    source.addEventListener('run', (event) => {
      if (signal?.aborted) return;
      last = JSON.parse((event as MessageEvent<string>).data) as LiveRun;
      onRun(last);
    });
    source.addEventListener('end', () => {
      stop();
      if (last) resolve(last);
      else reject(new Error('the run ended without sending its progress'));
    });
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        stop();
        reject(new Error('lost the connection to the server while following the run; reload to see it'));
      }
    };
  });
}
