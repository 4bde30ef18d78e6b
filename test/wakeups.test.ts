/**
 * LISTEN/NOTIFY wake-ups survive a cut connection: the LISTEN connection is re-opened, and because
 * notifications sent while it was down are lost, every loop is told to re-read (RESYNC).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { PostgresWakeups, RESYNC } from '../src/store/wakeups.ts';
import { freshPostgresDatabase, POSTGRES_URL, postgresUnavailable } from './support/services.ts';
import { until } from './support/until.ts';

const unavailable = await postgresUnavailable();

function next(
  wakeups: PostgresWakeups,
  topic: 'run_queued' | 'schedule_changed' | 'run_progress',
): Promise<string> {
  return new Promise((resolve) => {
    const off = wakeups.subscribe(topic, (payload) => {
      off();
      resolve(payload);
    });
  });
}

describe('wake-ups on postgres', { skip: unavailable ?? false }, () => {
  let schema: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  let a: PostgresWakeups;
  let b: PostgresWakeups;
  before(async () => {
    schema = await freshPostgresDatabase();
    a = await PostgresWakeups.open(schema.url);
    b = await PostgresWakeups.open(schema.url);
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await schema?.drop();
  });

  it('reach another process, and after the LISTEN connection is cut, re-listen and resync', async () => {
    let heard = next(a, 'run_queued');
    await b.notify('run_queued', 'r1');
    assert.equal(await heard, 'r1');

    const pid = a.listenPid;
    assert.ok(pid);
    const resync = Promise.all([next(a, 'run_queued'), next(a, 'schedule_changed')]);
    const admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    try {
      await admin.query('select pg_terminate_backend($1)', [pid]);
    } finally {
      await admin.end();
    }
    // Sent while A is disconnected: lost, which is why A's loops are told to re-read.
    await b.notify('run_queued', 'lost');
    assert.deepEqual(await resync, [RESYNC, RESYNC]);
    assert.equal(a.reconnects, 1);
    assert.notEqual(a.listenPid, pid);

    heard = next(a, 'run_queued');
    await b.notify('run_queued', 'r2');
    assert.equal(await heard, 'r2');
  });

  it('send progress lazily: it reaches another process on its own, and shares one statement', async () => {
    const heard: string[] = [];
    const off = a.subscribe('run_progress', (payload) => heard.push(payload));
    // A long delay, so the three turns below surely fall inside one gathering batch.
    const lazy = await PostgresWakeups.open(schema.url, { lazyDelayMs: 60_000 });
    try {
      await b.notify('run_progress', 'p0');
      await until('p0 to arrive', () => heard.length === 1);

      const before = lazy.statements;
      for (const id of ['p1', 'p2', 'p3']) {
        await lazy.notify('run_progress', id); // returns at once: nothing is sent yet
        await new Promise((r) => setImmediate(r));
      }
      assert.equal(lazy.statements, before);
      // An urgent notification takes the progress gathered so far along with it, at once.
      const queued = next(a, 'run_queued');
      await lazy.notify('run_queued', 'r3');
      assert.equal(await queued, 'r3');
      assert.deepEqual(heard, ['p0', 'p1', 'p2', 'p3']);
      assert.equal(lazy.statements - before, 1);
    } finally {
      off();
      await lazy.close();
    }
  });

  it('send the progress still gathering when closed', async () => {
    const c = await PostgresWakeups.open(schema.url);
    const heard = next(a, 'run_progress');
    await c.notify('run_progress', 'last');
    await c.close();
    assert.equal(await heard, 'last');
  });
});
