/**
 * Transient store errors: the one table of what is retried, bounded retries, and, on a real
 * PostgreSQL, every connection of a server cut (pg_terminate_backend) between and during its loops'
 * statements: the work continues, and no run is lost or duplicated.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pg from 'pg';
import { retryTransient, TRANSIENT_ERRORS, transientReason } from '../src/store/transient.ts';
import type { PostgresWakeups } from '../src/store/wakeups.ts';
import { startTestServer, testStores } from './support/server-harness.ts';
import { POSTGRES_URL } from './support/services.ts';

describe('transient store errors', () => {
  it('are recognised by SQLSTATE, socket code, message or cause, and nothing else is', () => {
    assert.match(transientReason({ code: '40001' })!, /serialization_failure/);
    assert.match(transientReason({ code: '40P01' })!, /deadlock/);
    assert.match(transientReason({ code: '57P01' })!, /admin_shutdown/);
    assert.match(transientReason(new Error('Connection terminated unexpectedly'))!, /ended mid-query/);
    assert.match(transientReason({ code: 'ECONNREFUSED' })!, /not accepting/);
    assert.match(transientReason(new Error('database is locked'))!, /write lock/);
    assert.match(transientReason(new Error('wrapped', { cause: { code: '08006' } }))!, /connection_failure/);
    assert.equal(transientReason({ code: '23505' }), null, 'a unique violation is not transient');
    assert.equal(transientReason(new Error('syntax error at or near')), null);
    assert.ok(TRANSIENT_ERRORS.length >= 15);
  });

  it('retries with backoff up to the bound, and passes other errors through at once', async () => {
    let calls = 0;
    const retries: number[] = [];
    const value = await retryTransient(
      'op',
      async () => {
        calls++;
        if (calls < 3) throw Object.assign(new Error('deadlock detected'), { code: '40P01' });
        return 'done';
      },
      { baseMs: 1, onRetry: (info) => retries.push(info.attempt) },
    );
    assert.deepEqual([value, calls, retries], ['done', 3, [1, 2]]);

    calls = 0;
    await assert.rejects(
      retryTransient(
        'op',
        async () => {
          calls++;
          throw Object.assign(new Error('terminating connection'), { code: '57P01' });
        },
        { baseMs: 1, attempts: 4 },
      ),
      /terminating connection/,
    );
    assert.equal(calls, 4, 'bounded');

    calls = 0;
    await assert.rejects(
      retryTransient('op', async () => {
        calls++;
        throw new Error('relation "nope" does not exist');
      }),
      /does not exist/,
    );
    assert.equal(calls, 1, 'not retried');
  });
});

const NOTEBOOK = ['---', 'title: Cut', '---', '', '```sql one', 'select 1 as x', '```', ''].join('\n');

for (const store of await testStores()) {
  if (store.name !== 'postgres') continue;
  describe('connections cut on postgres', { skip: store.skip }, () => {
    it('every connection of a server terminated, twice: all runs finish once, and wake-ups resume', async () => {
      const app = `almanac-cut-${process.pid}-${Date.now()}`;
      const t = await startTestServer(store, {
        locationTransform: (url) => {
          const named = new URL(url);
          named.searchParams.set('application_name', app);
          return named.toString();
        },
      });
      const admin = new pg.Client({ connectionString: POSTGRES_URL });
      await admin.connect();
      const cut = async () =>
        (
          await admin.query<{ n: string }>(
            'select count(pg_terminate_backend(pid))::text as n from pg_stat_activity where application_name = $1',
            [app],
          )
        ).rows[0]!.n;
      try {
        assert.equal((await t.json('POST', '/api/projects', { source: NOTEBOOK, slug: 'cut' })).status, 201);
        assert.equal((await t.json('POST', '/api/projects/cut/publish', {})).status, 201);
        await t.server.worker!.drain();
        assert.ok(Number(await cut()) >= 2, 'the store pool and the LISTEN connection were cut');
        const ids: string[] = [];
        let unavailable = 0;
        while (ids.length < 5) {
          // A request that meets a cut connection answers 503 with Retry-After, and nothing of it
          // was stored; a client tries again.
          const res = await t.json('POST', '/api/projects/cut/runs', {});
          if (res.status === 503) {
            assert.equal(res.body.error.code, 'unavailable');
            assert.ok(++unavailable < 10);
            continue;
          }
          assert.equal(res.status, 201, JSON.stringify(res.body));
          ids.push(res.body.id);
        }
        await cut();
        await t.server.worker!.drain();
        for (const id of ids) {
          const run = await t.json('GET', `/api/runs/${id}`);
          assert.deepEqual([run.body.status, run.body.attempts], ['succeeded', 1], id);
        }
        // The LISTEN connection came back by itself (the second cut may land while it is still
        // reconnecting from the first).
        const wakeups = t.server.ctx.wakeups as PostgresWakeups;
        for (let i = 0; i < 200 && wakeups.listenPid === null; i++)
          await new Promise((r) => setTimeout(r, 50));
        assert.ok(wakeups.reconnects >= 1);
        assert.ok(wakeups.listenPid);
      } finally {
        await admin.end();
        await t.close();
      }
    });
  });
}
