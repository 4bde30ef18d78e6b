/**
 * Operations endpoints on both stores: liveness, readiness (store reachable, migrations current), and
 * Prometheus metrics behind a token; a process without the web role serves only these.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createApiToken } from '../src/services/workspace-service.ts';
import { startTestServer, type TestServer, testStores } from './support/server-harness.ts';

const NOTEBOOK = ['---', 'title: Ops', '---', '', '```sql one', 'select 1 as x', '```', ''].join('\n');
const METRICS_TOKEN = 'scrape-token-0123456789';

for (const store of await testStores()) {
  describe(`operations endpoints on ${store.name}`, { skip: store.skip }, () => {
    let t: TestServer;
    before(async () => {
      t = await startTestServer(store, { env: { ALMANAC_METRICS_TOKEN: METRICS_TOKEN } });
    });
    after(() => t?.close());

    it('answers /healthz, and /readyz while the store is reachable and migrated', async () => {
      const live = await t.json('GET', '/healthz', undefined, null);
      assert.equal(live.status, 200);
      assert.equal(live.body.status, 'ok');
      const ready = await t.json('GET', '/readyz', undefined, null);
      assert.deepEqual([ready.status, ready.body.status, ready.body.pendingMigrations], [200, 'ready', []]);
      // A store a migration behind this build is not ready.
      const [last] = (
        await sql<{ name: string }>`select name from almanac_migrations order by name desc limit 1`.execute(
          t.server.ctx.db,
        )
      ).rows;
      await sql`delete from almanac_migrations where name = ${last!.name}`.execute(t.server.ctx.db);
      try {
        const behind = await t.json('GET', '/readyz', undefined, null);
        assert.deepEqual([behind.status, behind.body.pendingMigrations], [503, [last!.name]]);
      } finally {
        await sql`insert into almanac_migrations (name, applied_at) values (${last!.name}, ${new Date().toISOString()})`.execute(
          t.server.ctx.db,
        );
      }
    });

    it('serves Prometheus metrics to the scrape token and to admins, not to others', async () => {
      const create = await t.json('POST', '/api/projects', { source: NOTEBOOK, slug: 'ops' });
      assert.equal(create.status, 201);
      assert.equal((await t.json('POST', '/api/projects/ops/publish', {})).status, 201);
      await t.server.worker!.drain();

      const anonymous = await t.json('GET', '/metrics', undefined, null);
      assert.deepEqual([anonymous.status, anonymous.body.error.code], [401, 'unauthorized']);
      const admin = await t.server.admin();
      await t.server.ctx.db
        .insertInto('users')
        .values({
          id: 'ops-viewer',
          workspace_id: admin.workspaceId,
          email: 'v@example.com',
          name: 'V',
          role: 'member',
        })
        .execute();
      const viewer = await createApiToken(
        t.server.ctx,
        { userId: 'ops-viewer', workspaceId: admin.workspaceId, role: 'member', name: 'V' },
        'viewer',
      );
      const denied = await t.json('GET', '/metrics', undefined, viewer);
      assert.deepEqual([denied.status, denied.body.error.code], [403, 'forbidden']);

      for (const token of [METRICS_TOKEN, t.token]) {
        const res = await t.api('GET', '/metrics', undefined, token);
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
        const text = await res.text();
        assert.match(text, /^almanac_runs\{status="succeeded",roles="[^"]*"\} 1$/m);
        assert.match(text, /^almanac_queue_depth\{roles="[^"]*"\} 0$/m);
        assert.match(text, /^almanac_claim_latency_seconds_count\{roles="[^"]*"\} 1$/m);
        assert.match(text, /^almanac_runs_finished_total\{status="succeeded",roles="[^"]*"\} 1$/m);
        assert.match(text, /^# TYPE almanac_schedule_lateness_seconds histogram$/m);
        assert.match(text, /^# TYPE almanac_deliveries gauge$/m);
        assert.match(text, /^# TYPE almanac_screenshot_seconds histogram$/m);
        assert.match(text, /^almanac_process_resident_memory_bytes/m);
      }
    });

    it('a process without the web role serves only the operations endpoints', async () => {
      const worker = await startTestServer(store, {
        roles: ['worker'],
        listen: true,
        env: { ALMANAC_METRICS_TOKEN: METRICS_TOKEN },
        shared: { dataDir: t.dataDir, url: t.url },
      });
      try {
        const base = worker.server.url!;
        assert.ok(base, 'it listens');
        const live = await fetch(`${base}/healthz`);
        assert.deepEqual(await live.json(), { status: 'ok', roles: ['worker'] });
        assert.equal((await fetch(`${base}/readyz`)).status, 200);
        const metrics = await fetch(`${base}/metrics`, {
          headers: { authorization: `Bearer ${METRICS_TOKEN}` },
        });
        assert.equal(metrics.status, 200);
        assert.match(await metrics.text(), /almanac_claim_query_seconds/);
        const api = await fetch(`${base}/api/projects`);
        assert.equal(api.status, 404);
        assert.match(
          ((await api.json()) as { error: { message: string } }).error.message,
          /serves only \/healthz, \/readyz and \/metrics/,
        );
      } finally {
        await worker.server.stop();
      }
    });
  });
}

describe('structured logs', () => {
  it('are JSON lines that carry ids, with secrets censored at any of the usual keys', async () => {
    const { createLogger } = await import('../src/app/logger.ts');
    const lines: string[] = [];
    const log = createLogger('info', { write: (line: string) => lines.push(line) });
    log.info(
      {
        runId: 'r1',
        scheduleId: 's1',
        token: 'alm_secret_token',
        connection: { url: 'postgres://u:pw@h/db' },
      },
      'run claimed',
    );
    log.warn({ smtp: { password: 'hunter2' }, databaseUrl: 'postgres://u:pw@h/db' }, 'x');
    const [first, second] = lines.map((l) => JSON.parse(l));
    assert.equal(first.runId, 'r1');
    assert.equal(first.scheduleId, 's1');
    assert.equal(first.msg, 'run claimed');
    assert.equal(first.token, '[redacted]');
    assert.equal(first.connection.url, '[redacted]');
    assert.equal(second.smtp.password, '[redacted]');
    assert.equal(second.databaseUrl, '[redacted]');
    assert.doesNotMatch(lines.join(''), /hunter2|pw@h|alm_secret_token/);
  });
});
