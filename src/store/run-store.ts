/**
 * Queries on the run table, which is both the queue and the run log (ARCHITECTURE.md, decision 3),
 * and on its per-cell progress, snapshots and cached SQL results. No business rules here: services
 * decide when to call what, inside their transactions.
 */
import { type Selectable, sql } from 'kysely';
import {
  FINAL_STATUSES,
  type Run,
  type RunCellProgress,
  type RunReason,
  type RunStatus,
  type RunTrigger,
} from '../domain/run.ts';
import type { InputValue, RunContext } from '../domain/run-context.ts';
import { assertInitial, assertTransition, type NewRun } from '../domain/run-lifecycle.ts';
import type { Db } from './database.ts';
import type { RunCellsTable, RunsTable } from './schema.ts';
import { iso, toBuffer, toDate } from './schema.ts';

export function toRun(row: Selectable<RunsTable>): Run {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    projectId: row.project_id,
    versionId: row.version_id,
    trigger: row.trigger as RunTrigger,
    context: row.context as RunContext,
    status: row.status as RunStatus,
    private: Number(row.private) === 1,
    inputs: JSON.parse(row.inputs) as Record<string, InputValue>,
    createdBy: row.created_by,
    createdAt: toDate(row.created_at),
    scheduledFor: toDate(row.scheduled_for),
    startedAt: toDate(row.started_at),
    finishedAt: toDate(row.finished_at),
    attempts: Number(row.attempts),
    maxAttempts: Number(row.max_attempts),
    claimEpoch: Number(row.claim_epoch ?? 0),
    worker: row.worker,
    leaseExpiresAt: toDate(row.lease_expires_at),
    cancelRequested: Number(row.cancel_requested) === 1,
    cancelledBy: row.cancelled_by ?? null,
    reason: row.reason as RunReason | null,
    errorCell: row.error_cell,
    errorMessage: row.error_message,
    expiresAt: toDate(row.expires_at),
    scheduleId: row.schedule_id,
    jitterMs: row.jitter_ms === null ? null : Number(row.jitter_ms),
    timeoutMs: row.timeout_ms === null ? null : Number(row.timeout_ms),
    retryOf: row.retry_of,
    retryNumber: Number(row.retry_number ?? 0),
    retryAt: toDate(row.retry_at),
    afterRunId: row.after_run_id,
    hasInlineRules: row.notify !== null,
  };
}

/** A run to insert; built by `newRun()` (domain/run-lifecycle.ts). */
export type { NewRun };

export async function insertRun(db: Db, run: NewRun): Promise<Run> {
  const row = await db.insertInto('runs').values(runRow(run)).returningAll().executeTakeFirstOrThrow();
  return toRun(row);
}

/** Inserts many runs in few statements (a bulk enqueue). Returns them in input order. */
export async function insertRuns(db: Db, runs: readonly NewRun[]): Promise<Run[]> {
  const out: Run[] = [];
  // 500 rows × ~25 columns stays under SQLite's 32,766 bound parameters.
  for (let i = 0; i < runs.length; i += 500) {
    const chunk = runs.slice(i, i + 500);
    const rows = await db.insertInto('runs').values(chunk.map(runRow)).returningAll().execute();
    const byId = new Map(rows.map((r) => [r.id, toRun(r)]));
    for (const run of chunk) out.push(byId.get(run.id)!);
  }
  return out;
}

/**
 * Inserts many fire-time runs in few statements, skipping those whose (schedule, fire time) exists.
 * Returns the rows inserted, in input order.
 */
export async function insertFireRuns(db: Db, runs: readonly NewRun[]): Promise<Run[]> {
  const out: Run[] = [];
  // 500 rows × ~25 columns stays under SQLite's 32,766 bound parameters.
  for (let i = 0; i < runs.length; i += 500) {
    const chunk = runs.slice(i, i + 500);
    const rows = await db
      .insertInto('runs')
      .values(chunk.map(runRow))
      .onConflict((oc) => oc.doNothing())
      .returningAll()
      .execute();
    const byId = new Map(rows.map((r) => [r.id, toRun(r)]));
    for (const run of chunk) {
      const inserted = byId.get(run.id);
      if (inserted) out.push(inserted);
    }
  }
  return out;
}

/** The row for a new run. */
function runRow(run: NewRun) {
  return {
    id: run.id,
    workspace_id: run.workspaceId,
    project_id: run.projectId,
    version_id: run.versionId,
    trigger: run.trigger,
    context: run.context,
    // A run starts queued, or as a skipped fire time (the lifecycle's initial states).
    status: assertInitial(run.status ?? 'queued'),
    private: run.private ? 1 : 0,
    inputs: JSON.stringify(run.inputs),
    created_by: run.createdBy,
    created_at: iso(run.createdAt),
    scheduled_for: run.scheduledFor ? iso(run.scheduledFor) : null,
    max_attempts: run.maxAttempts,
    expires_at: run.expiresAt ? iso(run.expiresAt) : null,
    schedule_id: run.scheduleId ?? null,
    jitter_ms: run.jitterMs ?? null,
    timeout_ms: run.timeoutMs ?? null,
    retry_of: run.retryOf ?? null,
    retry_number: run.retryNumber ?? 0,
    after_run_id: run.afterRunId ?? null,
    notify: run.notify ?? null,
    reason: run.reason ?? null,
    error_message: run.errorMessage ?? null,
    finished_at: run.status === 'skipped' ? iso(run.createdAt) : null,
  };
}

/**
 * Inserts a schedule's run for a fire time unless one exists (another scheduler got there first, or a
 * backfill already covered it). Returns null when it existed.
 */
export async function insertFireRun(db: Db, run: NewRun): Promise<Run | null> {
  const row = await db
    .insertInto('runs')
    .values(runRow(run))
    // The unique key on (schedule, fire time) decides; on PostgreSQL a violation would abort the
    // transaction, so the loser inserts nothing instead of failing.
    .onConflict((oc) => oc.doNothing())
    .returningAll()
    .executeTakeFirst();
  return row ? toRun(row) : null;
}

export async function findRun(db: Db, id: string): Promise<Run | null> {
  const row = await db.selectFrom('runs').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toRun(row) : null;
}

export interface ClaimOptions {
  worker: string;
  now: Date;
  leaseUntil: Date;
  /** PostgreSQL: lock the candidate row with `FOR UPDATE SKIP LOCKED` so racing workers pass it by. */
  skipLocked: boolean;
  /** How many runs to claim at most. @default 1 */
  limit?: number;
}

/**
 * Claims the oldest queued run with one guarded `UPDATE … RETURNING`. On PostgreSQL the candidate is
 * selected `FOR UPDATE SKIP LOCKED`; on SQLite, writers are serialized, and `status = 'queued'` in the
 * outer WHERE guards the transition either way.
 */
export async function claimNextRun(db: Db, options: ClaimOptions): Promise<Run | null> {
  return (await claimRuns(db, { ...options, limit: 1 }))[0] ?? null;
}

/** Claims up to `limit` of the oldest queued runs in one statement, oldest first. */
export async function claimRuns(db: Db, options: ClaimOptions): Promise<Run[]> {
  // The candidates are picked (and, on PostgreSQL, locked with SKIP LOCKED) in a CTE, then updated by
  // join: `WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)` can be re-planned as a join that
  // claims fewer rows than are free under contention (seen in test/queue.test.ts).
  const rows = await db
    .with('picked', (qb) => {
      let candidate = qb
        .selectFrom('runs')
        .select('id')
        .where('status', '=', 'queued')
        .where((eb) =>
          eb.or([
            eb('after_run_id', 'is', null),
            eb.not(
              eb.exists(
                eb
                  .selectFrom('runs as previous')
                  .select('previous.id')
                  .whereRef('previous.id', '=', 'runs.after_run_id')
                  .where('previous.status', 'in', ['queued', 'running']),
              ),
            ),
          ]),
        )
        .orderBy('created_at')
        .orderBy('id')
        .limit(options.limit ?? 1);
      if (options.skipLocked) candidate = candidate.forUpdate().skipLocked();
      return candidate;
    })
    .updateTable('runs')
    .from('picked')
    .set((eb) => ({
      status: 'running',
      worker: options.worker,
      started_at: iso(options.now),
      lease_expires_at: iso(options.leaseUntil),
      attempts: eb('runs.attempts', '+', 1),
      claim_epoch: eb('runs.claim_epoch', '+', 1),
    }))
    .whereRef('runs.id', '=', 'picked.id')
    .where('runs.status', '=', assertTransition('queued', 'running', 'claim'))
    .returningAll()
    .execute();
  return rows
    .map(toRun)
    .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : 1));
}

/**
 * A worker's hold on a run: its id and the fencing token of its claim (the run's `claim_epoch` after
 * the claim; every claim increments it and nothing decrements it). Every write a holder makes is
 * guarded by both, so a worker that lost its lease, even one that later claims the same run again under the
 * same id, cannot write over the newer claim's state.
 */
export interface Hold {
  worker: string;
  token: number;
}

/**
 * Renews the lease of the runs a worker holds. Returns the ids it still holds and, among them, those
 * whose cancellation was requested; a run missing from `held` was taken away (reaped or finished).
 */
export async function renewLeases(
  db: Db,
  worker: string,
  runs: readonly { id: string; token: number }[],
  leaseUntil: Date,
): Promise<{ held: string[]; cancelRequested: { id: string; by: string | null }[] }> {
  if (runs.length === 0) return { held: [], cancelRequested: [] };
  const rows = await db
    .updateTable('runs')
    .set({ lease_expires_at: iso(leaseUntil) })
    .where(
      'id',
      'in',
      runs.map((r) => r.id),
    )
    .where('worker', '=', worker)
    .where('status', '=', 'running')
    .returning(['id', 'cancel_requested', 'cancelled_by', 'claim_epoch'])
    .execute();
  // A row renewed under another token (this worker claimed the run again) is not held by this claim;
  // its lease is the newer claim's, and renewing it is harmless.
  const token = new Map(runs.map((r) => [r.id, r.token]));
  const mine = rows.filter((r) => Number(r.claim_epoch) === token.get(r.id));
  return {
    held: mine.map((r) => r.id),
    cancelRequested: mine
      .filter((r) => Number(r.cancel_requested) === 1)
      .map((r) => ({ id: r.id, by: r.cancelled_by ?? null })),
  };
}

export interface RunEnding {
  status: Exclude<RunStatus, 'queued' | 'running'>;
  reason: RunReason | null;
  errorCell: string | null;
  errorMessage: string | null;
  finishedAt: Date;
}

/** Ends a running run under `hold`. False when the hold is gone (the transition lost). */
export async function finishHeldRun(db: Db, id: string, hold: Hold, ending: RunEnding): Promise<boolean> {
  return (await finishHeldRuns(db, [{ id, hold, ending }])).has(id);
}

/**
 * Ends many running runs, each under its own hold, in as few statements as there are distinct endings
 * (a batch of successes is one `UPDATE`). Returns the ids whose hold was still good; the others lost
 * their transition and nothing was written for them.
 */
export async function finishHeldRuns(
  db: Db,
  endings: readonly { id: string; hold: Hold; ending: RunEnding }[],
): Promise<Set<string>> {
  const groups = new Map<
    string,
    { ending: RunEnding; worker: string; runs: { id: string; token: number }[] }
  >();
  for (const { id, hold, ending } of endings) {
    assertTransition('running', ending.status, 'finish');
    const key = JSON.stringify([
      hold.worker,
      ending.status,
      ending.reason,
      ending.errorCell,
      ending.errorMessage,
      ending.finishedAt.getTime(),
    ]);
    let group = groups.get(key);
    if (!group) {
      group = { ending, worker: hold.worker, runs: [] };
      groups.set(key, group);
    }
    group.runs.push({ id, token: hold.token });
  }
  const won = new Set<string>();
  for (const { ending, worker, runs } of groups.values()) {
    for (let i = 0; i < runs.length; i += 400) {
      const chunk = runs.slice(i, i + 400);
      const rows = await db
        .updateTable('runs')
        .set({
          status: ending.status,
          reason: ending.reason,
          error_cell: ending.errorCell,
          error_message: ending.errorMessage,
          finished_at: iso(ending.finishedAt),
          lease_expires_at: null,
        })
        // Each row under its own fencing token: (id, claim_epoch) in a VALUES list (row values work on
        // both stores; the cast types the token for PostgreSQL).
        .where(
          sql<boolean>`(id, claim_epoch) in (values ${sql.join(chunk.map((r) => sql`(${r.id}, cast(${r.token} as integer))`))})`,
        )
        .where('status', '=', assertTransition('running', ending.status, 'finish'))
        .where('worker', '=', worker)
        .returning('id')
        .execute();
      for (const row of rows) won.add(row.id);
    }
  }
  return won;
}

/**
 * Cancels a queued run outright, recording who cancelled it (`by`: a user's name, or a schedule's
 * policy). False when it was no longer queued.
 */
export async function cancelQueuedRun(db: Db, id: string, now: Date, by: string): Promise<boolean> {
  const result = await db
    .updateTable('runs')
    .set({
      status: 'cancelled',
      reason: 'cancelled',
      cancelled_by: by,
      error_message: `Cancelled by ${by} before it started`,
      finished_at: iso(now),
    })
    .where('id', '=', id)
    .where('status', '=', assertTransition('queued', 'cancelled', 'cancel_queued'))
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/**
 * Flags a running run for cancellation, recording who asked (`by`); its worker sees the flag at its
 * next heartbeat or wake-up and finishes the run as `cancelled` (a status change the worker makes).
 */
export async function requestRunningCancel(db: Db, id: string, by: string): Promise<boolean> {
  const result = await db
    .updateTable('runs')
    // The first to ask is the one the run names; a second cancel changes nothing.
    .set({ cancel_requested: 1, cancelled_by: sql<string>`coalesce(cancelled_by, ${by})` })
    .where('id', '=', id)
    .where('status', '=', 'running')
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/**
 * Runs whose lease expired before `now`: back to `queued` while attempts remain, else `failed` with
 * reason `worker_lost`. Returns the ids of each.
 */
export async function reapExpiredLeases(db: Db, now: Date): Promise<{ requeued: string[]; lost: string[] }> {
  const requeued = await db
    .updateTable('runs')
    .set({ status: 'queued', worker: null, lease_expires_at: null, started_at: null })
    .where('status', '=', assertTransition('running', 'queued', 'requeue'))
    .where('lease_expires_at', '<', iso(now))
    .where((eb) => eb('attempts', '<', eb.ref('max_attempts')))
    .where('cancel_requested', '=', 0)
    .returning('id')
    .execute();
  const lost = await db
    .updateTable('runs')
    .set({
      status: 'failed',
      reason: 'worker_lost',
      error_message: 'the worker running this run stopped responding and no attempts remain',
      finished_at: iso(now),
      lease_expires_at: null,
    })
    .where('status', '=', assertTransition('running', 'failed', 'worker_lost'))
    .where('lease_expires_at', '<', iso(now))
    // Its own guard, not "whatever the requeue left": on PostgreSQL each statement reads afresh, so a
    // run claimed between the two (with a lease already behind `now`) would otherwise fail on its
    // first attempt.
    .where((eb) => eb.or([eb('attempts', '>=', eb.ref('max_attempts')), eb('cancel_requested', '=', 1)]))
    .returning('id')
    .execute();
  if (requeued.length > 0) {
    await db
      .deleteFrom('run_cells')
      .where(
        'run_id',
        'in',
        requeued.map((r) => r.id),
      )
      .execute();
  }
  return { requeued: requeued.map((r) => r.id), lost: lost.map((r) => r.id) };
}

export interface RunFilter {
  workspaceId: string;
  projectId?: string;
  scheduleId?: string;
  status?: RunStatus;
  trigger?: RunTrigger;
  /** Private runs are listed only for their creator. */
  viewerId: string | null;
  /** Runs of these projects are left out (restricted projects the viewer may not see). */
  hiddenProjectIds?: readonly string[];
  limit: number;
  /** Keyset cursor: the (created_at, id) of the last run of the previous page. */
  before?: { createdAt: Date; id: string };
}

/** Newest first. */
export async function listRuns(db: Db, filter: RunFilter): Promise<Run[]> {
  let query = db.selectFrom('runs').selectAll().where('workspace_id', '=', filter.workspaceId);
  if (filter.projectId) query = query.where('project_id', '=', filter.projectId);
  if (filter.hiddenProjectIds?.length) query = query.where('project_id', 'not in', filter.hiddenProjectIds);
  if (filter.scheduleId) query = query.where('schedule_id', '=', filter.scheduleId);
  if (filter.status) query = query.where('status', '=', filter.status);
  if (filter.trigger) query = query.where('trigger', '=', filter.trigger);
  query = query.where((eb) =>
    filter.viewerId
      ? eb.or([eb('private', '=', 0), eb('created_by', '=', filter.viewerId)])
      : eb('private', '=', 0),
  );
  if (filter.before) {
    const at = iso(filter.before.createdAt);
    const id = filter.before.id;
    query = query.where((eb) =>
      eb.or([eb('created_at', '<', at), eb.and([eb('created_at', '=', at), eb('id', '<', id)])]),
    );
  }
  const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(filter.limit).execute();
  return rows.map(toRun);
}

// ---- per-cell progress ----

export async function insertCellRows(
  db: Db,
  runId: string,
  cells: readonly { name: string; kind: string }[],
): Promise<void> {
  if (cells.length === 0) return;
  // One statement: rows left by an earlier attempt of the run (same version, so the same cells) are
  // reset rather than deleted and inserted again.
  await db
    .insertInto('run_cells')
    .values(
      cells.map((c, idx) => ({
        run_id: runId,
        idx,
        name: c.name,
        kind: c.kind,
        status: 'queued',
        started_at: null,
        duration_ms: null,
        result: null,
      })),
    )
    .onConflict((oc) =>
      oc.columns(['run_id', 'idx']).doUpdateSet((eb) => ({
        name: eb.ref('excluded.name'),
        kind: eb.ref('excluded.kind'),
        status: 'queued',
        started_at: null,
        duration_ms: null,
        result: null,
      })),
    )
    .execute();
}

/** Records a cell's progress: `running` with its start, or its final status, duration and result. */
export async function updateCell(
  db: Db,
  runId: string,
  index: number,
  patch: { status: string; startedAt?: Date; durationMs?: number; resultJson?: string },
  hold?: Hold,
): Promise<void> {
  let update = db
    .updateTable('run_cells')
    .set({
      status: patch.status,
      ...(patch.startedAt ? { started_at: iso(patch.startedAt) } : {}),
      ...(patch.durationMs !== undefined ? { duration_ms: Math.round(patch.durationMs) } : {}),
      ...(patch.resultJson !== undefined ? { result: patch.resultJson } : {}),
    })
    .where('run_id', '=', runId)
    .where('idx', '=', index);
  if (hold) {
    // Only the current holder's progress is recorded.
    update = update.where((eb) =>
      eb.exists(
        eb
          .selectFrom('runs')
          .select('runs.id')
          .where('runs.id', '=', runId)
          .where('runs.status', '=', 'running')
          .where('runs.worker', '=', hold.worker)
          .where('runs.claim_epoch', '=', hold.token),
      ),
    );
  }
  await update.execute();
}

/** Brings cells still queued or running to their final state (a run that was stopped or crashed). */
export async function settleCells(
  db: Db,
  runId: string,
  cells: readonly { status: string; durationMs: number; resultJson?: string | undefined }[],
): Promise<void> {
  const open = await db
    .selectFrom('run_cells')
    .select('idx')
    .where('run_id', '=', runId)
    .where('status', 'in', ['queued', 'running'])
    .execute();
  for (const { idx } of open) {
    const cell = cells[Number(idx)];
    if (!cell) continue;
    await db
      .updateTable('run_cells')
      .set({
        status: cell.status,
        duration_ms: Math.round(cell.durationMs),
        ...(cell.resultJson !== undefined ? { result: cell.resultJson } : {}),
      })
      .where('run_id', '=', runId)
      .where('idx', '=', idx)
      .execute();
  }
}

export async function listCells(db: Db, runId: string): Promise<RunCellProgress[]> {
  const rows = await db
    .selectFrom('run_cells')
    .selectAll()
    .where('run_id', '=', runId)
    .orderBy('idx')
    .execute();
  return rows.map(toCell);
}

function toCell(row: Selectable<RunCellsTable>): RunCellProgress {
  return {
    index: Number(row.idx),
    name: row.name,
    kind: row.kind,
    status: row.status as RunCellProgress['status'],
    startedAt: toDate(row.started_at),
    durationMs: row.duration_ms === null ? null : Number(row.duration_ms),
  };
}

// ---- snapshots ----

export interface StoredSnapshot {
  body: string;
  gzip: Buffer;
  etag: string;
}

export async function insertSnapshot(
  db: Db,
  runId: string,
  snapshot: StoredSnapshot,
  now: Date,
): Promise<void> {
  await insertSnapshots(db, [{ runId, snapshot }], now);
}

/** Stores many runs' snapshots in one statement (replacing any already stored for a run). */
export async function insertSnapshots(
  db: Db,
  snapshots: readonly { runId: string; snapshot: StoredSnapshot }[],
  now: Date,
): Promise<void> {
  for (let i = 0; i < snapshots.length; i += 500) {
    await db
      .insertInto('snapshots')
      .values(
        snapshots.slice(i, i + 500).map(({ runId, snapshot }) => ({
          run_id: runId,
          body: snapshot.body,
          gzip: snapshot.gzip,
          etag: snapshot.etag,
          created_at: iso(now),
        })),
      )
      .onConflict((oc) =>
        oc.column('run_id').doUpdateSet((eb) => ({
          body: eb.ref('excluded.body'),
          gzip: eb.ref('excluded.gzip'),
          etag: eb.ref('excluded.etag'),
        })),
      )
      .execute();
  }
}

export async function findSnapshot(db: Db, runId: string): Promise<StoredSnapshot | null> {
  const row = await db
    .selectFrom('snapshots')
    .select(['body', 'gzip', 'etag'])
    .where('run_id', '=', runId)
    .executeTakeFirst();
  return row ? { body: row.body, gzip: toBuffer(row.gzip), etag: row.etag } : null;
}

export async function findSnapshotEtag(db: Db, runId: string): Promise<string | null> {
  const row = await db.selectFrom('snapshots').select('etag').where('run_id', '=', runId).executeTakeFirst();
  return row?.etag ?? null;
}

// ---- cached SQL results (cache=schedule) ----

export async function putSqlCache(
  db: Db,
  entry: { projectId: string; key: string; cell: string; runId: string; payload: Buffer; now: Date },
): Promise<void> {
  await db
    .insertInto('sql_cache')
    .values({
      project_id: entry.projectId,
      key: entry.key,
      cell: entry.cell,
      run_id: entry.runId,
      payload: entry.payload,
      created_at: iso(entry.now),
    })
    .onConflict((oc) =>
      oc.columns(['project_id', 'key']).doUpdateSet({
        cell: entry.cell,
        run_id: entry.runId,
        payload: entry.payload,
        created_at: iso(entry.now),
      }),
    )
    .execute();
}

export async function getSqlCache(
  db: Db,
  projectId: string,
  key: string,
): Promise<{ runId: string; payload: Buffer } | null> {
  const row = await db
    .selectFrom('sql_cache')
    .select(['run_id', 'payload'])
    .where('project_id', '=', projectId)
    .where('key', '=', key)
    .executeTakeFirst();
  return row ? { runId: row.run_id, payload: toBuffer(row.payload) } : null;
}

// ---- retention ----

/**
 * Deletes a project's finished, non-private runs beyond the newest `keepRuns` and/or older than
 * `olderThan`, never the run in `protect` (the app's default state). Returns how many were deleted.
 */
export async function pruneRuns(
  db: Db,
  projectId: string,
  options: { keepRuns: number | null; olderThan: Date | null; protect: string | null },
): Promise<number> {
  const finished = db
    .selectFrom('runs')
    .select('id')
    .where('project_id', '=', projectId)
    .where('private', '=', 0)
    .where('status', 'in', FINAL_STATUSES);
  const doomed = new Set<string>();
  if (options.keepRuns !== null) {
    const beyond = await finished
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .offset(options.keepRuns)
      .limit(10_000)
      .execute();
    for (const r of beyond) doomed.add(r.id);
  }
  if (options.olderThan !== null) {
    const old = await finished.where('created_at', '<', iso(options.olderThan)).execute();
    for (const r of old) doomed.add(r.id);
  }
  if (options.protect) doomed.delete(options.protect);
  const ids = [...doomed];
  for (let i = 0; i < ids.length; i += 500) {
    await db
      .deleteFrom('runs')
      .where('id', 'in', ids.slice(i, i + 500))
      .execute();
  }
  return ids.length;
}

/** Deletes private runs whose TTL passed. */
export async function deleteExpiredPrivateRuns(db: Db, now: Date): Promise<number> {
  const result = await db
    .deleteFrom('runs')
    .where('private', '=', 1)
    .where('expires_at', '<', iso(now))
    .where('status', 'not in', ['queued', 'running'])
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** The database's own clock, for comparisons shared by several machines. */
export async function databaseNow(db: Db, dialect: 'sqlite' | 'postgres'): Promise<Date> {
  const query =
    dialect === 'postgres'
      ? sql<{ now: Date }>`select now() as now`
      : sql<{ now: string }>`select strftime('%Y-%m-%dT%H:%M:%fZ', 'now') as now`;
  const { rows } = await query.execute(db);
  return toDate(rows[0]!.now);
}

/**
 * Hands a held run back to the queue (graceful shutdown, or the store unreachable before any cell
 * ran). The attempt does not count: `attempts` goes back by the one its claim added, while
 * `claim_epoch` (the fencing token) keeps the claim's value, so the next claim's token is newer still.
 */
export async function releaseHeldRun(db: Db, id: string, hold: Hold): Promise<boolean> {
  const result = await db
    .updateTable('runs')
    .set((eb) => ({
      status: 'queued',
      worker: null,
      lease_expires_at: null,
      started_at: null,
      attempts: eb('attempts', '-', 1),
    }))
    .where('id', '=', id)
    .where('status', '=', assertTransition('running', 'queued', 'release'))
    .where('worker', '=', hold.worker)
    .where('claim_epoch', '=', hold.token)
    .where('cancel_requested', '=', 0)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/** How many rows of `table` are in each status (metrics: runs, private ones too, and deliveries). */
export async function countByStatus(db: Db, table: 'runs' | 'deliveries'): Promise<Map<string, number>> {
  const rows = await db
    .selectFrom(table)
    .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
    .groupBy('status')
    .execute();
  return new Map(rows.map((r) => [r.status, Number(r.n)]));
}
