/**
 * Scenarios 6-8:
 * 6. PostgreSQL connections cut while runs are claimed and heartbeats renew (pg_terminate_backend on
 *    every Almanac connection, LISTEN included), then PostgreSQL restarted: no run lost or duplicated,
 *    and work continues afterwards;
 * 7. notification channels answering 429 with Retry-After, 500, and timing out: Retry-After honoured,
 *    attempts bounded, a visible final failure, nothing sent twice;
 * 8. kill -9 during bursts of run-log writes on SQLite: every acknowledged run survives and
 *    `PRAGMA integrity_check` returns ok.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import pg from 'pg';
import { POSTGRES_URL, postgresUnavailable, REQUIRE_SERVICES } from '../support/services.ts';
import { duplicates, MINUTE, scheduledProject } from './common.ts';
import { ADMIN_TOKEN, Cluster, notebook } from './support/cluster.ts';

const unavailable = await postgresUnavailable();
const ALL = 'web,scheduler,worker,notifier';

async function terminateAlmanacConnections(): Promise<number> {
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ n: string }>(
      "select count(pg_terminate_backend(pid))::text as n from pg_stat_activity where application_name like 'almanac%' and pid <> pg_backend_pid()",
    );
    return Number(rows[0]!.n);
  } finally {
    await admin.end();
  }
}

/** Restarts the local PostgreSQL cluster (Debian's pg_ctlcluster), or null when this machine cannot. */
function restartPostgres(): string | null {
  try {
    const version = readdirSync('/etc/postgresql')[0];
    if (!version) return 'no /etc/postgresql';
    execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'restart'], {
      stdio: 'ignore',
      timeout: 60_000,
    });
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

describe('reliability: faults', () => {
  it('PostgreSQL connections cut mid-claim, mid-heartbeat and on LISTEN, then a PostgreSQL restart: nothing lost or twice', {
    skip: unavailable ?? false,
  }, async () => {
    const cluster = await Cluster.create({
      env: { ALMANAC_LEASE_MS: '30000', ALMANAC_HOUSEKEEPING_MS: '200', ALMANAC_WORKER_CONCURRENCY: '4' },
    });
    try {
      for (const name of ['a', 'b', 'c']) await cluster.start(name, { roles: ALL });
      await scheduledProject(cluster, 'a', { slug: 'cut', count: 10 });
      let fire = Math.ceil(cluster.now / MINUTE) * MINUTE;
      const settle = async (label: string) => {
        const began = Date.now();
        let reported = false;
        await cluster.until(
          label,
          async () => {
            const rows = await cluster.query<{ n: string }>(
              "select count(*)::text as n from runs where trigger = 'schedule' and scheduled_for = $1 and status = 'succeeded'",
              [new Date(fire).toISOString()],
            );
            if (Number(rows[0]!.n) === 10) return true;
            if (Date.now() - began > 60_000 && !reported) {
              reported = true;
              const open = await cluster.query(
                'select id, status, reason, attempts, worker, lease_expires_at from runs where scheduled_for = $1 and status <> $2',
                [new Date(fire).toISOString(), 'succeeded'],
              );
              process.stderr.write(
                `${label}: ${JSON.stringify(open)} at ${new Date(cluster.now).toISOString()}\n`,
              );
            }
            // Time moves on in steps shorter than the lease, so runs of a cut connection are recovered,
            // but not while a live process is mid-run (see Cluster.advanceUnlessBusy).
            if (cluster.now + 10_000 < fire + MINUTE) await cluster.advanceUnlessBusy(10_000);
            await new Promise((r) => setTimeout(r, 100));
            return false;
          },
          90_000,
        );
      };
      // Cuts while fire times are claimed, run and heartbeat.
      for (let round = 0; round < 4; round++) {
        cluster.setClock(fire + 1000);
        for (let cut = 0; cut < 3; cut++) {
          await new Promise((r) => setTimeout(r, 40 + Math.random() * 120));
          await terminateAlmanacConnections();
        }
        await settle(`round ${round}`);
        fire += MINUTE;
      }
      // A PostgreSQL restart.
      cluster.setClock(fire + 1000);
      const why = restartPostgres();
      if (why) {
        if (REQUIRE_SERVICES) assert.fail(`cannot restart PostgreSQL: ${why}`);
        process.stderr.write(`!! SKIPPING the PostgreSQL restart: ${why}\n`);
      }
      await settle('after the restart');
      fire += MINUTE;
      // Work continues, on every process (their LISTEN connections came back).
      cluster.setClock(fire + 1000);
      await settle('after everything');
      assert.equal(await duplicates(cluster), 0);
      const rows = await cluster.query<{ status: string; n: string }>(
        "select status, count(*)::text as n from runs where trigger = 'schedule' group by 1",
      );
      assert.deepEqual(
        rows.map((r) => [r.status, Number(r.n)]),
        [['succeeded', 60]],
      );
      for (const name of ['a', 'b', 'c']) {
        const ready = await fetch(`${cluster.members.get(name)!.url}/readyz`);
        assert.equal(ready.status, 200, `${name} is ready again`);
      }
    } finally {
      await cluster.close();
    }
  });

  it('channels answering 429 with Retry-After, 500, and timing out: bounded, visible, never twice', {
    skip: unavailable ?? false,
  }, async () => {
    const seen = new Map<string, number>();
    let mode: '429' | '500' | 'hang' | 'ok' = '429';
    const hook = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const id = (JSON.parse(body) as { deliveryId: string }).deliveryId;
        seen.set(id, (seen.get(id) ?? 0) + 1);
        if (mode === '429') res.writeHead(429, { 'retry-after': '90' }).end();
        else if (mode === '500') res.writeHead(500).end();
        else if (mode === 'ok') res.writeHead(204).end();
        // 'hang': never answers
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
    const cluster = await Cluster.create({ env: { ALMANAC_WEBHOOK_TIMEOUT_MS: '1000' } });
    try {
      await cluster.start('a', { roles: ALL });
      await scheduledProject(cluster, 'a', { slug: 'noisy', count: 0 });
      assert.equal(
        (await cluster.api('a', 'PUT', '/api/integrations', { allowPrivateWebhooks: true })).status,
        200,
      );
      // API-triggered runs carrying their rule, so moving the clock fires nothing else.
      const trigger = async () => {
        const run = await cluster.api('a', 'POST', '/api/projects/noisy/runs', {
          notifications: [{ trigger: { kind: 'success' }, destinations: [{ kind: 'webhook', url }] }],
        });
        assert.equal(run.status, 201, JSON.stringify(run.body));
        return run.body.id as string;
      };
      const deliveryOf = async (runId: string) =>
        (
          await cluster.query<{
            id: string;
            status: string;
            attempts: number;
            error: string | null;
            next_attempt_at: Date;
          }>('select id, status, attempts, error, next_attempt_at from deliveries where run_id = $1', [runId])
        )[0];
      // 429 with Retry-After: 90 s: the next attempt is due 90 s later, not on our 30 s backoff.
      const first = await trigger();
      await cluster.until('the first attempt', async () => {
        const d = await deliveryOf(first);
        return d?.attempts === 1 && d.status === 'pending';
      });
      let d = (await deliveryOf(first))!;
      assert.match(d.error ?? '', /HTTP 429 \(retry after 90 s\)/);
      assert.equal(new Date(d.next_attempt_at).getTime(), cluster.now + 90_000);
      cluster.advance(60_000);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await deliveryOf(first))!.attempts, 1, 'not before Retry-After');
      // 500 from then on: attempts are bounded (5) and end in a visible failure.
      mode = '500';
      for (let i = 0; i < 40 && (await deliveryOf(first))!.status !== 'failed'; i++) {
        cluster.advance(31 * MINUTE);
        await new Promise((r) => setTimeout(r, 150));
      }
      d = (await deliveryOf(first))!;
      assert.deepEqual([d.status, Number(d.attempts)], ['failed', 5]);
      assert.match(d.error ?? '', /HTTP 500/);
      assert.equal(seen.get(d.id), 5, 'each attempt reached the receiver once');
      // A receiver that takes the message and never answers: it may have arrived, so it is not sent
      // again; it ends failed, visibly, with resend.
      mode = 'hang';
      const second = await trigger();
      await cluster.until(
        'the hanging attempt to end',
        async () => (await deliveryOf(second))?.status === 'failed',
        30_000,
      );
      const hung = (await deliveryOf(second))!;
      assert.match(hung.error ?? '', /may have arrived/);
      assert.equal(seen.get(hung.id), 1, 'sent once');
      for (let i = 0; i < 5; i++) {
        cluster.advance(31 * MINUTE);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(seen.get(hung.id), 1, 'still once, however long we wait');
    } finally {
      await cluster.close();
      hook.closeAllConnections();
      hook.close();
    }
  });

  it('kill -9 during bursts of run-log writes on SQLite: acknowledged runs survive, integrity ok', async () => {
    const cluster = await Cluster.create({ sqlite: true, clock: null });
    try {
      await cluster.start('solo', { roles: ALL });
      assert.equal(
        (await cluster.api('solo', 'POST', '/api/projects', { source: notebook('burst'), slug: 'burst' }))
          .status,
        201,
      );
      assert.equal((await cluster.api('solo', 'POST', '/api/projects/burst/publish', {})).status, 201);
      const acknowledged: string[] = [];
      for (let round = 0; round < 5; round++) {
        const member = cluster.members.get('solo')!;
        // Many writers at once: run creations, claims, cell progress and completions.
        const writers = Array.from({ length: 8 }, async () => {
          for (;;) {
            try {
              const res = await fetch(`${member.url}/api/projects/burst/runs`, {
                method: 'POST',
                headers: {
                  authorization: `Bearer ${ADMIN_TOKEN}`,
                  'content-type': 'application/json',
                },
                body: '{}',
              });
              if (res.status === 201) acknowledged.push(((await res.json()) as { id: string }).id);
            } catch {
              return; // the server is gone
            }
          }
        });
        await new Promise((r) => setTimeout(r, 300 + Math.random() * 700));
        await cluster.kill('solo');
        await Promise.all(writers);
        await cluster.start('solo', { roles: ALL });
      }
      await cluster.kill('solo');
      const db = new DatabaseSync(cluster.databaseUrl);
      try {
        assert.deepEqual(
          db
            .prepare('pragma integrity_check')
            .all()
            .map((r) => ({ ...r })),
          [{ integrity_check: 'ok' }],
        );
        const stored = new Set(
          (db.prepare('select id from runs').all() as { id: string }[]).map((r) => r.id),
        );
        const lost = acknowledged.filter((id) => !stored.has(id));
        assert.ok(acknowledged.length > 20, `${acknowledged.length} runs acknowledged`);
        assert.deepEqual(lost, [], 'every acknowledged run survived');
      } finally {
        db.close();
      }
    } finally {
      await cluster.close();
    }
  });
});
