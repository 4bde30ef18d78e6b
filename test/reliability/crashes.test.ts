/**
 * Scenario 2: iterations that each SIGKILL a process at a random crash point (after the fire-time
 * insert, after a claim, mid-cell, before the finishing commit, after sending a notification), or at a
 * random moment when no armed point was reached, then restart it. After each: exactly one run per
 * (schedule, fire time), every run final, and at most one notification per run and destination.
 *
 * A process killed in an iteration comes back armed with a random crash point, which a later iteration
 * reaches (or a random kill replaces); one that dies while an iteration settles comes back clean.
 * Seeded:
 * RELIABILITY_SEED replays a failing sequence; RELIABILITY_ITERATIONS sets the count (default 200).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CRASH_POINTS } from '../../src/services/crash-points.ts';
import { postgresUnavailable } from '../support/services.ts';
import { duplicates, MINUTE, scheduledProject } from './common.ts';
import { Cluster, seeded, webhookReceiver } from './support/cluster.ts';

const unavailable = await postgresUnavailable();
const ITERATIONS = Number(process.env['RELIABILITY_ITERATIONS'] ?? 200);
const SEED = Number(process.env['RELIABILITY_SEED'] ?? Date.now() % 100_000);
const SCHEDULES = 4;
const NAMES = ['p1', 'p2', 'p3'];
const STEP = 10 * MINUTE;

describe('reliability: crash points', { skip: unavailable ?? false }, () => {
  let cluster: Cluster;
  let hook: Awaited<ReturnType<typeof webhookReceiver>>;
  const random = seeded(SEED);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const armed = new Map<string, string>();
  /** Starts a process, armed with a random crash point unless `clean`. */
  const start = (name: string, clean = false) => {
    const point = clean ? null : pick(CRASH_POINTS);
    armed.set(name, point ?? 'none');
    return cluster.start(name, {
      roles: 'web,scheduler,worker,notifier',
      env: point ? { ALMANAC_CRASH_AT: point } : {},
    });
  };

  before(async () => {
    hook = await webhookReceiver();
    cluster = await Cluster.create({
      env: {
        ALMANAC_LEASE_MS: '30000',
        ALMANAC_HOUSEKEEPING_MS: '200',
        ALMANAC_WORKER_CONCURRENCY: '4',
      },
    });
    // The first process sets up without a crash point; then every start is armed.
    await cluster.start('p1', { roles: 'web,scheduler,worker,notifier' });
    const ids = await scheduledProject(cluster, 'p1', {
      slug: 'crashy',
      count: SCHEDULES,
      // A code cell, not SQL: this suite checks the queue, the leases and the outbox under kill -9.
      // Runs on the embedded DuckDB take its file one at a time per process (docs/decisions.md,
      // per-run DuckDB instances), which under this suite's compressed clock turns into lease
      // timing; test/duckdb-isolation.test.ts covers the database itself.
      cells: '```js one\nreturn 1\n```\n',
      cron: '*/10 * * * *',
    });
    assert.equal(
      (await cluster.api('p1', 'PUT', '/api/integrations', { allowPrivateWebhooks: true })).status,
      200,
    );
    for (const scheduleId of ids) {
      // The pre-filled "owners on failure" rule is removed, as a user may: this scenario counts the
      // success webhook's deliveries, and the email outbox is covered elsewhere.
      const prefilled = await cluster.api(
        'p1',
        'GET',
        `/api/projects/crashy/notification-rules?schedule=${encodeURIComponent(scheduleId)}`,
      );
      assert.equal(prefilled.status, 200, JSON.stringify(prefilled.body));
      const list = (Array.isArray(prefilled.body) ? prefilled.body : prefilled.body.rules) as {
        id: string;
      }[];
      for (const existing of list) {
        const removed = await cluster.api('p1', 'DELETE', `/api/notification-rules/${existing.id}`);
        assert.ok(removed.status === 204 || removed.status === 200, JSON.stringify(removed.body));
      }
      const rule = await cluster.api('p1', 'POST', '/api/projects/crashy/notification-rules', {
        scheduleId,
        trigger: { kind: 'success' },
        destinations: [{ kind: 'webhook', url: hook.url }],
      });
      assert.equal(rule.status, 201, JSON.stringify(rule.body));
    }
    await cluster.restart('p1');
    armed.set('p1', 'none');
    await start('p2');
    await start('p3');
  });
  after(async () => {
    await cluster?.close();
    await hook?.close();
  });

  it(`${ITERATIONS} iterations of kill -9 at a crash point and restart (seed ${SEED})`, async () => {
    const kills = new Map<string, number>();
    let fire = Math.ceil((cluster.now + 1000) / STEP) * STEP;
    for (let i = 0; i < ITERATIONS; i++) {
      cluster.setClock(fire + 1000);
      // Wait for an armed process to die, or for the fire time's runs to be done.
      const done = async () => {
        const rows = await cluster.query<{ n: string }>(
          "select count(*)::text as n from runs where scheduled_for = $1 and status in ('succeeded', 'failed')",
          [new Date(fire).toISOString()],
        );
        return Number(rows[0]!.n) === SCHEDULES;
      };
      const dead = () =>
        NAMES.filter(
          (n) =>
            cluster.members.get(n)!.child.exitCode !== null ||
            cluster.members.get(n)!.child.signalCode !== null,
        );
      await cluster.until(
        `iteration ${i}: a crash or the runs`,
        async () => dead().length > 0 || (await done()),
        30_000,
      );
      let victims = dead();
      if (victims.length === 0) {
        // No armed point was reached: kill one at whatever it is doing.
        const victim = pick(NAMES);
        await cluster.kill(victim);
        victims = [victim];
        kills.set('random moment', (kills.get('random moment') ?? 0) + 1);
      } else {
        for (const v of victims) {
          const point = cluster.members.get(v)!.crashed ?? 'unknown';
          kills.set(point, (kills.get(point) ?? 0) + 1);
        }
      }
      for (const v of victims) await start(v);
      // Settle: time moves on in steps, past the run lease (30 s) and the delivery lease (120 s), up to
      // the next fire time, and processes that die meanwhile (armed points reached late) come back.
      const settled = async () => (await done()) && (await deliveriesFinal());
      const deliveriesFinal = async () => {
        const rows = await cluster.query<{ n: string }>(
          "select count(*)::text as n from deliveries d join runs r on r.id = d.run_id where r.scheduled_for <= $1 and d.status in ('pending', 'sending')",
          [new Date(fire).toISOString()],
        );
        return Number(rows[0]!.n) === 0;
      };
      await cluster
        .until(
          `iteration ${i}: runs and deliveries final`,
          async () => {
            if (await settled()) return true;
            // An armed process that reached its point late comes back clean.
            for (const n of dead()) {
              const point = cluster.members.get(n)!.crashed ?? 'unknown';
              kills.set(point, (kills.get(point) ?? 0) + 1);
              await start(n, true);
            }
            // Steps shorter than the lease (30 s), and only while no live process is mid-run: time
            // moves to expire dead processes' leases (see Cluster.advanceUnlessBusy).
            if (cluster.now + 20_000 < fire + STEP) await cluster.advanceUnlessBusy(20_000);
            await new Promise((r) => setTimeout(r, 60));
            return false;
          },
          90_000,
        )
        .catch(async (error) => {
          const open = await cluster.query(
            'select id, status, attempts, max_attempts, worker, lease_expires_at, reason from runs where scheduled_for = $1',
            [new Date(fire).toISOString()],
          );
          process.stderr.write(
            `runs of ${new Date(fire).toISOString()} (clock ${new Date(cluster.now).toISOString()}): ${JSON.stringify(open)}\n`,
          );
          throw error;
        });
      fire += STEP;
    }

    // Exactly one run per (schedule, fire time); every fire time of the test has all its runs.
    assert.equal(await duplicates(cluster), 0);
    const perFire = await cluster.query<{ n: string; fires: string }>(
      "select count(*)::text as n, count(distinct scheduled_for)::text as fires from runs where trigger = 'schedule'",
    );
    assert.equal(Number(perFire[0]!.n), SCHEDULES * ITERATIONS);
    assert.equal(Number(perFire[0]!.fires), ITERATIONS);
    const stuck = await cluster.query<{ n: string }>(
      "select count(*)::text as n from runs where status in ('queued', 'running')",
    );
    assert.equal(Number(stuck[0]!.n), 0, 'no run is stuck');
    const statuses = await cluster.query<{ status: string; reason: string | null; n: string }>(
      "select status, reason || ' after ' || attempts || ' attempt(s)' as reason, count(*)::text as n from runs where trigger = 'schedule' group by 1, 2",
    );
    // At most one notification per (run, destination).
    const perRun = new Map<string, number>();
    for (const r of hook.received) perRun.set(r.runId, (perRun.get(r.runId) ?? 0) + 1);
    const twice = [...perRun.entries()].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [], 'no run notified a destination twice');
    const deliveries = await cluster.query<{ status: string; uncertain: boolean; n: string }>(
      "select status, error like '%may or may not have arrived%' as uncertain, count(*)::text as n from deliveries group by 1, 2",
    );
    process.stdout.write(
      `# seed ${SEED}: kills ${JSON.stringify(Object.fromEntries(kills))}; runs ${JSON.stringify(statuses.map((s) => [s.status, s.reason, Number(s.n)]))}; deliveries ${JSON.stringify(deliveries.map((d) => [d.status, d.uncertain, Number(d.n)]))}; webhooks received ${hook.received.length}\n`,
    );
    // Every succeeded run has its one webhook delivery, final: sent (and received exactly once), or a
    // visible failure (the notifier died after handing it off: it may have arrived, and is not sent
    // again). Failed runs also notify the owners by email (every schedule's pre-filled failure rule).
    const succeeded = statuses.filter((s) => s.status === 'succeeded').reduce((a, s) => a + Number(s.n), 0);
    const final = await cluster.query<{ id: string; status: string; run_status: string }>(
      "select d.id, d.status, r.status as run_status from deliveries d join runs r on r.id = d.run_id where d.channel = 'webhook'",
    );
    assert.equal(final.length, succeeded, JSON.stringify(final.filter((d) => d.run_status !== 'succeeded')));
    const received = new Set(hook.received.map((r) => r.deliveryId));
    for (const d of final) {
      assert.ok(d.status === 'sent' || d.status === 'failed', `delivery ${d.id} is ${d.status}`);
      if (d.status === 'sent') assert.ok(received.has(d.id), `sent delivery ${d.id} was received`);
    }
  });
});
