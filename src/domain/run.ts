/**
 * A run (glossary "Run"): one execution of one version. The run table is both the queue and the run
 * log (ARCHITECTURE.md, decision 3). States, as in docs/run-lifecycle.md:
 *
 *   queued ──claim──▶ running ──▶ succeeded | failed | timed_out | cancelled
 *     ▲                  │
 *     └──lease expired───┘  (attempts remain; else failed with reason worker_lost)
 *   queued ──cancel──▶ cancelled
 *
 * `skipped` records a fire time that a schedule's policy dropped (issue 4). The allowed transitions are
 * one table (`RUN_TRANSITIONS` in run-lifecycle.ts); every transition is one guarded UPDATE
 * (`WHERE status = <expected>`, the guard taken from that table), so two nodes can never both win.
 */
import { z } from 'zod';
import { RUN_CONTEXTS, type RunFailureReason } from './run-context.ts';

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

/** Why a run's process ended without succeeding (the executor's reasons; `RunFailureReason`). */
export const RUN_FAILURE_REASONS = [
  'cell_error',
  'timeout',
  'memory_limit',
  'cpu_limit',
  'output_limit',
  'cancelled',
  'crashed',
  'invalid_input',
  'protocol_violation',
] as const satisfies readonly RunFailureReason[];

/**
 * Why a run ended without succeeding: the executor's reasons, the queue's own (`worker_lost`), and
 * why a schedule's fire time was `skipped`: the previous run was still going (`overlap`), it was
 * missed while no scheduler ran (`missed`), folded into a later catch-up run (`coalesced`), or the
 * project had no published version (`no_version`).
 */
export const RUN_REASONS = [
  ...RUN_FAILURE_REASONS,
  'worker_lost',
  'overlap',
  'missed',
  'coalesced',
  'no_version',
] as const;
export type RunReason = (typeof RUN_REASONS)[number];

// Compile-time check that RUN_FAILURE_REASONS lists every RunFailureReason (it names none twice above).
const everyFailureReason: Exclude<RunFailureReason, (typeof RUN_FAILURE_REASONS)[number]> extends never
  ? true
  : never = true;
void everyFailureReason;

/** Runs of these triggers refresh the app's default state (and the `cache=schedule` results). */
export const DEFAULT_STATE_TRIGGERS: readonly RunTrigger[] = ['publish', 'schedule'];

export function refreshesDefaultState(trigger: RunTrigger): boolean {
  return DEFAULT_STATE_TRIGGERS.includes(trigger);
}

/** The default number of attempts a run gets (a claim whose worker is lost counts as one). */
export const DEFAULT_MAX_ATTEMPTS = 3;

export const runStatusSchema = z.enum(RUN_STATUSES);
export const runTriggerSchema = z.enum(RUN_TRIGGERS);
export const runContextSchema = z.enum(RUN_CONTEXTS);
export const runReasonSchema = z.enum(RUN_REASONS);
/** An input value as a run records it (after defaults and validation). */
export const inputValueSchema = z.union([z.string(), z.number(), z.boolean(), z.null()]);

/**
 * A run as the domain sees it (dates as `Date`). HTTP bodies derive their JSON shape from it.
 */
export const runSchema = z.object({
  id: z.string(),
  workspaceId: z.string(),
  projectId: z.string(),
  versionId: z
    .string()
    .nullable()
    .describe('The version it ran; null only for a skipped fire time of a project with no published version'),
  trigger: runTriggerSchema,
  context: runContextSchema,
  status: runStatusSchema,
  private: z
    .boolean()
    .describe(
      "A viewer's own re-run: never the default state, visible only to its creator, deleted after a TTL",
    ),
  inputs: z.record(z.string(), inputValueSchema),
  createdBy: z.string().nullable(),
  createdAt: z.date(),
  scheduledFor: z.date().nullable().describe('The nominal fire time of a scheduled run'),
  startedAt: z.date().nullable(),
  finishedAt: z.date().nullable(),
  attempts: z.number().int().describe('Attempts so far; a graceful release gives its attempt back'),
  maxAttempts: z.number().int(),
  /** The fencing token: every claim increments it and nothing decrements it. */
  claimEpoch: z.number().int().describe('Incremented by every claim; never goes back (the fencing token)'),
  worker: z.string().nullable(),
  leaseExpiresAt: z.date().nullable(),
  cancelRequested: z.boolean(),
  /** Who cancelled the run, as a person reads it: a user's name, or "schedule 'x' (overlap policy)". */
  cancelledBy: z.string().nullable().describe("Who cancelled the run: a user's name, or a schedule's policy"),
  reason: runReasonSchema.nullable(),
  /** The failing cell, when a cell failed. */
  errorCell: z.string().nullable(),
  errorMessage: z.string().nullable(),
  expiresAt: z.date().nullable(),
  scheduleId: z.string().nullable(),
  jitterMs: z.number().int().nullable(),
  timeoutMs: z.number().int().nullable(),
  retryOf: z.string().nullable(),
  retryNumber: z.number().int(),
  retryAt: z.date().nullable(),
  afterRunId: z.string().nullable(),
  /** The run carries notification rules of its own (sent with its trigger). */
  hasInlineRules: z.boolean(),
});
export type Run = z.infer<typeof runSchema>;

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

/** A cell's state in a run's progress. */
export const RUN_CELL_STATUSES = [
  'queued',
  'running',
  'succeeded',
  'failed',
  'cancelled',
  'skipped',
] as const;
export type RunCellStatus = (typeof RUN_CELL_STATUSES)[number];
export const runCellStatusSchema = z.enum(RUN_CELL_STATUSES);

/** Per-cell progress, stored as it happens. */
export const runCellProgressSchema = z.object({
  index: z.number().int(),
  name: z.string(),
  kind: z.string(),
  status: runCellStatusSchema,
  startedAt: z.date().nullable(),
  durationMs: z.number().nullable(),
});
export type RunCellProgress = z.infer<typeof runCellProgressSchema>;
