/**
 * Plans (issue 16): the Professional plan's limits are refused with a 403 naming the plan and the
 * limit, a downgrade pauses (never deletes) what the plan does not allow, an upgrade lets it resume,
 * and Slack deliveries after a downgrade are skipped with the reason recorded.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import * as notifications from '../src/services/notification-service.ts';
import * as schedules from '../src/services/schedule-service.ts';
import type { Principal } from '../src/services/service-context.ts';
import * as ns from '../src/store/notification-store.ts';
import * as ss from '../src/store/schedule-store.ts';
import { notebook, startTestServer, type TestServer, testStores } from './support/server-harness.ts';
import { type FakeSlack, startFakeSlack } from './support/slack-server.ts';

const SOURCE = notebook('Sales', '```js total\nreturn 42;\n```\n');
const DAILY = { kind: 'daily', time: '09:00' };
const CRON = { kind: 'cron', expression: '*/5 * * * *' };

for (const store of await testStores()) {
  describe(`plans on ${store.name}`, { skip: store.skip }, () => {
    let t: TestServer;
    let admin: Principal;
    let slack: FakeSlack;
    let counter = 0;
    before(async () => {
      slack = await startFakeSlack({ users: { 'admin@localhost': 'U1' } });
      t = await startTestServer(store, {
        notifier: { retryBaseMs: 1000, screenshots: null },
        env: { ALMANAC_SLACK_API_URL: slack.apiUrl },
      });
      admin = await t.server.admin();
    });
    after(async () => {
      await slack?.close();
      await t?.close();
    });

    const setPlan = (plan: string) => t.json('PUT', '/api/workspace/plan', { plan });
    const project = async () => {
      const slug = `p${++counter}`;
      const created = await t.json('POST', '/api/projects', { source: SOURCE, slug });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal((await t.json('POST', `/api/projects/${slug}/publish`, {})).status, 201);
      return slug;
    };
    const schedule = (slug: string, name: string, cadence: unknown) =>
      t.json('POST', `/api/projects/${slug}/schedules`, { name, cadence, timezone: 'UTC' });

    it('a self-hosted install is on Team, and a bad plan names the field (only admins set it: the authorization matrix)', async () => {
      const shown = await t.json('GET', '/api/workspace/plan');
      assert.equal(shown.status, 200);
      assert.equal(shown.body.plan, 'team');
      assert.equal(shown.body.limits.schedulesPerProject, null);
      const bad = await setPlan('gold');
      assert.equal(bad.status, 400);
      assert.match(JSON.stringify(bad.body), /plan/);
    });

    it('Professional refuses a second schedule, a cron schedule and Slack rules, naming the plan', async () => {
      assert.equal((await setPlan('professional')).status, 200);
      try {
        const slug = await project();
        assert.equal((await schedule(slug, 'first', DAILY)).status, 201);
        const second = await schedule(slug, 'second', DAILY);
        assert.equal(second.status, 403);
        assert.match(
          second.body.error.message,
          /the Professional plan allows 1 schedule per project; upgrade to Team for more/,
        );
        const other = await project();
        const cron = await schedule(other, 'cron', CRON);
        assert.equal(cron.status, 403);
        assert.match(cron.body.error.message, /Professional plan allows preset cadences only/);
        for (const destination of [
          { kind: 'slack_channel', channel: '#ops' },
          { kind: 'user', userId: admin.userId, via: 'slack' },
          { kind: 'user', userId: admin.userId, via: 'both' },
        ]) {
          const rule = await t.json('POST', `/api/projects/${slug}/notification-rules`, {
            destinations: [destination],
          });
          assert.equal(rule.status, 403, JSON.stringify(destination));
          assert.match(rule.body.error.message, /Professional plan has no Slack notifications/);
        }
        const email = await t.json('POST', `/api/projects/${slug}/notification-rules`, {
          destinations: [{ kind: 'user', userId: admin.userId, via: 'email' }],
        });
        assert.equal(email.status, 201, JSON.stringify(email.body));
      } finally {
        await setPlan('team');
      }
    });

    it('a downgrade pauses cron schedules and those over the limit with a note, deletes nothing; an upgrade lets them resume', async () => {
      const slug = await project();
      const first = await schedule(slug, 'oldest', DAILY);
      t.clock.advance(1000);
      const second = await schedule(slug, 'newer', DAILY);
      const cronSlug = await project();
      const cron = await schedule(cronSlug, 'every five', CRON);
      for (const r of [first, second, cron]) assert.equal(r.status, 201, JSON.stringify(r.body));

      const changed = await setPlan('professional');
      assert.equal(changed.status, 200);
      const pausedIds = changed.body.paused
        .filter((p: { projectId: string }) => [first.body.project, cron.body.project].includes(p.projectId))
        .map((p: { id: string }) => p.id)
        .sort();
      assert.deepEqual(pausedIds, [second.body.id, cron.body.id].sort());
      const newer = await t.json('GET', `/api/schedules/${second.body.id}`);
      assert.equal(newer.body.enabled, false);
      assert.match(newer.body.pauseNote, /Professional plan, which allows 1 schedule per project/);
      const every = await t.json('GET', `/api/schedules/${cron.body.id}`);
      assert.equal(every.body.enabled, false);
      assert.match(every.body.pauseNote, /Professional plan, which allows preset cadences only/);
      assert.equal((await t.json('GET', `/api/schedules/${first.body.id}`)).body.enabled, true);
      // Nothing deleted, and the rules of the paused schedules are still there.
      assert.equal(
        (await ss.listSchedules(t.server.ctx.db, admin.workspaceId, newer.body.project)).length,
        2,
      );
      assert.equal(
        (await notifications.listRules(t.server.ctx, admin, { project: cronSlug, scheduleId: cron.body.id }))
          .length,
        1,
      );
      // On Professional they stay paused: resuming is refused with the plan's words.
      const refused = await t.json('POST', `/api/schedules/${cron.body.id}/resume`, {});
      assert.equal(refused.status, 403);
      assert.match(refused.body.error.message, /Professional plan/);
      const refusedSecond = await t.json('POST', `/api/schedules/${second.body.id}/resume`, {});
      assert.equal(refusedSecond.status, 403);

      assert.equal((await setPlan('team')).body.paused.length, 0);
      for (const id of [second.body.id, cron.body.id]) {
        const resumed = await t.json('POST', `/api/schedules/${id}/resume`, {});
        assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
        assert.equal(resumed.body.enabled, true);
      }
      // Clean up so later tests fire only their own schedule.
      for (const id of [first.body.id, second.body.id, cron.body.id]) {
        await schedules.deleteSchedule(t.server.ctx, admin, id);
      }
    });

    it('after a downgrade, Slack deliveries are skipped with the reason recorded; email still goes', async () => {
      await notifications.configureIntegrations(t.server.ctx, admin, { slackToken: slack.token });
      const slug = await project();
      const created = await schedule(slug, 'daily', DAILY);
      assert.equal(created.status, 201);
      await notifications.createRule(t.server.ctx, admin, {
        project: slug,
        scheduleId: created.body.id,
        rule: {
          trigger: { kind: 'success' },
          destinations: [
            { kind: 'slack_channel', channel: '#ops' },
            { kind: 'user', userId: admin.userId, via: 'both' },
          ],
        },
      });
      assert.equal((await setPlan('professional')).status, 200);
      try {
        const s = await schedules.getSchedule(t.server.ctx, admin, created.body.id);
        assert.equal(s.enabled, true, 'the only schedule of its project stays on');
        t.clock.set(s.nextFireAt!.getTime());
        const report = await new Scheduler(t.server.ctx, { databaseClock: false }).tick(s.nextFireAt!);
        const run = report.created.find((r) => r.scheduleId === s.id);
        assert.ok(run, 'the schedule fired');
        await t.server.worker!.drain();
        await t.server.notifier!.drain();
        const byDestination = Object.fromEntries(
          (await ns.listDeliveries(t.server.ctx.db, run.id)).map((d) => [d.destination, d]),
        );
        for (const key of ['slack:#ops', 'slack-dm:admin@localhost']) {
          assert.equal(byDestination[key]?.status, 'failed', key);
          assert.match(byDestination[key]?.note ?? '', /skipped: the Professional plan has no Slack/);
        }
        assert.equal(byDestination['email:admin@localhost']?.status, 'sent');
        assert.equal(slack.messages.length, 0, 'nothing reached Slack');
      } finally {
        await setPlan('team');
      }
    });
  });
}
