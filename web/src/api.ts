/** The web app's calls to the API. The browser sends the login cookie; errors carry the server's message. */
import type { InputSpec } from '../../src/domain/notebook/notebook.ts';
import type { CellOutput, CellResult, Column, RunSnapshot } from '../../src/domain/snapshot.ts';

/** The domain's own types, so the glossary means the same in the UI (docs/glossary.md). */
export type { CellOutput, CellResult, Column, InputSpec };
export type Snapshot = RunSnapshot;

export interface Manifest {
  project: string;
  title: string;
  description: string;
  version: number | null;
  inputs: readonly InputSpec[];
  hideCode: boolean;
  showLastRun: boolean;
  defaultRunId: string | null;
}

export interface RunCell {
  index: number;
  name: string;
  kind: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'skipped';
  durationMs: number | null;
}

export interface Run {
  id: string;
  trigger: string;
  context: string;
  status: string;
  private: boolean;
  inputs: Record<string, unknown>;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: { cell: string | null; message: string } | null;
  scheduledFor?: string | null;
  latenessMs?: number | null;
  cells?: RunCell[];
}

export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

async function call<T>(path: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const response = await fetch(path, {
    ...init,
    credentials: 'same-origin',
    headers: { ...(init?.body ? { 'content-type': 'application/json' } : {}), ...init?.headers },
  });
  const body = (await response.json().catch(() => null)) as T & { error?: { message: string } };
  if (!response.ok) {
    throw new ApiError(response.status, body?.error?.message ?? `HTTP ${response.status}`);
  }
  return { status: response.status, body };
}

export const api = {
  projects: () =>
    call<{ slug: string; title: string; latestVersion: number | null }[]>('/api/projects').then(
      (r) => r.body,
    ),
  manifest: (project: string) => call<Manifest>(`/api/projects/${project}/app/manifest`).then((r) => r.body),
  /** 200: the default state's snapshot; 202: a run started (show_last_run off). */
  openApp: (project: string) =>
    call<Snapshot | { kind: 'run'; run: Run }>(`/api/projects/${project}/app`).then((r) =>
      r.status === 202 ? { run: (r.body as { run: Run }).run } : { snapshot: r.body as Snapshot },
    ),
  runs: (project: string) =>
    call<{ runs: Run[]; nextCursor: string | null }>(
      `/api/runs?project=${encodeURIComponent(project)}&limit=25`,
    ).then((r) => r.body),
  run: (id: string) => call<Run>(`/api/runs/${id}`).then((r) => r.body),
  snapshot: (runId: string) => call<Snapshot>(`/api/runs/${runId}/snapshot`).then((r) => r.body),
  rerun: (project: string, inputs: Record<string, unknown>) =>
    call<Run>(`/api/projects/${project}/runs`, {
      method: 'POST',
      body: JSON.stringify({ inputs, private: true }),
    }).then((r) => r.body),
  cancel: (id: string) => call<Run>(`/api/runs/${id}/cancel`, { method: 'POST' }).then((r) => r.body),
  deliveries: (runId: string) => call<Delivery[]>(`/api/runs/${runId}/deliveries`).then((r) => r.body),
  resend: (id: string) =>
    call<Delivery>(`/api/deliveries/${id}/resend`, { method: 'POST' }).then((r) => r.body),
  outbox: () => call<OutboxEntry[]>('/api/outbox').then((r) => r.body),
  outboxMessage: (file: string) =>
    call<OutboxMessage>(`/api/outbox/${encodeURIComponent(file)}/message`).then((r) => r.body),
};

/** One notification of a run to one destination (docs/notifications.md). */
export interface Delivery {
  id: string;
  rule: string;
  channel: string;
  destination: string;
  status: 'pending' | 'sending' | 'sent' | 'failed';
  attempts: number;
  maxAttempts: number;
  error: string | null;
  note: string | null;
  sentAt: string | null;
}

export interface OutboxEntry {
  file: string;
  deliveryId: string;
  size: number;
  createdAt: string;
}

export interface OutboxMessage {
  subject: string;
  from: string;
  to: string;
  date: string | null;
  text: string;
  attachments: { filename: string; contentType: string; size: number; inline: boolean; url: string }[];
}

/** Follows a run over Server-Sent Events until it ends. */
export function followRun(id: string, onRun: (run: Run) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const source = new EventSource(`/api/runs/${id}/events`);
    let last: Run | null = null;
    source.addEventListener('run', (event) => {
      last = JSON.parse((event as MessageEvent).data) as Run;
      onRun(last);
    });
    source.addEventListener('end', () => {
      source.close();
      if (last) resolve(last);
      else reject(new Error('the run ended without progress'));
    });
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) reject(new Error('lost the connection to the server'));
    };
  });
}
