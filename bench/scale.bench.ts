/**
 * Scale-out figures, in one run (docs/performance.md, "Scale-out"):
 *
 * - queue throughput: runs created (through the service, by 16 concurrent producers), claimed and
 *   finished per second with a no-op executor, with 1, 2 and 3 worker processes on PostgreSQL; and the
 *   claim latency (created → claimed) p50/p99 under that load;
 * - end-to-end throughput: trivial notebook runs per second through a whole server (queue, worker,
 *   sandboxed child process per run: permission model, bubblewrap and prlimit where present), next to
 *   the rate at which the same concurrency can spawn and reap bare `node -e ""` processes (the floor).
 *
 * Run: npm run bench:scale [-- --runs 3000 --e2e 200 --concurrency 4]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import { resolveConfig } from '../src/app/config.ts';
import { createServer } from '../src/app/create-server.ts';
import { openServices } from '../src/app/open-services.ts';
import * as projects from '../src/services/project-service.ts';
import * as runs from '../src/services/run-service.ts';
import type { Principal } from '../src/services/service-context.ts';
import { bootstrap } from '../src/services/workspace-service.ts';
import { freshPostgresSchema } from '../test/support/services.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3000' },
    e2e: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '4' },
  },
});
const RUNS = Number(values.runs);
const E2E = Number(values.e2e);
const CONCURRENCY = Number(values.concurrency);

async function admin(ctx: Awaited<ReturnType<typeof openServices>>['ctx']): Promise<Principal> {
  await bootstrap(ctx);
  const row = await ctx.db.selectFrom('users').select(['id', 'workspace_id']).executeTakeFirstOrThrow();
  return { userId: row.id, workspaceId: row.workspace_id, role: 'admin', name: 'bench' };
}

async function queueThroughput(workers: number) {
  const schema = await freshPostgresSchema();
  const producer = await openServices(schema.url, { secretKey: () => Buffer.alloc(32) });
  const principal = await admin(producer.ctx);
  const project = await projects.createProject(producer.ctx, principal, {
    source: '# Noop\n\n```js one\nreturn 1\n```\n',
    slug: 'noop',
  });
  await projects.publish(producer.ctx, principal, project.id);
  const children = [];
  for (let i = 0; i < workers; i++) {
    const child = spawn(process.execPath, [join(import.meta.dirname, 'support', 'queue-worker.ts')], {
      env: { ...process.env, DATABASE_URL: schema.url, WORKER_CONCURRENCY: '16' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((r) => child.stdout!.once('data', () => r()));
    children.push(child);
  }
  const finished = async () =>
    Number(
      (
        await sql<{ n: string }>`select count(*)::text as n from runs where status = 'succeeded'`.execute(
          producer.ctx.db,
        )
      ).rows[0]!.n,
    );
  while ((await finished()) < 1) await new Promise((r) => setTimeout(r, 20)); // the publish run
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next++ < RUNS) {
        await runs.enqueueRun(producer.ctx, principal, project.id, {
          trigger: 'api',
          context: 'api-triggered',
        });
      }
    }),
  );
  const created = performance.now();
  while ((await finished()) < RUNS + 1) await new Promise((r) => setTimeout(r, 20));
  const elapsed = (performance.now() - t0) / 1000;
  const latency = (
    await sql<{ p50: number; p99: number }>`select
        percentile_cont(0.5) within group (order by extract(epoch from (started_at - created_at)) * 1000) as p50,
        percentile_cont(0.99) within group (order by extract(epoch from (started_at - created_at)) * 1000) as p99
      from runs where trigger = 'api'`.execute(producer.ctx.db)
  ).rows[0]!;
  for (const child of children) child.kill('SIGTERM');
  await Promise.all(children.map((c) => new Promise((r) => c.once('exit', r))));
  await producer.close();
  await schema.drop();
  return {
    workers,
    throughput: RUNS / elapsed,
    createRate: RUNS / ((created - t0) / 1000),
    p50: Number(latency.p50),
    p99: Number(latency.p99),
  };
}

async function endToEnd() {
  const dir = mkdtempSync(join(tmpdir(), 'almanac-scale-bench-'));
  const schema = await freshPostgresSchema();
  const server = await createServer(
    resolveConfig(
      { dataDir: dir, port: 0 },
      {
        DATABASE_URL: schema.url,
        ALMANAC_SECRET_KEY: 'bench',
        ALMANAC_LOG_LEVEL: 'silent',
        ALMANAC_WORKER_CONCURRENCY: String(CONCURRENCY),
        ALMANAC_SANDBOX: process.env['ALMANAC_SANDBOX'] ?? 'auto',
      },
    ),
    { listen: false, notifier: { screenshots: null } },
  );
  const principal = await server.admin();
  const project = await projects.createProject(server.ctx, principal, {
    source: '# Trivial\n\n```js one\nreturn 1\n```\n',
    slug: 'trivial',
  });
  await projects.publish(server.ctx, principal, project.id);
  const count = async () =>
    Number(
      (
        await sql<{
          n: string;
        }>`select count(*)::text as n from runs where status in ('succeeded', 'failed')`.execute(
          server.ctx.db,
        )
      ).rows[0]!.n,
    );
  while ((await count()) < 1) await new Promise((r) => setTimeout(r, 20));
  const t0 = performance.now();
  for (let i = 0; i < E2E; i++) {
    await runs.enqueueRun(server.ctx, principal, project.id, { trigger: 'api', context: 'api-triggered' });
  }
  while ((await count()) < E2E + 1) await new Promise((r) => setTimeout(r, 20));
  const almanac = E2E / ((performance.now() - t0) / 1000);
  const failed = Number(
    (
      await sql<{ n: string }>`select count(*)::text as n from runs where status = 'failed'`.execute(
        server.ctx.db,
      )
    ).rows[0]!.n,
  );
  const isolation = server.almanac.executor.isolation;
  await server.stop();
  await schema.drop();
  rmSync(dir, { recursive: true, force: true });

  // The floor: the same concurrency spawning and reaping bare node processes.
  let next = 0;
  const f0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < E2E) {
        await new Promise<void>((r) =>
          spawn(process.execPath, ['-e', ''], { stdio: 'ignore' }).once('exit', () => r()),
        );
      }
    }),
  );
  const floor = E2E / ((performance.now() - f0) / 1000);
  return { almanac, floor, failed, isolation };
}

const rows: string[] = [];
rows.push(
  `Queue throughput on PostgreSQL: ${RUNS} runs created by 16 producers, claimed and finished (no-op executor, 16 slots per worker)`,
);
rows.push(
  `${'workers'.padEnd(10)} ${'runs/s'.padStart(8)} ${'create/s'.padStart(9)} ${'claim p50 ms'.padStart(13)} ${'claim p99 ms'.padStart(13)}`,
);
for (const workers of [1, 2, 3]) {
  const r = await queueThroughput(workers);
  rows.push(
    `${String(r.workers).padEnd(10)} ${r.throughput.toFixed(0).padStart(8)} ${r.createRate.toFixed(0).padStart(9)} ${r.p50.toFixed(1).padStart(13)} ${r.p99.toFixed(1).padStart(13)}`,
  );
  process.stdout.write(`${rows.at(-1)}\n`);
}
const e2e = await endToEnd();
rows.push('');
rows.push(
  `End-to-end: ${E2E} trivial notebook runs through a server (PostgreSQL), ${CONCURRENCY} at a time, each in its own sandboxed process (bubblewrap: ${e2e.isolation.bwrap ? 'yes' : 'no'}, prlimit: ${e2e.isolation.prlimit ? 'yes' : 'no'})`,
);
rows.push(
  `almanac runs/s            ${e2e.almanac.toFixed(1)}${e2e.failed ? ` (${e2e.failed} failed!)` : ''}`,
);
rows.push(`floor: bare node spawns/s ${e2e.floor.toFixed(1)}`);
rows.push(`ratio                     ${(e2e.almanac / e2e.floor).toFixed(2)}x (goal >= 0.8x)`);
process.stdout.write(`\n${rows.join('\n')}\n`);
process.exit(0);
