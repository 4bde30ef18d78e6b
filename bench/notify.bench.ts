/**
 * Notifications, in one run:
 * - screenshots of the demo app's run page (1280 px wide, full page): PNG and PDF from the warm browser
 *   the notifier keeps, next to the baseline of launching Chromium for every shot;
 * - deliveries per second through the notifier: email to the outbox folder, and signed webhooks to a
 *   local receiver, with the outbox rows claimed, sent and recorded as in production.
 *
 * Run: npm run bench:notify [-- --shots 30 --deliveries 2000]
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { resolveConfig } from '../src/app/config.ts';
import { createServer } from '../src/app/create-server.ts';
import { findChromium, Screenshots } from '../src/notify/screenshots.ts';
import * as notifications from '../src/services/notification-service.ts';
import { issueViewTicket } from '../src/services/workspace-service.ts';
import { insertDeliveries, type NewDelivery } from '../src/store/notification-store.ts';

const { values } = parseArgs({
  options: {
    shots: { type: 'string', default: '30' },
    deliveries: { type: 'string', default: '2000' },
  },
});
const SHOTS = Number(values.shots);
const DELIVERIES = Number(values.deliveries);
const ROOT = join(import.meta.dirname, '..');

function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
  return { n: sorted.length, p50: at(0.5), p95: at(0.95), max: sorted.at(-1) ?? Number.NaN };
}

const dir = mkdtempSync(join(tmpdir(), 'almanac-notify-bench-'));
const server = await createServer(
  resolveConfig(
    { dataDir: dir, port: 0 },
    { ALMANAC_LOG_LEVEL: 'silent', ALMANAC_SECRET_KEY: 'bench', ALMANAC_PREWARM: 'false' },
  ),
  { autostart: false, notifier: { screenshots: null, concurrency: 16 } },
);
try {
  const seeded = await server.seed(join(ROOT, 'examples', 'sales', 'sales.md'));
  await server.worker!.drain();
  const admin = await server.admin();
  // Shots cycle through distinct runs, so each one loads and draws a snapshot.
  const { enqueueRun } = await import('../src/services/run-service.ts');
  const runIds = [seeded.run!.id];
  for (let i = 0; i < 9; i++) {
    runIds.push(
      (await enqueueRun(server.ctx, admin, 'sales', { trigger: 'api', context: 'api-triggered' })).id,
    );
  }
  await server.worker!.drain();
  const pathOf = (i: number) => `/apps/sales/runs/${runIds[i % runIds.length]}`;
  const path = pathOf(0);
  const rows: string[] = [];
  const line = (name: string, s: ReturnType<typeof stats>) =>
    `${name.padEnd(44)} ${String(s.n).padStart(5)} ${s.p50.toFixed(0).padStart(7)} ${s.p95.toFixed(0).padStart(7)} ${s.max.toFixed(0).padStart(7)}`;

  const chromium = findChromium(process.env['ALMANAC_CHROMIUM']);
  if (!chromium) {
    process.stderr.write(
      '!! no Chromium found (install chromium or set ALMANAC_CHROMIUM); screenshot rows are skipped\n',
    );
  } else {
    rows.push(
      `\nScreenshots of ${path.replace(/[0-9a-f-]{36}$/, '<run>')}, cycling through ${runIds.length} runs (ms)`,
    );
    rows.push(
      `${'mode'.padEnd(44)} ${'shots'.padStart(5)} ${'p50'.padStart(7)} ${'p95'.padStart(7)} ${'max'.padStart(7)}`,
    );
    const options = { executablePath: chromium, baseUrl: () => server.url!, cookieName: 'almanac_session' };
    // A view ticket reads one run's page: one per shot, for the run it shows.
    const ticket = (i: number) => issueViewTicket(server.ctx, admin.userId, runIds[i % runIds.length]!);
    const warm = new Screenshots(options);
    await warm.warm();
    await warm.take(path, 'png', await ticket(0), admin.userId); // the first page load compiles the app's scripts
    for (const format of ['png', 'pdf'] as const) {
      const times: number[] = [];
      for (let i = 0; i < SHOTS; i++) {
        const t0 = performance.now();
        await warm.take(pathOf(i + 1), format, await ticket(i + 1), admin.userId);
        times.push(performance.now() - t0);
      }
      rows.push(line(`warm browser, ${format.toUpperCase()}`, stats(times)));
    }
    await warm.close();
    const cold: number[] = [];
    for (let i = 0; i < Math.max(5, Math.floor(SHOTS / 3)); i++) {
      const t0 = performance.now();
      const once = new Screenshots(options);
      await once.take(pathOf(i), 'png', await ticket(i));
      await once.close();
      cold.push(performance.now() - t0);
    }
    rows.push(line('baseline: launch Chromium per shot, PNG', stats(cold)));
    process.stdout.write(`${rows.join('\n')}\n`);
    rows.length = 0;
  }

  // Deliveries per second.
  const received = { n: 0 };
  const receiver = createHttpServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received.n++;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  await notifications.configureIntegrations(server.ctx, admin, { allowPrivateWebhooks: true });
  rows.push(`\nDeliveries: ${DELIVERIES} per channel through the notifier (16 at a time)`);
  for (const channel of ['email', 'webhook'] as const) {
    const batch: NewDelivery[] = [];
    for (let i = 0; i < DELIVERIES; i++) {
      const target = channel === 'email' ? `user${i}@example.com` : `${hook}?i=${i}`;
      batch.push({
        id: randomUUID(),
        workspaceId: admin.workspaceId,
        runId: seeded.run!.id,
        ruleId: null,
        ruleName: 'bench',
        channel,
        destination: `${channel}:${target}`,
        content: {
          subject: null,
          body: null,
          screenshot: null,
          csvCells: ['top_products'],
          because: 'bench',
          target,
        },
        maxAttempts: 5,
        createdAt: server.ctx.now(),
      });
    }
    await insertDeliveries(server.ctx.db, batch);
    const t0 = performance.now();
    await server.notifier!.drain();
    const seconds = (performance.now() - t0) / 1000;
    rows.push(
      `${channel.padEnd(10)} ${(DELIVERIES / seconds).toFixed(0).padStart(6)} deliveries/s (${seconds.toFixed(2)} s)`,
    );
  }
  process.stdout.write(`${rows.join('\n')}\n`);
  if (received.n !== DELIVERIES)
    throw new Error(`the receiver got ${received.n} webhooks, not ${DELIVERIES}`);
  await new Promise<void>((r) => receiver.close(() => r()));
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
