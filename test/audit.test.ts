/**
 * The audit log (issue 16): each kind of event lands with its actor and the client's IP (behind a
 * trusted proxy, X-Forwarded-For's first hop), no secret appears in any event, only admins read it,
 * and housekeeping prunes what is older than ALMANAC_AUDIT_RETENTION_DAYS.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { recordAudit } from '../src/services/audit-service.ts';
import { housekeeping } from '../src/services/run-service.ts';
import type { Principal } from '../src/services/service-context.ts';
import { notebook, startTestServer, type TestServer, testStores } from './support/server-harness.ts';

const SOURCE = notebook('Sales', '```js total\nreturn 42;\n```\n');
const SOURCE_2 = notebook('Sales', '```js total\nreturn 43;\n```\n');
const IP = '203.0.113.7';
const PASSWORD = 'correct horse battery';
const SMTP_PASSWORD = 'smtp-pa55word-do-not-log';
const SLACK_TOKEN = 'xoxb-1111-secret-slack-token';

for (const store of await testStores()) {
  describe(`audit log on ${store.name}`, { skip: store.skip }, () => {
    let t: TestServer;
    let admin: Principal;
    before(async () => {
      t = await startTestServer(store, {
        env: { ALMANAC_TRUST_PROXY: 'true', ALMANAC_AUDIT_RETENTION_DAYS: '30' },
      });
      admin = await t.server.admin();
    });
    after(async () => {
      await t?.close();
    });

    /** A request from the client at `ip`, through the trusted proxy. */
    const call = async (method: string, path: string, body?: unknown, token: string | null = t.token) => {
      const response = await t.server.http.app.request(path, {
        method,
        headers: {
          'x-forwarded-for': `${IP}, 10.0.0.1`,
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : null };
    };
    const events = async (query = '') => {
      const all: any[] = [];
      let cursor: string | null = null;
      do {
        const sep = query ? '&' : '';
        const page = await call(
          'GET',
          `/api/audit?${query}${sep}limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        );
        assert.equal(page.status, 200, JSON.stringify(page.body));
        all.push(...page.body.events);
        cursor = page.body.next;
      } while (cursor);
      return all;
    };
    const inviteCode = async (email: string) => {
      const dir = t.server.config.outboxDir;
      for (const file of readdirSync(dir).sort().reverse()) {
        const mail = await simpleParser(readFileSync(join(dir, file)));
        const to = [mail.to].flat().flatMap((a) => a?.value ?? []);
        if (!to.some((v) => v.address === email)) continue;
        const match = (mail.text ?? '').match(/https?:\/\/\S+code=(\S+)/);
        if (match) return decodeURIComponent(match[1]!);
      }
      throw new Error(`no invitation mail to ${email}`);
    };

    let memberToken = '';
    let createdToken = '';

    it('records each kind of event with its actor and the client IP', async () => {
      // Invitation, acceptance, sign-in (failed and succeeded), role change.
      const invited = await call('POST', '/api/users/invitations', {
        email: 'ada@example.com',
        role: 'member',
      });
      assert.equal(invited.status, 201, JSON.stringify(invited.body));
      const adaId: string = invited.body.user.id;
      const code = await inviteCode('ada@example.com');
      const accepted = await call(
        'POST',
        '/api/auth/accept-invite',
        { code, name: 'Ada', password: PASSWORD },
        null,
      );
      assert.equal(accepted.status, 201, JSON.stringify(accepted.body));
      const failed = await call(
        'POST',
        '/api/auth/login',
        { email: 'ada@example.com', password: 'wrong one!' },
        null,
      );
      assert.equal(failed.status, 401);
      const signedIn = await call(
        'POST',
        '/api/auth/login',
        { email: 'ada@example.com', password: PASSWORD },
        null,
      );
      assert.equal(signedIn.status, 200, JSON.stringify(signedIn.body));
      const token = await call(
        'POST',
        '/api/auth/token',
        { email: 'ada@example.com', password: PASSWORD, name: 'cli' },
        null,
      );
      assert.equal(token.status, 201, JSON.stringify(token.body));
      memberToken = token.body.token;
      assert.equal((await call('PUT', `/api/users/${adaId}/role`, { role: 'editor' })).status, 200);
      assert.equal((await call('PUT', `/api/users/${adaId}/role`, { role: 'member' })).status, 200);
      // Tokens: created and revoked.
      const made = await call('POST', '/api/tokens', { name: 'deploy' });
      assert.equal(made.status, 201, JSON.stringify(made.body));
      createdToken = made.body.token;
      const list = await call('GET', '/api/tokens');
      const deploy = list.body.find((x: { name: string }) => x.name === 'deploy');
      assert.ok((await call('DELETE', `/api/tokens/${deploy.id}`)).status < 300);
      // Publishes and rollbacks, grants.
      assert.equal((await call('POST', '/api/projects', { source: SOURCE, slug: 'sales' })).status, 201);
      assert.equal((await call('POST', '/api/projects/sales/publish', {})).status, 201);
      assert.equal((await call('PUT', '/api/projects/sales/draft', { source: SOURCE_2 })).status, 200);
      assert.equal((await call('POST', '/api/projects/sales/publish', {})).status, 201);
      assert.equal((await call('POST', '/api/projects/sales/versions/1/make-current')).status, 200);
      assert.ok(
        (await call('PUT', '/api/projects/sales/grants', { principal: `user:${adaId}`, access: 'can_edit' }))
          .status < 300,
      );
      assert.ok((await call('DELETE', `/api/projects/sales/grants/user:${adaId}`)).status < 300);
      assert.ok((await call('PUT', '/api/projects/sales/access', { workspace: 'none' })).status < 300);
      // Schedules and rules; the rule names Ada, who now has no access: an auto-grant.
      const schedule = await call('POST', '/api/projects/sales/schedules', {
        name: 'daily',
        cadence: { kind: 'daily', time: '09:00' },
        timezone: 'UTC',
      });
      assert.equal(schedule.status, 201, JSON.stringify(schedule.body));
      const sid = schedule.body.id;
      assert.equal((await call('PATCH', `/api/schedules/${sid}`, { name: 'daily report' })).status, 200);
      assert.equal((await call('POST', `/api/schedules/${sid}/pause`, { note: 'holiday' })).status, 200);
      const rule = await call('POST', '/api/projects/sales/notification-rules', {
        destinations: [{ kind: 'user', userId: adaId, via: 'email' }],
      });
      assert.equal(rule.status, 201, JSON.stringify(rule.body));
      assert.equal(
        (
          await call('PUT', `/api/notification-rules/${rule.body.id}`, {
            destinations: [{ kind: 'user', userId: adaId }],
          })
        ).status,
        200,
      );
      assert.ok((await call('DELETE', `/api/notification-rules/${rule.body.id}`)).status < 300);
      assert.ok((await call('DELETE', `/api/schedules/${sid}`)).status < 300);
      // Integrations (with secrets) and the plan.
      const integrations = await call('PUT', '/api/integrations', {
        smtp: { host: 'smtp.example.com', port: 587, user: 'mailer', password: SMTP_PASSWORD },
      });
      assert.equal(integrations.status, 200, JSON.stringify(integrations.body));
      // The Slack token goes through the service (the route checks it with Slack).
      const { configureIntegrations } = await import('../src/services/notification-service.ts');
      await configureIntegrations(t.server.ctx, { ...admin, ip: IP }, { slackToken: SLACK_TOKEN });
      assert.equal((await call('PUT', '/api/workspace/plan', { plan: 'enterprise' })).status, 200);

      const log = await events();
      const byAction = new Map<string, any[]>();
      for (const e of log) byAction.set(e.action, [...(byAction.get(e.action) ?? []), e]);
      const expected: [string, string | null][] = [
        ['user.invite', admin.userId],
        ['user.accept_invite', adaId],
        ['auth.sign_in_failed', null],
        ['auth.sign_in', adaId],
        ['user.role', admin.userId],
        ['token.create', admin.userId],
        ['token.revoke', admin.userId],
        ['project.publish', admin.userId],
        ['project.rollback', admin.userId],
        ['grant.set', admin.userId],
        ['grant.remove', admin.userId],
        ['project.workspace_access', admin.userId],
        ['grant.auto', admin.userId],
        ['schedule.create', admin.userId],
        ['schedule.update', admin.userId],
        ['schedule.pause', admin.userId],
        ['schedule.delete', admin.userId],
        ['rule.create', admin.userId],
        ['rule.update', admin.userId],
        ['rule.delete', admin.userId],
        ['integrations.update', admin.userId],
        ['workspace.plan', admin.userId],
      ];
      for (const [action, actor] of expected) {
        const found = byAction.get(action);
        assert.ok(found?.length, `an ${action} event (got ${[...byAction.keys()].join(', ')})`);
        assert.ok(
          found.some((e) => e.actorId === actor && e.ip === IP),
          `${action} by ${actor} from ${IP}: ${JSON.stringify(found)}`,
        );
      }
      const failedEvent = byAction.get('auth.sign_in_failed')![0];
      assert.equal(failedEvent.actorName, 'ada@example.com');
      assert.equal(failedEvent.detail.email, 'ada@example.com');
      // Role changes say from and to.
      assert.ok(
        byAction.get('user.role')!.some((e) => e.detail.from === 'member' && e.detail.to === 'editor'),
      );
      // Newest first.
      const times = log.map((e) => Date.parse(e.at));
      assert.deepEqual(
        times,
        [...times].sort((a, b) => b - a),
      );
    });

    it('no secret appears in any event', async () => {
      const text = JSON.stringify(await events());
      for (const secret of [SMTP_PASSWORD, SLACK_TOKEN, PASSWORD, 'wrong one!', memberToken, createdToken]) {
        assert.ok(secret && !text.includes(secret), `the audit log holds no '${secret.slice(0, 8)}…'`);
      }
      const smtp = (await events('action=integrations')).find((e) => e.detail.smtpConfigured);
      assert.deepEqual(smtp.detail.changed, ['smtp']);
      const slack = (await events('action=integrations')).find((e) => e.detail.slackConfigured);
      assert.deepEqual(slack.detail.changed, ['slackToken']);
    });

    it('filters by action area, actor and time, in keyset pages', async () => {
      const schedules = await events('action=schedule');
      assert.deepEqual(
        new Set(schedules.map((e) => e.action)),
        new Set(['schedule.create', 'schedule.update', 'schedule.pause', 'schedule.delete']),
      );
      const first = await call('GET', '/api/audit?limit=3');
      assert.equal(first.body.events.length, 3);
      const second = await call('GET', `/api/audit?limit=3&cursor=${encodeURIComponent(first.body.next)}`);
      assert.equal(second.body.events.length, 3);
      const ids = new Set([...first.body.events, ...second.body.events].map((e: { id: string }) => e.id));
      assert.equal(ids.size, 6, 'pages do not overlap');
      const mine = await events(`actor=${admin.userId}`);
      assert.ok(mine.length > 0 && mine.every((e) => e.actorId === admin.userId));
      const future = await call(
        'GET',
        `/api/audit?since=${new Date(t.clock.now().getTime() + 60_000).toISOString()}`,
      );
      assert.deepEqual(future.body.events, []);
      const bad = await call('GET', '/api/audit?cursor=nonsense');
      assert.equal(bad.status, 400);
      assert.match(bad.body.error.message, /cursor/);
    });

    it('only admins read it', async () => {
      const member = await call('GET', '/api/audit', undefined, memberToken);
      assert.equal(member.status, 403);
      assert.match(member.body.error.message, /admin/);
      assert.equal((await call('GET', '/api/audit', undefined, null)).status, 401);
    });

    it('housekeeping prunes events older than ALMANAC_AUDIT_RETENTION_DAYS', async () => {
      const now = t.clock.now();
      const old = new Date(now.getTime() - 31 * 86_400_000);
      await recordAudit({ db: t.server.ctx.db, now: () => old }, admin, {
        action: 'workspace.settings',
        detail: { old: true },
      });
      await recordAudit({ db: t.server.ctx.db, now: () => now }, admin, {
        action: 'workspace.settings',
        detail: { fresh: true },
      });
      const report = await housekeeping(t.server.ctx, now);
      assert.equal(report.auditPruned, 1);
      const settings = await events('action=workspace.settings');
      assert.ok(settings.some((e) => e.detail.fresh));
      assert.ok(!settings.some((e) => e.detail.old));
    });
  });
}

describe('almanac plan and almanac audit against a server', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer((await testStores())[0]!, { listen: true, clockStart: Date.now() });
  });
  after(async () => {
    await t?.close();
  });
  const almanac = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
      const child = spawn(process.execPath, [resolve('src/cli/main.ts'), ...args], {
        env: { ...process.env, NO_COLOR: '1', ALMANAC_URL: t.server.url!, ALMANAC_TOKEN: t.token },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code) => done({ code: code ?? 1, stdout, stderr }));
    });

  it('plan show/set and audit, with --json; a bad plan is one line and exit 2', async () => {
    const shown = await almanac(['plan', 'show', '--json']);
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal(JSON.parse(shown.stdout).plan, 'team');
    const text = await almanac(['plan', 'show']);
    assert.match(text.stdout, /Plan: Team/);
    const set = await almanac(['plan', 'set', 'professional', '--json']);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(JSON.parse(set.stdout).plan, 'professional');
    const bad = await almanac(['plan', 'set', 'gold']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^almanac: plan: must be professional, team, enterprise/);
    assert.equal(bad.stderr.trim().split('\n').length, 1);
    const log = await almanac(['audit', '--json', '--action', 'workspace.plan']);
    assert.equal(log.code, 0, log.stderr);
    const events = JSON.parse(log.stdout).events;
    assert.equal(events.length, 1);
    assert.equal(events[0].detail.plan, 'professional');
    const lines = await almanac(['audit', '--action', 'workspace']);
    assert.match(lines.stdout, /workspace\.plan/);
  });
});
