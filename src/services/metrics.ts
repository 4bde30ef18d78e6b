/**
 * Prometheus metrics (prom-client), one registry per process. Loops record what they time (claim
 * latency, schedule lateness, screenshot time, deliveries sent); the store's own counts (runs by
 * status, queue depth, deliveries by status) are read when the registry is scraped, so every process
 * reports the same cluster-wide figures for those: aggregate them with `max`, not `sum`.
 *
 * Names follow Prometheus conventions: `almanac_` prefix, base units (seconds), `_total` for counters.
 */

import client from 'prom-client';
import { ping } from '../store/database.ts';
import { pendingMigrations } from '../store/migrations.ts';
import { countByStatus } from '../store/run-store.ts';
import { type RetryOptions, transientReason } from '../store/transient.ts';
import type { ServiceContext } from './service-context.ts';

export interface Metrics {
  readonly registry: client.Registry;
  /** Seconds from when a run could first be claimed (created, or its fire time) to its claim. */
  readonly claimLatency: client.Histogram;
  /** Seconds from a scheduled run's fire time to its claim (fire time to claim, as in bench/). */
  readonly scheduleLateness: client.Histogram;
  /** Seconds one claim statement takes in the store. */
  readonly claimQuery: client.Histogram;
  /** Runs this process finished, by final status. */
  readonly runsFinished: client.Counter<'status'>;
  /** Deliveries this process attempted, by channel and outcome (sent, retry, failed). */
  readonly deliveryAttempts: client.Counter<'channel' | 'outcome'>;
  /** Seconds one screenshot takes, by format. */
  readonly screenshotSeconds: client.Histogram<'format'>;
  /** Transient store errors that were retried, by operation. */
  readonly storeRetries: client.Counter<'operation'>;
  /** The exposition text. */
  text(): Promise<string>;
  readonly contentType: string;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export function createMetrics(ctx: ServiceContext, options: { roles?: readonly string[] } = {}): Metrics {
  const registry = new client.Registry();
  registry.setDefaultLabels({ roles: (options.roles ?? []).join(',') });
  client.collectDefaultMetrics({ register: registry, prefix: 'almanac_' });

  // Store-wide gauges, read at scrape time (cheap grouped counts on indexed status columns). The runs
  // count serves two gauges: one query per scrape, shared while it is in flight.
  let runCounts: Promise<Map<string, number>> | null = null;
  const countRuns = () => {
    runCounts ??= countByStatus(ctx.db, 'runs').finally(() => setImmediate(() => (runCounts = null)));
    return runCounts;
  };
  new client.Gauge({
    name: 'almanac_runs',
    help: 'Runs in the store, by status',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const [status, n] of await countRuns()) this.set({ status }, n);
    },
  });
  new client.Gauge({
    name: 'almanac_queue_depth',
    help: 'Runs queued and not yet claimed',
    registers: [registry],
    async collect() {
      this.set((await countRuns()).get('queued') ?? 0);
    },
  });
  new client.Gauge({
    name: 'almanac_deliveries',
    help: 'Notification deliveries in the store, by status',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const [status, n] of await countByStatus(ctx.db, 'deliveries')) this.set({ status }, n);
    },
  });

  const metrics: Metrics = {
    registry,
    claimLatency: new client.Histogram({
      name: 'almanac_claim_latency_seconds',
      help: 'From when a run could first be claimed (created, or its fire time) to its claim',
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    scheduleLateness: new client.Histogram({
      name: 'almanac_schedule_lateness_seconds',
      help: "From a scheduled run's fire time to its claim",
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    claimQuery: new client.Histogram({
      name: 'almanac_claim_query_seconds',
      help: 'One claim statement in the store',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    runsFinished: new client.Counter({
      name: 'almanac_runs_finished_total',
      help: 'Runs this process finished, by final status',
      labelNames: ['status'] as const,
      registers: [registry],
    }),
    deliveryAttempts: new client.Counter({
      name: 'almanac_delivery_attempts_total',
      help: 'Delivery attempts this process made, by channel and outcome (sent, retry, failed)',
      labelNames: ['channel', 'outcome'] as const,
      registers: [registry],
    }),
    screenshotSeconds: new client.Histogram({
      name: 'almanac_screenshot_seconds',
      help: 'One screenshot of an app page, by format',
      labelNames: ['format'] as const,
      buckets: [0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10, 20],
      registers: [registry],
    }),
    storeRetries: new client.Counter({
      name: 'almanac_store_retries_total',
      help: 'Transient store errors retried, by operation',
      labelNames: ['operation'] as const,
      registers: [registry],
    }),
    text: () => registry.metrics(),
    contentType: registry.contentType,
  };
  return metrics;
}

export interface Readiness {
  ready: boolean;
  database: 'ok' | string;
  pendingMigrations: string[];
}

/** Ready when the store answers and every migration this build knows is applied. */
export async function readiness(ctx: ServiceContext): Promise<Readiness> {
  try {
    await ping(ctx.db);
  } catch (error) {
    // Only the kind of failure: /readyz answers anyone, and error texts name internal hosts.
    const reason = transientReason(error);
    return { ready: false, database: `unreachable${reason ? ` (${reason})` : ''}`, pendingMigrations: [] };
  }
  const pending = await pendingMigrations(ctx.db, ctx.dialect).catch(() => ['(unknown)']);
  return { ready: pending.length === 0, database: 'ok', pendingMigrations: pending };
}

/** Retry options for a loop's store operations: each retry is counted and logged. */
export function storeRetries(
  metrics: Metrics | null | undefined,
  log: { warn(object: object, message?: string): void },
): RetryOptions {
  return {
    onRetry(info) {
      metrics?.storeRetries.inc({ operation: info.operation });
      log.warn(info, 'transient store error; retrying');
    },
  };
}
