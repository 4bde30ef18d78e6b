/**
 * Scenarios 3-5:
 * 3. a worker SIGKILLed before its first heartbeat (right after its claim), and another mid-cell:
 *    both runs reach a final state within the lease TTL plus one housekeeping sweep;
 * 4. a cell that busy-loops for twice the lease never causes a double success: the heartbeat runs in
 *    the worker process while the cell runs in its child (real time here, a 2 s lease);
 * 5. every process down for 6 simulated hours: on restart the documented catch-up happens (one run
 *    per schedule for the latest fire time, the rest recorded as coalesced or missed), with no burst.
 */

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { hostAddress, httpUrl } from '../support/host-address.ts';
import { postgresUnavailable } from '../support/services.ts';
import { duplicates, MINUTE, scheduledProject } from './common.ts';
import { Cluster, notebook } from './support/cluster.ts';

const unavailable = await postgresUnavailable();
const ALL = 'web,scheduler,worker,notifier';

describe('reliability: leases and downtime', { skip: unavailable ?? false }, () => {
  it('a worker killed before its first heartbeat, and one killed mid-cell: final within lease + one sweep', async () => {
    const lease = 30_000;
    const cluster = await Cluster.create({
      env: { ALMANAC_LEASE_MS: String(lease), ALMANAC_HOUSEKEEPING_MS: '100' },
    });
    try {
      await cluster.start('web', { roles: 'web,scheduler,notifier' });
      await cluster.start('survivor', { roles: 'worker' });
      await scheduledProject(cluster, 'web', { slug: 'leases', count: 0 });
      for (const point of ['after_claim', 'mid_cell']) {
        // The survivor stops claiming while the victim takes the run: it is the only worker up.
        await cluster.kill('survivor');
        const victim = await cluster.start(`victim-${point}`, {
          roles: 'worker',
          env: { ALMANAC_CRASH_AT: point },
        });
        const run = await cluster.api('web', 'POST', '/api/projects/leases/runs', {});
        assert.equal(run.status, 201);
        await victim.exited;
        assert.equal(victim.crashed, point);
        const claimedAt = cluster.now;
        await cluster.start('survivor', { roles: 'worker' });
        // Not before the lease expires...
        const early = await cluster.api('web', 'GET', `/api/runs/${run.body.id}`);
        assert.equal(early.body.status, 'running', `${point}: held until the lease expires`);
        // ...and final within the lease plus one sweep of housekeeping.
        cluster.setClock(claimedAt + lease + 1);
        await cluster.until(
          `${point}: the run is final`,
          async () => {
            const now = await cluster.api('web', 'GET', `/api/runs/${run.body.id}`);
            return now.body.status === 'succeeded';
          },
          10_000,
        );
        const final = await cluster.api('web', 'GET', `/api/runs/${run.body.id}`);
        assert.deepEqual([final.body.status, final.body.attempts], ['succeeded', 2], point);
      }
    } finally {
      await cluster.close();
    }
  });

  it('a cell busy for twice the lease: heartbeats hold it, one success, the cell ran once', async () => {
    let hits = 0;
    const counter = createServer((_req, res) => {
      hits++;
      res.end('ok');
    });
    // Not loopback: cells may not reach the host's loopback services (the cell network guard).
    await new Promise<void>((r) => counter.listen(0, hostAddress(), r));
    const url = httpUrl(hostAddress(), (counter.address() as AddressInfo).port);
    // Real time: a 2 s lease renewed every ~0.7 s, two workers that could steal the run.
    const cluster = await Cluster.create({
      clock: null,
      env: { ALMANAC_LEASE_MS: '2000', ALMANAC_HOUSEKEEPING_MS: '200' },
    });
    try {
      await cluster.start('w1', { roles: ALL });
      await cluster.start('w2', { roles: 'worker' });
      const cells = `\`\`\`js spin\nawait fetch(${JSON.stringify(url)});\nconst end = Date.now() + 4000;\nwhile (Date.now() < end) {}\nreturn 'done'\n\`\`\`\n`;
      assert.equal(
        (await cluster.api('w1', 'POST', '/api/projects', { source: notebook('busy', cells), slug: 'busy' }))
          .status,
        201,
      );
      assert.equal((await cluster.api('w1', 'POST', '/api/projects/busy/publish', {})).status, 201);
      await cluster.until(
        'the busy run',
        async () => {
          const rows = await cluster.query<{ status: string }>(
            "select status from runs where trigger = 'publish'",
          );
          return rows[0]?.status === 'succeeded' || rows[0]?.status === 'failed';
        },
        30_000,
      );
      const rows = await cluster.query<{ status: string; attempts: number }>(
        'select status, attempts from runs',
      );
      assert.deepEqual(
        rows.map((r) => [r.status, Number(r.attempts)]),
        [['succeeded', 1]],
      );
      assert.equal(hits, 1, 'the cell ran once');
    } finally {
      await cluster.close();
      counter.close();
    }
  });

  it('every process down for 6 hours: the documented catch-up, misses recorded, no burst', async () => {
    const cluster = await Cluster.create({});
    try {
      await cluster.start('a', { roles: ALL });
      await cluster.start('b', { roles: ALL });
      const ids = await scheduledProject(cluster, 'a', { slug: 'downtime', count: 5 });
      const first = Math.ceil(cluster.now / MINUTE) * MINUTE;
      cluster.setClock(first + 1000);
      await cluster.until('the first fire time', async () => {
        const rows = await cluster.query<{ n: string }>(
          "select count(*)::text as n from runs where status = 'succeeded' and trigger = 'schedule'",
        );
        return Number(rows[0]!.n) === 5;
      });
      await cluster.kill('a');
      await cluster.kill('b');
      const back = first + 6 * 60 * MINUTE + 30_000;
      cluster.setClock(back);
      await cluster.start('a', { roles: ALL });
      await cluster.start('b', { roles: ALL });
      const latest = first + 6 * 60 * MINUTE;
      await cluster.until('the catch-up runs', async () => {
        const rows = await cluster.query<{ n: string }>(
          "select count(*)::text as n from runs where status = 'succeeded' and trigger = 'schedule' and scheduled_for = $1",
          [new Date(latest).toISOString()],
        );
        return Number(rows[0]!.n) === 5;
      });
      // Per schedule: one run for the latest fire time (coalesce, the default), the other fire times
      // of the last hour (the catch-up window) recorded as coalesced, older ones as missed.
      for (const id of ids) {
        const rows = await cluster.query<{ status: string; reason: string | null; n: string }>(
          'select status, reason, count(*)::text as n from runs where schedule_id = $1 and scheduled_for > $2 group by 1, 2 order by 1, 2',
          [id, new Date(first).toISOString()],
        );
        assert.deepEqual(
          rows.map((r) => [r.status, r.reason, Number(r.n)]),
          [
            ['skipped', 'coalesced', 59],
            ['skipped', 'missed', 300],
            ['succeeded', null, 1],
          ],
        );
      }
      assert.equal(await duplicates(cluster), 0);
      const executed = await cluster.query<{ n: string }>(
        "select count(*)::text as n from runs where trigger = 'schedule' and status <> 'skipped'",
      );
      assert.equal(Number(executed[0]!.n), 10, 'no burst: one run per schedule, plus the first fire time');
    } finally {
      await cluster.close();
    }
  });
});
