/**
 * Runs: enqueueing, the run log, cancellation, snapshots and the app's default state, plus the
 * queue operations workers use (claim, heartbeat, progress, complete) and housekeeping (reaping dead
 * workers' runs, private-run TTL, retention). Every state change is one guarded UPDATE in the store.
 */

import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { ConflictError, NotFoundError, ValidationError } from '../domain/errors.ts';
import { resolveInputs } from '../domain/notebook/inputs.ts';
import {
  isFinal,
  isRetryable,
  MAX_BULK_RUNS,
  RUN_STATUSES,
  RUN_TRIGGERS,
  type Run,
  type RunCellProgress,
  type RunReason,
  type RunStatus,
  type RunTrigger,
  refreshesDefaultState,
} from '../domain/run.ts';
import type { RunContext } from '../domain/run-context.ts';
import { newRun } from '../domain/run-lifecycle.ts';
import type { CellResult, RunSnapshot } from '../domain/snapshot.ts';
import { transaction } from '../store/database.ts';
import * as ps from '../store/project-store.ts';
import * as rs from '../store/run-store.ts';
import { pruneAudit } from './audit-service.ts';
import { assertCanSeeRun } from './authorize.ts';
import { crashPoint } from './crash-points.ts';
import { assertSeesProject, getProject, hiddenProjectIds } from './project-service.ts';
import { notebookOfVersion } from './version-notebooks.ts';

export { notebookOfVersion };

import { planDeliveries, validateInlineRules } from './notification-service.ts';
import { planRetry } from './schedule-service.ts';
import type { Principal, ServiceContext } from './service-context.ts';

/** How long a private (viewer's own) run is kept. @default 1 hour */
export const PRIVATE_RUN_TTL_MS = 60 * 60 * 1000;
export const MAX_PAGE_SIZE = 200;

export interface EnqueueOptions {
  inputs?: Readonly<Record<string, unknown>> | undefined;
  /** A version id or number; the current version by default. */
  version?: string | undefined;
  trigger: RunTrigger;
  context: RunContext;
  private?: boolean;
  scheduledFor?: Date | null;
  maxAttempts?: number;
  /** Notification rules for this run only (as Hex's RunProject `notifications[]`). */
  notifications?: readonly unknown[] | undefined;
}

export async function enqueueRun(
  ctx: ServiceContext,
  principal: Principal,
  projectIdOrSlug: string,
  options: EnqueueOptions,
): Promise<Run> {
  const { inputs, ...rest } = options;
  return (await queueRuns(ctx, principal, projectIdOrSlug, rest, [inputs], false))[0]!;
}

/**
 * Queues one run per entry of `inputs`, all with the same options, in one statement and with one
 * wake-up (the bulk API: a backfill of a parameter sweep, a fan-out from another system). Every entry
 * is validated before anything is stored, and a bad one names its index (`runs[3].inputs.region`), so
 * either all are queued or none.
 */
export async function enqueueRuns(
  ctx: ServiceContext,
  principal: Principal,
  projectIdOrSlug: string,
  options: Omit<EnqueueOptions, 'inputs'>,
  inputs: readonly (Readonly<Record<string, unknown>> | undefined)[],
): Promise<Run[]> {
  if (inputs.length === 0) throw new ValidationError('runs', 'is empty; send at least one run');
  if (inputs.length > MAX_BULK_RUNS)
    throw new ValidationError(
      'runs',
      `has ${inputs.length} entries; send at most ${MAX_BULK_RUNS} per request and split the rest`,
    );
  return queueRuns(ctx, principal, projectIdOrSlug, options, inputs, true);
}

/** Validates every entry (naming bad ones by index when `indexed`), then inserts them in one go. */
async function queueRuns(
  ctx: ServiceContext,
  principal: Principal,
  projectIdOrSlug: string,
  options: Omit<EnqueueOptions, 'inputs'>,
  inputs: readonly (Readonly<Record<string, unknown>> | undefined)[],
  indexed: boolean,
): Promise<Run[]> {
  const project = await getProject(ctx, principal, projectIdOrSlug);
  const version = options.version
    ? await ps.findVersion(ctx.db, project.id, options.version)
    : await ps.currentVersion(ctx.db, project.id);
  if (!version) {
    if (options.version)
      throw new ValidationError('version', `project '${project.slug}' has no version '${options.version}'`);
    throw new ConflictError(`project '${project.slug}' has no published version yet; publish it first`);
  }
  const notebook = await notebookOfVersion(version.id, version.source);
  const resolved = inputs.map((given, i) => {
    try {
      return resolveInputs(notebook.inputs, given ?? {});
    } catch (error) {
      if (indexed && error instanceof ValidationError)
        throw new ValidationError(`runs[${i}].${error.field}`, error.message.slice(error.field.length + 2));
      throw error;
    }
  });
  const notify = options.notifications?.length
    ? await validateInlineRules(ctx, principal, project.id, options.notifications)
    : null;
  const now = ctx.now();
  const created = await rs.insertRuns(
    ctx.db,
    resolved.map((values) =>
      newRun({
        notify: notify ? JSON.stringify(notify) : null,
        workspaceId: project.workspaceId,
        projectId: project.id,
        versionId: version.id,
        trigger: options.trigger,
        context: options.context,
        private: options.private,
        inputs: values,
        createdBy: principal.userId,
        createdAt: now,
        scheduledFor: options.scheduledFor,
        maxAttempts: options.maxAttempts,
        expiresAt: options.private ? new Date(now.getTime() + PRIVATE_RUN_TTL_MS) : null,
      }),
    ),
  );
  // One wake-up is enough: a worker claims as much as it has room for.
  await ctx.wakeups.notify('run_queued', created.at(-1)!.id);
  return created;
}

export interface RunDetails {
  run: Run;
  cells: RunCellProgress[];
  projectSlug: string;
  versionNumber: number;
}

export async function getRun(ctx: ServiceContext, principal: Principal, runId: string): Promise<RunDetails> {
  const run = await rs.findRun(ctx.db, runId);
  if (!run) throw new NotFoundError('run', runId);
  assertCanSeeRun(principal, run);
  await assertSeesProject(ctx, principal, run.projectId, 'run', runId);
  const [cells, project, version] = await Promise.all([
    rs.listCells(ctx.db, run.id),
    ps.findProjectById(ctx.db, run.projectId),
    run.versionId ? ps.findVersionById(ctx.db, run.versionId) : Promise.resolve(null),
  ]);
  if (!project) throw new NotFoundError('run', runId);
  return { run, cells, projectSlug: project.slug, versionNumber: version?.number ?? 0 };
}

/**
 * Cancels a run: a queued run ends at once; a running run is flagged, and its worker kills the child
 * as soon as it hears (a wake-up, or its next heartbeat at the latest). The run records who cancelled
 * it, and says "Cancelled by <name>" (issue 15, bug 10: it read as a crash of the running cell).
 */
export async function cancelRun(ctx: ServiceContext, principal: Principal, runId: string): Promise<Run> {
  const { run } = await getRun(ctx, principal, runId);
  if (isFinal(run.status))
    throw new ConflictError(
      `run '${runId}' already ended as ${run.status}; only queued or running runs can be cancelled`,
    );
  if (!(await rs.cancelQueuedRun(ctx.db, run.id, ctx.now(), principal.name))) {
    if (await rs.requestRunningCancel(ctx.db, run.id, principal.name))
      await ctx.wakeups.notify('run_cancel', run.id);
  }
  await ctx.wakeups.notify('run_progress', run.id);
  return (await rs.findRun(ctx.db, run.id))!;
}

export interface ListRunsOptions {
  project?: string | undefined;
  schedule?: string | undefined;
  status?: string | undefined;
  trigger?: string | undefined;
  limit?: number | undefined;
  cursor?: string | undefined;
}

export async function listRuns(
  ctx: ServiceContext,
  principal: Principal,
  options: ListRunsOptions,
): Promise<{ runs: Run[]; nextCursor: string | null }> {
  if (options.status !== undefined && !(RUN_STATUSES as readonly string[]).includes(options.status)) {
    throw new ValidationError('status', `must be one of ${RUN_STATUSES.join(', ')}; got '${options.status}'`);
  }
  if (options.trigger !== undefined && !(RUN_TRIGGERS as readonly string[]).includes(options.trigger)) {
    throw new ValidationError(
      'trigger',
      `must be one of ${RUN_TRIGGERS.join(', ')}; got '${options.trigger}'`,
    );
  }
  const limit = options.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
    throw new ValidationError('limit', `must be a whole number from 1 to ${MAX_PAGE_SIZE}`);
  }
  const projectId = options.project ? (await getProject(ctx, principal, options.project)).id : undefined;
  const before = options.cursor ? decodeCursor(options.cursor) : undefined;
  const runs = await rs.listRuns(ctx.db, {
    workspaceId: principal.workspaceId,
    ...(projectId ? { projectId } : {}),
    ...(options.schedule ? { scheduleId: options.schedule } : {}),
    ...(options.status ? { status: options.status as RunStatus } : {}),
    ...(options.trigger ? { trigger: options.trigger as RunTrigger } : {}),
    ...(before ? { before } : {}),
    viewerId: principal.userId,
    hiddenProjectIds: projectId ? [] : await hiddenProjectIds(ctx, principal),
    limit: limit + 1,
  });
  const page = runs.slice(0, limit);
  const last = page[page.length - 1];
  return { runs: page, nextCursor: runs.length > limit && last ? encodeCursor(last) : null };
}

function encodeCursor(run: Run): string {
  return Buffer.from(`${run.createdAt.toISOString()}|${run.id}`).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  const [at, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const createdAt = new Date(at ?? '');
  if (!id || Number.isNaN(createdAt.getTime())) {
    throw new ValidationError(
      'cursor',
      'is not a cursor this API returned; pass nextCursor from the previous page',
    );
  }
  return { createdAt, id };
}

export async function getSnapshot(
  ctx: ServiceContext,
  principal: Principal,
  runId: string,
): Promise<rs.StoredSnapshot> {
  const { run } = await getRun(ctx, principal, runId);
  const snapshot = await rs.findSnapshot(ctx.db, run.id);
  if (!snapshot) {
    if (!isFinal(run.status))
      throw new ConflictError(`run '${runId}' is ${run.status}; its snapshot is stored when it ends`);
    throw new NotFoundError('snapshot of run', runId);
  }
  return snapshot;
}

/** What opening an app gives: its cached default state, or a fresh run (show_last_run off, or none yet). */
export type AppState =
  | { kind: 'snapshot'; runId: string; etag: string; project: ps.Project }
  | { kind: 'run'; run: Run; project: ps.Project }
  | { kind: 'empty'; project: ps.Project; reason: string };

export async function openApp(
  ctx: ServiceContext,
  principal: Principal,
  projectIdOrSlug: string,
): Promise<AppState> {
  const project = await getProject(ctx, principal, projectIdOrSlug);
  const settings = await ps.getAppSettings(ctx.db, project.id);
  if (settings.showLastRun) {
    if (settings.defaultRunId) {
      const etag = await rs.findSnapshotEtag(ctx.db, settings.defaultRunId);
      if (etag) return { kind: 'snapshot', runId: settings.defaultRunId, etag, project };
    }
    const latest = await ps.currentVersion(ctx.db, project.id);
    return {
      kind: 'empty',
      project,
      reason: latest ? 'the publish run has not finished yet' : 'the project has not been published yet',
    };
  }
  if (!(await ps.currentVersion(ctx.db, project.id))) {
    return { kind: 'empty', project, reason: 'the project has not been published yet' };
  }
  const run = await enqueueRun(ctx, principal, project.id, {
    trigger: 'manual',
    context: 'app',
    private: true,
  });
  return { kind: 'run', run, project };
}

/** The stored snapshot of the app's default state, straight from the store (for the cached path). */
export async function defaultStateSnapshot(
  ctx: ServiceContext,
  runId: string,
): Promise<rs.StoredSnapshot | null> {
  return rs.findSnapshot(ctx.db, runId);
}

// ---- queue operations for workers ----

export interface LeaseOptions {
  worker: string;
  leaseMs: number;
}

/** Claims the oldest queued run, if any. */
export async function claimRun(ctx: ServiceContext, options: LeaseOptions): Promise<Run | null> {
  return (await claimRuns(ctx, { ...options, limit: 1 }))[0] ?? null;
}

/** Claims up to `limit` queued runs in one statement. */
export async function claimRuns(
  ctx: ServiceContext,
  options: LeaseOptions & { limit: number },
): Promise<Run[]> {
  const now = ctx.now();
  const claimed = await rs.claimRuns(ctx.db, {
    worker: options.worker,
    now,
    leaseUntil: new Date(now.getTime() + options.leaseMs),
    skipLocked: ctx.capabilities.skipLocked,
    limit: options.limit,
  });
  // Watchers learn of the claims; the claimer does not wait for them.
  for (const run of claimed) void ctx.wakeups.notify('run_progress', run.id);
  return claimed;
}

/**
 * Renews the leases of runs the worker holds, each under its claim's fencing token (`claimEpoch`).
 * Returns the runs still held and, among them, those whose cancel was requested and by whom.
 */
export async function heartbeat(
  ctx: ServiceContext,
  options: LeaseOptions,
  held: readonly { id: string; token: number }[],
) {
  return rs.renewLeases(ctx.db, options.worker, held, new Date(ctx.now().getTime() + options.leaseMs));
}

/** The hold a worker has on a run it claimed: its id and the claim's fencing token. */
export function holdOf(worker: string, run: Pick<Run, 'claimEpoch'>): rs.Hold {
  return { worker, token: run.claimEpoch };
}

export async function recordRunStarted(
  ctx: ServiceContext,
  runId: string,
  cells: readonly { name: string; kind: string }[],
) {
  await rs.insertCellRows(ctx.db, runId, cells);
  await ctx.wakeups.notify('run_progress', runId);
}

export async function recordCellStarted(
  ctx: ServiceContext,
  runId: string,
  index: number,
  hold: rs.Hold | undefined,
  startedAt: Date,
): Promise<void> {
  await rs.updateCell(ctx.db, runId, index, { status: 'running', startedAt }, hold);
  await ctx.wakeups.notify('run_progress', runId);
}

/** A cell's final state; `startedAt` too when its `running` state was never written (a quick cell). */
export async function recordCellFinished(
  ctx: ServiceContext,
  runId: string,
  index: number,
  result: CellResult,
  hold?: rs.Hold,
  startedAt?: Date,
) {
  await rs.updateCell(
    ctx.db,
    runId,
    index,
    {
      status: result.status,
      durationMs: result.durationMs,
      resultJson: JSON.stringify(result),
      ...(startedAt ? { startedAt } : {}),
    },
    hold,
  );
  await ctx.wakeups.notify('run_progress', runId);
}

export interface CachedSqlResult {
  cell: string;
  key: string;
  payload: Buffer;
}

export function encodeSnapshot(snapshot: RunSnapshot): rs.StoredSnapshot {
  const body = JSON.stringify(snapshot);
  const gzip = gzipSync(body, { level: 6 });
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  return { body, gzip, etag };
}

/** One run's ending, as its worker reports it. */
export interface Completion {
  run: Run;
  snapshot: RunSnapshot;
  reason?: RunReason | null;
  sqlResults?: readonly CachedSqlResult[];
}

/**
 * Ends a run the worker holds, in one transaction: the guarded status change, the snapshot, and, for a
 * successful publish or scheduled run, the app's default state and the `cache=schedule` results.
 * Returns false when the worker no longer held the run (it was reaped meanwhile); nothing is written.
 */
export async function completeRun(
  ctx: ServiceContext,
  worker: string,
  run: Run,
  snapshot: RunSnapshot,
  options: { reason?: RunReason | null; sqlResults?: readonly CachedSqlResult[] } = {},
): Promise<boolean> {
  return (await completeRuns(ctx, worker, [{ run, snapshot, ...options }]))[0]!;
}

/**
 * Ends many runs the worker holds in one transaction (a worker's completions gathered while the last
 * batch committed: one commit, one status `UPDATE` and one snapshot `INSERT` for the lot). Each run
 * is still guarded by its own fencing token, and gets what `completeRun` describes. Returns, per
 * completion, whether the worker still held the run.
 */
export async function completeRuns(
  ctx: ServiceContext,
  worker: string,
  completions: readonly Completion[],
): Promise<boolean[]> {
  if (completions.length === 0) return [];
  const now = ctx.now();
  const prepared = completions.map((c) => ({
    ...c,
    reason: c.reason ?? c.snapshot.reason,
    stored: encodeSnapshot(c.snapshot),
  }));
  const changedApps = new Set<string>();
  let deliveries = 0;
  const won = await transaction(ctx.db, async (trx) => {
    const held = await rs.finishHeldRuns(
      trx,
      prepared.map(({ run, snapshot, reason }) => ({
        id: run.id,
        hold: holdOf(worker, run),
        ending: {
          status: snapshot.status,
          reason,
          errorCell:
            snapshot.status === 'succeeded'
              ? null
              : (snapshot.cells.find((c) => c.status === 'failed')?.name ?? null),
          errorMessage: snapshot.message,
          finishedAt: now,
        },
      })),
    );
    const mine = prepared.filter((c) => held.has(c.run.id));
    await rs.insertSnapshots(
      trx,
      mine.map((c) => ({ runId: c.run.id, snapshot: c.stored })),
      now,
    );
    for (const { run, snapshot, reason, sqlResults } of mine) {
      // A run that succeeded recorded every cell as it finished; others may have cells left running.
      if (snapshot.status !== 'succeeded')
        await rs.settleCells(
          trx,
          run.id,
          snapshot.cells.map((cell) => ({
            status: cell.status,
            durationMs: cell.durationMs,
            // The cell the run stopped in keeps why (a timeout, "Cancelled by Ada"), as a finished one does.
            resultJson: cell.status === 'skipped' ? undefined : JSON.stringify(cell),
          })),
        );
      const retryAt =
        run.scheduleId && isRetryable(snapshot.status, reason) ? await planRetry(trx, run, now) : null;
      // The outbox: the run's deliveries commit with its outcome, or not at all.
      deliveries += await planDeliveries(trx, run, snapshot.status, snapshot, now, {
        willRetry: retryAt !== null,
      });
      if (snapshot.status === 'succeeded' && refreshesDefaultState(run.trigger) && !run.private) {
        // One statement: the app's row is locked only from here to the commit.
        if (await ps.adoptDefaultRun(trx, run.projectId, run.id, run.createdAt, now))
          changedApps.add(run.projectId);
        for (const result of sqlResults ?? []) {
          await rs.putSqlCache(trx, {
            projectId: run.projectId,
            key: result.key,
            cell: result.cell,
            runId: run.id,
            payload: result.payload,
            now,
          });
        }
      }
    }
    crashPoint('before_commit');
    return held;
  });
  const notified: Promise<void>[] = [];
  for (const { run } of completions) {
    if (won.has(run.id)) notified.push(ctx.wakeups.notify('run_progress', run.id));
  }
  // A run may have waited behind one of these (overlap buffer_one, a backfill in order).
  const scheduled = completions.find((c) => won.has(c.run.id) && c.run.scheduleId);
  if (scheduled) notified.push(ctx.wakeups.notify('run_queued', scheduled.run.id));
  for (const projectId of changedApps) notified.push(ctx.wakeups.notify('app_state', projectId));
  if (deliveries > 0) notified.push(ctx.wakeups.notify('delivery_queued', completions[0]!.run.id));
  await Promise.all(notified);
  return completions.map((c) => won.has(c.run.id));
}

export async function lookupSqlCache(
  ctx: ServiceContext,
  projectId: string,
  key: string,
): Promise<Buffer | null> {
  return (await rs.getSqlCache(ctx.db, projectId, key))?.payload ?? null;
}

export interface HousekeepingReport {
  requeued: string[];
  lost: string[];
  expiredPrivate: number;
  pruned: number;
  /** Audit events older than the retention (`ALMANAC_AUDIT_RETENTION_DAYS`). */
  auditPruned: number;
}

/**
 * One pass of housekeeping at `now`: expired leases (requeue or `worker_lost`), private runs past
 * their TTL, and retention per project. Pruning never removes the run behind the default state.
 */
export async function housekeeping(ctx: ServiceContext, now: Date = ctx.now()): Promise<HousekeepingReport> {
  let deliveries = 0;
  const reaped = await transaction(ctx.db, async (trx) => {
    const result = await rs.reapExpiredLeases(trx, now);
    // A run failed for a lost worker is a failure like any other: its schedule may retry it, and its
    // notification rules hear about it (in this same transaction, as when a worker finishes a run).
    for (const id of result.lost) {
      const run = await rs.findRun(trx, id);
      if (!run) continue;
      const retryAt = run.scheduleId ? await planRetry(trx, run, now) : null;
      deliveries += await planDeliveries(trx, run, 'failed', null, now, { willRetry: retryAt !== null });
    }
    return result;
  });
  if (deliveries > 0) await ctx.wakeups.notify('delivery_queued', 'housekeeping');
  const expiredPrivate = await rs.deleteExpiredPrivateRuns(ctx.db, now);
  let pruned = 0;
  for (const rule of await ps.listRetentionRules(ctx.db)) {
    pruned += await transaction(ctx.db, async (trx) => {
      const settings = await ps.getAppSettings(trx, rule.projectId);
      return rs.pruneRuns(trx, rule.projectId, {
        keepRuns: settings.keepRuns,
        olderThan: settings.keepDays ? new Date(now.getTime() - settings.keepDays * 86_400_000) : null,
        protect: settings.defaultRunId,
      });
    });
  }
  const auditPruned = await pruneAudit(ctx.db, now, ctx.auditRetentionDays);
  for (const id of reaped.requeued) await ctx.wakeups.notify('run_queued', id);
  for (const id of [...reaped.requeued, ...reaped.lost]) await ctx.wakeups.notify('run_progress', id);
  return { ...reaped, expiredPrivate, pruned, auditPruned };
}

export async function releaseRun(ctx: ServiceContext, worker: string, run: Run): Promise<void> {
  if (await rs.releaseHeldRun(ctx.db, run.id, holdOf(worker, run)))
    await ctx.wakeups.notify('run_queued', run.id);
}

const loadedVersions = new Map<string, ps.Version>();

/** A version by id. Versions are immutable, so each is read from the store once per process. */
export async function loadVersion(ctx: ServiceContext, versionId: string): Promise<ps.Version> {
  const cached = loadedVersions.get(versionId);
  if (cached) return cached;
  const version = await ps.findVersionById(ctx.db, versionId);
  if (!version) throw new NotFoundError('version', versionId);
  loadedVersions.set(versionId, version);
  if (loadedVersions.size > 500) loadedVersions.delete(loadedVersions.keys().next().value!);
  return version;
}

export async function loadVersionFiles(ctx: ServiceContext, versionId: string): Promise<Map<string, Buffer>> {
  return ps.listVersionFiles(ctx.db, versionId);
}
