/**
 * The run queue on both stores, printed side by side with baselines measured in the same run:
 *
 * - pickup latency: from the commit of a new run to a waiting worker's claim. The worker is the real
 *   `Worker`, woken by LISTEN/NOTIFY from another connection pool on PostgreSQL (as a worker on another
 *   machine would be) and by the in-process signal on SQLite. Next to it: one `select 1` round trip
 *   (the floor), and a claimer that polls every 100 ms (how queues without wake-ups behave).
 * - throughput: runs created through the service, claimed and finished by the worker (concurrency 4)
 *   with a no-op executor, per second. Next to it: the floor of three bare statements per run (insert,
 *   claim, finish) on the same driver.
 *
 * Run: npm run bench:queue [-- --samples 200 --runs 500]
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import pg from 'pg';
import { openServices } from '../src/app/open-services.ts';
import { Worker } from '../src/executor/worker.ts';
import * as projects from '../src/services/project-service.ts';
import * as runs from '../src/services/run-service.ts';
import type { Principal, ServiceContext } from '../src/services/service-context.ts';
import { bootstrap } from '../src/services/workspace-service.ts';
import * as rs from '../src/store/run-store.ts';
import { noopExecutor } from './support/noop-executor.ts';

const { values } = parseArgs({
  options: {
    samples: { type: 'string', default: '200' },
    runs: { type: 'string', default: '500' },
    postgres: {
      type: 'string',
      default: process.env['ALMANAC_TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test',
    },
  },
});
const SAMPLES = Number(values.samples);
const RUNS = Number(values.runs);

function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return { p50: at(0.5), p99: at(0.99) };
}

interface Side {
  ctx: ServiceContext;
  close(): Promise<void>;
}

function side(url: string): Promise<Side> {
  return openServices(url, { secretKey: () => Buffer.alloc(32) });
}

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setImmediate(r));
}

interface Result {
  store: string;
  floor: number;
  pickup: { p50: number; p99: number };
  polling: { p50: number; p99: number };
  throughput: number;
  bare: number;
}

async function measure(name: 'sqlite' | 'postgres', url: string, dir: string): Promise<Result> {
  const producer = await side(url);
  // On PostgreSQL the worker has its own pool and LISTEN connection, like another machine. SQLite is
  // owned by one process, so there the worker shares it.
  const consumer = name === 'postgres' ? await side(url) : producer;
  await bootstrap(producer.ctx);
  const adminRow = await producer.ctx.db
    .selectFrom('users')
    .select(['id', 'workspace_id'])
    .executeTakeFirstOrThrow();
  const admin: Principal = {
    userId: adminRow.id,
    workspaceId: adminRow.workspace_id,
    role: 'admin',
    name: 'bench',
  };
  const project = await projects.createProject(producer.ctx, admin, {
    source: '# Noop\n\n```js one\nreturn 1\n```\n',
    slug: 'noop',
  });
  const published = await projects.publish(producer.ctx, admin, project.id);
  const versionId = published.version.id;

  // Floor: one round trip.
  const floorSamples: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    await sql`select 1`.execute(consumer.ctx.db);
    floorSamples.push(performance.now() - t0);
  }

  const newRun = () => ({
    id: randomUUID(),
    workspaceId: admin.workspaceId,
    projectId: project.id,
    versionId,
    trigger: 'api' as const,
    context: 'api-triggered' as const,
    private: false,
    inputs: {},
    createdBy: admin.userId,
    createdAt: new Date(),
    scheduledFor: null,
    maxAttempts: 3,
    expiresAt: null,
  });

  // Pickup with wake-ups.
  const claimedAt = new Map<string, number>();
  const worker = new Worker({
    ctx: consumer.ctx,
    executor: noopExecutor,
    versionsDir: join(dir, 'versions'),
    concurrency: 1,
    onClaimed: (run) => claimedAt.set(run.id, performance.now()),
  });
  worker.start();
  await until(() => worker.activeRunIds.length === 0);
  await new Promise((r) => setTimeout(r, 200));
  const pickup: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const run = await rs.insertRun(producer.ctx.db, newRun());
    const committed = performance.now();
    await producer.ctx.wakeups.notify('run_queued', run.id);
    await until(() => claimedAt.has(run.id));
    pickup.push(claimedAt.get(run.id)! - committed);
    await until(() => worker.activeRunIds.length === 0);
  }
  await worker.stop();

  // Baseline: a claimer that polls every 100 ms.
  const polling: number[] = [];
  let stop = false;
  const polled = new Map<string, number>();
  const poller = (async () => {
    while (!stop) {
      const run = await runs.claimRun(consumer.ctx, { worker: 'poller', leaseMs: 60_000 });
      if (run) polled.set(run.id, performance.now());
      else await new Promise((r) => setTimeout(r, 100));
    }
  })();
  for (let i = 0; i < Math.min(40, SAMPLES); i++) {
    await new Promise((r) => setTimeout(r, Math.random() * 100));
    const run = await rs.insertRun(producer.ctx.db, newRun());
    const committed = performance.now();
    await until(() => polled.has(run.id));
    polling.push(polled.get(run.id)! - committed);
  }
  stop = true;
  await poller;

  // Throughput through the service and the worker.
  let finished = 0;
  const offProgress = consumer.ctx.wakeups.subscribe('run_progress', () => {});
  const throughputWorker = new Worker({
    ctx: consumer.ctx,
    executor: {
      run: async (request) => {
        const result = await noopExecutor.run(request);
        finished++;
        return result;
      },
    },
    versionsDir: join(dir, 'versions'),
    concurrency: 4,
  });
  throughputWorker.start();
  const t0 = performance.now();
  for (let i = 0; i < RUNS; i++) {
    await runs.enqueueRun(producer.ctx, admin, project.id, { trigger: 'api', context: 'api-triggered' });
  }
  await until(() => finished >= RUNS && throughputWorker.activeRunIds.length === 0);
  const throughput = RUNS / ((performance.now() - t0) / 1000);
  await throughputWorker.stop();
  offProgress();

  // Floor: three bare statements per run on the same driver.
  const b0 = performance.now();
  for (let i = 0; i < RUNS; i++) {
    const run = newRun();
    await rs.insertRun(producer.ctx.db, run);
    await producer.ctx.db.updateTable('runs').set({ status: 'running' }).where('id', '=', run.id).execute();
    await producer.ctx.db.updateTable('runs').set({ status: 'succeeded' }).where('id', '=', run.id).execute();
  }
  const bare = RUNS / ((performance.now() - b0) / 1000);

  if (consumer !== producer) await consumer.close();
  await producer.close();
  return {
    store: name,
    floor: stats(floorSamples).p50,
    pickup: stats(pickup),
    polling: stats(polling),
    throughput,
    bare,
  };
}

const results: Result[] = [];
const dir = mkdtempSync(join(tmpdir(), 'almanac-queue-bench-'));
try {
  results.push(await measure('sqlite', join(dir, 'bench.sqlite'), dir));
  const schema = `bench_${randomUUID().replace(/-/g, '').slice(0, 10)}`;
  const admin = new pg.Client({ connectionString: values.postgres });
  let pgReady = false;
  try {
    await admin.connect();
    await admin.query(`create schema ${schema}`);
    pgReady = true;
  } catch (error) {
    process.stderr.write(
      `!! PostgreSQL not reachable at ${values.postgres}: ${(error as Error).message}; PostgreSQL rows skipped\n`,
    );
  }
  if (pgReady) {
    try {
      const url = `${values.postgres}${values.postgres.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
      results.push(await measure('postgres', url, dir));
    } finally {
      await admin.query(`drop schema if exists ${schema} cascade`);
    }
  }
  await admin.end().catch(() => {});
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const f = (n: number) => n.toFixed(2).padStart(9);
process.stdout.write(
  `\nRun queue: pickup latency, commit → claim (ms; ${SAMPLES} samples; polling baseline 40)\n`,
);
process.stdout.write(
  `${'store'.padEnd(10)} ${'floor p50'.padStart(9)} ${'wake p50'.padStart(9)} ${'wake p99'.padStart(9)} ${'poll p50'.padStart(9)} ${'poll p99'.padStart(9)}\n`,
);
for (const r of results) {
  process.stdout.write(
    `${r.store.padEnd(10)} ${f(r.floor)} ${f(r.pickup.p50)} ${f(r.pickup.p99)} ${f(r.polling.p50)} ${f(r.polling.p99)}\n`,
  );
}
process.stdout.write(
  `\nRun queue: throughput, runs created + claimed + finished per second (${RUNS} runs, no-op executor, worker concurrency 4)\n`,
);
process.stdout.write(`${'store'.padEnd(10)} ${'almanac'.padStart(9)} ${'bare 3-stmt floor'.padStart(18)}\n`);
for (const r of results) {
  process.stdout.write(
    `${r.store.padEnd(10)} ${r.throughput.toFixed(0).padStart(9)} ${r.bare.toFixed(0).padStart(18)}\n`,
  );
}
