/**
 * A worker claims queued runs and executes them (ARCHITECTURE.md, decisions 3 and 5). It holds a lease
 * on each run it claims and renews it by heartbeat; if the process dies, the lease expires and
 * housekeeping requeues or fails the run. New work wakes it through `Wakeups` (LISTEN/NOTIFY or an
 * in-process signal); a long fallback timer only guards against a lost notification.
 *
 * `tick()` claims as much as the concurrency allows and starts it; `drain()` runs ticks until the
 * queue is empty and nothing is running, which is how tests drive a worker without sleeping.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { AlmanacError, ValidationError } from '../domain/errors.ts';
import type { Run } from '../domain/run.ts';
import { assertExhaustive } from '../domain/run-lifecycle.ts';
import type { RunSnapshot } from '../domain/snapshot.ts';
import { crashPoint } from '../services/crash-points.ts';
import { type LoopLog, QUIET_LOG } from '../services/loop-log.ts';
import { type Metrics, storeRetries } from '../services/metrics.ts';
import * as runs from '../services/run-service.ts';
import type { ServiceContext } from '../services/service-context.ts';
import { runEnvironment } from '../services/workspace-service.ts';
import { type RetryOptions, retryTransient, transientReason } from '../store/transient.ts';
import { RESYNC } from '../store/wakeups.ts';
import type { Executor, RunCancellation, RunEvent } from './executor.ts';
import { PostgresEngine } from './sql/postgres-engine.ts';
import type { SqlEngine } from './sql/sql-engine.ts';
import { materializeVersion } from './version-workdir.ts';

export interface WorkerOptions {
  ctx: ServiceContext;
  /** Runs a notebook; the real `Executor`, or a stand-in for queue benchmarks. */
  executor: Pick<Executor, 'run'>;
  /** Where versions' files are written. */
  versionsDir: string;
  /** @default `<hostname>:<pid>:<random>` */
  id?: string;
  /** Runs executed at once. @default 2 */
  concurrency?: number;
  /** How long a claim holds without a heartbeat. @default 30000 */
  leaseMs?: number;
  /** @default leaseMs / 3 */
  heartbeatMs?: number;
  /** Re-check the queue this often even without a wake-up. @default 30000 */
  fallbackMs?: number;
  log?: LoopLog;
  /** Called as soon as a run is claimed (benchmarks). */
  onClaimed?: (run: Run) => void;
  /** Claim latency, schedule lateness, claim statement time and finished runs go here. */
  metrics?: Metrics | null;
}

interface ActiveRun {
  run: Run;
  abort: AbortController;
  done: Promise<void>;
  /** Why the worker itself stopped the run, if it did. */
  stoppedBecause: 'lease_lost' | 'shutdown' | null;
}

/** Completions written in one transaction at most. */
const MAX_COMPLETION_BATCH = 200;
/** A cell's `running` state is stored once it has run this long; quicker cells store only their end. */
const CELL_RUNNING_WRITE_DELAY_MS = 100;

export class Worker {
  readonly id: string;
  readonly #ctx: ServiceContext;
  readonly #executor: Pick<Executor, 'run'>;
  readonly #onClaimed: ((run: Run) => void) | undefined;
  readonly #versionsDir: string;
  readonly #concurrency: number;
  readonly #lease: runs.LeaseOptions;
  readonly #heartbeatMs: number;
  readonly #fallbackMs: number;
  readonly #log: LoopLog;
  readonly #metrics: Metrics | null;
  readonly #retry: RetryOptions;
  readonly #active = new Map<string, ActiveRun>();
  readonly #engines = new Map<string, PostgresEngine>();
  readonly #environments = new Map<
    string,
    { env: { urls: Map<string, string>; cellNetwork: boolean }; until: number }
  >();
  #unsubscribe: (() => void)[] = [];
  readonly #offCancel: () => void;
  #timers: NodeJS.Timeout[] = [];
  #running = false;
  #ticking: Promise<number> | null = null;
  #again = false;
  #wakeQueued = false;

  constructor(options: WorkerOptions) {
    this.id = options.id ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.#ctx = options.ctx;
    this.#executor = options.executor;
    this.#versionsDir = options.versionsDir;
    this.#concurrency = options.concurrency ?? 2;
    if (!Number.isInteger(this.#concurrency) || this.#concurrency < 1) {
      throw new ValidationError('concurrency', 'must be a whole number >= 1');
    }
    const leaseMs = options.leaseMs ?? 30_000;
    this.#lease = { worker: this.id, leaseMs };
    this.#heartbeatMs = options.heartbeatMs ?? Math.max(50, Math.floor(leaseMs / 3));
    this.#fallbackMs = options.fallbackMs ?? 30_000;
    this.#log = options.log ?? QUIET_LOG;
    this.#metrics = options.metrics ?? null;
    this.#retry = storeRetries(this.#metrics, this.#log);
    this.#onClaimed = options.onClaimed;
    // Cancellation must reach a running run even when the loops are driven by hand (tests, drain()).
    const offCancel = this.#ctx.wakeups.subscribe('run_cancel', (runId) => {
      if (runId === RESYNC || this.#active.has(runId)) void this.heartbeat();
    });
    const offConnections = this.#ctx.wakeups.subscribe('connections_changed', (workspaceId) =>
      workspaceId === RESYNC ? this.#environments.clear() : this.#environments.delete(workspaceId),
    );
    this.#offCancel = () => {
      offCancel();
      offConnections();
    };
  }

  /** Ids of the runs executing now. */
  get activeRunIds(): string[] {
    return [...this.#active.keys()];
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#unsubscribe.push(this.#ctx.wakeups.subscribe('run_queued', () => this.#wake()));
    this.#timers.push(
      setInterval(() => void this.heartbeat(), this.#heartbeatMs),
      setInterval(() => this.#wake(), this.#fallbackMs),
    );
    for (const timer of this.#timers) timer.unref();
    this.#wake();
  }

  /**
   * Claims on the next turn of the event loop, not at once: the runs of one completion batch free their
   * slots one after another in the same turn, and waking at the first would claim one run and then the
   * rest in a second statement.
   */
  #wake(): void {
    if (!this.#running || this.#wakeQueued) return;
    this.#wakeQueued = true;
    setImmediate(() => {
      this.#wakeQueued = false;
      if (!this.#running) return;
      if (this.#ticking) {
        this.#again = true;
        return;
      }
      void this.tick();
    });
  }

  /** Claims runs while capacity remains and starts them. Returns how many it claimed. */
  async tick(): Promise<number> {
    if (this.#ticking) return this.#ticking;
    const pass = this.#claimPass();
    this.#ticking = pass;
    try {
      return await pass;
    } finally {
      // Regression: the pass used to clear this itself, in its own `finally`. A pass with no free
      // capacity never awaits, so it cleared the field *before* it was assigned, leaving a settled
      // promise in it forever, and the worker never claimed again.
      if (this.#ticking === pass) this.#ticking = null;
    }
  }

  async #claimPass(): Promise<number> {
    let claimed = 0;
    try {
      do {
        this.#again = false;
        while (this.#active.size < this.#concurrency) {
          const started = performance.now();
          const batch = await retryTransient(
            'claim runs',
            () => runs.claimRuns(this.#ctx, { ...this.#lease, limit: this.#concurrency - this.#active.size }),
            this.#retry,
          );
          this.#metrics?.claimQuery.observe((performance.now() - started) / 1000);
          if (batch.length === 0) break;
          crashPoint('after_claim');
          for (const run of batch) {
            claimed++;
            this.#observeClaim(run);
            this.#onClaimed?.(run);
            this.#startRun(run);
          }
        }
      } while (this.#again && this.#active.size < this.#concurrency);
    } catch (error) {
      this.#log.error({ err: error, worker: this.id }, 'claiming runs failed');
    }
    return claimed;
  }

  #observeClaim(run: Run): void {
    const metrics = this.#metrics;
    if (!metrics || !run.startedAt) return;
    const claimedAt = run.startedAt.getTime();
    const claimable = Math.max(run.createdAt.getTime(), run.scheduledFor?.getTime() ?? 0);
    metrics.claimLatency.observe(Math.max(0, claimedAt - claimable) / 1000);
    if (run.scheduledFor) metrics.scheduleLateness.observe((claimedAt - run.scheduledFor.getTime()) / 1000);
  }

  /** Ticks until the queue is empty and nothing runs. For tests and `almanac run-once` style use. */
  async drain(): Promise<void> {
    for (;;) {
      await this.tick();
      if (this.#active.size === 0) {
        if ((await this.tick()) === 0 && this.#active.size === 0) return;
        continue;
      }
      await Promise.race([...this.#active.values()].map((a) => a.done));
    }
  }

  /**
   * Renews the leases of active runs, and stops those whose cancellation was requested or that this
   * worker no longer holds.
   */
  async heartbeat(): Promise<void> {
    const holds = [...this.#active.values()].map((a) => ({ id: a.run.id, token: a.run.claimEpoch }));
    if (holds.length === 0) return;
    try {
      const { held, cancelRequested } = await retryTransient(
        'heartbeat',
        () => runs.heartbeat(this.#ctx, this.#lease, holds),
        this.#retry,
      );
      for (const { id, by } of cancelRequested) {
        const cancellation: RunCancellation = { kind: 'cancelled', by };
        this.#active.get(id)?.abort.abort(cancellation);
      }
      for (const { id } of holds) {
        const active = this.#active.get(id);
        if (active && !held.includes(id) && !active.abort.signal.aborted) {
          this.#log.warn({ runId: id, worker: this.id }, 'lost the lease on a run; stopping it');
          active.stoppedBecause = 'lease_lost';
          active.abort.abort();
        }
      }
    } catch (error) {
      this.#log.error({ err: error, worker: this.id }, 'heartbeat failed');
    }
  }

  #startRun(run: Run): void {
    const abort = new AbortController();
    const active: ActiveRun = { run, abort, done: Promise.resolve(), stoppedBecause: null };
    active.done = this.#execute(active)
      .catch((error) => this.#log.error({ err: error, runId: run.id }, 'run failed in the worker'))
      .finally(() => {
        this.#active.delete(run.id);
        this.#wake();
      });
    this.#active.set(run.id, active);
  }

  async #execute(active: ActiveRun): Promise<void> {
    const { run } = active;
    const ctx = this.#ctx;
    const hold = runs.holdOf(this.id, run);
    this.#log.info(
      { runId: run.id, scheduleId: run.scheduleId, trigger: run.trigger, attempt: run.attempts },
      'run claimed',
    );
    let progress = Promise.resolve();
    const record = (write: () => Promise<void>) => {
      progress = progress
        .then(write)
        .catch((error) => this.#log.warn({ err: error, runId: run.id }, 'storing progress failed'));
    };
    let snapshot: RunSnapshot;
    let sqlResults: runs.CachedSqlResult[] = [];
    let reason: 'invalid_input' | 'crashed' | null = null;
    let cellStarted = false;
    const startsDue = new Map<number, { timer: NodeJS.Timeout; startedAt: Date }>();
    try {
      // Loading what the run needs reads the store: its transient errors are retried here, and if the
      // store stays away the run goes back to the queue (below), never failed for it.
      const { notebook, projectDir, environment } = await retryTransient(
        'prepare run',
        async () => {
          const version = await runs.loadVersion(ctx, run.versionId!);
          return {
            notebook: await runs.notebookOfVersion(version.id, version.source),
            projectDir: await materializeVersion(this.#versionsDir, version.contentHash, () =>
              runs.loadVersionFiles(ctx, version.id),
            ),
            environment: await this.#environment(run.workspaceId),
          };
        },
        this.#retry,
      );
      const connections = await this.#connectionsFor(environment.urls, run.workspaceId);
      const result = await this.#executor.run({
        network: environment.cellNetwork,
        notebook,
        projectDir,
        inputs: run.inputs,
        context: run.context,
        runId: run.id,
        scheduledFor: run.scheduledFor,
        signal: active.abort.signal,
        ...(run.timeoutMs ? { limits: { timeoutMs: run.timeoutMs } } : {}),
        connections,
        sqlCache: {
          mode: run.context === 'app' && run.trigger !== 'publish' ? 'reuse' : 'refresh',
          lookup: (key) => runs.lookupSqlCache(ctx, run.projectId, key),
        },
        onEvent: (event: RunEvent) => {
          switch (event.type) {
            case 'run_started':
              record(() => runs.recordRunStarted(ctx, run.id, event.cells));
              break;
            case 'cell_started': {
              cellStarted = true;
              const startedAt = ctx.now();
              const { index } = event;
              // A cell's `running` state is stored only once it has run for a moment: most cells (prose,
              // quick code) finish first, and their one write then carries the start time too.
              const timer = setTimeout(() => {
                startsDue.delete(index);
                record(() => runs.recordCellStarted(ctx, run.id, index, hold, startedAt));
              }, CELL_RUNNING_WRITE_DELAY_MS);
              startsDue.set(index, { timer, startedAt });
              crashPoint('mid_cell');
              break;
            }
            case 'cell_finished': {
              const due = startsDue.get(event.index);
              if (due) {
                clearTimeout(due.timer);
                startsDue.delete(event.index);
              }
              record(() =>
                runs.recordCellFinished(ctx, run.id, event.index, event.result, hold, due?.startedAt),
              );
              break;
            }
            case 'log':
            case 'run_finished':
              break;
            default:
              assertExhaustive(event, 'run event');
          }
        },
      });
      snapshot = result.snapshot;
      sqlResults = result.sqlResults;
    } catch (error) {
      if (transientReason(error) && !cellStarted) {
        // The store is unreachable before any cell ran: hand the run back (without using an attempt).
        await progress;
        this.#log.warn({ err: error, runId: run.id }, 'the store is unreachable; handing the run back');
        await retryTransient('release run', () => runs.releaseRun(ctx, this.id, run), this.#retry).catch(
          () => {},
        );
        return;
      }
      // Bad requests (an input that no longer validates, an unknown connection) end the run as failed;
      // anything else is a fault of ours, reported as such.
      const message = error instanceof Error ? error.message : String(error);
      reason = error instanceof AlmanacError ? 'invalid_input' : 'crashed';
      snapshot = {
        format: 1,
        runId: run.id,
        title: '',
        status: 'failed',
        reason,
        message,
        context: run.context,
        scheduledFor: run.scheduledFor?.toISOString() ?? null,
        inputs: run.inputs,
        startedAt: (run.startedAt ?? new Date()).toISOString(),
        finishedAt: new Date().toISOString(),
        cells: [],
      };
    }
    // A cell that never finished (the run was stopped) gets its final state with the run's.
    for (const due of startsDue.values()) clearTimeout(due.timer);
    await progress;
    if (active.stoppedBecause === 'lease_lost') return;
    if (active.stoppedBecause === 'shutdown') {
      await retryTransient('release run', () => runs.releaseRun(ctx, this.id, run), this.#retry);
      return;
    }
    const won = await this.#complete({ run, snapshot, reason, sqlResults });
    if (won) this.#metrics?.runsFinished.inc({ status: snapshot.status });
    this.#log.info(
      { runId: run.id, scheduleId: run.scheduleId, status: snapshot.status, stored: won },
      'run finished',
    );
  }

  /**
   * Completions are written in batches (group commit): the first one to arrive starts a flush at the
   * end of this turn of the event loop, and those that arrive while a batch commits go in the next one.
   * At low load a batch holds one run and costs what a single completion did; under load one commit
   * ends many runs. A batch that fails for something other than a transient store error is retried one
   * run at a time, so one bad completion cannot fail the others.
   */
  #complete(completion: runs.Completion): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.#completions.push({ completion, resolve, reject });
      this.#flushing ??= this.#flushCompletions();
    });
  }

  readonly #completions: {
    completion: runs.Completion;
    resolve: (won: boolean) => void;
    reject: (error: unknown) => void;
  }[] = [];
  #flushing: Promise<void> | null = null;

  async #flushCompletions(): Promise<void> {
    await new Promise((r) => setImmediate(r));
    while (this.#completions.length > 0) {
      const batch = this.#completions.splice(0, MAX_COMPLETION_BATCH);
      const complete = (items: typeof batch) =>
        retryTransient(
          'complete runs',
          () =>
            runs.completeRuns(
              this.#ctx,
              this.id,
              items.map((i) => i.completion),
            ),
          this.#retry,
        );
      try {
        const won = await complete(batch);
        for (const [i, item] of batch.entries()) item.resolve(won[i]!);
      } catch (error) {
        if (batch.length === 1 || transientReason(error)) {
          for (const item of batch) item.reject(error);
          continue;
        }
        for (const item of batch) {
          await complete([item]).then(([won]) => item.resolve(won!), item.reject);
        }
      }
    }
    this.#flushing = null;
  }

  /**
   * A workspace's connection URLs and run settings, cached for 5 s and dropped at once on a
   * `connections_changed` wake-up (which PostgreSQL delivers to every node).
   */
  async #environment(workspaceId: string): Promise<{ urls: Map<string, string>; cellNetwork: boolean }> {
    const cached = this.#environments.get(workspaceId);
    if (cached && cached.until > Date.now()) return cached.env;
    const env = await runEnvironment(this.#ctx, workspaceId);
    this.#environments.set(workspaceId, { env, until: Date.now() + 5000 });
    return env;
  }

  async #connectionsFor(urls: Map<string, string>, workspaceId: string): Promise<Map<string, SqlEngine>> {
    const engines = new Map<string, SqlEngine>();
    for (const [name, url] of urls) {
      const key = `${workspaceId}\0${name}\0${url}`;
      let engine = this.#engines.get(key);
      if (!engine) {
        engine = new PostgresEngine({ id: name, connectionString: url });
        this.#engines.set(key, engine);
      }
      engines.set(name, engine);
    }
    return engines;
  }

  /**
   * Stops claiming. With `graceMs`, active runs get that long to finish; the rest are stopped and
   * handed back to the queue, so another worker picks them up.
   */
  async stop(graceMs = 10_000): Promise<void> {
    this.#running = false;
    for (const off of this.#unsubscribe) off();
    for (const timer of this.#timers) clearInterval(timer);
    this.#unsubscribe = [];
    this.#timers = [];
    await this.#ticking;
    const all = Promise.all([...this.#active.values()].map((a) => a.done));
    const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
    if ((await Promise.race([all, timeout])) === 'timeout') {
      for (const active of this.#active.values()) {
        active.stoppedBecause = 'shutdown';
        active.abort.abort();
      }
      await all;
    }
    this.#offCancel();
    await Promise.all([...this.#engines.values()].map((e) => e.close().catch(() => {})));
    this.#engines.clear();
  }
}
