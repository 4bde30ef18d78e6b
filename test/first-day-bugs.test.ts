/**
 * Issue 15, section 4 ("Bugs found on the first day"): the bugs that lived in the services, each a
 * regression test named after it, through the real server (API routes, the real worker and executor,
 * the scheduler's tick) on both stores, with a local server that speaks Slack's Web API.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { RUN_TRIGGERS } from '../src/domain/run.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import type { Principal } from '../src/services/service-context.ts';
import { migrate } from '../src/store/migrations.ts';
import * as ns from '../src/store/notification-store.ts';
import { fence } from './support/harness.ts';
import { notebook, startTestServer, type TestServer, testStores } from './support/server-harness.ts';
import { type FakeSlack, startFakeSlack } from './support/slack-server.ts';
import { until } from './support/until.ts';

const START = Date.parse('2026-03-02T08:59:00.000Z');

const GOOD = (n: number) => notebook('Report', fence('js total', `return ${n}`));
const BROKEN = notebook('Report', fence('js total', "throw new Error('upstream is down')"));

for (const store of await testStores()) {
  describe(`first-day bugs (issue 15) on ${store.name}`, { skip: store.skip }, () => {
    let t: TestServer;
    let admin: Principal;
    let scheduler: Scheduler;
    let slack: FakeSlack;
    before(async () => {
      slack = await startFakeSlack();
      t = await startTestServer(store, {
        clockStart: START,
        notifier: { retryBaseMs: 1000, screenshots: null },
        env: { ALMANAC_SLACK_API_URL: slack.apiUrl },
      });
      admin = await t.server.admin();
      scheduler = new Scheduler(t.server.ctx, { databaseClock: false });
    });
    after(async () => {
      await slack?.close();
      await t?.close();
    });

    let counter = 0;
    /** A new project with `source` published and its publish run done; returns the slug. */
    const published = async (source: string) => {
      const slug = `bug${++counter}`;
      assert.equal((await t.json('POST', '/api/projects', { source, slug })).status, 201);
      assert.equal((await t.json('POST', `/api/projects/${slug}/publish`, {})).status, 201);
      await t.server.worker!.drain();
      return slug;
    };
    const republish = async (slug: string, source: string) => {
      assert.equal((await t.json('PUT', `/api/projects/${slug}/draft`, { source })).status, 200);
      const result = await t.json('POST', `/api/projects/${slug}/publish`, {});
      await t.server.worker!.drain();
      return result;
    };
    const defaultRun = async (slug: string) =>
      (await t.json('GET', `/api/projects/${slug}/app/settings`)).body.defaultRunId as string | null;
    let schedules = 0;
    const schedule = async (slug: string) => {
      const created = await t.json('POST', `/api/projects/${slug}/schedules`, {
        name: `hourly ${++schedules}`,
        cadence: { kind: 'cron', expression: `${counter % 60} * * * *` },
        timezone: 'UTC',
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      return created.body.id as string;
    };
    /** Fires the schedule's next fire time through the scheduler and runs it; returns the run. */
    const fire = async (scheduleId: string) => {
      const s = (await t.json('GET', `/api/schedules/${scheduleId}`)).body;
      const at = new Date(s.nextFireAt);
      t.clock.set(at.getTime());
      const report = await scheduler.tick(at);
      const mine = report.created.filter((r) => r.scheduleId === scheduleId);
      assert.equal(mine.length, 1);
      await t.server.worker!.drain();
      return (await t.json('GET', `/api/runs/${mine[0]!.id}`)).body;
    };

    // Guards issue 15, bug 3. Before: re-publishing v1's content answered "already has this content;
    // nothing published" (created: false) and v3, the broken version, stayed the one schedules ran,
    // because "current" was "newest by number"; there was no way to roll back.
    it('Rollback is impossible: re-publishing older content makes it current again', async () => {
      const slug = await published(GOOD(1));
      const v1Run = await defaultRun(slug);
      assert.ok(v1Run);
      const v2 = await republish(slug, GOOD(2));
      assert.equal(v2.status, 201);
      const v2Run = await defaultRun(slug);
      assert.equal(v2Run, v2.body.run.id);
      const v3 = await republish(slug, BROKEN);
      assert.equal(v3.body.version.number, 3);
      assert.equal((await t.json('GET', `/api/runs/${v3.body.run.id}`)).body.status, 'failed');

      // Re-publishing v1's content makes v1 current again, and its last good run the default state.
      const back = await republish(slug, GOOD(1));
      assert.equal(back.status, 200);
      assert.equal(back.body.version.number, 1);
      assert.equal(back.body.created, false);
      assert.equal(back.body.reused, true);
      assert.equal(back.body.madeCurrent, true);
      assert.equal(back.body.run, null);
      assert.equal(back.body.defaultRunId, v1Run);
      assert.equal(await defaultRun(slug), v1Run);
      assert.equal((await t.json('GET', `/api/projects/${slug}`)).body.currentVersion, 1);
      assert.equal((await t.json('GET', `/api/projects/${slug}/app/manifest`)).body.version, 1);
      // Again: it is current already, so nothing changes.
      const same = await t.json('POST', `/api/projects/${slug}/publish`, {});
      assert.equal(same.body.madeCurrent, false);

      // The versions list: who published, publish run status, which is current.
      const versions = (await t.json('GET', `/api/projects/${slug}/versions`)).body;
      assert.deepEqual(
        versions.map((v: any) => [v.number, v.current, v.publishRun?.status]),
        [
          [3, false, 'failed'],
          [2, false, 'succeeded'],
          [1, true, 'succeeded'],
        ],
      );
      assert.equal(versions[0].publishedBy.id, admin.userId);
      assert.match(versions[0].contentHash, /^[0-9a-f]{64}$/);

      // Schedules run the current version, not the newest.
      const scheduleId = await schedule(slug);
      const fired = await fire(scheduleId);
      assert.equal(fired.versionId, versions[2].id);
      assert.equal(fired.status, 'succeeded');

      // make-current: v2 has a good run, which becomes the default state at once.
      const toV2 = await t.json('POST', `/api/projects/${slug}/versions/2/make-current`);
      assert.equal(toV2.status, 200);
      assert.deepEqual([toV2.body.madeCurrent, toV2.body.defaultRunId, toV2.body.run], [true, v2Run, null]);
      // A run of v2 still queued when the project rolls back to v1 does not take the app back to v2.
      // (At the very instant of the fire time just run, "run now" would be that fire time's run: 409.)
      assert.equal((await t.json('POST', `/api/schedules/${scheduleId}/run`)).status, 409);
      t.clock.advance(1000);
      const late = (await t.json('POST', `/api/schedules/${scheduleId}/run`)).body;
      assert.equal(late.versionId, versions[1].id);
      const toV1 = await t.json('POST', `/api/projects/${slug}/versions/v1/make-current`);
      assert.equal(toV1.status, 404, 'a version is named by number or id');
      assert.equal((await t.json('POST', `/api/projects/${slug}/versions/1/make-current`)).status, 200);
      const v1Default = await defaultRun(slug);
      await t.server.worker!.drain();
      assert.equal((await t.json('GET', `/api/runs/${late.id}`)).body.status, 'succeeded');
      assert.equal(await defaultRun(slug), v1Default);

      // A version with no good run gets a publish run for its default state.
      const toV3 = await t.json('POST', `/api/projects/${slug}/versions/3/make-current`);
      assert.equal(toV3.body.madeCurrent, true);
      assert.equal(toV3.body.defaultRunId, null);
      assert.equal(toV3.body.run.trigger, 'publish');
      assert.equal(toV3.body.run.versionId, versions[0].id);
      await t.server.worker!.drain();
      assert.equal(
        (await t.json('GET', `/api/projects/${slug}/versions/9/make-current`, undefined)).status,
        404,
      );
    });

    // Guards issue 15, bug 5. Before: "run now" was recorded as trigger `manual`, which never refreshes
    // the app's default state, so the app kept showing the previous scheduled run.
    it('Run now on a schedule is a scheduled run and refreshes the default state', async () => {
      const slug = await published(GOOD(7));
      const before = await defaultRun(slug);
      const scheduleId = await schedule(slug);
      t.clock.advance(1000);
      const started = await t.json('POST', `/api/schedules/${scheduleId}/run`);
      assert.equal(started.status, 201);
      assert.equal(started.body.trigger, 'schedule');
      assert.ok(RUN_TRIGGERS.includes(started.body.trigger));
      assert.equal(started.body.context, 'scheduled');
      assert.equal(started.body.scheduleId, scheduleId);
      await t.server.worker!.drain();
      assert.equal((await t.json('GET', `/api/runs/${started.body.id}`)).body.status, 'succeeded');
      const after = await defaultRun(slug);
      assert.notEqual(after, before);
      assert.equal(after, started.body.id);
      // The run log finds it by its schedule.
      const log = (await t.json('GET', `/api/runs?schedule=${scheduleId}`)).body.runs;
      assert.deepEqual(
        log.map((r: any) => r.id),
        [started.body.id],
      );
    });

    // Guards issue 15, bug 6. Before: failures notified the project owner only while the schedule had
    // no rule at all; adding a success-only rule silently stopped failure notices, and the default was
    // never listed, so nobody could see or remove it.
    it('The owner-on-failure default is an explicit, removable rule', async () => {
      const slug = await published(GOOD(1));
      const scheduleId = await schedule(slug);
      const listed = (await t.json('GET', `/api/projects/${slug}/notification-rules?schedule=${scheduleId}`))
        .body;
      assert.equal(listed.length, 1);
      assert.equal(listed[0].name, 'project owners on failure');
      assert.deepEqual(listed[0].trigger, { kind: 'failure' });
      assert.deepEqual(
        listed[0].destinations.map((d: any) => [d.kind, d.userId]),
        [['user', admin.userId]],
      );
      // A success-only rule does not make the failure notice lapse.
      const success = await t.json('POST', `/api/projects/${slug}/notification-rules`, {
        scheduleId,
        name: 'good news',
        trigger: { kind: 'success' },
        destinations: [{ kind: 'user', userId: admin.userId, via: 'email' }],
      });
      assert.equal(success.status, 201, JSON.stringify(success.body));
      await republish(slug, BROKEN);
      const failed = await fire(scheduleId);
      assert.equal(failed.status, 'failed');
      const sent = await ns.listDeliveries(t.server.ctx.db, failed.id);
      assert.deepEqual(
        sent.map((d) => d.ruleName),
        ['project owners on failure'],
      );
      // Removable: without it, a failure notifies nobody.
      assert.equal((await t.json('DELETE', `/api/notification-rules/${listed[0].id}`)).status, 204);
      const again = await fire(scheduleId);
      assert.equal(again.status, 'failed');
      assert.deepEqual(await ns.listDeliveries(t.server.ctx.db, again.id), []);
    });

    // Guards issue 15, bug 7. Before: a screenshot on a failure-only rule (pictures are of successful
    // runs) or on a webhook (which carries JSON) was accepted and silently never sent.
    it('Screenshot options that can do nothing are refused', async () => {
      const slug = await published(GOOD(1));
      const add = (rule: object) => t.json('POST', `/api/projects/${slug}/notification-rules`, rule);
      const onFailure = await add({
        trigger: { kind: 'failure' },
        destinations: [{ kind: 'user', userId: admin.userId }],
        content: { screenshot: 'png' },
      });
      assert.equal(onFailure.status, 400);
      assert.equal(onFailure.body.error.field, 'rule.content.screenshot');
      assert.match(onFailure.body.error.message, /fires only on failure never sends a picture/);
      const toWebhook = await add({
        trigger: { kind: 'all' },
        destinations: [
          { kind: 'user', userId: admin.userId },
          { kind: 'webhook', url: 'https://example.com/hook' },
        ],
        content: { screenshot: 'pdf' },
      });
      assert.equal(toWebhook.status, 400);
      assert.equal(toWebhook.body.error.field, 'rule.content.screenshot');
      assert.match(toWebhook.body.error.message, /destinations\[1\] is a webhook/);
      // Inline rules on an API-triggered run are checked the same way.
      const inline = await t.json('POST', `/api/projects/${slug}/runs`, {
        notifications: [
          {
            trigger: { kind: 'failure' },
            destinations: [{ kind: 'user', userId: admin.userId }],
            content: { screenshot: 'png' },
          },
        ],
      });
      assert.equal(inline.status, 400);
      assert.equal(inline.body.error.field, 'notifications[0].content.screenshot');
      // What can be sent is still accepted.
      const ok = await add({
        trigger: { kind: 'all' },
        destinations: [{ kind: 'user', userId: admin.userId }],
        content: { screenshot: 'png' },
      });
      assert.equal(ok.status, 201, JSON.stringify(ok.body));
    });

    // Guards issue 15, bug 8. Before: only private channels were checked, so a rule to a public
    // channel the bot is not in was accepted and then every delivery failed with not_in_channel.
    it('A rule to a public Slack channel the bot is not in is refused (or joined)', async () => {
      const slug = await published(GOOD(1));
      assert.equal((await t.json('PUT', '/api/integrations', { slackToken: slack.token })).status, 200);
      const add = (channel: string) =>
        t.json('POST', `/api/projects/${slug}/notification-rules`, {
          trigger: { kind: 'success' },
          destinations: [{ kind: 'slack_channel', channel }],
        });
      for (const channel of ['public-not-joined', '#public-not-joined', 'C300']) {
        const refused = await add(channel);
        assert.equal(refused.status, 400, channel);
        assert.equal(refused.body.error.field, 'rule.destinations[0].channel');
        assert.match(
          refused.body.error.message,
          /invite the Almanac bot to #public-not-joined \(\/invite @almanac in the channel\), then try again/,
        );
      }
      assert.equal((await add('secret')).status, 400);
      assert.equal((await add('general')).status, 201);
      // Once the bot is invited, the same rule is accepted.
      slack.channels.find((c) => c.name === 'public-not-joined')!.isMember = true;
      assert.equal((await add('public-not-joined')).status, 201);
    });

    // Guards issue 15, bug 10. Before: cancelling a running run showed "Crash: the run was cancelled
    // (line 34)" on the cell that was running, as if the cell had crashed, and nothing said who cancelled.
    it('Cancel reads as a crash: a cancelled run and its running cell say who cancelled', async () => {
      const slug = await published(
        notebook(
          'Slow',
          fence(
            'js wait',
            // The publish run ends at once; the API run waits until it is cancelled.
            "if (almanac.runContext === 'api-triggered') await new Promise((r) => setTimeout(r, 60_000)); return 1;",
          ) + fence('js after', 'return 2'),
        ),
      );
      t.clock.advance(1000);
      const run = (await t.json('POST', `/api/projects/${slug}/runs`, {})).body;
      const draining = t.server.worker!.drain();
      await until('the cell to be running', async () =>
        (await t.json('GET', `/api/runs/${run.id}`)).body.cells.some(
          (c: { status: string; startedAt: string | null }) => c.status === 'running' && c.startedAt,
        ),
      );
      assert.equal((await t.json('POST', `/api/runs/${run.id}/cancel`)).status, 200);
      await draining;
      const ended = (await t.json('GET', `/api/runs/${run.id}`)).body;
      assert.equal(ended.status, 'cancelled');
      assert.equal(ended.reason, 'cancelled');
      assert.equal(ended.error?.message, `Cancelled by ${admin.name}`);
      assert.deepEqual(
        ended.cells.map((c: { status: string }) => c.status),
        ['cancelled', 'skipped'],
        'the running cell is cancelled, not failed',
      );
      const snapshot = (await t.json('GET', `/api/runs/${run.id}/snapshot`)).body;
      assert.equal(snapshot.message, `Cancelled by ${admin.name}`);
      const cell = snapshot.cells[0];
      assert.equal(cell.status, 'cancelled');
      assert.equal(cell.error.message, `Cancelled by ${admin.name}`);
      assert.doesNotMatch(JSON.stringify(snapshot), /Crash/);
      // The cell's own record (the run's progress) says the same.
      const stored = await t.server.ctx.db
        .selectFrom('run_cells')
        .select(['status', 'result'])
        .where('run_id', '=', run.id)
        .where('idx', '=', 0)
        .executeTakeFirstOrThrow();
      assert.equal(stored.status, 'cancelled');
      assert.equal(JSON.parse(stored.result!).error.message, `Cancelled by ${admin.name}`);
      assert.doesNotMatch(stored.result!, /Crash/);
      assert.equal(
        (
          await t.server.ctx.db
            .selectFrom('runs')
            .select('cancelled_by')
            .where('id', '=', run.id)
            .executeTakeFirstOrThrow()
        ).cancelled_by,
        admin.name,
      );

      // A schedule's "cancel previous" overlap policy says it was the schedule.
      const id = await schedule(slug);
      const patched = await t.json('PATCH', `/api/schedules/${id}`, {
        policies: { overlap: 'cancel_previous' },
      });
      assert.equal(patched.status, 200, JSON.stringify(patched.body));
      const name = (await t.json('GET', `/api/schedules/${id}`)).body.name as string;
      const tickOnce = async () => {
        const at = new Date((await t.json('GET', `/api/schedules/${id}`)).body.nextFireAt);
        t.clock.set(at.getTime());
        return (await scheduler.tick(at)).created.filter((r) => r.scheduleId === id);
      };
      const [first] = await tickOnce();
      await tickOnce(); // the first is still queued: the policy cancels it
      const previous = (await t.json('GET', `/api/runs/${first!.id}`)).body;
      assert.equal(previous.status, 'cancelled');
      assert.equal(
        previous.error?.message,
        `Cancelled by schedule '${name}' (overlap policy) before it started`,
      );
      // Leave nothing queued for the next test: the new run is cancelled too.
      for (const r of (await t.json('GET', `/api/runs?schedule=${id}&status=queued`)).body.runs)
        await t.json('POST', `/api/runs/${r.id}/cancel`);
    });

    // Guards the upgrade path of bugs 3 and 6: a store from before migration 0009 has no current-version
    // pointer and relies on the implicit owners-on-failure default. After it, projects point at their
    // newest version, schedules that relied on the default have it as a rule, and a schedule that had
    // rules of its own gets nothing new (its notifications do not change behind anyone's back).
    it('Migration 0009: current version pointers, and the owners-on-failure rule where the default applied', async () => {
      const { db, dialect } = t.server.ctx;
      const slug = await published(GOOD(1));
      await republish(slug, GOOD(2));
      const bare = await schedule(slug);
      const withRule = await schedule(slug);
      await db.deleteFrom('notification_rules').where('schedule_id', 'in', [bare, withRule]).execute();
      const own = await t.json('POST', `/api/projects/${slug}/notification-rules`, {
        scheduleId: withRule,
        name: 'good news',
        trigger: { kind: 'success' },
        destinations: [{ kind: 'user', userId: admin.userId }],
      });
      assert.equal(own.status, 201);
      // The store as it was before 0009.
      await sql`alter table projects drop column current_version_id`.execute(db);
      await sql`alter table versions drop column message`.execute(db);
      await sql`delete from almanac_migrations where name = '0009_current_version_and_owner_rules'`.execute(
        db,
      );
      assert.deepEqual(await migrate(db, dialect), ['0009_current_version_and_owner_rules']);
      assert.equal((await t.json('GET', `/api/projects/${slug}`)).body.currentVersion, 2);
      const rulesOf = async (id: string) =>
        (await t.json('GET', `/api/projects/${slug}/notification-rules?schedule=${id}`)).body.map(
          (r: any) => [r.name, r.trigger.kind, r.destinations.map((d: any) => d.userId)],
        );
      assert.deepEqual(await rulesOf(bare), [['project owners on failure', 'failure', [admin.userId]]]);
      assert.deepEqual(await rulesOf(withRule), [['good news', 'success', [admin.userId]]]);
    });
  });
}
