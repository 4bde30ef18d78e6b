/**
 * The scheduler loop (ARCHITECTURE.md, decision 4): sleeps until the earliest due schedule, pending retry
 * or pause end (at most 30 s), then runs one `fireDue` pass. Time comes from the database clock: the
 * skew between it and this machine is measured at start and every minute, so several nodes agree on
 * "now". A schedule change wakes it at once. `tick(now)` is the same pass at a given instant, for tests.
 */

import type { LoopLog } from '../services/loop-log.ts';
import { type Metrics, storeRetries } from '../services/metrics.ts';
import { databaseClock, type FireReport, fireDue, nextWake } from '../services/schedule-service.ts';
import type { ServiceContext } from '../services/service-context.ts';
import { type RetryOptions, retryTransient } from '../store/transient.ts';

/** No single wait lasts longer than this (STYLE.md, after croner). */
export const MAX_SLEEP_MS = 30_000;
/** How soon a scheduler looks again at due work another scheduler's pass holds. */
export const CONTENDED_RECHECK_MS = 200;
/** How long after a due time a standby scheduler wakes (see `#loop`). */
export const STANDBY_DELAY_MS = 50;

/**
 * When a scheduler looks next, from what its pass saw.
 *
 * - Work is due but the pass took none of it: another scheduler's pass holds those rows (SKIP LOCKED
 *   passed them by) and fires all of them before it commits. Re-checking at once would spin against
 *   that pass until it commits, taking CPU from it on a busy machine (measured: it made three
 *   schedulers later than one). It looks again after `CONTENDED_RECHECK_MS`; if that pass dies, its
 *   locks go with its connection and this scheduler fires the rows then.
 * - A scheduler that found its due work taken by another becomes a standby: it wakes
 *   `STANDBY_DELAY_MS` after each due time, so the scheduler that fired last fires the next one alone
 *   instead of all of them racing for it at the same instant. A standby whose pass takes work (the
 *   other scheduler stopped or fell behind) is a first responder again.
 */
export function nextPass(seen: { dueInMs: number | null; tookNothing: boolean; standby: boolean }): {
  delayMs: number;
  standby: boolean;
} {
  if (seen.dueInMs === null) return { delayMs: MAX_SLEEP_MS, standby: seen.standby };
  if (seen.dueInMs <= 0 && seen.tookNothing) return { delayMs: CONTENDED_RECHECK_MS, standby: true };
  const standby = seen.tookNothing ? seen.standby : false;
  return { delayMs: standby ? Math.max(0, seen.dueInMs) + STANDBY_DELAY_MS : seen.dueInMs, standby };
}

function tookNothing(report: FireReport): boolean {
  return report.created.length + report.skipped.length + report.retries.length + report.resumed.length === 0;
}

export interface SchedulerOptions {
  /** Use the database clock (skew-corrected). Off in tests, which pass their own clock. @default true */
  databaseClock?: boolean;
  log?: LoopLog;
  metrics?: Metrics | null;
}

export class Scheduler {
  readonly #ctx: ServiceContext;
  readonly #options: SchedulerOptions;
  #timer: NodeJS.Timeout | null = null;
  #running = false;
  #busy: Promise<FireReport> | null = null;
  /** Another scheduler fired the last contended due time; this one wakes a little after due times. */
  #standby = false;
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
    const db = await databaseClock(this.#ctx);
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
      const next = nextPass({
        dueInMs: wake ? wake.getTime() - this.now().getTime() : null,
        tookNothing: tookNothing(report),
        standby: this.#standby,
      });
      this.#standby = next.standby;
      const delay = next.delayMs;
      this.#schedule(delay);
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
