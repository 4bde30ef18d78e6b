/**
 * The server end to end on both stores: publishing, the run queue and log, app state and caching,
 * cancellation, retention, housekeeping, tokens and workspaces. Real store, real executor, real child
 * processes; time is a fake clock and loops are driven with drain() and tick(now).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import * as runService from '../src/services/run-service.ts';
import { createWorkspaceWithUser } from '../src/services/workspace-service.ts';
import { fence } from './support/harness.ts';
import { notebook, startTestServer, type TestServer, testStores } from './support/server-harness.ts';
import { POSTGRES_URL } from './support/services.ts';
import { until } from './support/until.ts';

const SALES = notebook(
  'Sales',
  fence('sql totals', 'select {{ region }} as region, 42 as total') +
    'Region {{ region }} in context {{ almanac.runContext }}.\n\n',
  'inputs:\n  region:\n    type: select\n    options: [EMEA, AMER]\n    default: EMEA\n',
);

for (const store of await testStores()) {
  describe(`server on ${store.name}`, { skip: store.skip }, () => {
    let t: TestServer;
    before(async () => {
      t = await startTestServer(store);
      currentDb = t.server.ctx.db;
    });
    after(() => t?.close());

    const publish = async (slug: string, source: string) => {
      const exists = await t.api('GET', `/api/projects/${slug}`);
      if (exists.status === 404) {
        const created = await t.json('POST', '/api/projects', { source, slug });
        assert.equal(created.status, 201, JSON.stringify(created.body));
      } else {
        assert.equal((await t.json('PUT', `/api/projects/${slug}/draft`, { source })).status, 200);
      }
      t.clock.advance(1000);
      return t.json('POST', `/api/projects/${slug}/publish`, {});
    };

    it('publishes a version with a publish run whose snapshot becomes the default state; the same content twice makes no new version', async () => {
      const first = await publish('sales', SALES);
      assert.equal(first.status, 201);
      assert.equal(first.body.created, true);
      assert.equal(first.body.version.number, 1);
      assert.match(first.body.version.contentHash, /^[0-9a-f]{64}$/);
      assert.equal(first.body.run.trigger, 'publish');
      assert.equal(first.body.run.status, 'queued');

      const before = await t.json('GET', '/api/projects/sales/app');
      assert.equal(before.status, 404);
      assert.match(before.body.error.message, /no default state yet/);

      await t.server.worker!.drain();
      const open = await t.api('GET', '/api/projects/sales/app', undefined);
      assert.equal(open.status, 200);
      assert.equal(open.headers.get('x-almanac-run'), first.body.run.id);
      const etag = open.headers.get('etag')!;
      assert.match(etag, /^"[\w-]+"$/);
      const snapshot: any = await open.json();
      assert.equal(snapshot.status, 'succeeded');
      assert.equal(snapshot.context, 'app');

      const again = await t.json('POST', '/api/projects/sales/publish', {});
      assert.equal(again.status, 200);
      assert.equal(again.body.created, false);
      assert.equal(again.body.run, null);
      assert.equal((await t.json('GET', '/api/projects/sales/versions')).body.length, 1);
    });

    it('serves the default state precompressed with an ETag, and 304 when it has not changed', async () => {
      const gz = await t.server.http.app.request('/api/projects/sales/app', {
        headers: { authorization: `Bearer ${t.token}`, 'accept-encoding': 'gzip, br' },
      });
      assert.equal(gz.headers.get('content-encoding'), 'gzip');
      assert.equal(gz.headers.get('vary'), 'Accept-Encoding');
      const bytes = Buffer.from(await gz.arrayBuffer());
      assert.equal(JSON.parse(gunzipSync(bytes).toString()).status, 'succeeded');
      const notModified = await t.server.http.app.request('/api/projects/sales/app', {
        headers: { authorization: `Bearer ${t.token}`, 'if-none-match': gz.headers.get('etag')! },
      });
      assert.equal(notModified.status, 304);
      assert.equal(await notModified.text(), '');
    });

    it('runs an API-triggered run in context api-triggered with inputs, storing per-cell progress and the worker', async () => {
      t.clock.advance(1000);
      const created = await t.json('POST', '/api/projects/sales/runs', { inputs: { region: 'AMER' } });
      assert.equal(created.status, 201);
      assert.equal(created.body.trigger, 'api');
      assert.equal(created.body.context, 'api-triggered');
      assert.deepEqual(created.body.inputs, { region: 'AMER' });
      await t.server.worker!.drain();
      const run = (await t.json('GET', `/api/runs/${created.body.id}`)).body;
      assert.equal(run.status, 'succeeded');
      assert.equal(run.attempts, 1);
      assert.equal(run.worker, t.server.worker!.id);
      assert.ok(run.startedAt && run.finishedAt);
      assert.deepEqual(
        run.cells.map((c: { name: string; status: string }) => [c.name, c.status]),
        [
          ['totals', 'succeeded'],
          ['prose_1', 'succeeded'],
        ],
      );
      // Quick cells store their end only (no `running` write), and that write carries their start.
      for (const c of run.cells) assert.equal(c.startedAt, run.startedAt, `${c.name} startedAt`);
      const snapshot = (await t.json('GET', `/api/runs/${created.body.id}/snapshot`)).body;
      assert.match(JSON.stringify(snapshot.cells[1].output), /Region AMER in context api-triggered/);
      // The API-triggered run did not replace the default state.
      const open = await t.api('GET', '/api/projects/sales/app');
      assert.notEqual(open.headers.get('x-almanac-run'), created.body.id);
    });

    it('lists the run log newest first, filtered by project, status and trigger, with keyset pages', async () => {
      for (const region of ['EMEA', 'AMER', 'EMEA']) {
        t.clock.advance(1000);
        await t.json('POST', '/api/projects/sales/runs', { inputs: { region } });
      }
      const queued = (await t.json('GET', '/api/runs?project=sales&status=queued')).body.runs;
      assert.equal(queued.length, 3);
      await t.server.worker!.drain();
      const all = (await t.json('GET', '/api/runs?project=sales')).body.runs;
      assert.equal(all.length, 5);
      const times = all.map((r: { createdAt: string }) => r.createdAt);
      assert.deepEqual([...times].sort().reverse(), times, 'newest first');
      const publishes = (await t.json('GET', '/api/runs?trigger=publish')).body.runs;
      assert.equal(publishes.length, 1);
      const pages: string[] = [];
      let cursor: string | null = null;
      do {
        const page: { body: { runs: { id: string }[]; nextCursor: string | null } } = await t.json(
          'GET',
          `/api/runs?project=sales&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        );
        pages.push(...page.body.runs.map((r) => r.id));
        cursor = page.body.nextCursor;
      } while (cursor);
      assert.deepEqual(
        pages,
        all.map((r: { id: string }) => r.id),
      );
    });

    it('opens any past run as the app was, and a new publish moves the default state', async () => {
      const oldDefault = (await t.api('GET', '/api/projects/sales/app')).headers.get('x-almanac-run')!;
      const v2 = await publish('sales', SALES.replace('as total', 'as total, 2 as version'));
      assert.equal(v2.body.version.number, 2);
      await t.server.worker!.drain();
      const open = await t.api('GET', '/api/projects/sales/app');
      assert.equal(open.headers.get('x-almanac-run'), v2.body.run.id);
      const now: any = await open.json();
      assert.deepEqual(
        now.cells[0].output.columns.map((c: { name: string }) => c.name),
        ['region', 'total', 'version'],
      );
      const past = (await t.json('GET', `/api/runs/${oldDefault}/snapshot`)).body;
      assert.deepEqual(
        past.cells[0].output.columns.map((c: { name: string }) => c.name),
        ['region', 'total'],
      );
      const pinned = await t.json('POST', '/api/projects/sales/runs', { version: '1' });
      assert.equal(pinned.body.versionId, (await t.json('GET', '/api/projects/sales/versions/1')).body.id);
      await t.server.worker!.drain();
    });

    it('cache=schedule: app runs reuse the publish run result, other inputs query, scheduled/publish runs refresh; private runs never touch the default state', async () => {
      const source = notebook(
        'Counter',
        fence('sql setup', 'create table if not exists counter as select 0 as v') +
          fence('sql bump', 'update counter set v = v + 1') +
          fence('sql reading cache=schedule', 'select v, {{ tag }} as tag from counter') +
          fence('sql doubled', 'select v * 2 as double from reading'),
        'inputs:\n  tag:\n    type: text\n    default: a\n',
      );
      const published = await publish('counter', source);
      await t.server.worker!.drain();
      const base = (await t.json('GET', `/api/runs/${published.body.run.id}/snapshot`)).body;
      const readingOf = (s: any) => s.cells.find((c: any) => c.name === 'reading').output.rows[0][0];
      const doubledOf = (s: any) => s.cells.find((c: any) => c.name === 'doubled').output.rows[0][0];
      assert.equal(readingOf(base), 1);

      // A viewer's private re-run (context app): bump runs (v=2) but reading comes from the cache.
      t.clock.advance(1000);
      const mine = await t.json('POST', '/api/projects/counter/runs', { private: true });
      assert.equal(mine.body.context, 'app');
      assert.equal(mine.body.trigger, 'manual');
      assert.equal(mine.body.private, true);
      await t.server.worker!.drain();
      const mineSnap = (await t.json('GET', `/api/runs/${mine.body.id}/snapshot`)).body;
      assert.equal(readingOf(mineSnap), 1, 'served from the publish run, not queried');
      assert.equal(doubledOf(mineSnap), 2, 'later SQL cells can select from a cached cell');

      // Other inputs mean another query: no reuse.
      t.clock.advance(1000);
      const other = await t.json('POST', '/api/projects/counter/runs', {
        private: true,
        inputs: { tag: 'b' },
      });
      await t.server.worker!.drain();
      assert.equal(readingOf((await t.json('GET', `/api/runs/${other.body.id}/snapshot`)).body), 3);

      // API-triggered runs query fresh but do not refresh the cache.
      t.clock.advance(1000);
      const api = await t.json('POST', '/api/projects/counter/runs', {});
      await t.server.worker!.drain();
      assert.equal(readingOf((await t.json('GET', `/api/runs/${api.body.id}/snapshot`)).body), 4);
      t.clock.advance(1000);
      const again = await t.json('POST', '/api/projects/counter/runs', { private: true });
      await t.server.worker!.drain();
      assert.equal(readingOf((await t.json('GET', `/api/runs/${again.body.id}/snapshot`)).body), 1);

      // Private runs never became the default state, and nobody else sees them.
      assert.equal(
        (await t.api('GET', '/api/projects/counter/app')).headers.get('x-almanac-run'),
        published.body.run.id,
      );
      const other_user = await createWorkspaceWithUser(t.server.ctx, {
        workspaceId: 'default',
        name: 'Default workspace',
        email: 'viewer@example.com',
        role: 'member',
      });
      assert.equal(
        (await t.json('GET', `/api/runs/${mine.body.id}`, undefined, other_user.token)).status,
        404,
      );
      const theirList = (await t.json('GET', '/api/runs?project=counter', undefined, other_user.token)).body
        .runs;
      assert.ok(theirList.every((r: { private: boolean }) => !r.private));
      assert.equal(theirList.length, 2, 'the publish run and the API run');

      // Private runs are deleted after their TTL.
      const report = await t.server.housekeeper.tick(new Date(t.clock.now().getTime() + 2 * 3600_000));
      assert.equal(report.expiredPrivate, 3);
      assert.equal((await t.json('GET', `/api/runs/${mine.body.id}`)).status, 404);
    });

    it("with 'show results from the last run' off, opening the app starts a private run in context app", async () => {
      const patched = await t.json('PATCH', '/api/projects/sales/app/settings', { showLastRun: false });
      assert.equal(patched.body.showLastRun, false);
      const open = await t.json('GET', '/api/projects/sales/app');
      assert.equal(open.status, 202);
      assert.equal(open.body.run.context, 'app');
      assert.equal(open.body.run.private, true);
      await t.server.worker!.drain();
      await t.json('PATCH', '/api/projects/sales/app/settings', { showLastRun: true });
      assert.equal((await t.api('GET', '/api/projects/sales/app')).status, 200);
    });

    it('cancels a queued run at once, and a running run by killing its process', async () => {
      const slow = notebook(
        'Slow',
        fence('js wait', 'await new Promise((r) => setTimeout(r, 60_000)); return 1;') +
          fence('js after', 'return 2'),
      );
      const published = await publish('slow', slow);
      // Queued: cancelled on the spot, and a second cancel is a conflict.
      const queued = await t.json('POST', `/api/runs/${published.body.run.id}/cancel`);
      assert.equal(queued.status, 200);
      assert.equal(queued.body.status, 'cancelled');
      assert.equal((await t.json('POST', `/api/runs/${published.body.run.id}/cancel`)).status, 409);

      t.clock.advance(1000);
      const run = (await t.json('POST', '/api/projects/slow/runs', {})).body;
      const started = Date.now();
      const draining = t.server.worker!.drain();
      await until('the cell to be running', async () => {
        const r = (await t.json('GET', `/api/runs/${run.id}`)).body;
        return r.cells.some(
          (c: { status: string; startedAt: string | null }) => c.status === 'running' && c.startedAt,
        );
      });
      const asked = await t.json('POST', `/api/runs/${run.id}/cancel`);
      assert.equal(asked.status, 200);
      await draining;
      const ended = (await t.json('GET', `/api/runs/${run.id}`)).body;
      assert.equal(ended.status, 'cancelled');
      assert.equal(ended.reason, 'cancelled');
      assert.ok(Date.now() - started < 30_000, 'the 60 s cell was killed, not waited for');
      assert.deepEqual(
        ended.cells.map((c: { status: string }) => c.status),
        ['cancelled', 'skipped'],
      );
    });

    it('requeues a run whose lease expired while attempts remain, then fails it as worker_lost', async () => {
      t.clock.advance(1000);
      const run = (await t.json('POST', '/api/projects/sales/runs', {})).body;
      const lease = { worker: 'ghost-worker', leaseMs: 30_000 };
      for (let attempt = 1; attempt <= 3; attempt++) {
        const claimed = await runService.claimRun(t.server.ctx, lease);
        assert.equal(claimed?.id, run.id);
        assert.equal(claimed?.attempts, attempt);
        // Still within the lease: nothing happens.
        const early = await t.server.housekeeper.tick(new Date(t.clock.now().getTime() + 29_000));
        assert.deepEqual(early.requeued, []);
        const report = await t.server.housekeeper.tick(t.clock.advance(31_000));
        if (attempt < 3) assert.deepEqual(report.requeued, [run.id]);
        else assert.deepEqual(report.lost, [run.id]);
      }
      const lost = (await t.json('GET', `/api/runs/${run.id}`)).body;
      assert.equal(lost.status, 'failed');
      assert.equal(lost.reason, 'worker_lost');
      assert.equal(lost.attempts, 3);
      assert.match(lost.error.message, /stopped responding/);
      // The lost worker's late result is refused by the guarded transition.
      assert.equal(
        await runService.completeRun(
          t.server.ctx,
          'ghost-worker',
          { ...(await loadRun(run.id)) },
          fakeSnapshot(run.id),
        ),
        false,
      );
    });

    it('queues many runs in one bulk request, all or none, naming the bad entry by its index', async () => {
      t.clock.advance(1000);
      const before = await t.server.ctx.db.selectFrom('runs').select('id').execute();
      const bad = await t.json('POST', '/api/projects/sales/runs/batch', {
        runs: [{ inputs: { region: 'EMEA' } }, { inputs: { region: 'Mars' } }],
      });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.field, 'runs[1].inputs.region');
      assert.match(bad.body.error.message, /runs\[1\]\.inputs\.region: must be one of/);
      const empty = await t.json('POST', '/api/projects/sales/runs/batch', { runs: [] });
      assert.equal(empty.status, 400);
      assert.equal((await t.server.ctx.db.selectFrom('runs').select('id').execute()).length, before.length);
      const ok = await t.json('POST', '/api/projects/sales/runs/batch', {
        runs: [{ inputs: { region: 'EMEA' } }, {}, { inputs: { region: 'AMER' } }],
      });
      assert.equal(ok.status, 201, JSON.stringify(ok.body));
      const regions = ok.body.runs.map((r: { inputs: { region: string } }) => r.inputs.region);
      assert.equal(regions[0], 'EMEA');
      assert.equal(regions[2], 'AMER');
      assert.ok(regions[1], 'defaults fill an entry without inputs');
      assert.ok(
        ok.body.runs.every(
          (r: { trigger: string; context: string; status: string }) =>
            r.trigger === 'api' && r.context === 'api-triggered' && r.status === 'queued',
        ),
      );
      await t.server.worker!.drain();
      for (const run of ok.body.runs) {
        assert.equal((await t.json('GET', `/api/runs/${run.id}`)).body.status, 'succeeded');
      }
    });

    it('completes a batch of runs in one transaction, refusing only the one whose hold is stale', async () => {
      t.clock.advance(1000);
      const queued = await t.json('POST', '/api/projects/sales/runs/batch', { runs: [{}, {}, {}] });
      assert.equal(queued.status, 201);
      const lease = { worker: 'batch-worker', leaseMs: 30_000 };
      const claimed = await runService.claimRuns(t.server.ctx, { ...lease, limit: 3 });
      assert.deepEqual(
        claimed.map((r) => r.id).sort(),
        queued.body.runs.map((r: { id: string }) => r.id).sort(),
      );
      // The second run's lease expires and another claim takes it: the first worker's token is stale.
      const stale = claimed[1]!;
      await t.server.ctx.db
        .updateTable('runs')
        .set({ status: 'queued', worker: null })
        .where('id', '=', stale.id)
        .execute();
      const again = await runService.claimRuns(t.server.ctx, {
        worker: 'batch-worker',
        leaseMs: 30_000,
        limit: 1,
      });
      assert.equal(again[0]?.id, stale.id);
      assert.equal(again[0]?.attempts, 2);
      const won = await runService.completeRuns(
        t.server.ctx,
        'batch-worker',
        claimed.map((run) => ({ run, snapshot: fakeSnapshot(run.id) })),
      );
      assert.deepEqual(won, [true, false, true]);
      for (const [i, run] of claimed.entries()) {
        const row = await loadRun(run.id);
        assert.equal(row.status, i === 1 ? 'running' : 'succeeded');
        const snapshot = await t.api('GET', `/api/runs/${run.id}/snapshot`);
        assert.equal(snapshot.status, i === 1 ? 409 : 200, 'a run still running has no snapshot yet');
      }
      // The newer claim finishes it under its own token.
      assert.deepEqual(
        await runService.completeRuns(t.server.ctx, 'batch-worker', [
          { run: again[0]!, snapshot: fakeSnapshot(stale.id) },
        ]),
        [true],
      );
    });

    it('keeps the last N runs and D days per project, never pruning the run behind the default state', async () => {
      const kept = await publish('retained', notebook('Retained', fence('sql one', 'select 1 as x')));
      await t.server.worker!.drain();
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) {
        t.clock.advance(60_000);
        ids.push((await t.json('POST', '/api/projects/retained/runs', {})).body.id);
      }
      await t.server.worker!.drain();
      const bad = await t.json('PATCH', '/api/projects/retained/app/settings', { keepRuns: 0 });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.field, 'keepRuns');
      await t.json('PATCH', '/api/projects/retained/app/settings', { keepRuns: 2 });
      const report = await t.server.housekeeper.tick(t.clock.now());
      assert.ok(report.pruned >= 2);
      const left = (await t.json('GET', '/api/runs?project=retained')).body.runs.map(
        (r: { id: string }) => r.id,
      );
      assert.deepEqual(
        left.sort(),
        [kept.body.run.id, ids[2], ids[3]].sort(),
        'newest two plus the default state',
      );
      await t.json('PATCH', '/api/projects/retained/app/settings', { keepRuns: null, keepDays: 1 });
      await t.server.housekeeper.tick(new Date(t.clock.now().getTime() + 3 * 86_400_000));
      const after = (await t.json('GET', '/api/runs?project=retained')).body.runs.map(
        (r: { id: string }) => r.id,
      );
      assert.deepEqual(after, [kept.body.run.id]);
      assert.equal((await t.api('GET', '/api/projects/retained/app')).status, 200);
    });

    it('checks tokens on every route, and answers 404 for another workspace', async () => {
      assert.equal((await t.json('GET', '/api/projects', undefined, null)).status, 401);
      const bad = await t.json('GET', '/api/projects', undefined, 'alm_not-a-real-token-at-all');
      assert.equal(bad.status, 401);
      assert.equal(bad.body.error.code, 'unauthorized');
      assert.equal((await t.json('GET', '/api/projects', undefined, 'Basic abc')).status, 401);
      const created = await t.json('POST', '/api/tokens', { name: 'ci' });
      assert.equal(created.status, 201);
      assert.match(created.body.token, /^alm_/);
      assert.equal((await t.json('GET', '/api/me', undefined, created.body.token)).status, 200);
      const stored = await t.server.ctx.db.selectFrom('api_tokens').select('token_hash').execute();
      assert.ok(
        stored.every((r) => !r.token_hash.includes(created.body.token)),
        'only hashes are stored',
      );

      const other = await createWorkspaceWithUser(t.server.ctx, {
        workspaceId: 'other',
        name: 'Other',
        email: 'eve@example.com',
      });
      const runId = (await t.json('GET', '/api/runs?project=sales')).body.runs[0].id;
      for (const path of [
        '/api/projects/sales',
        '/api/projects/sales/app',
        '/api/projects/sales/versions',
        `/api/runs/${runId}`,
        `/api/runs/${runId}/snapshot`,
        `/api/runs/${runId}/events`,
      ]) {
        const response = await t.json('GET', path, undefined, other.token);
        assert.equal(response.status, 404, path);
        assert.equal(response.body.error.code, 'not_found');
      }
      assert.equal((await t.json('POST', `/api/runs/${runId}/cancel`, undefined, other.token)).status, 404);
      assert.equal((await t.json('POST', '/api/projects/sales/runs', {}, other.token)).status, 404);
      assert.deepEqual((await t.json('GET', '/api/projects', undefined, other.token)).body, []);
      assert.deepEqual((await t.json('GET', '/api/runs', undefined, other.token)).body.runs, []);
    });

    it('stores connection URLs encrypted, never returns them, and runs SQL on them', {
      skip:
        store.name === 'sqlite'
          ? 'a PostgreSQL connection needs PostgreSQL; covered by the postgres target'
          : false,
    }, async () => {
      const url = POSTGRES_URL;
      const created = await t.json('POST', '/api/connections', { name: 'warehouse', url });
      assert.equal(created.status, 201);
      assert.equal(JSON.stringify(created.body).includes('postgres://'), false);
      const listed = await t.json('GET', '/api/connections');
      assert.equal(JSON.stringify(listed.body).includes('postgres://'), false);
      const row = await t.server.ctx.db.selectFrom('connections').select('secret').executeTakeFirstOrThrow();
      assert.match(row.secret, /^v1:/);
      assert.equal(row.secret.includes('127.0.0.1'), false);
      const dup = await t.json('POST', '/api/connections', { name: 'warehouse', url });
      assert.equal(dup.status, 400);
      assert.equal(dup.body.error.field, 'name');
      const published = await publish(
        'warehouse',
        notebook(
          'Warehouse',
          fence('sql answer connection=warehouse', 'select 40 + 2 as answer'),
          'connections: [warehouse]\n',
        ),
      );
      await t.server.worker!.drain();
      const snapshot = (await t.json('GET', `/api/runs/${published.body.run.id}/snapshot`)).body;
      assert.equal(snapshot.status, 'succeeded', snapshot.message);
      assert.equal(snapshot.cells[0].output.rows[0][0], 42);
    });

    it('keeps claiming after a tick that found no free capacity', async () => {
      // Regression: a tick() with every slot busy never awaited, so it cleared its "ticking" marker before
      // setting it, and the worker never claimed again (seen as a stalled queue in the benchmark).
      const single = await startTestServer(store, { worker: { concurrency: 1 } });
      try {
        await single.json('POST', '/api/projects', {
          source: notebook('Two', fence('js one', 'return 1')),
          slug: 'two',
        });
        await single.json('POST', '/api/projects/two/publish', {});
        single.clock.advance(1000);
        const second = (await single.json('POST', '/api/projects/two/runs', {})).body;
        assert.equal(await single.server.worker!.tick(), 1);
        assert.equal(await single.server.worker!.tick(), 0, 'no free slot');
        await single.server.worker!.drain();
        assert.equal((await single.json('GET', `/api/runs/${second.id}`)).body.status, 'succeeded');
      } finally {
        await single.close();
      }
    });

    it('streams live progress over Server-Sent Events until the run ends', async () => {
      t.clock.advance(1000);
      const run = (await t.json('POST', '/api/projects/sales/runs', {})).body;
      const response = await t.api('GET', `/api/runs/${run.id}/events`);
      assert.equal(response.headers.get('content-type'), 'text/event-stream');
      const draining = t.server.worker!.drain();
      const text = await response.text();
      await draining;
      const events = text
        .split('\n\n')
        .filter((b) => b.includes('event:'))
        .map((b) => ({
          event: /event: (\w+)/.exec(b)![1],
          data: b
            .split('\n')
            .filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).trim())
            .join('\n'),
        }));
      assert.equal(events[0]!.event, 'run');
      assert.equal(JSON.parse(events[0]!.data).status, 'queued');
      assert.deepEqual(events.at(-1), { event: 'end', data: 'succeeded' });
      const statuses = events.filter((e) => e.event === 'run').map((e) => JSON.parse(e.data).status);
      assert.ok(statuses.includes('running'), `saw ${statuses.join(', ')}`);
    });
  });
}

async function loadRun(id: string) {
  const { findRun } = await import('../src/store/run-store.ts');
  return (await findRun(currentDb!, id))!;
}
let currentDb: any = null;

function fakeSnapshot(runId: string) {
  return {
    format: 1 as const,
    runId,
    title: 'x',
    status: 'succeeded' as const,
    reason: null,
    message: null,
    context: 'api-triggered' as const,
    scheduledFor: null,
    inputs: {},
    startedAt: new Date().toISOString(),
    finishedAt: new Date().toISOString(),
    cells: [],
  };
}
