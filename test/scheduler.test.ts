/**
 * The scheduler on both stores, driven by tick(now) with a fake clock (never a sleep): firing with the
 * version published at fire time, skipped entries, every overlap and catch-up mode, jitter, retries,
 * backfill, pause-until, run now, the app's default state, health, a restart inside a repeated hour,
 * and two schedulers on PostgreSQL over 1,000 schedules.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Cadence } from '../src/domain/schedule/schedule.ts';
import {
  CONTENDED_RECHECK_MS,
  MAX_SLEEP_MS,
  nextPass,
  Scheduler,
  STANDBY_DELAY_MS,
} from '../src/scheduler/scheduler.ts';
import * as projects from '../src/services/project-service.ts';
import * as schedules from '../src/services/schedule-service.ts';
import type { Principal } from '../src/services/service-context.ts';
import * as ss from '../src/store/schedule-store.ts';
import { fence } from './support/harness.ts';
import { notebook, startTestServer, type TestServer, testStores } from './support/server-harness.ts';

const START = Date.parse('2026-03-02T08:59:00.000Z'); // a Monday, 09:59 in Berlin

const QUICK = notebook(
  'Quick',
  fence(
    'js info',
    'return { scheduled: almanac.scheduled, context: almanac.runContext, at: almanac.scheduledFor?.toISOString() ?? null, n }',
  ),
  'inputs:\n  n:\n    type: number\n    default: 1\n',
);

for (const store of await testStores()) {
  describe(`scheduler on ${store.name}`, { skip: store.skip }, () => {
    let t: TestServer;
    let admin: Principal;
    let scheduler: Scheduler;
    before(async () => {
      t = await startTestServer(store, { clockStart: START });
      admin = await t.server.admin();
      scheduler = new Scheduler(t.server.ctx, { databaseClock: false });
    });
    after(() => t?.close());

    let counter = 0;
    const project = async (source = QUICK, publish = true) => {
      const slug = `p${++counter}`;
      await projects.createProject(t.server.ctx, admin, { source, slug });
      if (publish) await projects.publish(t.server.ctx, admin, slug);
      await t.server.worker!.drain();
      return slug;
    };
    const create = (slug: string, cadence: Cadence, extra: Partial<schedules.ScheduleInput> = {}) =>
      schedules.createSchedule(t.server.ctx, admin, slug, {
        name: `s${++counter}`,
        cadence,
        timezone: 'Europe/Berlin',
        ...extra,
      });
    /** A schedule's runs by fire time, then attempt. */
    const runsOf = async (scheduleId: string) =>
      await t.server.ctx.db
        .selectFrom('runs')
        .selectAll()
        .where('schedule_id', '=', scheduleId)
        .orderBy('scheduled_for')
        .orderBy('retry_number')
        .orderBy('created_at')
        .execute();
    const at = (iso: string) => new Date(iso);

    it('fires at the fire time with the version published then, in context scheduled, exactly once', async () => {
      const slug = await project();
      const s = await create(slug, { kind: 'daily', time: '10:00' }, { inputs: { n: 7 } });
      assert.equal(s.nextFireAt?.toISOString(), '2026-03-02T09:00:00.000Z');
      assert.equal((await scheduler.tick(at('2026-03-02T08:59:59.999Z'))).created.length, 0);
      const fired = await scheduler.tick(at('2026-03-02T09:00:00.000Z'));
      assert.equal(fired.created.length, 1);
      const run = fired.created[0]!;
      assert.equal(run.trigger, 'schedule');
      assert.equal(run.context, 'scheduled');
      assert.equal(run.scheduledFor?.toISOString(), '2026-03-02T09:00:00.000Z');
      assert.deepEqual(run.inputs, { n: 7 });
      assert.equal((await scheduler.tick(at('2026-03-02T09:00:01.000Z'))).created.length, 0, 'never twice');
      const after = await ss.findSchedule(t.server.ctx.db, s.id);
      assert.equal(after?.nextFireAt?.toISOString(), '2026-03-03T09:00:00.000Z');

      await t.server.worker!.drain();
      const snap = (await t.json('GET', `/api/runs/${run.id}/snapshot`)).body;
      assert.deepEqual(snap.cells[0].output.value, {
        scheduled: true,
        context: 'scheduled',
        at: '2026-03-02T09:00:00.000Z',
        n: 7,
      });
      // A successful scheduled run becomes the app's default state.
      assert.equal((await t.api('GET', `/api/projects/${slug}/app`)).headers.get('x-almanac-run'), run.id);

      // The next day runs the version published by then, never the draft.
      await projects.updateDraft(t.server.ctx, admin, slug, QUICK.replace('Quick', 'Quick v2'));
      const v2 = await projects.publish(t.server.ctx, admin, slug);
      await t.server.worker!.drain();
      await projects.updateDraft(t.server.ctx, admin, slug, QUICK.replace('Quick', 'Quick draft'));
      const next = await scheduler.tick(at('2026-03-03T09:00:00.000Z'));
      assert.equal(next.created[0]!.versionId, v2.version.id);
      await schedules.deleteSchedule(t.server.ctx, admin, s.id);
      await t.server.worker!.drain();
    });

    it('records a skipped entry when the project has no published version', async () => {
      const slug = await project(QUICK, false);
      const s = await create(slug, { kind: 'hourly', minute: 0 });
      const report = await scheduler.tick(at('2026-03-02T09:00:00.000Z'));
      const mine = report.skipped.filter((r) => r.scheduleId === s.id);
      assert.equal(mine.length, 1);
      assert.equal(mine[0]!.status, 'skipped');
      assert.equal(mine[0]!.reason, 'no_version');
      assert.equal(mine[0]!.versionId, null);
      await schedules.deleteSchedule(t.server.ctx, admin, s.id);
    });

    it('overlap: skip, buffer_one, allow and cancel_previous', async () => {
      const slug = await project();
      const minutely: Cadence = { kind: 'cron', expression: '* * * * *' };
      const policies = ['skip', 'buffer_one', 'allow', 'cancel_previous'] as const;
      const made = [];
      for (const overlap of policies) made.push(await create(slug, minutely, { policies: { overlap } }));
      // Three fire times in a row with no worker running: earlier runs stay queued.
      for (const minute of ['09:00', '09:01', '09:02'])
        await scheduler.tick(at(`2026-03-02T${minute}:00.000Z`));
      const [skip, buffer, allow, cancel] = await Promise.all(made.map((s) => runsOf(s.id)));
      assert.deepEqual(
        skip!.map((r) => r.status),
        ['queued', 'skipped', 'skipped'],
      );
      assert.equal(skip![1]!.reason, 'overlap');
      assert.deepEqual(
        buffer!.map((r) => r.status),
        ['queued', 'queued', 'skipped'],
        'one buffered, then skip',
      );
      assert.equal(buffer![1]!.after_run_id, buffer![0]!.id);
      assert.deepEqual(
        allow!.map((r) => r.status),
        ['queued', 'queued', 'queued'],
      );
      assert.deepEqual(
        cancel!.map((r) => r.status),
        ['cancelled', 'cancelled', 'queued'],
      );
      await t.server.worker!.drain();
      const bufferedAfter = await runsOf(buffer![0]!.schedule_id!);
      assert.deepEqual(
        bufferedAfter.map((r) => r.status),
        ['succeeded', 'succeeded', 'skipped'],
        'the buffered run ran after the first',
      );
      for (const s of made) await schedules.deleteSchedule(t.server.ctx, admin, s.id);
    });

    it('catch-up after downtime: coalesce or all inside the window, missed outside it', async () => {
      const slug = await project();
      const hourly: Cadence = { kind: 'hourly', minute: 0 };
      const window = 3 * 3600_000;
      const coalesce = await create(slug, hourly, {
        policies: { catchupWindowMs: window, overlap: 'allow' },
      });
      const all = await create(slug, hourly, {
        policies: { catchupWindowMs: window, catchupMode: 'all', overlap: 'allow' },
      });
      // Down from 10:00 to 15:30 Berlin time: fire times 10..15 (six); 10, 11 and 12 are older than 3 h.
      await scheduler.tick(at('2026-03-02T14:30:00.000Z'));
      const c = await runsOf(coalesce.id);
      assert.deepEqual(
        c.map((r) => [new Date(r.scheduled_for!).toISOString().slice(11, 16), r.status, r.reason]),
        [
          ['09:00', 'skipped', 'missed'],
          ['10:00', 'skipped', 'missed'],
          ['11:00', 'skipped', 'missed'],
          ['12:00', 'skipped', 'coalesced'],
          ['13:00', 'skipped', 'coalesced'],
          ['14:00', 'queued', null],
        ].map(([time, status, reason]) => [time, status, reason]),
      );
      const a = await runsOf(all.id);
      assert.deepEqual(a.filter((r) => r.status === 'queued').length, 3);
      assert.deepEqual(a.filter((r) => r.reason === 'missed').length, 3);
      const health = await schedules.health(
        t.server.ctx,
        (await ss.findSchedule(t.server.ctx.db, coalesce.id))!,
      );
      assert.equal(health.missed, 3);
      assert.equal(health.skipped, 2);
      assert.equal(health.nextFireAt?.toISOString(), '2026-03-02T15:00:00.000Z');
      for (const s of [coalesce, all]) await schedules.deleteSchedule(t.server.ctx, admin, s.id);
      await t.server.worker!.drain();
    });

    it('jitter delays each fire time by the schedule’s fixed offset, and is recorded', async () => {
      const slug = await project();
      const s = await create(slug, { kind: 'daily', time: '11:00' }, { policies: { jitterSeconds: 120 } });
      const jitter = s.nextDueAt!.getTime() - s.nextFireAt!.getTime();
      assert.ok(jitter >= 0 && jitter <= 120_000);
      assert.equal(
        (await scheduler.tick(new Date(s.nextFireAt!.getTime() + jitter - 1))).created.filter(
          (r) => r.scheduleId === s.id,
        ).length,
        0,
      );
      const fired = (await scheduler.tick(new Date(s.nextFireAt!.getTime() + jitter))).created.filter(
        (r) => r.scheduleId === s.id,
      );
      assert.equal(fired.length, 1);
      assert.equal(fired[0]!.jitterMs, jitter);
      assert.equal(
        fired[0]!.scheduledFor?.toISOString(),
        s.nextFireAt!.toISOString(),
        'scheduledFor stays nominal',
      );
      await schedules.deleteSchedule(t.server.ctx, admin, s.id);
      await t.server.worker!.drain();
    });

    it('retries failures with exponential backoff, and never a cancelled run; a failure leaves the default state', async () => {
      const slug = await project(notebook('Flaky', fence('js boom', "throw new Error('upstream is down')")));
      const s = await create(
        slug,
        { kind: 'daily', time: '12:00' },
        { policies: { maxAttempts: 3, retryBackoffMs: 60_000 } },
      );
      const fireAt = s.nextFireAt!;
      await scheduler.tick(fireAt);
      await t.server.worker!.drain();
      let runs = await runsOf(s.id);
      assert.equal(runs.length, 1);
      assert.equal(runs[0]!.status, 'failed');
      assert.equal(new Date(runs[0]!.retry_at!).getTime(), t.clock.now().getTime() + 60_000);
      assert.equal((await scheduler.tick(new Date(t.clock.now().getTime() + 59_000))).retries.length, 0);
      t.clock.advance(60_000);
      const first = await scheduler.tick(t.clock.now());
      assert.equal(first.retries.length, 1);
      assert.equal(first.retries[0]!.retryNumber, 1);
      assert.equal(first.retries[0]!.scheduledFor?.toISOString(), fireAt.toISOString());
      await t.server.worker!.drain();
      runs = await runsOf(s.id);
      assert.equal(
        new Date(runs[1]!.retry_at!).getTime(),
        t.clock.now().getTime() + 120_000,
        'backoff doubles',
      );
      t.clock.advance(120_000);
      assert.equal((await scheduler.tick(t.clock.now())).retries.length, 1);
      await t.server.worker!.drain();
      runs = await runsOf(s.id);
      assert.equal(runs.length, 3, 'three attempts in all');
      assert.equal(runs[2]!.retry_at, null, 'no fourth attempt');
      assert.equal(
        (await t.json('GET', `/api/projects/${slug}/app`)).status,
        404,
        'failed runs never become the default state',
      );

      // A cancelled scheduled run is not retried.
      t.clock.advance(Math.max(0, fireAt.getTime() - t.clock.now().getTime()) + 1000);
      await schedules.updateSchedule(t.server.ctx, admin, s.id, { policies: { maxAttempts: 3 } });
      const next = (await ss.findSchedule(t.server.ctx.db, s.id))!.nextFireAt!;
      const fired = await scheduler.tick(next);
      await t.json('POST', `/api/runs/${fired.created[0]!.id}/cancel`);
      const cancelled = (await runsOf(s.id)).find((r) => r.id === fired.created[0]!.id)!;
      assert.equal(cancelled.status, 'cancelled');
      assert.equal(cancelled.retry_at, null);
      await schedules.deleteSchedule(t.server.ctx, admin, s.id);
    });

    it('backfills the fire times of a past interval, each with its own scheduledFor, once', async () => {
      const slug = await project();
      const s = await create(slug, { kind: 'daily', time: '06:00' });
      const range = { from: at('2026-02-20T00:00:00Z'), to: at('2026-02-25T00:00:00Z') };
      const first = await schedules.backfill(t.server.ctx, admin, s.id, range);
      assert.deepEqual(
        first.created.map((r) => r.scheduledFor!.toISOString()),
        [
          '2026-02-20T05:00:00.000Z',
          '2026-02-21T05:00:00.000Z',
          '2026-02-22T05:00:00.000Z',
          '2026-02-23T05:00:00.000Z',
          '2026-02-24T05:00:00.000Z',
        ],
      );
      assert.ok(first.created.every((r) => r.trigger === 'backfill' && r.context === 'scheduled'));
      const again = await schedules.backfill(t.server.ctx, admin, s.id, range);
      assert.equal(again.created.length, 0);
      assert.equal(again.existing, 5);
      await t.server.worker!.drain();
      const outputs = await Promise.all(
        first.created.map(
          async (r) => (await t.json('GET', `/api/runs/${r.id}/snapshot`)).body.cells[0].output.value.at,
        ),
      );
      assert.deepEqual(
        outputs,
        first.created.map((r) => r.scheduledFor!.toISOString()),
      );
      await assert.rejects(
        schedules.backfill(t.server.ctx, admin, s.id, {
          from: at('2026-02-25T00:00:00Z'),
          to: at('2026-02-20T00:00:00Z'),
        }),
        /from: must be before to/,
      );
      await schedules.deleteSchedule(t.server.ctx, admin, s.id);
    });

    it('pause-until: no fire while paused, then it resumes by itself', async () => {
      const slug = await project();
      const now = t.clock.now();
      const s = await create(slug, { kind: 'cron', expression: '*/10 * * * *' });
      const until = new Date(now.getTime() + 3600_000);
      const paused = await schedules.pauseSchedule(t.server.ctx, admin, s.id, {
        until,
        note: 'warehouse migration',
      });
      assert.equal(paused.enabled, false);
      assert.equal(paused.pauseNote, 'warehouse migration');
      const during = await scheduler.tick(new Date(now.getTime() + 30 * 60_000));
      assert.equal(during.created.filter((r) => r.scheduleId === s.id).length, 0);
      const resumed = await scheduler.tick(until);
      assert.deepEqual(resumed.resumed, [s.id]);
      const after = (await ss.findSchedule(t.server.ctx.db, s.id))!;
      assert.equal(after.enabled, true);
      assert.ok(after.nextFireAt!.getTime() > until.getTime());
      assert.equal((await runsOf(s.id)).length, 0, 'fire times during the pause are not run');
      await schedules.deleteSchedule(t.server.ctx, admin, s.id);
    });

    it('run now: context scheduled, trigger schedule (issue 15, bug 5), the schedule’s inputs', async () => {
      const slug = await project();
      const s = await create(slug, { kind: 'daily', time: '10:00' }, { inputs: { n: 3 } });
      const run = await schedules.runNow(t.server.ctx, admin, s.id);
      assert.equal(run.trigger, 'schedule');
      assert.equal(run.context, 'scheduled');
      assert.equal(run.scheduleId, s.id);
      assert.deepEqual(run.inputs, { n: 3 });
      await t.server.worker!.drain();
      await schedules.deleteSchedule(t.server.ctx, admin, s.id);
    });

    it('a taken schedule name and a second run now at one instant are refused by the unique keys', async () => {
      // Issue 15: both were recognized by matching /unique|duplicate/ in the driver's message text,
      // which a driver, version or locale can word differently; they now go by SQLSTATE 23505 or
      // SQLite's extended code (store/errors.ts), on both stores.
      const slug = await project();
      const s = await create(slug, { kind: 'daily', time: '10:00' });
      await assert.rejects(
        schedules.createSchedule(t.server.ctx, admin, slug, {
          name: s.name,
          cadence: { kind: 'daily', time: '11:00' },
          timezone: 'UTC',
        }),
        (error: Error & { field?: string }) =>
          error.field === 'name' && /already has a schedule named/.test(error.message),
      );
      await schedules.runNow(t.server.ctx, admin, s.id);
      await assert.rejects(schedules.runNow(t.server.ctx, admin, s.id), /already has a run for/);
      await t.server.worker!.drain();
      await schedules.deleteSchedule(t.server.ctx, admin, s.id);
    });

    it('flags a schedule whose run is overdue', async () => {
      const slug = await project();
      const s = await create(
        slug,
        { kind: 'daily', time: '10:00' },
        { policies: { overdueAfterMs: 60_000 } },
      );
      const fresh = (await ss.findSchedule(t.server.ctx.db, s.id))!;
      // The scheduler has not taken the fire time, 2 minutes after it.
      t.clock.advance(fresh.nextDueAt!.getTime() - t.clock.now().getTime() + 120_000);
      const late = await schedules.health(t.server.ctx, fresh);
      assert.equal(late.overdue, true);
      assert.match(late.overdueReason!, /has not been taken by a scheduler/);
      await scheduler.tick(t.clock.now());
      const queued = await schedules.health(t.server.ctx, (await ss.findSchedule(t.server.ctx.db, s.id))!);
      assert.equal(queued.overdue, true, 'now its run waits for a worker');
      assert.match(queued.overdueReason!, /waited \d+ s for a worker/);
      await t.server.worker!.drain();
      const ran = await schedules.health(t.server.ctx, (await ss.findSchedule(t.server.ctx.db, s.id))!);
      assert.equal(ran.overdue, false);
      assert.equal(ran.lastRun?.status, 'succeeded');
      await schedules.deleteSchedule(t.server.ctx, admin, s.id);
    });

    it('a restart inside the repeated hour fires nothing twice', async () => {
      const slug = await project();
      const s = await schedules.createSchedule(t.server.ctx, admin, slug, {
        name: 'ny-0130',
        cadence: { kind: 'daily', time: '01:30' },
        timezone: 'America/New_York',
      });
      // Move the schedule to the night of the change, as if created the day before.
      await ss.updateSchedule(t.server.ctx.db, {
        ...s,
        nextFireAt: at('2026-11-01T05:30:00.000Z'),
        nextDueAt: at('2026-11-01T05:30:00.000Z'),
      });
      const first = await scheduler.tick(at('2026-11-01T05:30:00.000Z')); // 01:30 EDT
      assert.equal(first.created.filter((r) => r.scheduleId === s.id).length, 1);
      const restarted = new Scheduler(t.server.ctx, { databaseClock: false });
      const second = await restarted.tick(at('2026-11-01T06:40:00.000Z')); // 01:40 EST
      assert.equal(second.created.filter((r) => r.scheduleId === s.id).length, 0);
      assert.equal(
        (await ss.findSchedule(t.server.ctx.db, s.id))!.nextFireAt?.toISOString(),
        '2026-11-02T06:30:00.000Z',
      );
      await schedules.deleteSchedule(t.server.ctx, admin, s.id);
      await t.server.worker!.drain();
    });
  });
}

const postgres = (await testStores())[1]!;
describe('two schedulers on PostgreSQL over 1,000 schedules', { skip: postgres.skip }, () => {
  it('produce every fire time exactly once', async () => {
    const a = await startTestServer(postgres, { clockStart: START });
    const b = await startTestServer(postgres, {
      shared: { dataDir: a.dataDir, url: a.url },
      env: { ALMANAC_ADMIN_TOKEN: a.token },
      clockStart: START,
    });
    try {
      const admin = await a.server.admin();
      await projects.createProject(a.server.ctx, admin, { source: QUICK, slug: 'many' });
      await projects.publish(a.server.ctx, admin, 'many');
      const project = (await projects.getProject(a.server.ctx, admin, 'many')).id;
      const now = new Date(START);
      const rows: ss.Schedule[] = Array.from({ length: 1000 }, (_, i) => ({
        id: randomUUID(),
        workspaceId: admin.workspaceId,
        projectId: project,
        name: `every-minute-${i}`,
        cadence: { kind: 'cron', expression: '* * * * *' },
        timezone: 'UTC',
        inputs: {},
        policies: { ...schedulesDefaults(), overlap: 'allow' },
        enabled: true,
        pausedUntil: null,
        pauseNote: null,
        nextFireAt: new Date('2026-03-02T09:00:00.000Z'),
        nextDueAt: new Date('2026-03-02T09:00:00.000Z'),
        createdBy: admin.userId,
        createdAt: now,
        updatedAt: now,
      }));
      await ss.insertSchedules(a.server.ctx.db, rows);
      const one = new Scheduler(a.server.ctx, { databaseClock: false });
      const two = new Scheduler(b.server.ctx, { databaseClock: false });
      for (const minute of ['09:00', '09:01', '09:02']) {
        const when = new Date(`2026-03-02T${minute}:00.000Z`);
        const [x, y] = await Promise.all([one.tick(when), two.tick(when)]);
        assert.equal(x.created.length + y.created.length, 1000, `${minute}: every schedule once`);
      }
      const counts = await a.server.ctx.db
        .selectFrom('runs')
        .select(['schedule_id', 'scheduled_for', (eb) => eb.fn.countAll<string>().as('n')])
        .where('trigger', '=', 'schedule')
        .groupBy(['schedule_id', 'scheduled_for'])
        .execute();
      assert.equal(counts.length, 3000, 'no missing fire time');
      assert.ok(
        counts.every((c) => Number(c.n) === 1),
        'no duplicate',
      );
    } finally {
      await b.close();
      await a.close();
    }
  });
});

function schedulesDefaults() {
  return {
    overlap: 'skip' as const,
    catchupWindowMs: 3_600_000,
    catchupMode: 'coalesce' as const,
    jitterSeconds: 0,
    timeoutMs: null,
    maxAttempts: 1,
    retryBackoffMs: 30_000,
    overdueAfterMs: 300_000,
  };
}

describe('when a scheduler looks next', () => {
  it('sleeps until the next due time, at most MAX_SLEEP_MS', () => {
    assert.deepEqual(nextPass({ dueInMs: 700, tookNothing: false, standby: false }), {
      delayMs: 700,
      standby: false,
    });
    assert.deepEqual(nextPass({ dueInMs: null, tookNothing: true, standby: false }), {
      delayMs: MAX_SLEEP_MS,
      standby: false,
    });
  });

  it('does not spin on due rows another scheduler holds, and becomes a standby', () => {
    assert.deepEqual(nextPass({ dueInMs: -3, tookNothing: true, standby: false }), {
      delayMs: CONTENDED_RECHECK_MS,
      standby: true,
    });
  });

  it('as a standby wakes a little after each due time, and leads again once it fires something', () => {
    assert.deepEqual(nextPass({ dueInMs: 400, tookNothing: true, standby: true }), {
      delayMs: 400 + STANDBY_DELAY_MS,
      standby: true,
    });
    // The other scheduler stopped: the standby's pass fired the due work itself.
    assert.deepEqual(nextPass({ dueInMs: 1000, tookNothing: false, standby: true }), {
      delayMs: 1000,
      standby: false,
    });
    // More is due at once (a batch left over): go straight on.
    assert.deepEqual(nextPass({ dueInMs: -5, tookNothing: false, standby: true }), {
      delayMs: -5,
      standby: false,
    });
  });
});
