/**
 * Scenario 1: three processes, each running every role, and 50 minute-schedules over 60 simulated
 * minutes give exactly 3,000 runs, each (schedule, fire time) once, all succeeded on the first attempt.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { postgresUnavailable } from '../support/services.ts';
import { duplicates, finishedAt, MINUTE, scheduledProject } from './common.ts';
import { Cluster } from './support/cluster.ts';

const unavailable = await postgresUnavailable();
const SCHEDULES = 50;
const MINUTES = Number(process.env['RELIABILITY_MINUTES'] ?? 60);

describe('reliability: exactly once with three processes', { skip: unavailable ?? false }, () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.create({ env: { ALMANAC_WORKER_CONCURRENCY: '4' } });
    // All three start at once on the empty store: migrations and the first admin are made once.
    await Promise.all(
      ['a', 'b', 'c'].map((name) => cluster.start(name, { roles: 'web,scheduler,worker,notifier' })),
    );
  });
  after(() => cluster?.close());

  it(`${SCHEDULES} minute-schedules over ${MINUTES} minutes: ${SCHEDULES * MINUTES} runs, none twice`, async () => {
    // A code cell: the runs measure the scheduler and the queue, not the embedded database's file,
    // which runs take one at a time per process (see crashes.test.ts).
    await scheduledProject(cluster, 'a', {
      slug: 'minutely',
      count: SCHEDULES,
      cells: '```js one\nreturn 1\n```\n',
    });
    const first = Math.ceil(cluster.now / MINUTE) * MINUTE;
    for (let m = 0; m < MINUTES; m++) {
      const fire = first + m * MINUTE;
      cluster.setClock(fire + 1000);
      await cluster.until(
        `the runs of minute ${m + 1}`,
        async () => (await finishedAt(cluster, fire)) === SCHEDULES,
      );
    }
    const failures = await cluster.query<{ reason: string; error_message: string }>(
      "select reason, error_message from runs where status <> 'succeeded' limit 3",
    );
    assert.deepEqual(failures, []);
    const rows = await cluster.query<{ status: string; attempts: number; n: string }>(
      "select status, attempts, count(*)::text as n from runs where trigger = 'schedule' group by 1, 2",
    );
    assert.deepEqual(
      rows.map((r) => [r.status, Number(r.attempts), Number(r.n)]),
      [['succeeded', 1, SCHEDULES * MINUTES]],
    );
    assert.equal(await duplicates(cluster), 0);
    // Work was shared: every process claimed some.
    const workers = await cluster.query<{ n: string }>(
      "select count(distinct split_part(worker, ':', 2))::text as n from runs where trigger = 'schedule'",
    );
    assert.ok(Number(workers[0]!.n) >= 2, `runs were claimed by ${workers[0]!.n} process(es)`);
  });
});
