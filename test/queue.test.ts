/**
 * The run table as a queue under contention and failure: racing claimers never take a run twice, and
 * a worker process killed mid-run loses its lease, so its run is requeued and finished elsewhere.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import * as projects from '../src/services/project-service.ts';
import * as runs from '../src/services/run-service.ts';
import { fence } from './support/harness.ts';
import { notebook, startTestServer, testStores } from './support/server-harness.ts';

const ADMIN_TOKEN = 'alm_test-admin-token-0123456789';

for (const store of await testStores()) {
  describe(`queue on ${store.name}`, { skip: store.skip }, () => {
    it('claimers racing over 200 runs take each run exactly once', async () => {
      const a = await startTestServer(store);
      // PostgreSQL: a second server (its own pool and connections) on the same schema. SQLite is owned by
      // one process, so there the claimers race through one server's connection.
      const b =
        store.name === 'postgres'
          ? await startTestServer(store, {
              shared: { dataDir: a.dataDir, url: a.url },
              env: { ALMANAC_ADMIN_TOKEN: a.token },
            })
          : a;
      try {
        const admin = await a.server.admin();
        await projects.createProject(a.server.ctx, admin, {
          source: notebook('Noop', fence('sql one', 'select 1')),
          slug: 'noop',
        });
        await projects.publish(a.server.ctx, admin, 'noop');
        for (let i = 0; i < 199; i++) {
          a.clock.advance(1);
          await runs.enqueueRun(a.server.ctx, admin, 'noop', { trigger: 'api', context: 'api-triggered' });
        }
        const claimAll = async (t: typeof a, worker: string) => {
          const mine: string[] = [];
          for (;;) {
            const run = await runs.claimRun(t.server.ctx, { worker, leaseMs: 60_000 });
            if (!run) return mine;
            mine.push(run.id);
          }
        };
        const [fromA, fromB, fromA2, fromB2] = await Promise.all([
          claimAll(a, 'a1'),
          claimAll(b, 'b1'),
          claimAll(a, 'a2'),
          claimAll(b, 'b2'),
        ]);
        const all = [...fromA, ...fromB, ...fromA2, ...fromB2];
        assert.equal(all.length, 200);
        assert.equal(new Set(all).size, 200, 'no run was claimed twice');
        const attempts = await a.server.ctx.db.selectFrom('runs').select('attempts').execute();
        assert.ok(attempts.every((r) => Number(r.attempts) === 1));
        if (store.name === 'postgres') {
          assert.ok(
            fromB.length + fromB2.length > 0 && fromA.length + fromA2.length > 0,
            'both processes claimed work',
          );
        }
      } finally {
        if (b !== a) await b.close();
        await a.close();
      }
    });

    it('two workers executing the same queue run every run once', {
      skip: store.name === 'sqlite' ? 'one process owns a SQLite store; covered on PostgreSQL' : false,
    }, async () => {
      const a = await startTestServer(store, { worker: { id: 'worker-a', concurrency: 2 } });
      const b = await startTestServer(store, {
        shared: { dataDir: mkdtempSync(join(tmpdir(), 'almanac-b-')), url: a.url },
        env: { ALMANAC_ADMIN_TOKEN: a.token },
        worker: { id: 'worker-b', concurrency: 2 },
      });
      try {
        const admin = await a.server.admin();
        await projects.createProject(a.server.ctx, admin, {
          source: notebook('Echo', fence('js echo', 'return almanac.runId')),
          slug: 'echo',
        });
        await projects.publish(a.server.ctx, admin, 'echo');
        for (let i = 0; i < 11; i++) {
          a.clock.advance(1);
          await runs.enqueueRun(a.server.ctx, admin, 'echo', { trigger: 'api', context: 'api-triggered' });
        }
        await Promise.all([a.server.worker!.drain(), b.server.worker!.drain()]);
        const rows = await a.server.ctx.db
          .selectFrom('runs')
          .select(['status', 'attempts', 'worker'])
          .execute();
        assert.equal(rows.length, 12);
        assert.ok(rows.every((r) => r.status === 'succeeded' && Number(r.attempts) === 1));
        assert.deepEqual(new Set(rows.map((r) => r.worker)).size >= 1, true);
      } finally {
        await b.close();
        rmSync(b.dataDir, { recursive: true, force: true });
        await a.close();
      }
    });

    it('a worker process killed mid-run loses its lease; the run is requeued and finished by the next worker', async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'almanac-kill-'));
      const location = await store.location(dataDir);
      const env = {
        ...process.env,
        DATABASE_URL: location.url,
        ALMANAC_DATA_DIR: dataDir,
        ALMANAC_SECRET_KEY: 'test-secret-key',
        ALMANAC_ADMIN_TOKEN: ADMIN_TOKEN,
        ALMANAC_LEASE_MS: '1500',
        ALMANAC_LOG_LEVEL: 'silent',
        ALMANAC_PREWARM: 'false',
      };
      const child = spawn(process.execPath, [join(import.meta.dirname, 'support', 'serve-process.ts')], {
        env,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      try {
        const line = await new Promise<string>((resolve, reject) => {
          createInterface({ input: child.stdout! }).once('line', resolve);
          child.once('exit', (code) => reject(new Error(`server process exited with ${code}`)));
        });
        const { url, worker } = JSON.parse(line) as { url: string; worker: string };
        const call = async (method: string, path: string, body?: unknown) => {
          const response = await fetch(url + path, {
            method,
            headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
            ...(body ? { body: JSON.stringify(body) } : {}),
          });
          return response.json() as Promise<any>;
        };
        // The first attempt blocks in `wait`; the DuckDB marker makes every later attempt quick.
        const source = notebook(
          'Fragile',
          fence(
            'sql mark',
            'create table if not exists attempt_log (ts timestamp);\ninsert into attempt_log values (now());',
          ) +
            fence('sql attempts', 'select count(*)::INTEGER as n from attempt_log') +
            fence(
              'js wait',
              'if (attempts[0].n < 2) await new Promise((r) => setTimeout(r, 120_000));\nreturn attempts[0].n;',
            ),
        );
        await call('POST', '/api/projects', { source, slug: 'fragile' });
        const published = await call('POST', '/api/projects/fragile/publish', {});
        const runId = published.run.id as string;
        const deadline = Date.now() + 20_000;
        for (;;) {
          const run = await call('GET', `/api/runs/${runId}`);
          if (
            run.status === 'running' &&
            run.cells.some((c: any) => c.name === 'wait' && c.status === 'running')
          ) {
            assert.equal(run.worker, worker);
            break;
          }
          if (Date.now() > deadline)
            throw new Error(`run never reached the wait cell: ${JSON.stringify(run)}`);
          await new Promise((r) => setTimeout(r, 25));
        }
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));

        const next = await startTestServer(store, {
          shared: { dataDir, url: location.url },
          env: { ALMANAC_ADMIN_TOKEN: ADMIN_TOKEN },
          clockStart: Date.now(),
        });
        try {
          const stillHeld = await next.json('GET', `/api/runs/${runId}`);
          assert.equal(stillHeld.body.status, 'running', 'nobody has noticed yet');
          const report = await next.server.housekeeper.tick(new Date(Date.now() + 2000));
          assert.deepEqual(report.requeued, [runId]);
          await next.server.worker!.drain();
          const done = await next.json('GET', `/api/runs/${runId}`);
          assert.equal(done.body.status, 'succeeded');
          assert.equal(done.body.attempts, 2);
          assert.equal(done.body.worker, next.server.worker!.id);
          const snapshot = await next.json('GET', `/api/runs/${runId}/snapshot`);
          assert.equal(snapshot.body.cells.find((c: any) => c.name === 'wait').output.value, 2);
          assert.equal((await next.api('GET', '/api/projects/fragile/app')).status, 200);
        } finally {
          await next.close();
        }
      } finally {
        child.kill('SIGKILL');
        await location.drop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  });
}
