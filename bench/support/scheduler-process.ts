/**
 * A scheduler process for bench/schedule.bench.ts (several schedulers on one PostgreSQL): the real
 * `Scheduler` on DATABASE_URL, on the database clock. Prints "ready"; stops on SIGTERM.
 */
import { openServices } from '../../src/app/open-services.ts';
import { Scheduler } from '../../src/scheduler/scheduler.ts';

const services = await openServices(process.env['DATABASE_URL']!, { secretKey: () => Buffer.alloc(32) });
const scheduler = new Scheduler(services.ctx, {});
await scheduler.start();
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  void scheduler
    .stop()
    .then(() => services.close())
    .then(() => process.exit(0));
});
