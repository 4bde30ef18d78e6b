/**
 * A run (glossary "Run"): one execution of one version. The run table is both the queue and the run
 * log (ARCHITECTURE.md, decision 3). States, as in docs/run-lifecycle.md:
 *
 *   queued ──claim──▶ running ──▶ succeeded | failed | timed_out | cancelled
 *     ▲                  │
 *     └──lease expired───┘  (attempts remain; else failed with reason worker_lost)
 *   queued ──cancel──▶ cancelled
 *
 * `skipped` records a fire time that a schedule's policy dropped (issue 4). Every transition is one
 * guarded UPDATE (`WHERE status = <expected>`), so two nodes can never both win.
 */
import type { InputValue, RunContext, RunFailureReason } from './run-context.ts';

export const RUN_STATUSES = [
  'queued',
  'running',
  'succeeded',
  'failed',
  'timed_out',
  'cancelled',
  'skipped',
] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

export const FINAL_STATUSES: readonly RunStatus[] = [
  'succeeded',
  'failed',
  'timed_out',
  'cancelled',
  'skipped',
];

export function isFinal(status: RunStatus): boolean {
  return FINAL_STATUSES.includes(status);
}

/** What started a run. */
export const RUN_TRIGGERS = ['manual', 'api', 'publish', 'schedule', 'backfill'] as const;
export type RunTrigger = (typeof RUN_TRIGGERS)[number];

/** Why a run ended without succeeding: the executor's reasons, plus the queue's own. */
export type RunReason = RunFailureReason | 'worker_lost';

/** Runs of these triggers refresh the app's default state (and the `cache=schedule` results). */
export function refreshesDefaultState(trigger: RunTrigger): boolean {
  return trigger === 'publish' || trigger === 'schedule';
}

export interface Run {
  id: string;
  workspaceId: string;
  projectId: string;
  versionId: string;
  trigger: RunTrigger;
  context: RunContext;
  status: RunStatus;
  /** A viewer's own re-run: never the default state, visible only to its creator, deleted after a TTL. */
  private: boolean;
  inputs: Record<string, InputValue>;
  createdBy: string | null;
  createdAt: Date;
  scheduledFor: Date | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  attempts: number;
  maxAttempts: number;
  worker: string | null;
  leaseExpiresAt: Date | null;
  cancelRequested: boolean;
  reason: RunReason | null;
  /** The failing cell, when a cell failed. */
  errorCell: string | null;
  errorMessage: string | null;
  expiresAt: Date | null;
}

/** Per-cell progress, stored as it happens. */
export interface RunCellProgress {
  index: number;
  name: string;
  kind: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'skipped';
  startedAt: Date | null;
  durationMs: number | null;
}
