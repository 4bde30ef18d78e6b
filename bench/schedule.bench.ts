/**
 * Scheduled-run lateness: from a fire time to the run's claim by a worker, with an executor that returns
 * at once, so process start-up (bench/run-start.bench.ts) does not hide the scheduler. In one run:
 *
 * - burst: 1,000 schedules on `* * * * *`, all due the same second, over --minutes fire minutes, through
 *   Almanac on PostgreSQL and on SQLite, and through pg-boss's own cron scheduling on the same
 *   PostgreSQL (pg-boss at its fastest settings: cron checks every second, LISTEN/NOTIFY workers);
 * - spread: 10,000 schedules on 6-field crons spread over the seconds of a minute (~167 fire times a
 *   second), on both stores;
 * - scale: the scheduler's CPU and memory over 60 s while holding 100,000 enabled schedules that are not
 *   due.
 *
 * On PostgreSQL the scheduler and the worker have separate pools and LISTEN connections, as two nodes
 * would. Lateness is measured on this machine's clock, which is also the database's.
 *
 * Run: npm run bench:schedule [-- --minutes 3] [--only burst|spread|scale]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { PgBoss } from 'pg-boss';
import { openServices } from '../src/app/open-services.ts';
import type { Run } from '../src/domain/run.ts';
import { DEFAULT_POLICIES } from '../src/domain/schedule/schedule.ts';
import { Worker } from '../src/executor/worker.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import * as projects from '../src/services/project-service.ts';
import type { Principal, ServiceContext } from '../src/services/service-context.ts';
import { bootstrap } from '../src/services/workspace-service.ts';
import * as ss from '../src/store/schedule-store.ts';
import { noopExecutor } from './support/noop-executor.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '3' },
    only: { type: 'string' },
    postgres: {
      type: 'string',
      default: process.env['ALMANAC_TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test',
    },
  },
});
const MINUTES = Number(values.minutes);
/**
 * Worker slots, for the burst and the spread load alike: with a no-op executor, enough for every run due
 * in the same second, so the figures measure the scheduler and the queue rather than how many runs one
 * worker may hold (with 64 slots, 167 runs due at once wait for each other's completions).
 */
const WORKER_SLOTS = 1024;
const want = (name: string) => !values.only || values.only === name;

interface Stats {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? Number.NaN };
}

async function freshSchema(): Promise<{ url: string; drop(): Promise<void> } | null> {
  const schema = `bench_${randomUUID().replace(/-/g, '').slice(0, 10)}`;
  const admin = new pg.Client({ connectionString: values.postgres });
  try {
    await admin.connect();
    await admin.query(`create schema ${schema}`);
  } catch (error) {
    process.stderr.write(
      `!! PostgreSQL not reachable at ${values.postgres}: ${(error as Error).message}; its rows are skipped\n`,
    );
    await admin.end().catch(() => {});
    return null;
  }
  await admin.end();
  return {
    url: `${values.postgres}${values.postgres.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`,
    async drop() {
      const c = new pg.Client({ connectionString: values.postgres });
      await c.connect();
      await c.query(`drop schema if exists ${schema} cascade`);
      await c.end();
    },
  };
}

interface Setup {
  scheduler: ServiceContext;
  worker: ServiceContext;
  admin: Principal;
  projectId: string;
  dir: string;
  close(): Promise<void>;
}

async function setup(url: string, separateWorker: boolean): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'almanac-schedule-bench-'));
  const a = await openServices(url, { secretKey: () => Buffer.alloc(32) });
  const b = separateWorker ? await openServices(url, { secretKey: () => Buffer.alloc(32) }) : a;
  await bootstrap(a.ctx);
  const row = await a.ctx.db.selectFrom('users').select(['id', 'workspace_id']).executeTakeFirstOrThrow();
  const admin: Principal = { userId: row.id, workspaceId: row.workspace_id, role: 'admin', name: 'bench' };
  const project = await projects.createProject(a.ctx, admin, {
    source: '# Noop\n\n```js one\nreturn 1\n```\n',
    slug: 'noop',
  });
  await projects.publish(a.ctx, admin, project.id);
  await a.ctx.db.deleteFrom('runs').execute();
  return {
    scheduler: a.ctx,
    worker: b.ctx,
    admin,
    projectId: project.id,
    dir,
    async close() {
      if (b !== a) await b.close();
      await a.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function addSchedules(
  s: Setup,
  count: number,
  cron: (i: number) => string,
  firstFire: (i: number) => Date,
) {
  const now = new Date();
  const rows: ss.Schedule[] = [];
  for (let i = 0; i < count; i++) {
    const fire = firstFire(i);
    rows.push({
      id: randomUUID(),
      workspaceId: s.admin.workspaceId,
      projectId: s.projectId,
      name: `s${i}`,
      cadence: { kind: 'cron', expression: cron(i) },
      timezone: 'UTC',
      inputs: {},
      policies: { ...DEFAULT_POLICIES, overlap: 'allow' },
      enabled: true,
      pausedUntil: null,
      pauseNote: null,
      nextFireAt: fire,
      nextDueAt: fire,
      createdBy: s.admin.userId,
      createdAt: now,
      updatedAt: now,
    });
  }
  await ss.insertSchedules(s.scheduler.db, rows);
}

/** Runs scheduler + worker until `until`, and returns the lateness of every claimed scheduled run. */
async function measure(s: Setup, until: number, concurrency: number): Promise<number[]> {
  const lateness: number[] = [];
  const worker = new Worker({
    ctx: s.worker,
    executor: noopExecutor,
    versionsDir: join(s.dir, 'versions'),
    concurrency,
    onClaimed: (run: Run) => {
      if (run.scheduledFor) lateness.push(Date.now() - run.scheduledFor.getTime() - (run.jitterMs ?? 0));
    },
  });
  const scheduler = new Scheduler(s.scheduler, {});
  worker.start();
  await scheduler.start();
  while (Date.now() < until) await new Promise((r) => setTimeout(r, 200));
  await scheduler.stop();
  await worker.drain();
  await worker.stop();
  return lateness;
}

const nextMinute = (afterMs: number) => new Date(Math.ceil((Date.now() + afterMs) / 60_000) * 60_000);

async function burstAlmanac(url: string, separate: boolean): Promise<Stats> {
  const s = await setup(url, separate);
  try {
    const first = nextMinute(5000);
    await addSchedules(
      s,
      1000,
      () => '* * * * *',
      () => first,
    );
    return stats(await measure(s, first.getTime() + (MINUTES - 1) * 60_000 + 20_000, WORKER_SLOTS));
  } finally {
    await s.close();
  }
}

async function burstPgBoss(url: string): Promise<Stats> {
  const boss = new PgBoss({
    connectionString: url,
    schema: `pgboss_${randomUUID().replace(/-/g, '').slice(0, 8)}`,
    cronWorkerIntervalSeconds: 1,
    cronMonitorIntervalSeconds: 1,
    useListenNotify: true,
    supervise: false,
  });
  boss.on('error', () => {});
  await boss.start();
  const lateness: number[] = [];
  try {
    await boss.createQueue('bench', { notify: true } as never);
    for (let i = 0; i < 1000; i++)
      await boss.schedule('bench', '* * * * *', { i }, { key: `k${i}`, tz: 'UTC' });
    const first = nextMinute(5000);
    await boss.work('bench', { batchSize: 100, pollingIntervalSeconds: 0.5 }, async (jobs: unknown[]) => {
      const now = Date.now();
      // The fire time is the minute the job is for: the latest minute boundary not after now, as
      // lateness stays under a minute here (checked: the max is printed).
      for (const _ of jobs)
        if (now >= first.getTime()) lateness.push(now - Math.floor(now / 60_000) * 60_000);
    });
    const until = first.getTime() + (MINUTES - 1) * 60_000 + 40_000;
    while (Date.now() < until) await new Promise((r) => setTimeout(r, 200));
  } finally {
    await boss.stop({ graceful: false, wait: true } as never).catch(() => {});
  }
  return stats(lateness.slice(0, MINUTES * 1000));
}

async function spread(url: string, separate: boolean, extraSchedulers = 0): Promise<Stats> {
  const s = await setup(url, separate);
  // More scheduler processes on the same store, racing this one for every fire time.
  const others: ChildProcess[] = [];
  for (let i = 0; i < extraSchedulers; i++) {
    const child = spawn(process.execPath, [join(import.meta.dirname, 'support', 'scheduler-process.ts')], {
      env: { ...process.env, DATABASE_URL: url },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((r) => child.stdout!.once('data', () => r()));
    others.push(child);
  }
  try {
    const first = nextMinute(10_000);
    await addSchedules(
      s,
      10_000,
      (i) => `${i % 60} * * * * *`,
      (i) => new Date(first.getTime() + (i % 60) * 1000),
    );
    const lateness = await measure(s, first.getTime() + MINUTES * 60_000, WORKER_SLOTS);
    if (extraSchedulers > 0) {
      const dup = await s.scheduler.db
        .selectFrom('runs')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('schedule_id', 'is not', null)
        .groupBy(['schedule_id', 'scheduled_for'])
        .having((eb) => eb.fn.countAll(), '>', 1)
        .execute();
      if (dup.length > 0) throw new Error(`${dup.length} fire times ran twice with several schedulers`);
    }
    return stats(lateness);
  } finally {
    for (const child of others) child.kill('SIGTERM');
    await Promise.all(others.map((c) => new Promise((r) => c.once('exit', r))));
    await s.close();
  }
}

async function scale(url: string): Promise<{ cpuPercent: number; rssMb: number; heapMb: number }> {
  const s = await setup(url, false);
  try {
    const rows = 100_000;
    const far = new Date(Date.UTC(new Date().getUTCFullYear() + 1, 0, 1));
    await addSchedules(
      s,
      rows,
      () => '0 0 1 1 *',
      () => far,
    );
    const scheduler = new Scheduler(s.scheduler, {});
    await scheduler.start();
    global.gc?.();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 60_000));
    const cpu = process.cpuUsage(cpu0);
    const elapsed = performance.now() - t0;
    const memory = process.memoryUsage();
    await scheduler.stop();
    return {
      cpuPercent: ((cpu.user + cpu.system) / 1000 / elapsed) * 100,
      rssMb: memory.rss / 1024 / 1024,
      heapMb: memory.heapUsed / 1024 / 1024,
    };
  } finally {
    await s.close();
  }
}

const dir = mkdtempSync(join(tmpdir(), 'almanac-schedule-bench-sqlite-'));
const rows: string[] = [];
const f = (n: number) => (Number.isNaN(n) ? '—' : n.toFixed(0)).padStart(8);
const line = (name: string, r: Stats) =>
  `${name.padEnd(40)} ${String(r.n).padStart(7)} ${f(r.p50)} ${f(r.p99)} ${f(r.max)}`;
try {
  if (want('burst')) {
    rows.push(
      `\nBurst: 1,000 schedules on '* * * * *', ${MINUTES} fire minutes; lateness fire time → claim (ms)`,
    );
    rows.push(
      `${'scheduler'.padEnd(40)} ${'runs'.padStart(7)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ${'max'.padStart(8)}`,
    );
    const pgA = await freshSchema();
    if (pgA) {
      try {
        rows.push(line('almanac on PostgreSQL', await burstAlmanac(pgA.url, true)));
      } finally {
        await pgA.drop();
      }
    }
    rows.push(line('almanac on SQLite', await burstAlmanac(join(dir, 'burst.sqlite'), false)));
    const pgB = await freshSchema();
    if (pgB) {
      try {
        rows.push(line('pg-boss 12 cron on PostgreSQL (1 s checks)', await burstPgBoss(pgB.url)));
      } finally {
        await pgB.drop();
      }
    }
    process.stdout.write(`${rows.join('\n')}\n`);
    rows.length = 0;
  }
  if (want('spread')) {
    rows.push(
      `\nSpread: 10,000 schedules on 6-field crons over the seconds of a minute (~167/s), ${MINUTES} minutes (ms)`,
    );
    rows.push(
      `${'scheduler'.padEnd(40)} ${'runs'.padStart(7)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ${'max'.padStart(8)}`,
    );
    const pgC = await freshSchema();
    if (pgC) {
      try {
        rows.push(line('almanac on PostgreSQL', await spread(pgC.url, true)));
      } finally {
        await pgC.drop();
      }
    }
    const pgE = await freshSchema();
    if (pgE) {
      try {
        rows.push(line('almanac on PostgreSQL, 3 scheduler processes', await spread(pgE.url, true, 2)));
      } finally {
        await pgE.drop();
      }
    }
    rows.push(line('almanac on SQLite', await spread(join(dir, 'spread.sqlite'), false)));
    process.stdout.write(`${rows.join('\n')}\n`);
    rows.length = 0;
  }
  if (want('scale')) {
    const pgD = await freshSchema();
    rows.push('\nScale: the scheduler holding 100,000 enabled schedules, none due, for 60 s (this process)');
    if (pgD) {
      try {
        const r = await scale(pgD.url);
        rows.push(
          `almanac on PostgreSQL: CPU ${r.cpuPercent.toFixed(2)}% of one core, RSS ${r.rssMb.toFixed(0)} MiB, heap ${r.heapMb.toFixed(0)} MiB`,
        );
      } finally {
        await pgD.drop();
      }
    }
    const r = await scale(join(dir, 'scale.sqlite'));
    rows.push(
      `almanac on SQLite:     CPU ${r.cpuPercent.toFixed(2)}% of one core, RSS ${r.rssMb.toFixed(0)} MiB, heap ${r.heapMb.toFixed(0)} MiB`,
    );
    process.stdout.write(`${rows.join('\n')}\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
