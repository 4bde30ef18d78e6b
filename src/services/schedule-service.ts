/**
 * Schedules: creating and changing them, previews, "run now", backfill, health, and `fireDue`, the
 * scheduler's one pass (ARCHITECTURE.md, decision 4): take the due schedules, create their runs with
 * the overlap and catch-up policies applied, and advance `next_fire_at`, all in one transaction. The
 * unique key on (schedule, fire time) makes each fire time happen once, whichever scheduler gets there.
 */

import { randomUUID } from 'node:crypto';
import { ConflictError, NotFoundError, ValidationError } from '../domain/errors.ts';
import { checkInputSizes, checkLength, MAX_NAME_LENGTH, MAX_NOTE_LENGTH } from '../domain/limits.ts';
import { resolveInputs } from '../domain/notebook/inputs.ts';
import { LIMIT_WORDS, PLAN_LIMITS, type Plan, PlanLimitError } from '../domain/plan.ts';
import { DEFAULT_MAX_ATTEMPTS, RUN_NOW_TRIGGER, type Run, type RunReason } from '../domain/run.ts';
import type { InputValue } from '../domain/run-context.ts';
import {
  type FireTime,
  fireTimesAfter,
  fireTimesBetween,
  nextFireTimes,
} from '../domain/schedule/fire-times.ts';
import type { Schedule } from '../domain/schedule/schedule.ts';
import {
  type Cadence,
  describeCadence,
  fireSpec,
  jitterMs,
  retryDelayMs,
  type SchedulePolicies,
  validatePolicies,
} from '../domain/schedule/schedule.ts';
import { formatOffset, wallTime } from '../domain/schedule/zoned-time.ts';
import { type Db, transaction } from '../store/database.ts';
import { isUniqueViolation } from '../store/errors.ts';
import * as ps from '../store/project-store.ts';
import * as rs from '../store/run-store.ts';
import * as ss from '../store/schedule-store.ts';
import { findWorkspacePlan } from '../store/workspace-store.ts';
import { recordAudit } from './audit-service.ts';
import { assertWorkspaceMember } from './authorize.ts';
import { crashPoint } from './crash-points.ts';
import { addOwnersOnFailureRule } from './notification-service.ts';
import { assertSeesProject, getProject, hiddenProjectIds } from './project-service.ts';
import type { Principal, ServiceContext } from './service-context.ts';
import { notebookOfVersion } from './version-notebooks.ts';

/** A fire time that comes due this late is still run (not "missed"), whatever the catch-up window. */
export const ON_TIME_GRACE_MS = 60_000;
export const MAX_BACKFILL = 1000;

export interface ScheduleInput {
  name: string;
  cadence: Cadence;
  timezone: string;
  inputs?: Record<string, unknown> | undefined;
  enabled?: boolean | undefined;
  policies?: Partial<SchedulePolicies> | undefined;
}

function firstAfter(schedule: Pick<Schedule, 'id' | 'cadence' | 'timezone' | 'policies'>, after: Date) {
  const fire = nextFireTimes(fireSpec(schedule.cadence, schedule.timezone), after, 1)[0] ?? null;
  const jitter = jitterMs(schedule.id, schedule.policies.jitterSeconds);
  return { fireAt: fire?.at ?? null, dueAt: fire ? new Date(fire.at.getTime() + jitter) : null };
}

async function validInputs(ctx: ServiceContext, projectId: string, inputs: Record<string, unknown>) {
  // Sizes first, also when there is no version yet to check the values against.
  checkInputSizes(inputs);
  const version = await ps.currentVersion(ctx.db, projectId);
  if (!version) return inputs as Record<string, InputValue>;
  const notebook = await notebookOfVersion(version.id, version.source);
  resolveInputs(notebook.inputs, inputs);
  return Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, v as InputValue]));
}

/**
 * Refuses what the workspace's plan does not allow (domain/plan.ts), with a 403 naming the plan and
 * the limit: a cron cadence, or more schedules in the project than the plan allows. `enabling` says the
 * schedule will be active afterwards (created, or resumed); `changingCadence` that its cadence is set.
 */
async function assertPlanAllows(
  ctx: ServiceContext,
  schedule: { id: string | null; workspaceId: string; projectId: string; cadence: Cadence },
  how: { creating: boolean; enabling: boolean; changingCadence: boolean },
): Promise<void> {
  const plan: Plan = (await findWorkspacePlan(ctx.db, schedule.workspaceId)) ?? 'team';
  const limits = PLAN_LIMITS[plan];
  if (!limits.cronSchedules && schedule.cadence.kind === 'cron' && (how.changingCadence || how.enabling)) {
    throw new PlanLimitError(plan, LIMIT_WORDS.cron);
  }
  const max = limits.schedulesPerProject;
  if (max === null || !(how.creating || how.enabling)) return;
  const others = (await ss.listSchedules(ctx.db, schedule.workspaceId, schedule.projectId)).filter(
    (s) => s.id !== schedule.id && (how.creating || s.enabled),
  );
  if (others.length >= max) throw new PlanLimitError(plan, LIMIT_WORDS.schedules(max));
}

export async function createSchedule(
  ctx: ServiceContext,
  principal: Principal,
  projectIdOrSlug: string,
  input: ScheduleInput,
): Promise<Schedule> {
  const project = await getProject(ctx, principal, projectIdOrSlug);
  if (typeof input.name !== 'string' || !input.name.trim())
    throw new ValidationError('name', 'must name the schedule');
  checkLength('name', input.name.trim(), MAX_NAME_LENGTH, 'MAX_NAME_LENGTH');
  fireSpec(input.cadence, input.timezone);
  const policies = validatePolicies(input.policies ?? {});
  const now = ctx.now();
  const id = randomUUID();
  const enabled = input.enabled ?? true;
  await assertPlanAllows(
    ctx,
    { id: null, workspaceId: project.workspaceId, projectId: project.id, cadence: input.cadence },
    { creating: true, enabling: enabled, changingCadence: true },
  );
  const base = { id, cadence: input.cadence, timezone: input.timezone, policies };
  const next = enabled ? firstAfter(base, now) : { fireAt: null, dueAt: null };
  const schedule: Schedule = {
    ...base,
    workspaceId: project.workspaceId,
    projectId: project.id,
    name: input.name.trim(),
    inputs: await validInputs(ctx, project.id, input.inputs ?? {}),
    enabled,
    pausedUntil: null,
    pauseNote: null,
    nextFireAt: next.fireAt,
    nextDueAt: next.dueAt,
    createdBy: principal.userId,
    createdAt: now,
    updatedAt: now,
  };
  try {
    await transaction(ctx.db, async (trx) => {
      await ss.insertSchedule(trx, schedule);
      // Every new schedule starts with "project owners on failure", visible and removable (issue 15, bug 6).
      await addOwnersOnFailureRule(trx, schedule, now);
    });
  } catch (error) {
    // The unique key on (project, name).
    if (isUniqueViolation(error)) {
      throw new ValidationError(
        'name',
        `project '${project.slug}' already has a schedule named '${schedule.name}'`,
      );
    }
    throw error;
  }
  await recordAudit(ctx, principal, {
    action: 'schedule.create',
    target: `schedule:${id}`,
    detail: { project: project.slug, name: schedule.name, cadence: schedule.cadence, enabled },
  });
  await ctx.wakeups.notify('schedule_changed', id);
  return schedule;
}

export async function getSchedule(ctx: ServiceContext, principal: Principal, id: string): Promise<Schedule> {
  const schedule = await ss.findSchedule(ctx.db, id);
  if (!schedule) throw new NotFoundError('schedule', id);
  assertWorkspaceMember(principal, schedule.workspaceId, 'schedule', id);
  await assertSeesProject(ctx, principal, schedule.projectId, 'schedule', id);
  return schedule;
}

export async function listSchedules(ctx: ServiceContext, principal: Principal, projectIdOrSlug?: string) {
  const projectId = projectIdOrSlug ? (await getProject(ctx, principal, projectIdOrSlug)).id : undefined;
  const hidden = new Set(projectId ? [] : await hiddenProjectIds(ctx, principal));
  return (await ss.listSchedules(ctx.db, principal.workspaceId, projectId)).filter(
    (s) => !hidden.has(s.projectId),
  );
}

export async function updateSchedule(
  ctx: ServiceContext,
  principal: Principal,
  id: string,
  patch: Partial<ScheduleInput>,
): Promise<Schedule> {
  const current = await getSchedule(ctx, principal, id);
  if (patch.name !== undefined) checkLength('name', patch.name.trim(), MAX_NAME_LENGTH, 'MAX_NAME_LENGTH');
  const cadence = patch.cadence ?? current.cadence;
  const timezone = patch.timezone ?? current.timezone;
  fireSpec(cadence, timezone);
  const policies = validatePolicies({ ...current.policies, ...patch.policies });
  const enabled = patch.enabled ?? current.enabled;
  await assertPlanAllows(
    ctx,
    { ...current, cadence },
    { creating: false, enabling: enabled && !current.enabled, changingCadence: patch.cadence !== undefined },
  );
  const now = ctx.now();
  const next = enabled ? firstAfter({ id, cadence, timezone, policies }, now) : { fireAt: null, dueAt: null };
  const updated: Schedule = {
    ...current,
    name: patch.name?.trim() || current.name,
    cadence,
    timezone,
    policies,
    enabled,
    pausedUntil: enabled ? null : current.pausedUntil,
    pauseNote: enabled ? null : current.pauseNote,
    inputs: patch.inputs ? await validInputs(ctx, current.projectId, patch.inputs) : current.inputs,
    nextFireAt: next.fireAt,
    nextDueAt: next.dueAt,
    updatedAt: now,
  };
  await ss.updateSchedule(ctx.db, updated);
  await recordAudit(ctx, principal, {
    action: 'schedule.update',
    target: `schedule:${id}`,
    detail: { name: updated.name, changed: Object.keys(patch).filter((k) => k !== 'inputs'), enabled },
  });
  await ctx.wakeups.notify('schedule_changed', id);
  return updated;
}

export async function deleteSchedule(ctx: ServiceContext, principal: Principal, id: string): Promise<void> {
  const schedule = await getSchedule(ctx, principal, id);
  await ss.deleteSchedule(ctx.db, id);
  await recordAudit(ctx, principal, {
    action: 'schedule.delete',
    target: `schedule:${id}`,
    detail: { name: schedule.name },
  });
}

/** Pauses a schedule, optionally until an instant (it then resumes by itself), with a note. */
export async function pauseSchedule(
  ctx: ServiceContext,
  principal: Principal,
  id: string,
  options: { until?: Date | null | undefined; note?: string | null | undefined },
): Promise<Schedule> {
  const current = await getSchedule(ctx, principal, id);
  if (options.note) checkLength('note', options.note, MAX_NOTE_LENGTH, 'MAX_NOTE_LENGTH');
  const now = ctx.now();
  if (options.until && options.until.getTime() <= now.getTime()) {
    throw new ValidationError('until', `must be in the future (now is ${now.toISOString()})`);
  }
  const updated: Schedule = {
    ...current,
    enabled: false,
    pausedUntil: options.until ?? null,
    pauseNote: options.note ?? null,
    nextFireAt: null,
    nextDueAt: null,
    updatedAt: now,
  };
  await ss.updateSchedule(ctx.db, updated);
  await recordAudit(ctx, principal, {
    action: 'schedule.pause',
    target: `schedule:${id}`,
    detail: { name: current.name, until: options.until?.toISOString() ?? null, note: options.note ?? null },
  });
  await ctx.wakeups.notify('schedule_changed', id);
  return updated;
}

export async function resumeSchedule(
  ctx: ServiceContext,
  principal: Principal,
  id: string,
): Promise<Schedule> {
  return updateSchedule(ctx, principal, id, { enabled: true });
}

export interface PreviewEntry {
  at: string;
  local: string;
  offset: string;
  /** `gap`: a DST gap moved it to the first valid instant after; `repeat`: the local time occurs twice that day. */
  dst: 'gap' | 'repeat' | null;
}

export function preview(cadence: Cadence, timezone: string, count: number, from: Date): PreviewEntry[] {
  if (!Number.isInteger(count) || count < 1 || count > 500)
    throw new ValidationError('count', 'must be 1-500');
  return nextFireTimes(fireSpec(cadence, timezone), from, count).map((fire) => previewEntry(fire, timezone));
}

function previewEntry(fire: FireTime, timezone: string): PreviewEntry {
  const offset = formatOffset(fire.offsetMs);
  return {
    at: fire.at.toISOString(),
    local: `${wallTime(fire.at, timezone).toISOString().slice(0, 19).replace('T', ' ')} ${offset}`,
    offset,
    dst: fire.dst,
  };
}

export function describe(schedule: Pick<Schedule, 'cadence' | 'timezone'>): string {
  return describeCadence(schedule.cadence, schedule.timezone);
}

/**
 * "Run now": a scheduled run started early (issue 15, bug 5). It is recorded as trigger `schedule` in
 * context `scheduled`, with the schedule's inputs, `scheduleId` and `scheduledFor` = now, so it refreshes
 * the app's default state like any scheduled run, answers to the schedule's notification rules and
 * retries, and the run log says which schedule it came from. (It was trigger `manual`, which never
 * became the default state.) A run now at the very instant of a fire time is that fire time's run.
 */
export async function runNow(ctx: ServiceContext, principal: Principal, id: string): Promise<Run> {
  const schedule = await getSchedule(ctx, principal, id);
  const version = await ps.currentVersion(ctx.db, schedule.projectId);
  if (!version) throw new ConflictError('the project has no published version yet; publish it first');
  const notebook = await notebookOfVersion(version.id, version.source);
  const now = ctx.now();
  let run: Run;
  try {
    run = await rs.insertRun(ctx.db, {
      id: randomUUID(),
      workspaceId: schedule.workspaceId,
      projectId: schedule.projectId,
      versionId: version.id,
      trigger: RUN_NOW_TRIGGER,
      context: 'scheduled',
      private: false,
      inputs: resolveInputs(notebook.inputs, schedule.inputs),
      createdBy: principal.userId,
      createdAt: now,
      scheduledFor: now,
      maxAttempts: DEFAULT_MAX_ATTEMPTS,
      expiresAt: null,
      scheduleId: schedule.id,
      timeoutMs: schedule.policies.timeoutMs,
    });
  } catch (error) {
    // The unique key on (schedule, fire time): a run for this very instant exists already.
    if (isUniqueViolation(error)) {
      throw new ConflictError(
        `schedule '${schedule.name}' already has a run for ${now.toISOString()}; try again in a moment`,
      );
    }
    throw error;
  }
  await ctx.wakeups.notify('run_queued', run.id);
  return run;
}

/** Runs for every fire time in (from, to], each with its own `almanac.scheduledFor`; existing ones are kept. */
export async function backfill(
  ctx: ServiceContext,
  principal: Principal,
  id: string,
  range: { from: Date; to: Date },
): Promise<{ created: Run[]; existing: number }> {
  const schedule = await getSchedule(ctx, principal, id);
  const now = ctx.now();
  if (!(range.from.getTime() < range.to.getTime())) throw new ValidationError('from', 'must be before to');
  if (range.to.getTime() > now.getTime())
    throw new ValidationError('to', `must not be in the future (now is ${now.toISOString()})`);
  const fires = fireTimesBetween(
    fireSpec(schedule.cadence, schedule.timezone),
    new Date(range.from.getTime() - 1),
    range.to,
    MAX_BACKFILL + 1,
  );
  if (fires.length > MAX_BACKFILL) {
    throw new ValidationError(
      'to',
      `the range holds more than ${MAX_BACKFILL} fire times; backfill a shorter range`,
    );
  }
  const version = await ps.currentVersion(ctx.db, schedule.projectId);
  if (!version) throw new ConflictError('the project has no published version yet; publish it first');
  const notebook = await notebookOfVersion(version.id, version.source);
  const inputs = resolveInputs(notebook.inputs, schedule.inputs);
  const created = await transaction(ctx.db, async (trx) => {
    const out: Run[] = [];
    let previous: string | null = null;
    for (const fire of fires) {
      const run = await rs.insertFireRun(trx, {
        id: randomUUID(),
        workspaceId: schedule.workspaceId,
        projectId: schedule.projectId,
        versionId: version.id,
        trigger: 'backfill',
        context: 'scheduled',
        private: false,
        inputs,
        createdBy: principal.userId,
        createdAt: now,
        scheduledFor: fire.at,
        maxAttempts: DEFAULT_MAX_ATTEMPTS,
        expiresAt: null,
        scheduleId: schedule.id,
        timeoutMs: schedule.policies.timeoutMs,
        // One at a time, in fire order, unless the schedule allows overlap.
        afterRunId: schedule.policies.overlap === 'allow' ? null : previous,
      });
      if (run) {
        out.push(run);
        previous = run.id;
      }
    }
    return out;
  });
  // One wake-up is enough: workers claim in batches until the queue is empty.
  if (created[0]) await ctx.wakeups.notify('run_queued', created[0].id);
  return { created, existing: fires.length - created.length };
}

export interface ScheduleHealth {
  lastRun: Run | null;
  nextFireAt: Date | null;
  skipped: number;
  missed: number;
  /** The latest expected run has not started within `overdueAfterMs` of its fire time. */
  overdue: boolean;
  overdueReason: string | null;
}

export async function health(ctx: ServiceContext, schedule: Schedule): Promise<ScheduleHealth> {
  const now = ctx.now();
  const [lastRun, counts] = await Promise.all([
    ss.lastRunOfSchedule(ctx.db, schedule.id),
    ss.skippedCountsOfSchedule(ctx.db, schedule.id),
  ]);
  const count = (reason: string) => counts.get(reason) ?? 0;
  let overdueReason: string | null = null;
  const threshold = schedule.policies.overdueAfterMs;
  if (schedule.enabled && schedule.nextDueAt && now.getTime() - schedule.nextDueAt.getTime() > threshold) {
    overdueReason = `the fire time ${schedule.nextFireAt?.toISOString()} has not been taken by a scheduler for ${Math.round((now.getTime() - schedule.nextDueAt.getTime()) / 1000)} s`;
  } else if (
    lastRun &&
    lastRun.status === 'queued' &&
    lastRun.scheduledFor &&
    now.getTime() - lastRun.scheduledFor.getTime() - (lastRun.jitterMs ?? 0) > threshold
  ) {
    overdueReason = `run ${lastRun.id} for ${lastRun.scheduledFor.toISOString()} has waited ${Math.round((now.getTime() - lastRun.scheduledFor.getTime()) / 1000)} s for a worker`;
  }
  return {
    lastRun,
    nextFireAt: schedule.nextFireAt,
    skipped: count('overlap') + count('coalesced') + count('no_version'),
    missed: count('missed'),
    overdue: overdueReason !== null,
    overdueReason,
  };
}

// ---- the scheduler's pass ----

export interface FireReport {
  /** Runs created (queued). */
  created: Run[];
  /** Entries recorded as skipped, with their reasons. */
  skipped: Run[];
  retries: Run[];
  resumed: string[];
}

interface PassState {
  versions: Map<string, Promise<ps.Version | null>>;
  active: Map<string, ss.ActiveScheduleRun[]>;
  /** Runs and skipped entries to insert, in one statement per 500, at the end of the batch. */
  pending: rs.NewRun[];
  /** Schedules to advance, in one statement, at the end of the batch. */
  advances: ss.Advance[];
}

/**
 * One scheduler pass at `now`: resumes schedules whose pause ended, fires every due schedule, and creates
 * due retries. Safe to run on several nodes at once (SKIP LOCKED, and the unique fire-time key).
 *
 * Schedules are taken in batches of `batch`, each in one transaction: a few statements per batch, not per
 * schedule. 250 measured best for both a burst of 1,000 and ~167 a second (docs/performance.md); smaller
 * batches with a wake-up after each let workers claim earlier, but on two cores they then compete with
 * the scheduler and the whole burst lands later.
 */
export async function fireDue(ctx: ServiceContext, now: Date, batch = 250): Promise<FireReport> {
  const report: FireReport = { created: [], skipped: [], retries: [], resumed: [] };
  // Resume paused schedules whose time has come; fire times during the pause are not run.
  await transaction(ctx.db, async (trx) => {
    for (const schedule of await ss.takeResumable(trx, now, batch, ctx.capabilities.skipLocked)) {
      const next = firstAfter(schedule, now);
      await ss.updateSchedule(trx, {
        ...schedule,
        enabled: true,
        pausedUntil: null,
        pauseNote: null,
        nextFireAt: next.fireAt,
        nextDueAt: next.dueAt,
        updatedAt: now,
      });
      report.resumed.push(schedule.id);
    }
  });
  for (;;) {
    const taken = await transaction(ctx.db, async (trx) => {
      const due = await ss.takeDueSchedules(trx, now, batch, ctx.capabilities.skipLocked);
      if (due.length === 0) return 0;
      // One query each for what every schedule in the batch needs: versions and still-active runs.
      const pass: PassState = { versions: new Map(), active: new Map(), pending: [], advances: [] };
      const activeRuns = await ss.activeRunsOfSchedules(
        trx,
        due.map((d) => d.id),
      );
      for (const run of activeRuns) {
        const list = pass.active.get(run.scheduleId) ?? [];
        list.push(run);
        pass.active.set(run.scheduleId, list);
      }
      for (const schedule of due) await fireSchedule(trx, ctx, schedule, now, report, pass);
      for (const run of await rs.insertFireRuns(trx, pass.pending)) {
        (run.status === 'skipped' ? report.skipped : report.created).push(run);
      }
      await ss.advanceSchedules(trx, pass.advances, now, ctx.dialect);
      return due.length;
    });
    if (taken > 0) crashPoint('after_fire_insert');
    if (taken < batch) break;
  }
  await createDueRetries(ctx, now, report);
  // One wake-up is enough: workers claim in batches until the queue is empty. (Waking them per batch
  // of schedules measured slower: they then compete with the scheduler for the same two cores.)
  const first = report.created[0] ?? report.retries[0];
  if (first) await ctx.wakeups.notify('run_queued', first.id);
  for (const run of report.skipped) await ctx.wakeups.notify('run_progress', run.id);
  return report;
}

async function fireSchedule(
  trx: Db,
  ctx: ServiceContext,
  schedule: Schedule,
  now: Date,
  _report: FireReport,
  pass: PassState,
) {
  const spec = fireSpec(schedule.cadence, schedule.timezone);
  const jitter = jitterMs(schedule.id, schedule.policies.jitterSeconds);
  const first = schedule.nextFireAt!;
  // Every fire time from the stored one up to now (minus the jitter, since each is due that much later).
  const limit = now.getTime() - jitter;
  const fires: Date[] = [first];
  for (const fire of fireTimesAfter(spec, first)) {
    if (fire.at.getTime() > limit || fires.length >= 10_000) break;
    fires.push(fire.at);
  }
  const window = Math.max(schedule.policies.catchupWindowMs, ON_TIME_GRACE_MS);
  const inWindow = fires.filter((t) => now.getTime() - t.getTime() - jitter <= window);
  const missed = fires.filter((t) => now.getTime() - t.getTime() - jitter > window);
  let versionLookup = pass.versions.get(schedule.projectId);
  if (!versionLookup) {
    versionLookup = ps.currentVersion(trx, schedule.projectId);
    pass.versions.set(schedule.projectId, versionLookup);
  }
  const version = await versionLookup;
  const base = {
    workspaceId: schedule.workspaceId,
    projectId: schedule.projectId,
    versionId: version?.id ?? null,
    trigger: 'schedule' as const,
    context: 'scheduled' as const,
    private: false,
    createdBy: null,
    createdAt: now,
    maxAttempts: DEFAULT_MAX_ATTEMPTS,
    expiresAt: null,
    scheduleId: schedule.id,
    jitterMs: jitter,
    timeoutMs: schedule.policies.timeoutMs,
  };
  const skip = (at: Date, reason: RunReason, message: string) => {
    pass.pending.push({
      ...base,
      id: randomUUID(),
      inputs: schedule.inputs,
      scheduledFor: at,
      status: 'skipped',
      reason,
      errorMessage: message,
    });
  };
  for (const at of missed) {
    skip(
      at,
      'missed',
      `missed: no scheduler ran within the catch-up window (${Math.round(window / 1000)} s) of this fire time`,
    );
  }
  let toRun = inWindow;
  if (schedule.policies.catchupMode === 'coalesce' && inWindow.length > 1) {
    toRun = inWindow.slice(-1);
    for (const at of inWindow.slice(0, -1)) {
      skip(at, 'coalesced', `coalesced into the run for ${toRun[0]!.toISOString()} (catch-up mode coalesce)`);
    }
  }
  if (toRun.length > 0) {
    if (!version) {
      for (const at of toRun) skip(at, 'no_version', 'the project had no published version at fire time');
    } else {
      const notebook = await notebookOfVersion(version.id, version.source);
      let inputs: Record<string, InputValue> | null = null;
      let invalid: string | null = null;
      try {
        inputs = resolveInputs(notebook.inputs, schedule.inputs);
      } catch (error) {
        invalid = (error as Error).message;
      }
      const active = pass.active.get(schedule.id) ?? [];
      let previous: string | null = null;
      for (const [i, at] of toRun.entries()) {
        if (invalid !== null || inputs === null) {
          skip(at, 'invalid_input', `the schedule's inputs do not fit the published version: ${invalid}`);
          continue;
        }
        let afterRunId: string | null = previous;
        if (i === 0 && active.length > 0) {
          const decision = overlapDecision(schedule.policies.overlap, active);
          if (decision.kind === 'skip') {
            skip(
              at,
              'overlap',
              `the previous run (${active[active.length - 1]!.id}) was still ${active[active.length - 1]!.status} (overlap policy ${schedule.policies.overlap})`,
            );
            continue;
          }
          if (decision.kind === 'cancel') {
            for (const old of active) {
              if (
                !(await rs.cancelQueuedRun(
                  trx,
                  old.id,
                  now,
                  `schedule '${schedule.name}' (overlap policy)`,
                )) &&
                (await rs.requestRunningCancel(trx, old.id, `schedule '${schedule.name}' (overlap policy)`))
              ) {
                await ctx.wakeups.notify('run_cancel', old.id);
              }
            }
          }
          afterRunId = decision.kind === 'after' ? decision.runId : null;
        }
        if (schedule.policies.overlap === 'allow') afterRunId = null;
        const id = randomUUID();
        pass.pending.push({ ...base, id, inputs, scheduledFor: at, afterRunId });
        previous = id;
      }
    }
  }
  const next = (() => {
    for (const fire of fireTimesAfter(spec, new Date(Math.max(limit, fires[fires.length - 1]!.getTime())))) {
      return { fireAt: fire.at, dueAt: new Date(fire.at.getTime() + jitter) };
    }
    return { fireAt: null, dueAt: null };
  })();
  pass.advances.push({ id: schedule.id, from: first, fireAt: next.fireAt, dueAt: next.dueAt });
}

type OverlapDecision =
  | { kind: 'skip' }
  | { kind: 'after'; runId: string }
  | { kind: 'cancel' }
  | { kind: 'run' };

function overlapDecision(
  policy: SchedulePolicies['overlap'],
  active: readonly ss.ActiveScheduleRun[],
): OverlapDecision {
  switch (policy) {
    case 'skip':
      return { kind: 'skip' };
    case 'allow':
      return { kind: 'run' };
    case 'cancel_previous':
      return { kind: 'cancel' };
    case 'buffer_one': {
      // One run may wait behind the running one; a second waiting run is skipped.
      const waiting = active.filter((r) => r.status === 'queued' && r.afterRunId !== null);
      if (waiting.length > 0) return { kind: 'skip' };
      return { kind: 'after', runId: active[active.length - 1]!.id };
    }
  }
}

/**
 * When a scheduled run fails in a way worth retrying and attempts remain, marks when its retry is due;
 * `createDueRetries` creates the retry then. Called in the transaction that finishes the run.
 */
export async function planRetry(trx: Db, run: Run, now: Date): Promise<Date | null> {
  if (!run.scheduleId) return null;
  const schedule = await ss.findSchedule(trx, run.scheduleId);
  if (!schedule || run.retryNumber + 1 >= schedule.policies.maxAttempts) return null;
  const at = new Date(now.getTime() + retryDelayMs(schedule.policies.retryBackoffMs, run.retryNumber + 1));
  await ss.setRetryAt(trx, run.id, at);
  return at;
}

async function createDueRetries(ctx: ServiceContext, now: Date, report: FireReport): Promise<void> {
  await transaction(ctx.db, async (trx) => {
    for (const failed of await ss.takeDueRetries(trx, now, 500, ctx.capabilities.skipLocked)) {
      const retry = await rs.insertRun(trx, {
        id: randomUUID(),
        workspaceId: failed.workspaceId,
        projectId: failed.projectId,
        versionId: failed.versionId,
        trigger: failed.trigger,
        context: failed.context,
        private: false,
        inputs: failed.inputs,
        createdBy: failed.createdBy,
        createdAt: now,
        scheduledFor: failed.scheduledFor,
        maxAttempts: failed.maxAttempts,
        expiresAt: null,
        scheduleId: failed.scheduleId,
        jitterMs: failed.jitterMs,
        timeoutMs: failed.timeoutMs,
        retryOf: failed.id,
        retryNumber: failed.retryNumber + 1,
      });
      report.retries.push(retry);
    }
  });
}

export async function nextWake(ctx: ServiceContext): Promise<Date | null> {
  return ss.nextWake(ctx.db);
}

/** The database's clock, which every scheduler compares against (so several nodes agree on "now"). */
export async function databaseClock(ctx: ServiceContext): Promise<Date> {
  return rs.databaseNow(ctx.db, ctx.dialect);
}
