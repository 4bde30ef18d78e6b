/**
 * The reaper and janitor loop: returns dead workers' runs to the queue (or fails them as
 * `worker_lost`), deletes private runs past their TTL, and applies retention. Any node may run it; all
 * of its changes are guarded UPDATEs and DELETEs, so two housekeepers at once do no harm.
 */

import type { LoopLog } from '../services/loop-log.ts';
import { type Metrics, storeRetries } from '../services/metrics.ts';
import { type HousekeepingReport, housekeeping } from '../services/run-service.ts';
import type { ServiceContext } from '../services/service-context.ts';
import { type RetryOptions, retryTransient } from '../store/transient.ts';

export class Housekeeper {
  readonly #ctx: ServiceContext;
  readonly #intervalMs: number;
  readonly #log: LoopLog | null;
  #timer: NodeJS.Timeout | null = null;
  #busy: Promise<HousekeepingReport> | null = null;
  readonly #retry: RetryOptions;

  /** `intervalMs` defaults to 5 s: a lost worker's run is requeued within a lease plus this. */
  constructor(
    ctx: ServiceContext,
    options: { intervalMs?: number; log?: LoopLog; metrics?: Metrics | null } = {},
  ) {
    this.#ctx = ctx;
    this.#intervalMs = options.intervalMs ?? 5000;
    this.#log = options.log ?? null;
    this.#retry = storeRetries(options.metrics, options.log ?? { warn() {} });
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.tick().catch(() => {}), this.#intervalMs);
    this.#timer.unref();
  }

  /** One pass at `now` (the clock's now by default). */
  async tick(now?: Date): Promise<HousekeepingReport> {
    if (this.#busy) await this.#busy.catch(() => {});
    const at = now ?? this.#ctx.now();
    this.#busy = retryTransient('housekeeping', () => housekeeping(this.#ctx, at), this.#retry);
    try {
      const report = await this.#busy;
      if (
        this.#log &&
        (report.requeued.length || report.lost.length || report.pruned || report.expiredPrivate)
      ) {
        this.#log.info(report, 'housekeeping');
      }
      return report;
    } catch (error) {
      this.#log?.error({ err: error }, 'housekeeping failed');
      throw error;
    } finally {
      this.#busy = null;
    }
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#busy?.catch(() => {});
  }
}
