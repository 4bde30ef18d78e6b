/**
 * The scheduler loop (ARCHITECTURE.md, decision 4): sleeps until the earliest due schedule, pending retry
 * or pause end (at most 30 s), then runs one `fireDue` pass. Time comes from the database clock: the
 * skew between it and this machine is measured at start and every minute, so several nodes agree on
 * "now". A schedule change wakes it at once. `tick(now)` is the same pass at a given instant, for tests.
 */

import type { WorkerLog } from '../executor/worker.ts';
import { type Metrics, storeRetries } from '../services/metrics.ts';
import { type FireReport, fireDue, nextWake } from '../services/schedule-service.ts';
import type { ServiceContext } from '../services/service-context.ts';
import { databaseNow } from '../store/run-store.ts';
import { type RetryOptions, retryTransient } from '../store/transient.ts';

/** No single wait lasts longer than this (STYLE.md, after croner). */
export const MAX_SLEEP_MS = 30_000;

export interface SchedulerOptions {
  /** Use the database clock (skew-corrected). Off in tests, which pass their own clock. @default true */
  databaseClock?: boolean;
  log?: WorkerLog;
  metrics?: Metrics | null;
}

export class Scheduler {
  readonly #ctx: ServiceContext;
  readonly #options: SchedulerOptions;
  #timer: NodeJS.Timeout | null = null;
  #running = false;
  #busy: Promise<FireReport> | null = null;
  #skewMs = 0;
  #skewMeasuredAt = 0;
  #off: (() => void) | null = null;
  readonly #retry: RetryOptions;

  constructor(ctx: ServiceContext, options: SchedulerOptions = {}) {
    this.#ctx = ctx;
    this.#options = options;
    this.#retry = storeRetries(options.metrics, options.log ?? { warn() {} });
  }

  /** The scheduler's notion of now: the database clock, or the context's clock. */
  now(): Date {
    return this.#options.databaseClock === false ? this.#ctx.now() : new Date(Date.now() + this.#skewMs);
  }

  async #measureSkew(): Promise<void> {
    if (this.#options.databaseClock === false) return;
    const before = Date.now();
    const db = await databaseNow(this.#ctx.db, this.#ctx.dialect);
    const after = Date.now();
    this.#skewMs = db.getTime() - (before + after) / 2;
    this.#skewMeasuredAt = after;
  }

  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await this.#measureSkew().catch(() => {});
    this.#off = this.#ctx.wakeups.subscribe('schedule_changed', () => this.#schedule(0));
    this.#schedule(0);
  }

  #schedule(delayMs: number): void {
    if (!this.#running) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#loop(), Math.max(0, Math.min(delayMs, MAX_SLEEP_MS)));
    this.#timer.unref();
  }

  async #loop(): Promise<void> {
    if (!this.#running) return;
    try {
      if (Date.now() - this.#skewMeasuredAt > 60_000) await this.#measureSkew();
      const report = await this.tick(this.now());
      for (const run of [...report.created, ...report.skipped, ...report.retries]) {
        this.#options.log?.debug?.(
          {
            scheduleId: run.scheduleId,
            runId: run.id,
            scheduledFor: run.scheduledFor?.toISOString(),
            status: run.status,
            reason: run.reason,
          },
          'fire time',
        );
      }
      if (report.created.length || report.skipped.length || report.retries.length) {
        this.#options.log?.info(
          { created: report.created.length, skipped: report.skipped.length, retries: report.retries.length },
          'schedules fired',
        );
      }
      const wake = await nextWake(this.#ctx);
      this.#schedule(wake ? wake.getTime() - this.now().getTime() : MAX_SLEEP_MS);
    } catch (error) {
      this.#options.log?.error({ err: error }, 'scheduler pass failed');
      this.#schedule(1000);
    }
  }

  /** One pass at `now`. */
  async tick(now: Date = this.now()): Promise<FireReport> {
    while (this.#busy) await this.#busy.catch(() => {});
    this.#busy = retryTransient('fire schedules', () => fireDue(this.#ctx, now), this.#retry);
    try {
      return await this.#busy;
    } finally {
      this.#busy = null;
    }
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#off?.();
    if (this.#timer) clearTimeout(this.#timer);
    await this.#busy?.catch(() => {});
  }
}
