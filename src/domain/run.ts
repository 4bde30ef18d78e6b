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

/** At most this many runs per bulk enqueue (`POST /api/projects/{p}/runs/batch`). */
export const MAX_BULK_RUNS = 1000;

/**
 * What started a run; the one list (the runs table checks the same values).
 * - `manual`: a person's own run (a viewer's private re-run, `almanac run`).
 * - `api`: a program, through the API.
 * - `publish`: the run that publishing (or making a version current without a good run) queues.
 * - `schedule`: a schedule fired, or "run now" on a schedule (a scheduled run started early).
 * - `backfill`: a schedule's past fire times, run on request.
 */
export const RUN_TRIGGERS = ['manual', 'api', 'publish', 'schedule', 'backfill'] as const;
export type RunTrigger = (typeof RUN_TRIGGERS)[number];

/**
 * "Run now" on a schedule is a scheduled run started early (issue 15, bug 5): trigger `schedule`, so
 * it refreshes the default state like any other.
 */
export const RUN_NOW_TRIGGER: RunTrigger = 'schedule';

/**
 * Why a run ended without succeeding: the executor's reasons, the queue's own (`worker_lost`), and
 * why a schedule's fire time was `skipped`: the previous run was still going (`overlap`), it was
 * missed while no scheduler ran (`missed`), folded into a later catch-up run (`coalesced`), or the
 * project had no published version (`no_version`).
 */
export type RunReason = RunFailureReason | 'worker_lost' | 'overlap' | 'missed' | 'coalesced' | 'no_version';

/** Runs of these triggers refresh the app's default state (and the `cache=schedule` results). */
export const DEFAULT_STATE_TRIGGERS: readonly RunTrigger[] = ['publish', 'schedule'];

export function refreshesDefaultState(trigger: RunTrigger): boolean {
  return DEFAULT_STATE_TRIGGERS.includes(trigger);
}

export interface Run {
  id: string;
  workspaceId: string;
  projectId: string;
  /** The version it ran; null only for a skipped fire time of a project with no published version. */
  versionId: string | null;
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
  scheduleId: string | null;
  jitterMs: number | null;
  timeoutMs: number | null;
  retryOf: string | null;
  retryNumber: number;
  retryAt: Date | null;
  afterRunId: string | null;
  /** The run carries notification rules of its own (sent with its trigger). */
  hasInlineRules: boolean;
}

/** Failures worth another attempt: never a cancel, nor inputs or a setup that cannot change. */
export function isRetryable(status: RunStatus, reason: RunReason | null): boolean {
  if (status === 'timed_out') return true;
  return status === 'failed' && reason !== 'invalid_input';
}

/**
 * How late a run started: from its intended start (the nominal fire time plus the schedule's jitter) to
 * its claim by a worker. Null for runs without a fire time.
 */
export function latenessMs(run: Pick<Run, 'scheduledFor' | 'startedAt' | 'jitterMs'>): number | null {
  if (!run.scheduledFor || !run.startedAt) return null;
  return run.startedAt.getTime() - run.scheduledFor.getTime() - (run.jitterMs ?? 0);
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
