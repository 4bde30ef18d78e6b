/**
 * Scale-out figures, in one run (docs/performance.md, "Scale-out"):
 *
 * - queue throughput: runs created (through the service's bulk enqueue, by 16 concurrent producers),
 *   claimed and finished per second with a no-op executor, with 1, 2 and 3 worker processes on
 *   PostgreSQL; the claim latency (created → claimed) p50/p99 under that load; the CPU each part spent
 *   per run; and, for comparison, one run per enqueue call with 16 slots (the first version's setup);
 * - end-to-end throughput: trivial notebook runs per second through a whole server (queue, worker,
 *   sandboxed child process per run: permission model, bubblewrap and prlimit where present), next to
 *   the rate at which the same concurrency can spawn and reap bare `node -e ""` processes (the floor).
 *
 * Run: npm run bench:scale [-- --runs 10000 --batch 100 --slots 128 --workers 1,2,3 --e2e 200
 *   --concurrency 4 --only queue|e2e]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
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
import { freshPostgresDatabase } from '../test/support/services.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '10000' },
    e2e: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '4' },
    batch: { type: 'string', default: '100' },
    slots: { type: 'string', default: '128' },
    workers: { type: 'string', default: '1,2,3' },
    only: { type: 'string' },
  },
});
const RUNS = Number(values.runs);
const E2E = Number(values.e2e);
const CONCURRENCY = Number(values.concurrency);
const BATCH = Number(values.batch);
const SLOTS = Number(values.slots);
const WORKER_COUNTS = values.workers.split(',').map(Number);

async function admin(ctx: Awaited<ReturnType<typeof openServices>>['ctx']): Promise<Principal> {
  await bootstrap(ctx);
  const row = await ctx.db.selectFrom('users').select(['id', 'workspace_id']).executeTakeFirstOrThrow();
  return { userId: row.id, workspaceId: row.workspace_id, role: 'admin', name: 'bench' };
}

async function queueThroughput(workers: number, batch = BATCH, slots = SLOTS) {
  const schema = await freshPostgresDatabase();
  const producer = await openServices(schema.url, { secretKey: () => Buffer.alloc(32) });
  const principal = await admin(producer.ctx);
  const project = await projects.createProject(producer.ctx, principal, {
    source: '# Noop\n\n```js one\nreturn 1\n```\n',
    slug: 'noop',
  });
  await projects.publish(producer.ctx, principal, project.id);
  const children = [];
  for (let i = 0; i < workers; i++) {
    const child = spawn(
      process.execPath,
      [
        ...(process.env['BENCH_WORKER_NODE_OPTIONS']?.split(' ') ?? []),
        join(import.meta.dirname, 'support', 'queue-worker.ts'),
      ],
      {
        env: { ...process.env, DATABASE_URL: schema.url, WORKER_CONCURRENCY: String(slots) },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
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
  const cpu0 = machineCpuMs();
  const pg0 = postgresCpuMs();
  const self0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  // 16 producers: each queues `batch` runs per call through the bulk enqueue (BATCH = 1: one run per call).
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < RUNS) {
        const n = Math.min(batch, RUNS - next);
        next += n;
        if (batch === 1) {
          await runs.enqueueRun(producer.ctx, principal, project.id, {
            trigger: 'api',
            context: 'api-triggered',
          });
        } else {
          await runs.enqueueRuns(
            producer.ctx,
            principal,
            project.id,
            { trigger: 'api', context: 'api-triggered' },
            Array.from({ length: n }, () => undefined),
          );
        }
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
  const machineMs = machineCpuMs() - cpu0;
  const databaseMs = postgresCpuMs() - pg0;
  const selfCpu = process.cpuUsage(self0);
  const producerMs = (selfCpu.user + selfCpu.system) / 1000;
  const reports = children.map(
    (c) =>
      new Promise<number>((r) =>
        c.stdout!.once('data', (line) => r(JSON.parse(String(line)).cpuMs as number)),
      ),
  );
  for (const child of children) child.kill('SIGTERM');
  const workerMs = (await Promise.all(reports)).reduce((a, b) => a + b, 0);
  await Promise.all(children.map((c) => new Promise((r) => c.once('exit', r))));
  await producer.close();
  await schema.drop();
  return {
    workers,
    throughput: RUNS / elapsed,
    createRate: RUNS / ((created - t0) / 1000),
    p50: Number(latency.p50),
    p99: Number(latency.p99),
    // CPU per run (µs): the producers' process, the worker processes, PostgreSQL, and the rest of the
    // machine (the kernel's loopback and disk work, everything else running).
    cpu: {
      producer: (producerMs * 1000) / RUNS,
      workers: (workerMs * 1000) / RUNS,
      database: (databaseMs * 1000) / RUNS,
      rest: ((machineMs - producerMs - workerMs - databaseMs) * 1000) / RUNS,
    },
  };
}

/**
 * CPU time of every PostgreSQL process on this machine (postmaster, backends, WAL writer), in ms, from
 * /proc/<pid>/stat. Pooled backends live through a measurement, so a difference is their share.
 */
function postgresCpuMs(): number {
  let ticks = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (!stat.includes('(postgres)')) continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
    } catch {
      // the process ended meanwhile
    }
  }
  return (ticks * 1000) / 100;
}

/** CPU time the whole machine spent (user, nice, system, irq, softirq), in ms, from /proc/stat. */
function machineCpuMs(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq] = fields as number[];
  return ((user! + nice! + system! + irq! + softirq!) * 1000) / 100;
}

async function endToEnd() {
  const dir = mkdtempSync(join(tmpdir(), 'almanac-scale-bench-'));
  const schema = await freshPostgresDatabase();
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
  const cpu0 = { machine: machineCpuMs(), self: process.cpuUsage(), database: postgresCpuMs() };
  const t0 = performance.now();
  for (let i = 0; i < E2E; i++) {
    await runs.enqueueRun(server.ctx, principal, project.id, { trigger: 'api', context: 'api-triggered' });
  }
  while ((await count()) < E2E + 1) await new Promise((r) => setTimeout(r, 20));
  const almanac = E2E / ((performance.now() - t0) / 1000);
  const selfCpu = process.cpuUsage(cpu0.self);
  const serverMs = (selfCpu.user + selfCpu.system) / 1000;
  const databaseMs = postgresCpuMs() - cpu0.database;
  // The run processes run under bubblewrap, whose inner processes are not reaped by this process, so
  // their CPU is what the machine spent beyond the server and PostgreSQL (with the kernel's share).
  const cpu = {
    server: serverMs / E2E,
    database: databaseMs / E2E,
    runProcesses: (machineCpuMs() - cpu0.machine - serverMs - databaseMs) / E2E,
  };
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
  const floorCpu0 = { machine: machineCpuMs() };
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
  const floorCpu = { machine: (machineCpuMs() - floorCpu0.machine) / E2E };
  return { almanac, floor, failed, isolation, cpu, floorCpu };
}

function queueRow(label: string, r: Awaited<ReturnType<typeof queueThroughput>>): string {
  return `${label.padEnd(30)} ${r.throughput.toFixed(0).padStart(8)} ${r.createRate.toFixed(0).padStart(9)} ${r.p50.toFixed(1).padStart(13)} ${r.p99.toFixed(1).padStart(13)}               ${r.cpu.producer.toFixed(0).padStart(8)} ${r.cpu.workers.toFixed(0).padStart(8)} ${r.cpu.database.toFixed(0).padStart(8)} ${r.cpu.rest.toFixed(0).padStart(6)}`;
}

const rows: string[] = [];
rows.push(
  `Queue throughput on PostgreSQL: ${RUNS} runs created by 16 producers (${BATCH === 1 ? 'one run per call' : `bulk enqueue, ${BATCH} runs per call`}), claimed and finished (no-op executor, ${SLOTS} slots per worker; goal >= 3,000 runs/s)`,
);
rows.push(
  `${'workers'.padEnd(30)} ${'runs/s'.padStart(8)} ${'create/s'.padStart(9)} ${'claim p50 ms'.padStart(13)} ${'claim p99 ms'.padStart(13)}   CPU µs/run: ${'producer'.padStart(8)} ${'workers'.padStart(8)} ${'database'.padStart(8)} ${'rest'.padStart(6)}`,
);
for (const workers of values.only === 'e2e' ? [] : WORKER_COUNTS) {
  const r = await queueThroughput(workers);
  rows.push(queueRow(String(workers), r));
  process.stdout.write(`${rows.at(-1)}\n`);
}
if (values.only !== 'e2e') {
  // The earlier setup, for comparison: one run per enqueue call, 16 slots, one worker process.
  const r = await queueThroughput(1, 1, 16);
  rows.push(queueRow('1, one run per call, 16 slots', r));
  process.stdout.write(`${rows.at(-1)}\n`);
}
if (values.only === 'queue') {
  process.stdout.write(`\n${rows.join('\n')}\n`);
  process.exit(0);
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
rows.push(
  `CPU ms per run: server ${e2e.cpu.server.toFixed(1)}, PostgreSQL ${e2e.cpu.database.toFixed(1)}, run processes and the rest ${e2e.cpu.runProcesses.toFixed(1)}; per bare spawn: ${e2e.floorCpu.machine.toFixed(1)} (the machine's, all of it)`,
);
rows.push(`ratio                     ${(e2e.almanac / e2e.floor).toFixed(2)}x (goal >= 0.8x)`);
process.stdout.write(`\n${rows.join('\n')}\n`);
process.exit(0);
