/**
 * Queries on schedules. The scheduler takes due schedules with `FOR UPDATE SKIP LOCKED` on PostgreSQL,
 * so several schedulers share the work; advancing `next_fire_at` is guarded by its old value.
 */
import { type Selectable, type SelectQueryBuilder, sql } from 'kysely';
import type { Run } from '../domain/run.ts';
import type { InputValue } from '../domain/run-context.ts';
import type { Cadence, Schedule, SchedulePolicies } from '../domain/schedule/schedule.ts';
import type { Db } from './database.ts';
import { toRun } from './run-store.ts';
import type { SchedulesTable, Schema } from './schema.ts';
import { iso, toDate } from './schema.ts';

// The glossary's Schedule is defined once, in domain/; re-exported here for the store's importers.
export type { Schedule } from '../domain/schedule/schedule.ts';

export function toSchedule(row: Selectable<SchedulesTable>): Schedule {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    projectId: row.project_id,
    name: row.name,
    cadence: JSON.parse(row.cadence) as Cadence,
    timezone: row.timezone,
    inputs: JSON.parse(row.inputs) as Record<string, InputValue>,
    policies: JSON.parse(row.policies) as SchedulePolicies,
    enabled: Number(row.enabled) === 1,
    pausedUntil: toDate(row.paused_until),
    pauseNote: row.pause_note,
    nextFireAt: toDate(row.next_fire_at),
    nextDueAt: toDate(row.next_due_at),
    createdBy: row.created_by,
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
  };
}

function toRow(s: Schedule) {
  return {
    id: s.id,
    workspace_id: s.workspaceId,
    project_id: s.projectId,
    name: s.name,
    cadence: JSON.stringify(s.cadence),
    timezone: s.timezone,
    inputs: JSON.stringify(s.inputs),
    policies: JSON.stringify(s.policies),
    enabled: s.enabled ? 1 : 0,
    paused_until: s.pausedUntil ? iso(s.pausedUntil) : null,
    pause_note: s.pauseNote,
    next_fire_at: s.nextFireAt ? iso(s.nextFireAt) : null,
    next_due_at: s.nextDueAt ? iso(s.nextDueAt) : null,
    created_by: s.createdBy,
    created_at: iso(s.createdAt),
    updated_at: iso(s.updatedAt),
  };
}

export async function insertSchedule(db: Db, schedule: Schedule): Promise<void> {
  await db.insertInto('schedules').values(toRow(schedule)).execute();
}

export async function insertSchedules(db: Db, schedules: readonly Schedule[]): Promise<void> {
  for (let i = 0; i < schedules.length; i += 200) {
    await db
      .insertInto('schedules')
      .values(schedules.slice(i, i + 200).map(toRow))
      .execute();
  }
}

/** Replaces every field but the id and `created_at`. Not guarded: the last write wins. */
export async function updateSchedule(db: Db, schedule: Schedule): Promise<void> {
  const { id: _, created_at: __, ...row } = toRow(schedule);
  await db.updateTable('schedules').set(row).where('id', '=', schedule.id).execute();
}

export async function findSchedule(db: Db, id: string): Promise<Schedule | null> {
  const row = await db.selectFrom('schedules').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toSchedule(row) : null;
}

export async function listSchedules(db: Db, workspaceId: string, projectId?: string): Promise<Schedule[]> {
  let query = db.selectFrom('schedules').selectAll().where('workspace_id', '=', workspaceId);
  if (projectId) query = query.where('project_id', '=', projectId);
  return (await query.orderBy('name').execute()).map(toSchedule);
}

export async function deleteSchedule(db: Db, id: string): Promise<void> {
  await db.deleteFrom('schedules').where('id', '=', id).execute();
}

/** Enabled schedules due by `now`, oldest first, locked against other schedulers on PostgreSQL. */
export function takeDueSchedules(db: Db, now: Date, limit: number, skipLocked: boolean): Promise<Schedule[]> {
  return take(
    db
      .selectFrom('schedules')
      .selectAll()
      .where('enabled', '=', 1)
      .where('next_due_at', '<=', iso(now))
      .orderBy('next_due_at'),
    limit,
    skipLocked,
  );
}

/** Paused schedules whose pause-until has passed. */
export function takeResumable(db: Db, now: Date, limit: number, skipLocked: boolean): Promise<Schedule[]> {
  return take(
    db.selectFrom('schedules').selectAll().where('enabled', '=', 0).where('paused_until', '<=', iso(now)),
    limit,
    skipLocked,
  );
}

/** Up to `limit` rows of a schedules query, skipping rows another scheduler holds (PostgreSQL). */
async function take(
  query: SelectQueryBuilder<Schema, 'schedules', Selectable<SchedulesTable>>,
  limit: number,
  skipLocked: boolean,
): Promise<Schedule[]> {
  let limited = query.limit(limit);
  if (skipLocked) limited = limited.forUpdate().skipLocked();
  return (await limited.execute()).map(toSchedule);
}

/** The earliest instant any schedule or pending retry needs the scheduler. */
export async function nextWake(db: Db): Promise<Date | null> {
  const [due, resume, retry] = await Promise.all([
    db
      .selectFrom('schedules')
      .select((eb) => eb.fn.min('next_due_at').as('at'))
      .where('enabled', '=', 1)
      .executeTakeFirst(),
    db
      .selectFrom('schedules')
      .select((eb) => eb.fn.min('paused_until').as('at'))
      .where('enabled', '=', 0)
      .executeTakeFirst(),
    db
      .selectFrom('runs')
      .select((eb) => eb.fn.min('retry_at').as('at'))
      .where('retry_at', 'is not', null)
      .executeTakeFirst(),
  ]);
  const times = [due?.at, resume?.at, retry?.at]
    .filter((t): t is Date | string => t !== null && t !== undefined)
    .map((t) => toDate(t).getTime());
  return times.length ? new Date(Math.min(...times)) : null;
}

export interface Advance {
  id: string;
  /** The fire time the scheduler started from; the update only applies if it is still stored. */
  from: Date;
  fireAt: Date | null;
  dueAt: Date | null;
}

/** Advances many schedules in one statement, each guarded by the fire time it started from. */
export async function advanceSchedules(
  db: Db,
  advances: readonly Advance[],
  now: Date,
  dialect: 'sqlite' | 'postgres',
): Promise<void> {
  if (advances.length === 0) return;
  const ts = (value: ReturnType<typeof sql>) =>
    dialect === 'postgres' ? sql`cast(${value} as timestamptz)` : value;
  for (let i = 0; i < advances.length; i += 500) {
    const chunk = advances.slice(i, i + 500);
    const rows = sql.join(
      chunk.map(
        (a) =>
          sql`(${a.id}, ${iso(a.from)}, ${a.fireAt ? iso(a.fireAt) : null}, ${a.dueAt ? iso(a.dueAt) : null})`,
      ),
    );
    // UPDATE … FROM joins the values once (PostgreSQL and SQLite ≥ 3.33); correlated subqueries per
    // column measured several times slower on a 167-schedule pass.
    await sql`
      with v(id, old, fire, due) as (values ${rows})
      update schedules set
        next_fire_at = ${ts(sql`v.fire`)},
        next_due_at = ${ts(sql`v.due`)},
        updated_at = ${iso(now)}
      from v
      where schedules.id = v.id
        and schedules.next_fire_at = ${ts(sql`v.old`)}
    `.execute(db);
  }
}

// ---- a schedule's runs, as the scheduler and schedule health see them ----

/** A schedule's latest run that is not a skipped entry, or null. */
export async function lastRunOfSchedule(db: Db, scheduleId: string): Promise<Run | null> {
  const row = await db
    .selectFrom('runs')
    .selectAll()
    .where('schedule_id', '=', scheduleId)
    .where('status', '!=', 'skipped')
    .orderBy('created_at', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row ? toRun(row) : null;
}

/** How many fire times of a schedule were skipped, by reason (overlap, missed, coalesced…). */
export async function skippedCountsOfSchedule(db: Db, scheduleId: string): Promise<Map<string, number>> {
  const rows = await db
    .selectFrom('runs')
    .select(['reason', (eb) => eb.fn.countAll<string | number>().as('n')])
    .where('schedule_id', '=', scheduleId)
    .where('status', '=', 'skipped')
    .groupBy('reason')
    .execute();
  return new Map(rows.map((r) => [r.reason ?? '', Number(r.n)]));
}

/** A run that still holds a schedule's place: queued or running. */
export interface ActiveScheduleRun {
  id: string;
  scheduleId: string;
  status: 'queued' | 'running';
  /** The run it waits behind (overlap policies), if any. */
  afterRunId: string | null;
}

/** The queued and running runs of the given schedules, oldest first. */
export async function activeRunsOfSchedules(
  db: Db,
  scheduleIds: readonly string[],
): Promise<ActiveScheduleRun[]> {
  if (scheduleIds.length === 0) return [];
  const rows = await db
    .selectFrom('runs')
    .select(['id', 'status', 'after_run_id', 'schedule_id'])
    .where('schedule_id', 'in', scheduleIds)
    .where('status', 'in', ['queued', 'running'])
    .orderBy('created_at')
    .execute();
  return rows.map((r) => ({
    id: r.id,
    scheduleId: r.schedule_id!,
    status: r.status as ActiveScheduleRun['status'],
    afterRunId: r.after_run_id,
  }));
}

/** Marks when a failed scheduled run's retry is due (`takeDueRetries` then hands it to the scheduler). */
export async function setRetryAt(db: Db, runId: string, at: Date): Promise<void> {
  await db
    .updateTable('runs')
    .set({ retry_at: iso(at) })
    .where('id', '=', runId)
    .execute();
}

/**
 * Takes up to `limit` failed runs whose retry is due: clears each one's `retry_at`, guarded by the value
 * read, so of several schedulers exactly one takes it (SKIP LOCKED on PostgreSQL lets them share the
 * work). Returns the runs it took; the caller creates their retries in the same transaction.
 */
export async function takeDueRetries(db: Db, now: Date, limit: number, skipLocked: boolean): Promise<Run[]> {
  let query = db.selectFrom('runs').selectAll().where('retry_at', '<=', iso(now)).limit(limit);
  if (skipLocked) query = query.forUpdate().skipLocked();
  const taken: Run[] = [];
  for (const row of await query.execute()) {
    const cleared = await db
      .updateTable('runs')
      .set({ retry_at: null })
      .where('id', '=', row.id)
      .where('retry_at', '=', iso(toDate(row.retry_at!)))
      .executeTakeFirst();
    if (Number(cleared.numUpdatedRows) === 1) taken.push(toRun(row));
  }
  return taken;
}
