/**
 * Notifications end to end on both stores, with real parts: scheduled runs through the scheduler and the
 * real executor, deliveries written in the run's finishing transaction, the notifier sending email to
 * the outbox folder and to a real SMTP server on loopback (smtp-server, parsed with mailparser), and
 * signed webhooks to a local receiver. Retries, final failures, the default rule, resend, the private
 * address guard, and no duplicates after a notifier dies mid-send.
 */
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { SlackClient } from '../src/notify/slack.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import * as notifications from '../src/services/notification-service.ts';
import * as projects from '../src/services/project-service.ts';
import * as schedules from '../src/services/schedule-service.ts';
import type { Principal } from '../src/services/service-context.ts';
import * as ns from '../src/store/notification-store.ts';
import { fence } from './support/harness.ts';
import { notebook, startTestServer, type TestServer, testStores } from './support/server-harness.ts';
import { type FakeSlack, startFakeSlack } from './support/slack-server.ts';

const START = Date.parse('2026-03-02T08:59:00.000Z');

const SALES = notebook(
  'Sales report',
  fence(
    'sql top',
    "select 'EMEA' as region, 3 as n union all select 'APAC, Japan' as region, 2 as n order by n desc",
  ) + fence('js total', 'return 5'),
);
const BROKEN = notebook('Broken', fence('js boom', "throw new Error('upstream is down')"));

interface Received {
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A webhook receiver that answers with the statuses given (with headers, if any), then 200. */
async function receiver(): Promise<{
  url: string;
  received: Received[];
  answers: (number | [number, Record<string, string>])[];
  close(): Promise<void>;
}> {
  const received: Received[] = [];
  const answers: (number | [number, Record<string, string>])[] = [];
  const server: Server = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      const answer = answers.shift() ?? 200;
      if (typeof answer === 'number') res.writeHead(answer).end();
      else res.writeHead(answer[0], answer[1]).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    answers,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

function verify(key: string, header: string, body: string): boolean {
  const parts = Object.fromEntries(header.split(',').map((p) => p.split('=') as [string, string]));
  const expected = createHmac('sha256', key).update(`${parts['t']}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(parts['v1']!, 'hex'));
}

for (const store of await testStores()) {
  describe(`notifications on ${store.name}`, { skip: store.skip }, () => {
    let t: TestServer;
    let admin: Principal;
    let scheduler: Scheduler;
    let hook: Awaited<ReturnType<typeof receiver>>;
    let slack: FakeSlack;
    before(async () => {
      slack = await startFakeSlack({ users: { 'admin@localhost': 'U1' } });
      t = await startTestServer(store, {
        clockStart: START,
        // No Chromium here: test/screenshots.test.ts takes real ones.
        notifier: { retryBaseMs: 1000, screenshots: null },
        env: { ALMANAC_SLACK_API_URL: slack.apiUrl },
      });
      admin = await t.server.admin();
      scheduler = new Scheduler(t.server.ctx, { databaseClock: false });
      hook = await receiver();
      // The receiver is on loopback, which webhooks refuse unless an admin allows it.
      await notifications.configureIntegrations(t.server.ctx, admin, { allowPrivateWebhooks: true });
    });
    after(async () => {
      await slack?.close();
      await hook?.close();
      await t?.close();
    });

    let counter = 0;
    /** A published project with a daily 10:00 Berlin schedule; returns the schedule. */
    const live: string[] = [];
    const scheduled = async (source: string) => {
      // One live schedule at a time, so a tick fires only the schedule under test.
      for (const id of live.splice(0)) await schedules.deleteSchedule(t.server.ctx, admin, id);
      const slug = `n${++counter}`;
      await projects.createProject(t.server.ctx, admin, { source, slug });
      await projects.publish(t.server.ctx, admin, slug);
      await t.server.worker!.drain();
      const schedule = await schedules.createSchedule(t.server.ctx, admin, slug, {
        name: `daily ${counter}`,
        cadence: { kind: 'cron', expression: `${counter} * * * *` },
        timezone: 'Europe/Berlin',
      });
      live.push(schedule.id);
      return { slug, schedule };
    };
    /** Fires the schedule's next fire time and runs it; returns the run id. */
    const fire = async (schedule: { id: string }) => {
      const s = await schedules.getSchedule(t.server.ctx, admin, schedule.id);
      t.clock.set(s.nextFireAt!.getTime());
      const report = await scheduler.tick(s.nextFireAt!);
      assert.equal(report.created.length, 1);
      await t.server.worker!.drain();
      return report.created[0]!.id;
    };
    const deliveries = (runId: string) => ns.listDeliveries(t.server.ctx.db, runId);

    it('on success: email to the outbox with a CSV, and a signed webhook, each once', async () => {
      const { slug, schedule } = await scheduled(SALES);
      await notifications.createRule(t.server.ctx, admin, {
        project: slug,
        scheduleId: schedule.id,
        rule: {
          name: 'daily report',
          trigger: { kind: 'success' },
          destinations: [
            { kind: 'user', userId: admin.userId },
            { kind: 'user', userId: admin.userId, via: 'email' },
          ],
          content: {
            subject: '{{app.title}}: {{cells.total}} regions',
            csvCells: ['top'],
            screenshot: 'png',
          },
        },
      });
      // Webhooks carry JSON, never a picture: a rule of their own (issue 15, bug 7 refuses a screenshot there).
      await notifications.createRule(t.server.ctx, admin, {
        project: slug,
        scheduleId: schedule.id,
        rule: {
          name: 'daily report hook',
          trigger: { kind: 'success' },
          destinations: [{ kind: 'webhook', url: hook.url }],
          content: { subject: '{{app.title}}: {{cells.total}} regions', csvCells: ['top'] },
        },
      });
      const runId = await fire(schedule);
      const planned = await deliveries(runId);
      assert.deepEqual(
        planned.map((d) => [d.channel, d.status]),
        [
          ['email', 'pending'],
          ['webhook', 'pending'],
        ],
        'the same user twice is one delivery',
      );
      await t.server.notifier!.drain();
      const done = await deliveries(runId);
      assert.deepEqual(
        done.map((d) => [d.status, d.attempts, d.error, d.note]),
        [
          [
            'sent',
            1,
            null,
            'screenshot unavailable: no Chromium on the server (install chromium or set ALMANAC_CHROMIUM)',
          ],
          ['sent', 1, null, null],
        ],
        'without Chromium the message still goes out, with a note',
      );
      const outbox = readdirSync(join(t.dataDir, 'outbox')).filter((f) => f.includes(done[0]!.id));
      assert.equal(outbox.length, 1);
      const mail = await simpleParser(readFileSync(join(t.dataDir, 'outbox', outbox[0]!)));
      assert.equal(mail.subject, 'Sales report: 5 regions');
      assert.match(mail.text ?? '', new RegExp(`/apps/${slug}/runs/${runId}`));
      assert.match(mail.text ?? '', /\(screenshot unavailable: no Chromium on the server/);
      const csv = mail.attachments.find((a) => a.filename === 'top.csv');
      assert.equal(csv?.content.toString(), 'region,n\r\nEMEA,3\r\n"APAC, Japan",2\r\n');
      const call = hook.received.at(-1)!;
      const body = JSON.parse(call.body);
      assert.equal(body.type, 'run.succeeded');
      assert.equal(body.runId, runId);
      const key = await notifications.webhookSigningKey(t.server.ctx, admin);
      assert.ok(verify(key, String(call.headers['almanac-signature']), call.body), 'the signature verifies');
      assert.ok(!verify('wrong key', String(call.headers['almanac-signature']), call.body));
    });

    it('a real SMTP server receives the message with its attachments', async () => {
      const messages: Buffer[] = [];
      const smtp = new SMTPServer({
        authOptional: true,
        closeTimeout: 200,
        disabledCommands: ['STARTTLS'],
        onData(stream, _session, callback) {
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            messages.push(Buffer.concat(chunks));
            callback();
          });
        },
      });
      await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', r));
      try {
        const port = (smtp.server.address() as AddressInfo).port;
        await notifications.configureIntegrations(t.server.ctx, admin, {
          smtp: { host: '127.0.0.1', port, secure: false },
          emailFrom: 'reports@almanac.test',
        });
        const { slug, schedule } = await scheduled(SALES);
        await notifications.createRule(t.server.ctx, admin, {
          project: slug,
          scheduleId: schedule.id,
          rule: {
            trigger: { kind: 'all' },
            destinations: [{ kind: 'user', userId: admin.userId }],
            content: { csvCells: ['top'] },
          },
        });
        const runId = await fire(schedule);
        await t.server.notifier!.drain();
        assert.deepEqual(
          (await deliveries(runId)).map((d) => d.status),
          ['sent'],
        );
        assert.equal(messages.length, 1);
        const mail = await simpleParser(messages[0]!);
        assert.equal(mail.from?.text, 'reports@almanac.test');
        assert.match(mail.subject ?? '', /Sales report: run succeeded/);
        assert.deepEqual(
          mail.attachments.map((a) => a.filename),
          ['top.csv'],
        );
        const view = await notifications.getIntegrations(t.server.ctx, admin);
        assert.deepEqual(view.smtp, { host: '127.0.0.1', port, secure: false, user: null });
      } finally {
        await notifications.configureIntegrations(t.server.ctx, admin, { smtp: null });
        await new Promise<void>((r) => smtp.close(() => r()));
      }
    });

    it('retries with backoff, then succeeds; a final failure stops; a 404 is not retried', async () => {
      const { slug, schedule } = await scheduled(SALES);
      await notifications.createRule(t.server.ctx, admin, {
        project: slug,
        scheduleId: schedule.id,
        rule: { trigger: { kind: 'success' }, destinations: [{ kind: 'webhook', url: hook.url }] },
      });
      hook.answers.push(503, 500);
      let runId = await fire(schedule);
      await t.server.notifier!.drain();
      let [d] = await deliveries(runId);
      assert.deepEqual(
        [d!.status, d!.attempts, d!.error],
        ['pending', 1, `webhook http://127.0.0.1:${new URL(hook.url).port} answered HTTP 503`],
      );
      assert.equal(d!.nextAttemptAt.getTime(), t.server.ctx.now().getTime() + 1000);
      t.clock.advance(1000);
      await t.server.notifier!.drain();
      [d] = await deliveries(runId);
      assert.deepEqual([d!.status, d!.attempts], ['pending', 2], 'the second attempt failed too');
      assert.equal(d!.nextAttemptAt.getTime(), t.server.ctx.now().getTime() + 2000, 'the delay doubles');
      t.clock.advance(2000);
      await t.server.notifier!.drain();
      [d] = await deliveries(runId);
      assert.deepEqual([d!.status, d!.attempts, d!.error], ['sent', 3, null]);

      hook.answers.push(500, 500, 500, 500, 500);
      runId = await fire(schedule);
      for (let i = 0; i < 5; i++) {
        await t.server.notifier!.drain();
        t.clock.advance(60_000);
      }
      [d] = await deliveries(runId);
      assert.deepEqual([d!.status, d!.attempts], ['failed', notifications.DELIVERY_ATTEMPTS]);

      // A 429 with Retry-After is retried when the receiver asked, not on our backoff.
      hook.answers.push([429, { 'retry-after': '120' }]);
      runId = await fire(schedule);
      await t.server.notifier!.drain();
      [d] = await deliveries(runId);
      assert.deepEqual([d!.status, d!.attempts], ['pending', 1]);
      assert.match(d!.error ?? '', /answered HTTP 429 \(retry after 120 s\)/);
      assert.equal(d!.nextAttemptAt.getTime(), t.server.ctx.now().getTime() + 120_000);
      t.clock.advance(60_000);
      await t.server.notifier!.drain();
      assert.equal((await deliveries(runId))[0]!.attempts, 1, 'not before the receiver said');
      t.clock.advance(60_000);
      await t.server.notifier!.drain();
      assert.deepEqual(
        (await deliveries(runId)).map((x) => [x.status, x.attempts]),
        [['sent', 2]],
      );

      hook.answers.push(404);
      runId = await fire(schedule);
      await t.server.notifier!.drain();
      [d] = await deliveries(runId);
      assert.deepEqual([d!.status, d!.attempts], ['failed', 1], 'a 404 will not pass later');

      // Resend: back to pending with fresh attempts, then sent.
      await notifications.resendDelivery(t.server.ctx, admin, d!.id);
      await t.server.notifier!.drain();
      [d] = await deliveries(runId);
      assert.deepEqual([d!.status, d!.attempts], ['sent', 1]);
    });

    it('a new schedule\'s own "project owners on failure" rule notifies the owner on failure only', async () => {
      const { schedule } = await scheduled(BROKEN);
      const runId = await fire(schedule);
      const [d] = await deliveries(runId);
      assert.equal(d?.ruleName, 'project owners on failure');
      await t.server.notifier!.drain();
      const file = readdirSync(join(t.dataDir, 'outbox')).find((f) => f.includes(d!.id))!;
      const mail = await simpleParser(readFileSync(join(t.dataDir, 'outbox', file)));
      assert.match(mail.subject ?? '', /Broken: run failed/);
      assert.match(mail.text ?? '', /Failing cell: boom\nError: .*upstream is down/);
      const ok = await scheduled(SALES);
      assert.deepEqual(await deliveries(await fire(ok.schedule)), [], 'a success notifies nobody by default');
    });

    it('a run failed by housekeeping (worker lost) notifies too', async () => {
      const { schedule } = await scheduled(SALES);
      const s = await schedules.getSchedule(t.server.ctx, admin, schedule.id);
      t.clock.set(s.nextFireAt!.getTime());
      const [queued] = (await scheduler.tick(s.nextFireAt!)).created;
      const { claimRuns, housekeeping } = await import('../src/services/run-service.ts');
      const [claimed] = await claimRuns(t.server.ctx, { worker: 'gone', leaseMs: 1000, limit: 1 });
      assert.equal(claimed?.id, queued!.id);
      await t.server.ctx.db.updateTable('runs').set({ attempts: 3 }).where('id', '=', claimed!.id).execute();
      t.clock.advance(1001);
      const report = await housekeeping(t.server.ctx);
      assert.deepEqual(report.lost, [claimed!.id]);
      const [d] = await deliveries(claimed!.id);
      assert.deepEqual([d?.ruleName, d?.destination], ['project owners on failure', 'email:admin@localhost']);
      await t.server.notifier!.drain();
      assert.equal((await deliveries(claimed!.id))[0]!.status, 'sent');
    });

    it('refuses private addresses unless allowed', async () => {
      await notifications.configureIntegrations(t.server.ctx, admin, { allowPrivateWebhooks: false });
      try {
        const { slug, schedule } = await scheduled(SALES);
        await notifications.createRule(t.server.ctx, admin, {
          project: slug,
          scheduleId: schedule.id,
          rule: { trigger: { kind: 'success' }, destinations: [{ kind: 'webhook', url: hook.url }] },
        });
        const before = hook.received.length;
        const runId = await fire(schedule);
        await t.server.notifier!.drain();
        const [d] = await deliveries(runId);
        assert.equal(d!.status, 'failed');
        assert.match(d!.error!, /127\.0\.0\.1 is a private address; an admin can allow private webhooks/);
        assert.equal(hook.received.length, before);
      } finally {
        await notifications.configureIntegrations(t.server.ctx, admin, { allowPrivateWebhooks: true });
      }
    });

    /** A run whose webhook delivery a notifier claimed, then died holding (its lease runs 120 s). */
    async function claimedByDeadNotifier() {
      const { slug, schedule } = await scheduled(SALES);
      await notifications.createRule(t.server.ctx, admin, {
        project: slug,
        scheduleId: schedule.id,
        rule: { trigger: { kind: 'success' }, destinations: [{ kind: 'webhook', url: hook.url }] },
      });
      const runId = await fire(schedule);
      const now = t.server.ctx.now();
      const claimed = await ns.claimDeliveries(t.server.ctx.db, {
        worker: 'dead-notifier',
        now,
        leaseUntil: new Date(now.getTime() + 120_000),
        limit: 10,
        skipLocked: t.server.ctx.capabilities.skipLocked,
      });
      assert.equal(claimed.length, 1);
      return { runId, claimed: claimed[0]!, now };
    }

    it('a notifier that dies after handing a message off: never sent again, ends failed with resend', async () => {
      const { runId, claimed, now } = await claimedByDeadNotifier();
      assert.equal(await ns.markHandedOff(t.server.ctx.db, claimed.id, 'someone-else', now), false);
      assert.equal(await ns.markHandedOff(t.server.ctx.db, claimed.id, 'dead-notifier', now), true);
      const before = hook.received.length;
      t.clock.advance(120_001);
      await t.server.notifier!.drain();
      assert.equal(hook.received.length, before, 'it may have arrived: not sent again');
      let [d] = await deliveries(runId);
      assert.equal(d!.status, 'failed');
      assert.match(d!.error ?? '', /may or may not have arrived; resend it if it did not/);
      await notifications.resendDelivery(t.server.ctx, admin, d!.id);
      await t.server.notifier!.drain();
      [d] = await deliveries(runId);
      assert.deepEqual([d!.status, hook.received.length], ['sent', before + 1]);
    });

    it('a notifier that dies before handing a message off: the lease expires, it goes out once', async () => {
      const { runId, now } = await claimedByDeadNotifier();
      const before = hook.received.length;
      await t.server.notifier!.drain();
      assert.equal(hook.received.length, before, 'nothing is sent while the lease holds');
      t.clock.advance(120_001);
      await t.server.notifier!.drain();
      await t.server.notifier!.drain();
      assert.equal(hook.received.length, before + 1);
      const [d] = await deliveries(runId);
      assert.deepEqual([d!.status, d!.attempts], ['sent', 2]);
      // The finishing transaction cannot add it twice either.
      const run = (
        await t.server.ctx.db
          .selectFrom('runs')
          .select('id')
          .where('id', '=', runId)
          .executeTakeFirstOrThrow()
      ).id;
      const { findRun } = await import('../src/store/run-store.ts');
      assert.equal(
        await notifications.planDeliveries(
          t.server.ctx.db,
          (await findRun(t.server.ctx.db, run))!,
          'succeeded',
          null,
          now,
        ),
        0,
      );
      assert.equal((await deliveries(runId)).length, 1);
    });

    it('Slack: a channel message with blocks and uploaded files, a DM by email, and the not-in-channel error', async () => {
      const client = new SlackClient({ apiUrl: slack.apiUrl });
      await assert.rejects(
        notifications.configureIntegrations(
          t.server.ctx,
          admin,
          { slackToken: 'xoxb-wrong' },
          { slackToken: (tok) => client.authTest(tok).then(() => {}) },
        ),
        /slackToken: Slack did not accept it: Slack rejected the bot token \(invalid_auth\)/,
      );
      await notifications.configureIntegrations(
        t.server.ctx,
        admin,
        { slackToken: slack.token },
        { slackToken: (tok) => client.authTest(tok).then(() => {}) },
      );
      assert.equal((await notifications.getIntegrations(t.server.ctx, admin)).slack, true);
      assert.deepEqual(
        (await client.listChannels(slack.token)).map((c) => c.name),
        ['general', 'ops', 'public-not-joined'],
      );
      const check = {
        slackChannel: (_w: string, channel: string) =>
          client.checkChannel(slack.token, channel).then(() => {}),
      };
      const { slug, schedule } = await scheduled(SALES);
      await assert.rejects(
        notifications.createRule(
          t.server.ctx,
          admin,
          { project: slug, rule: { destinations: [{ kind: 'slack_channel', channel: '#secret' }] } },
          check,
        ),
        /rule\.destinations\[0\]\.channel: invite the Almanac bot to #secret/,
      );
      await notifications.createRule(t.server.ctx, admin, {
        project: slug,
        scheduleId: schedule.id,
        rule: {
          trigger: { kind: 'success' },
          destinations: [
            { kind: 'slack_channel', channel: '#ops' },
            { kind: 'user', userId: admin.userId, via: 'slack' },
            { kind: 'slack_channel', channel: 'public-not-joined' },
          ],
          content: { csvCells: ['top'] },
        },
      });
      const runId = await fire(schedule);
      await t.server.notifier!.drain();
      const byDestination = Object.fromEntries((await deliveries(runId)).map((d) => [d.destination, d]));
      assert.equal(byDestination['slack:#ops']?.status, 'sent');
      assert.equal(byDestination['slack-dm:admin@localhost']?.status, 'sent');
      assert.deepEqual(
        [byDestination['slack:#public-not-joined']?.status, byDestination['slack:#public-not-joined']?.error],
        ['failed', 'invite the Almanac bot to #public-not-joined'],
      );
      const ops = slack.messages.find((m) => m.channel === 'C200')!;
      assert.match(ops.text, /Sales report: run succeeded/);
      assert.ok(JSON.stringify(ops.blocks).includes(`/apps/${slug}/runs/${runId}`), 'a button opens the run');
      assert.ok(
        slack.messages.some((m) => m.channel === 'DU1'),
        'the DM went to the user found by email',
      );
      const csv = slack.files.find((f) => f.channel === 'C200');
      assert.deepEqual(
        [csv?.filename, csv?.threadTs],
        ['top.csv', ops.ts],
        'uploaded into the message thread',
      );
      assert.match(csv!.bytes.toString(), /^region,n\r\nEMEA,3/);
    });

    it('through the API: rules, inline rules on a run, deliveries with resend, the outbox, admin-only integrations', async () => {
      const { slug, schedule } = await scheduled(SALES);
      const created = await t.json('POST', `/api/projects/${slug}/notification-rules`, {
        name: 'to me',
        scheduleId: schedule.id,
        trigger: { kind: 'success' },
        destinations: [{ kind: 'user', userId: admin.userId, via: 'email' }],
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.scheduleId, schedule.id);
      const listed = await t.json('GET', `/api/projects/${slug}/notification-rules?schedule=${schedule.id}`);
      // Next to the rule every new schedule starts with (issue 15, bug 6).
      assert.deepEqual(
        listed.body
          .map((r: { id: string; name: string }) => (r.id === created.body.id ? 'created' : r.name))
          .sort(),
        ['created', 'project owners on failure'],
      );
      const runId = await fire(schedule);
      await t.server.notifier!.drain();
      const log = await t.json('GET', `/api/runs/${runId}/deliveries`);
      assert.deepEqual(
        log.body.map((d: { destination: string; status: string; because: string }) => [
          d.destination,
          d.status,
          d.because,
        ]),
        [['email:admin@localhost', 'sent', 'the run succeeded']],
      );
      const resent = await t.json('POST', `/api/deliveries/${log.body[0].id}/resend`);
      assert.deepEqual([resent.status, resent.body.status, resent.body.attempts], [200, 'pending', 0]);
      await t.server.notifier!.drain();
      const outbox = await t.json('GET', '/api/outbox');
      const entries = outbox.body.filter((e: { deliveryId: string }) => e.deliveryId === log.body[0].id);
      assert.equal(entries.length, 2, 'the first send and the resend');
      const eml = await t.api('GET', entries[0].url);
      assert.equal(eml.headers.get('content-type'), 'message/rfc822');
      assert.match((await simpleParser(Buffer.from(await eml.arrayBuffer()))).subject ?? '', /Sales report/);
      const parsed = await t.json('GET', `${entries[0].url}/message`);
      assert.equal(parsed.status, 200, JSON.stringify(parsed.body));
      assert.match(parsed.body.subject, /Sales report/);
      assert.match(parsed.body.to, /admin@localhost/);

      // Inline rules travel with an API-triggered run.
      const run = await t.json('POST', `/api/projects/${slug}/runs`, {
        notifications: [{ trigger: { kind: 'all' }, destinations: [{ kind: 'webhook', url: hook.url }] }],
      });
      assert.equal(run.status, 201, JSON.stringify(run.body));
      await t.server.worker!.drain();
      await t.server.notifier!.drain();
      const inline = await t.json('GET', `/api/runs/${run.body.id}/deliveries`);
      assert.deepEqual(
        inline.body.map((d: { channel: string; status: string }) => [d.channel, d.status]),
        [['webhook', 'sent']],
      );
      assert.equal(JSON.parse(hook.received.at(-1)!.body).runId, run.body.id);

      // Integrations: never the secrets; changing them is for admins.
      const view = await t.json('GET', '/api/integrations');
      assert.equal(JSON.stringify(view.body).includes('xoxb'), false);
      const viewer = await t.server.ctx.db
        .insertInto('users')
        .values({
          id: `v${counter}`,
          workspace_id: admin.workspaceId,
          email: `v${counter}@example.com`,
          name: 'Viewer',
          role: 'member',
        })
        .execute();
      assert.ok(viewer);
      const { createApiToken } = await import('../src/services/workspace-service.ts');
      const token = await createApiToken(
        t.server.ctx,
        { userId: `v${counter}`, workspaceId: admin.workspaceId, role: 'member', name: 'Viewer' },
        'viewer',
      );
      const denied = await t.json('PUT', '/api/integrations', { allowPrivateWebhooks: false }, token);
      assert.deepEqual([denied.status, denied.body.error.code], [403, 'forbidden']);
      assert.match(denied.body.error.message, /only a workspace admin may change notification integrations/);
    });

    it('a restricted project is invisible to a viewer until a rule names them, which grants view access', async () => {
      const { slug, schedule } = await scheduled(SALES);
      const viewerId = `restricted-viewer-${counter}`;
      await t.server.ctx.db
        .insertInto('users')
        .values({
          id: viewerId,
          workspace_id: admin.workspaceId,
          email: `${viewerId}@example.com`,
          name: 'V',
          role: 'member',
        })
        .execute();
      const { createApiToken } = await import('../src/services/workspace-service.ts');
      const token = await createApiToken(
        t.server.ctx,
        { userId: viewerId, workspaceId: admin.workspaceId, role: 'member', name: 'V' },
        'viewer',
      );
      const runId = await fire(schedule);
      const denied = await t.json(
        'PUT',
        `/api/projects/${slug}/visibility`,
        { visibility: 'restricted' },
        token,
      );
      assert.equal(denied.status, 403, 'a viewer cannot restrict a project they did not create');
      const set = await t.json('PUT', `/api/projects/${slug}/visibility`, { visibility: 'restricted' });
      assert.deepEqual([set.status, set.body.visibility], [200, 'restricted']);
      for (const path of [
        `/api/projects/${slug}`,
        `/api/projects/${slug}/app`,
        `/api/runs/${runId}`,
        `/api/runs/${runId}/snapshot`,
        `/api/schedules/${schedule.id}`,
      ]) {
        assert.equal((await t.api('GET', path, undefined, token)).status, 404, `${path} is hidden`);
      }
      const listed = await t.json('GET', '/api/projects', undefined, token);
      assert.ok(!listed.body.some((p: { slug: string }) => p.slug === slug), 'not listed');
      const log = await t.json('GET', '/api/runs?limit=200', undefined, token);
      assert.ok(!log.body.runs.some((r: { id: string }) => r.id === runId), 'its runs are not in the log');
      assert.equal((await t.api('GET', `/api/projects/${slug}`)).status, 200, 'an admin still sees it');

      // Naming the viewer as a recipient grants them view access, recorded with the reason.
      await notifications.createRule(t.server.ctx, admin, {
        project: slug,
        scheduleId: schedule.id,
        rule: { trigger: { kind: 'success' }, destinations: [{ kind: 'user', userId: viewerId }] },
      });
      const grant = await t.server.ctx.db
        .selectFrom('project_grants')
        .selectAll()
        .where('principal', '=', `user:${viewerId}`)
        .executeTakeFirst();
      assert.equal(grant?.reason, 'notification recipient');
      assert.equal(
        (await t.api('GET', `/api/projects/${slug}/app`, undefined, token)).status,
        200,
        'now they see the app',
      );
      // App Only (issue 16): the app, and the runs they are told about; not the runs before they were.
      assert.equal((await t.api('GET', `/api/runs/${runId}/snapshot`, undefined, token)).status, 403);
      const toldAbout = await fire(schedule);
      assert.equal((await t.api('GET', `/api/runs/${toldAbout}/snapshot`, undefined, token)).status, 200);
    });

    it('rejects a rule with no recipients, an unknown user, or a CSV of a cell that is not a table', async () => {
      const { slug } = await scheduled(notebook('Prose', `Some text\n\n${fence('js total', 'return 1')}`));
      await assert.rejects(
        notifications.createRule(t.server.ctx, admin, { project: slug, rule: { destinations: [] } }),
        /rule\.destinations: has no recipients/,
      );
      await assert.rejects(
        notifications.createRule(t.server.ctx, admin, {
          project: slug,
          rule: { destinations: [{ kind: 'user', userId: 'nobody' }] },
        }),
        /rule\.destinations\[0\]\.userId: no user 'nobody' in this workspace/,
      );
      await assert.rejects(
        notifications.createRule(t.server.ctx, admin, {
          project: slug,
          rule: {
            destinations: [{ kind: 'user', userId: admin.userId }],
            content: { csvCells: ['missing'] },
          },
        }),
        /rule\.content\.csvCells: the published notebook has no cell 'missing'/,
      );
    });
  });
}
