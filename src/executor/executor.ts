/**
 * The executor runs one notebook run: it takes a sandboxed child, sends it the cells, serves its SQL
 * requests on the configured connections, enforces the wall-clock timeout and the memory cap, streams
 * per-cell events, and returns the run snapshot. The run directory is removed when the run ends.
 */
import { createHash, randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { deserialize, serialize } from 'node:v8';
import { UnknownConnectionError, ValidationError } from '../domain/errors.ts';
import { resolveInputs } from '../domain/notebook/inputs.ts';
import type { Notebook } from '../domain/notebook/notebook.ts';
import type { AlmanacRunInfo, RunContext, RunFailureReason, RunOutcome } from '../domain/run-context.ts';
import { assertExhaustive } from '../domain/run-lifecycle.ts';
import { type CellResult, type LogLine, notRunCell, type RunSnapshot } from '../domain/snapshot.ts';
import { maxFrameBytesFor } from './channel.ts';
import { killTree, treeResidentMb } from './process-tree.ts';
import type { HostMessage, SqlRequestMessage } from './protocol.ts';
import { notebookConnections, ProtocolViolationError, RunProtocol } from './run-protocol.ts';
import {
  detectIsolation,
  exitSignalOf,
  PACKAGE_ROOT,
  type Sandbox,
  type SandboxIsolation,
  SandboxPool,
  type SandboxSpec,
} from './sandbox.ts';
import type { SqlEngine, SqlQueryResult, SqlSession } from './sql/sql-engine.ts';
import { SqlExecutionError } from './sql/sql-engine.ts';

export interface ExecutorLimits {
  /** Wall-clock limit for the whole run. @default 300000 (5 minutes) */
  timeoutMs: number;
  /**
   * Memory cap of the run, in MiB: the V8 heap of its Node process, and the resident size of its whole
   * process tree (wrappers and anything it starts included), which may exceed it by 64 MiB. @default 512
   */
  memoryLimitMb: number;
  /** Rows kept per table in the snapshot. @default 1000 */
  rowLimit: number;
  /** CPU time the run's process may use (RLIMIT_CPU, through prlimit), in seconds. @default 300 */
  cpuSeconds: number;
  /** Size of one cell's output in the snapshot (its JSON), in bytes. @default 16 MiB */
  maxOutputBytes: number;
  /** Log output kept per run (console and stdout/stderr), in bytes; the rest is cut. @default 1 MiB */
  maxLogBytes: number;
  /** Largest file the run may write (RLIMIT_FSIZE, through prlimit), in bytes. @default 256 MiB */
  maxFileBytes: number;
}

export const DEFAULT_LIMITS: Readonly<ExecutorLimits> = Object.freeze({
  timeoutMs: 300_000,
  memoryLimitMb: 512,
  rowLimit: 1000,
  cpuSeconds: 300,
  maxOutputBytes: 16 * 1024 * 1024,
  maxLogBytes: 1024 * 1024,
  maxFileBytes: 256 * 1024 * 1024,
});

export interface ExecutorOptions {
  /** Connections by id. `duckdb` should always be present. */
  connections: ReadonlyMap<string, SqlEngine>;
  /** Where run directories are created. */
  runRoot: string;
  limits?: Partial<ExecutorLimits>;
  /** Start the next run's process ahead of time. @default true */
  prewarm?: boolean;
  /** OS-level isolation around the child (bubblewrap, prlimit). @default detected */
  isolation?: SandboxIsolation;
  /** Keep cells off private and reserved networks too, not only the host's own services. @default false */
  blockPrivateNetworks?: boolean;
}

export interface RunRequest {
  notebook: Notebook;
  /** The project folder: relative file paths and imports resolve here. */
  projectDir: string;
  /** Supplied input values (text or typed); defaults fill the rest. */
  inputs?: Readonly<Record<string, unknown>>;
  context?: RunContext;
  runId?: string;
  /** Nominal fire time, for scheduled runs. */
  scheduledFor?: Date | null;
  limits?: Partial<ExecutorLimits>;
  /**
   * Aborting it cancels the run. Abort with a `RunCancellation` as the reason to say who cancelled:
   * the run and its running cell then read "Cancelled by <who>".
   */
  signal?: AbortSignal;
  onEvent?: (event: RunEvent) => void;
  /** Connections for this run only (a workspace's stored connections), over the executor's own. */
  connections?: ReadonlyMap<string, SqlEngine>;
  /** `cache=schedule` SQL cells: reuse stored results (app runs) or refresh them (scheduled runs). */
  sqlCache?: SqlResultCache;
  /** May cells reach the network? False needs bubblewrap (a network namespace). @default true */
  network?: boolean;
}

/** The reason a run's signal is aborted with when someone cancelled it (issue 15, bug 10). */
export interface RunCancellation {
  kind: 'cancelled';
  /** Who cancelled, as a person reads it: a user's name, or "schedule 'x' (overlap policy)". */
  by: string | null;
}

/** What a cancelled run and its running cell say. */
export function cancelledMessage(by: string | null): string {
  return by ? `Cancelled by ${by}` : 'Cancelled';
}

function cancellationOf(reason: unknown): RunCancellation {
  const given = reason as Partial<RunCancellation> | null | undefined;
  return {
    kind: 'cancelled',
    by:
      given && typeof given === 'object' && given.kind === 'cancelled' && typeof given.by === 'string'
        ? given.by
        : null,
  };
}

/**
 * Results of `cache=schedule` SQL cells, keyed by a hash of the connection, statements and bound
 * values, so a run with other inputs never reuses a result it did not ask for.
 */
export interface SqlResultCache {
  mode: 'reuse' | 'refresh';
  /** For `reuse`: the stored result, or null to run the query. */
  lookup(key: string): Promise<Buffer | null>;
}

/** A `cache=schedule` result a refreshing run produced, for the caller to store. */
export interface CachedSqlResult {
  cell: string;
  key: string;
  /** The query result, v8-serialized. */
  payload: Buffer;
}

export type RunEvent =
  | { type: 'run_started'; runId: string; cells: { name: string; kind: string }[] }
  | { type: 'cell_started'; index: number; name: string }
  | { type: 'log'; index: number; name: string; line: LogLine }
  | { type: 'cell_finished'; index: number; result: CellResult }
  | { type: 'run_finished'; snapshot: RunSnapshot };

export interface RunTimings {
  /** From the request until the child was ready to run cells (0 ms of spawning when warm). */
  startMs: number;
  /** From sending the cells until the last cell finished. */
  executeMs: number;
  totalMs: number;
  warm: boolean;
}

export interface RunResult {
  snapshot: RunSnapshot;
  timings: RunTimings;
  /** Fresh results of `cache=schedule` cells, when `sqlCache.mode` is `refresh`. */
  sqlResults: CachedSqlResult[];
  /** Cells whose result came from the cache instead of the database. */
  cacheHits: string[];
}

/**
 * How long the host waits, after the run's process exited, for its channel to close (the close follows
 * once every holder of the child's end has exited and the last bytes were read; the cap only guards
 * against a holder that never exits).
 */
const CHANNEL_DRAIN_MS = 15_000;
const RSS_HEADROOM_MB = 64;
const WATCH_INTERVAL_MS = 200;

export class Executor {
  readonly #connections: ReadonlyMap<string, SqlEngine>;
  readonly #runRoot: string;
  readonly #limits: ExecutorLimits;
  readonly #pool = new SandboxPool();
  readonly #prewarm: boolean;
  readonly #blockPrivateNetworks: boolean;
  readonly #isolation: SandboxIsolation;

  constructor(options: ExecutorOptions) {
    this.#connections = options.connections;
    this.#runRoot = resolve(options.runRoot);
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    validateLimits(this.#limits);
    this.#prewarm = options.prewarm ?? true;
    this.#blockPrivateNetworks = options.blockPrivateNetworks ?? false;
    this.#isolation = options.isolation ?? detectIsolation({ hide: [] });
  }

  /** How runs are isolated here (bubblewrap or not, prlimit or not). */
  get isolation(): SandboxIsolation {
    return this.#isolation;
  }

  /** Starts a child for this project ahead of its first run. */
  prepare(projectDir: string, limits: Partial<ExecutorLimits> = {}): void {
    if (this.#prewarm) this.#pool.prewarm(this.#specFor(projectDir, { ...this.#limits, ...limits }));
  }

  /**
   * Runs a notebook to completion. Bad requests (unknown inputs or connections, bad limits) throw a
   * `ValidationError` before anything runs; everything that happens while running is in the snapshot.
   */
  async run(request: RunRequest): Promise<RunResult> {
    const t0 = performance.now();
    const limits = { ...this.#limits, ...request.limits };
    validateLimits(limits);
    const notebook = request.notebook;
    const inputs = resolveInputs(notebook.inputs, request.inputs ?? {});
    const connections = request.connections
      ? new Map([...this.#connections, ...request.connections])
      : this.#connections;
    for (const cell of notebook.cells) {
      if (cell.kind === 'sql' && !connections.has(cell.connection)) {
        throw new UnknownConnectionError(cell.connection, [...connections.keys()]);
      }
    }
    const network = request.network ?? true;
    if (!network && !this.#isolation.bwrap) {
      throw new ValidationError(
        'network',
        'this workspace cuts network access for cells, which needs bubblewrap on the worker; install it (apt-get install bubblewrap) or allow network access',
      );
    }
    const cachedCells = new Set(
      notebook.cells.flatMap((c) => (c.kind === 'sql' && c.cache === 'schedule' ? [c.name] : [])),
    );
    const sqlResults: CachedSqlResult[] = [];
    const cacheHits: string[] = [];
    const sqlContext: SqlServeContext = {
      connections,
      projectDir: request.projectDir,
      rowLimit: limits.rowLimit,
      cache: request.sqlCache && cachedCells.size > 0 ? request.sqlCache : null,
      cachedCells,
      sqlResults,
      cacheHits,
    };
    const context = request.context ?? 'logic';
    const runId = request.runId ?? randomUUID();
    const almanac: AlmanacRunInfo = {
      scheduled: context === 'scheduled',
      runContext: context,
      runId,
      scheduledFor: request.scheduledFor ?? null,
      inputs,
    };
    const emit = (event: RunEvent) => {
      try {
        request.onEvent?.(event);
      } catch {
        // A listener's failure must not break the run.
      }
    };
    const startedAt = new Date();
    const cells: CellResult[] = notebook.cells.map((cell) => notRunCell(cell.name, cell.kind));
    emit({ type: 'run_started', runId, cells: notebook.cells.map((c) => ({ name: c.name, kind: c.kind })) });

    const spec = this.#specFor(request.projectDir, limits, network);
    const { sandbox, warm } = this.#pool.acquire(spec);
    // Start the next run's child now, while this run works, so back-to-back runs find one ready too.
    if (this.#prewarm) this.#pool.prewarm(spec);
    const sessions = new Map<string, Promise<SqlSession>>();
    // Every message from the child is checked against the run's state here (the child is untrusted).
    const connectionIds = notebookConnections(notebook);
    const protocol = new RunProtocol(notebook.cells, connectionIds, limits);
    // A connection's session closes once the last cell that may query it has finished, not at the end
    // of the run: the embedded database's file is held one run at a time, so holding it through the
    // run's remaining cells and teardown made other runs wait for nothing.
    const lastUse = lastUseOfConnections(notebook, connectionIds);
    const released: Promise<void>[] = [];
    /** The log lines the host kept, per cell: what the snapshot stores, whatever results claim. */
    const logs: LogLine[][] = notebook.cells.map(() => []);
    let outcome: { status: RunOutcome; reason: RunFailureReason | null; message: string | null } | null =
      null;
    let executeStart = 0;
    let startMs = 0;
    try {
      await sandbox.ready;
      startMs = performance.now() - t0;
      executeStart = performance.now();
      outcome = await new Promise((finish) => {
        let settled = false;
        const end = (value: NonNullable<typeof outcome>) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          clearInterval(watch);
          request.signal?.removeEventListener('abort', onAbort);
          finish(value);
        };
        const stop = (value: NonNullable<typeof outcome>) => {
          if (settled) return;
          for (const session of sessions.values()) void session.then((s) => s.interrupt()).catch(() => {});
          // The whole tree: the forked process may be a wrapper (prlimit, bubblewrap) around Node.
          killTree(sandbox.child.pid);
          sandbox.child.kill('SIGKILL');
          end(value);
        };
        const violated = (error: unknown) =>
          stop({
            status: 'failed',
            reason: 'protocol_violation',
            message: `the run's process broke the executor protocol and was stopped: ${error instanceof ProtocolViolationError ? error.message : `an unexpected error while handling its message (${(error as Error)?.message ?? error})`}. Cells must not write to the executor's channel (fd 3)`,
          });
        const timer = setTimeout(
          () =>
            stop({
              status: 'timed_out',
              reason: 'timeout',
              message: `the run timed out after ${formatMs(limits.timeoutMs)}${protocol.running !== null ? ` in cell '${cells[protocol.running]!.name}'` : ''}`,
            }),
          limits.timeoutMs,
        );
        const watch = setInterval(() => {
          const rss = treeResidentMb(sandbox.child.pid);
          if (rss !== null && rss > limits.memoryLimitMb + RSS_HEADROOM_MB) {
            stop(memoryOutcome(limits.memoryLimitMb, protocol.running, cells));
          }
        }, WATCH_INTERVAL_MS);
        const onAbort = () =>
          stop({
            status: 'cancelled',
            reason: 'cancelled',
            message: cancelledMessage(cancellationOf(request.signal?.reason).by),
          });
        if (request.signal?.aborted) onAbort();
        request.signal?.addEventListener('abort', onAbort);

        // Bytes on the channel that are not a frame within the run's cap: the sandbox stopped reading
        // them (nothing more is buffered) and killed the child; end the run and kill its whole tree.
        sandbox.channel.once('violation', (error: Error) =>
          violated(
            new ProtocolViolationError(`bytes on its channel that are not a message: ${error.message}`),
          ),
        );
        sandbox.channel.on('message', (raw: unknown) => {
          if (settled) return;
          // Nothing a message does may throw out of here: it would take the whole server down.
          try {
            const message = protocol.accept(raw);
            switch (message.type) {
              case 'cell_started':
                cells[message.index]!.startedAt = message.startedAt;
                emit({ type: 'cell_started', index: message.index, name: message.name });
                break;
              case 'log':
                if (message.line) {
                  logs[message.index]!.push(message.line);
                  emit({
                    type: 'log',
                    index: message.index,
                    name: cells[message.index]!.name,
                    line: message.line,
                  });
                }
                break;
              case 'cell_finished': {
                const result = { ...message.result, logs: logs[message.index]! };
                cells[message.index] = result;
                emit({ type: 'cell_finished', index: message.index, result });
                for (const [id, last] of lastUse) {
                  const session = last === message.index ? sessions.get(id) : undefined;
                  if (!session) continue;
                  sessions.delete(id);
                  released.push(session.then((open) => open.close()).catch(() => {}));
                }
                break;
              }
              case 'sql':
                void this.#serveSql(message.request, sandbox, sessions, sqlContext).finally(() =>
                  protocol.sqlAnswered(),
                );
                break;
              case 'done': {
                const failed = cells.find((c) => c.status === 'failed');
                end(
                  failed
                    ? {
                        status: 'failed',
                        reason: 'cell_error',
                        message: `cell '${failed.name}' failed${failed.error?.line ? ` (line ${failed.error.line})` : ''}: ${failed.error?.name && failed.error.name !== 'Error' ? `${failed.error.name}: ` : ''}${failed.error?.message ?? 'unknown error'}`,
                      }
                    : { status: 'succeeded', reason: null, message: null },
                );
                break;
              }
              default:
                // RunProtocol.accept refuses unknown kinds; a new kind must be handled here.
                assertExhaustive(message, 'child message');
            }
          } catch (error) {
            violated(error);
          }
        });
        sandbox.child.once('exit', (code, signal) => {
          // Give messages already in flight (the last cell_finished, done) time to arrive: the channel
          // closes once every process holding the child's end (node, and the bubblewrap processes
          // around it) has exited and its last bytes were read. Wait for that. (A 1 s cap misjudged
          // busy hosts: the reliability suite saw runs that had sent `done` end as "exited
          // unexpectedly (exit code 0)" when their last frames were read after the cap.)
          const settled = sandbox.channel.isClosed
            ? Promise.resolve()
            : new Promise<void>((done) => {
                const timer = setTimeout(done, CHANNEL_DRAIN_MS);
                void sandbox.channel.closed.then(() => {
                  clearTimeout(timer);
                  done();
                });
              });
          void settled.then(() =>
            setImmediate(() => {
              const where = protocol.running !== null ? ` in cell '${cells[protocol.running]!.name}'` : '';
              const exitSignal = exitSignalOf(code, signal);
              if (sandbox.channel.error) {
                violated(
                  new ProtocolViolationError(
                    `bytes on its channel that are not a message: ${sandbox.channel.error.message}`,
                  ),
                );
              } else if (sandbox.channel.unfinished) {
                // A frame begun and never finished: a cell wrote part of one to the channel and exited.
                const { bytes, of } = sandbox.channel.unfinished;
                violated(
                  new ProtocolViolationError(
                    `a truncated frame on its channel (${of === null ? `${bytes} bytes of a frame's header` : `${bytes} of the ${of} bytes its header announced`}, then the process exited)`,
                  ),
                );
              } else if (
                /heap out of memory|Reached heap limit|Allocation failed/i.test(sandbox.stderrTail)
              ) {
                end(memoryOutcome(limits.memoryLimitMb, protocol.running, cells));
              } else if (exitSignal === 'SIGXCPU') {
                end({
                  status: 'failed',
                  reason: 'cpu_limit',
                  message: `the run used its ${limits.cpuSeconds} s of CPU time${where}; make the code cheaper or raise ALMANAC_RUN_CPU_SECONDS`,
                });
              } else if (exitSignal === 'SIGXFSZ') {
                end({
                  status: 'failed',
                  reason: 'crashed',
                  message: `the run wrote a file larger than ${Math.round(limits.maxFileBytes / 1048576)} MiB${where}; write less or raise ALMANAC_RUN_MAX_FILE_MB`,
                });
              } else {
                end({
                  status: 'failed',
                  reason: 'crashed',
                  message: `the run process exited unexpectedly (${signal ?? `exit code ${code}`})${where}${sandbox.stderrTail.trim() ? `: ${lastLine(sandbox.stderrTail)}` : ''}`,
                });
              }
            }),
          );
        });
        const message: HostMessage = {
          type: 'run',
          cells: notebook.cells,
          almanac,
          connections: connectionIds,
          projectDir: resolve(request.projectDir),
          packageRoot: PACKAGE_ROOT,
          rowLimit: limits.rowLimit,
          maxOutputBytes: limits.maxOutputBytes,
          maxLogBytes: limits.maxLogBytes,
          blockPrivateNetworks: this.#blockPrivateNetworks,
        };
        // The largest frame this run's child may send, from this run's limits (channel.ts).
        sandbox.channel.maxFrameBytes = maxFrameBytesFor(limits);
        sandbox.channel.send(message);
      });
    } catch (error) {
      outcome = {
        status: 'failed',
        reason: 'crashed',
        message: `the run process could not start: ${(error as Error).message}`,
      };
    } finally {
      await sandbox.dispose();
      await Promise.all([
        ...released,
        ...[...sessions.values()].map((s) => s.then((session) => session.close()).catch(() => {})),
      ]);
    }
    const final = outcome ?? {
      status: 'failed' as const,
      reason: 'crashed' as const,
      message: 'the run ended without a result',
    };
    const running = protocol.running;
    if (final.status !== 'succeeded' && running !== null) {
      const cell = cells[running]!;
      const kind = stoppedCellErrorName(final.reason);
      cells[running] = {
        ...cell,
        logs: logs[running]!,
        // A cancel is not the cell's failure (issue 15, bug 10: it read "Crash: the run was cancelled").
        status: final.reason === 'cancelled' ? 'cancelled' : 'failed',
        durationMs: cell.startedAt ? Date.now() - Date.parse(cell.startedAt) : 0,
        error: {
          cell: cell.name,
          line: notebook.cells[running]!.line,
          name: kind,
          message: final.message ?? kind,
        },
      };
    }
    const snapshot: RunSnapshot = {
      format: 1,
      runId,
      title: notebook.title,
      status: final.status,
      reason: final.reason,
      message: final.message,
      context,
      scheduledFor: almanac.scheduledFor?.toISOString() ?? null,
      inputs,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      cells,
    };
    emit({ type: 'run_finished', snapshot });
    const totalMs = performance.now() - t0;
    return {
      snapshot,
      timings: { startMs, executeMs: executeStart ? performance.now() - executeStart : 0, totalMs, warm },
      sqlResults,
      cacheHits,
    };
  }

  async #serveSql(
    message: SqlRequestMessage,
    sandbox: Sandbox,
    sessions: Map<string, Promise<SqlSession>>,
    context: SqlServeContext,
  ): Promise<void> {
    let reply: HostMessage;
    try {
      const engine = context.connections.get(message.connection);
      if (!engine) throw new UnknownConnectionError(message.connection, [...context.connections.keys()]);
      let session = sessions.get(message.connection);
      if (!session) {
        session = engine.openSession({ projectDir: resolve(context.projectDir), runDir: sandbox.runDir });
        sessions.set(message.connection, session);
      }
      const chainAs = engine.dialect === 'duckdb' ? message.chainAs : null;
      // Only a SQL cell's own query is cached (chainAs is set for cells, not for almanac.sql in code).
      const cacheable =
        context.cache !== null && context.cachedCells.has(message.cell) && message.chainAs !== null;
      const key = cacheable ? sqlCacheKey(message) : '';
      let result: SqlQueryResult | null = null;
      if (cacheable && context.cache!.mode === 'reuse') {
        const stored = await context.cache!.lookup(key).catch(() => null);
        if (stored) {
          result = deserialize(stored) as SqlQueryResult;
          // Stored under another row limit, maybe: the table keeps this run's (the host checks it).
          if (result.table.rows.length > context.rowLimit) {
            result = {
              ...result,
              table: { ...result.table, rows: result.table.rows.slice(0, context.rowLimit), truncated: true },
            };
          }
          // Later SQL cells may select from this one: recreate its temp table from the stored rows.
          if (
            chainAs &&
            !(await (await session).adopt?.(chainAs, result).then(
              () => true,
              () => false,
            ))
          )
            result = null;
          if (result) context.cacheHits.push(message.cell);
        }
      }
      if (!result) {
        result = await (await session).query({
          statements: message.statements,
          chainAs,
          rowLimit: context.rowLimit,
        });
        if (cacheable && context.cache!.mode === 'refresh') {
          context.sqlResults.push({ cell: message.cell, key, payload: serialize(result) });
        }
      }
      reply = { type: 'sql_result', id: message.id, ok: true, result };
    } catch (error) {
      const e = error as Error;
      reply = {
        type: 'sql_result',
        id: message.id,
        ok: false,
        error: {
          name: e instanceof SqlExecutionError ? e.name : e.name === 'Error' ? 'SQL Error' : e.name,
          message: e.message,
          line: e instanceof SqlExecutionError ? e.line : null,
        },
      };
    }
    // Not sent if the child died meanwhile; its exit is handled elsewhere.
    sandbox.channel.send(reply);
  }

  #specFor(projectDir: string, limits: ExecutorLimits, network = true): SandboxSpec {
    return {
      runRoot: this.#runRoot,
      projectDir: resolve(projectDir),
      memoryLimitMb: limits.memoryLimitMb,
      cpuSeconds: limits.cpuSeconds,
      maxFileBytes: limits.maxFileBytes,
      isolation: this.#isolation,
      network,
    };
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}

interface SqlServeContext {
  connections: ReadonlyMap<string, SqlEngine>;
  projectDir: string;
  rowLimit: number;
  cache: SqlResultCache | null;
  cachedCells: ReadonlySet<string>;
  sqlResults: CachedSqlResult[];
  cacheHits: string[];
}

/**
 * For each connection, the index of the last cell that may query it: its last SQL cell, or the last
 * code cell that uses `almanac` (code reaches SQL only through the `almanac` its scope hands it, and
 * may name any connection the notebook lists).
 */
export function lastUseOfConnections(
  notebook: Pick<Notebook, 'cells'>,
  connectionIds: readonly string[],
): Map<string, number> {
  const last = new Map<string, number>();
  notebook.cells.forEach((cell, index) => {
    if (cell.kind === 'sql') last.set(cell.connection, index);
    else if ((cell.kind === 'js' || cell.kind === 'ts') && cell.scope.includes('almanac')) {
      for (const id of connectionIds) last.set(id, index);
    }
  });
  return last;
}

/** The cache key of a SQL request: its connection, statement texts and bound values. */
export function sqlCacheKey(message: Pick<SqlRequestMessage, 'connection' | 'statements'>): string {
  return createHash('sha256')
    .update(serialize([message.connection, message.statements.map((s) => [s.text, s.params])]))
    .digest('hex');
}

function validateLimits(limits: ExecutorLimits): void {
  if (!Number.isInteger(limits.timeoutMs) || limits.timeoutMs < 100) {
    throw new ValidationError('timeout', 'must be a whole number of milliseconds >= 100');
  }
  if (!Number.isInteger(limits.memoryLimitMb) || limits.memoryLimitMb < 32) {
    throw new ValidationError('memoryLimitMb', 'must be a whole number of MiB >= 32');
  }
  if (!Number.isInteger(limits.rowLimit) || limits.rowLimit < 0) {
    throw new ValidationError('rowLimit', 'must be an integer >= 0');
  }
  for (const key of ['cpuSeconds', 'maxOutputBytes', 'maxLogBytes', 'maxFileBytes'] as const) {
    if (!Number.isInteger(limits[key]) || limits[key] < 1) {
      throw new ValidationError(key, 'must be a whole number >= 1');
    }
  }
}

/** The error name on the cell a run stopped in, by why it stopped. */
function stoppedCellErrorName(reason: RunFailureReason | null): string {
  if (reason === null) return 'Crash';
  switch (reason) {
    case 'timeout':
      return 'Timeout';
    case 'memory_limit':
      return 'MemoryLimit';
    case 'cpu_limit':
      return 'CpuLimit';
    case 'protocol_violation':
      return 'ProtocolViolation';
    case 'cancelled':
      return 'Cancelled';
    case 'cell_error':
    case 'output_limit':
    case 'crashed':
    case 'invalid_input':
      return 'Crash';
    default:
      return assertExhaustive(reason, 'run failure reason');
  }
}

function memoryOutcome(limitMb: number, running: number | null, cells: CellResult[]) {
  return {
    status: 'failed' as const,
    reason: 'memory_limit' as const,
    message: `the run exceeded its memory limit of ${limitMb} MiB${running !== null ? ` in cell '${cells[running]!.name}'` : ''}`,
  };
}

function lastLine(text: string): string {
  const lines = text
    .trim()
    .split('\n')
    .filter((l) => l.trim() !== '');
  return (lines[lines.length - 1] ?? '').slice(0, 300);
}

export function formatMs(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${+(ms / 1000).toFixed(1)} s`;
  return `${+(ms / 60_000).toFixed(1)} min`;
}
