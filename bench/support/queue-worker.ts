/**
 * A worker process for bench/scale.bench.ts: the real `Worker` (claims, heartbeats, completion in the
 * store) with a no-op executor, on DATABASE_URL, `WORKER_CONCURRENCY` runs at a time. Prints "ready".
 */
import { openServices } from '../../src/app/open-services.ts';
import { Worker } from '../../src/executor/worker.ts';
import { noopExecutor } from './noop-executor.ts';

const services = await openServices(process.env['DATABASE_URL']!, { secretKey: () => Buffer.alloc(32) });
const worker = new Worker({
  ctx: services.ctx,
  executor: noopExecutor,
  versionsDir: process.env['VERSIONS_DIR'] ?? '/tmp/almanac-bench-versions',
  concurrency: Number(process.env['WORKER_CONCURRENCY'] ?? 16),
});
worker.start();
const ready = process.cpuUsage();
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  // The CPU this process used since it was ready, in ms (the benchmark's per-run CPU figures).
  const used = process.cpuUsage(ready);
  process.stdout.write(`${JSON.stringify({ cpuMs: (used.user + used.system) / 1000 })}\n`);
  void worker
    .stop(1000)
    .then(() => services.close())
    .then(() => process.exit(0));
});
