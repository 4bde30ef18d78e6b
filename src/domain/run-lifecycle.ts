/**
 * The run lifecycle as a table (docs/run-lifecycle.md): every status change a run may make, named by
 * what makes it. The store builds each status-changing statement's guard from this table
 * (`assertTransition(from, to)` returns the `from` its `WHERE status = …` uses), so a transition that is
 * not here cannot be written.
 *
 *   insert ──▶ queued ──claim──▶ running ──finish──▶ succeeded | failed | timed_out | cancelled
 *                │  ▲                 │
 *                │  └─requeue/release─┤
 *                │                     └──worker_lost──▶ failed
 *                └──cancel_queued──▶ cancelled
 *   insert ──▶ skipped
 */
import { randomUUID } from 'node:crypto';
import { DEFAULT_MAX_ATTEMPTS, RUN_STATUSES, type RunStatus, type RunTrigger } from './run.ts';
import type { InputValue, RunContext } from './run-context.ts';

/**
 * Every allowed transition, by the event that makes it.
 * - `claim`: a worker takes a queued run (its claim epoch, the fencing token, grows by one).
 * - `cancel_queued`: a queued run is cancelled before it starts.
 * - `finish`: the worker that holds a running run records how it ended (a cancel requested while it
 *   ran ends here too, as `cancelled`).
 * - `requeue`: the reaper puts back a run whose lease expired while attempts remain.
 * - `release`: a stopping worker hands a run back; the attempt does not count.
 * - `worker_lost`: the reaper ends a run whose lease expired with no attempts left (or that was
 *   cancelled), as `failed` with reason `worker_lost`.
 */
export const RUN_TRANSITIONS = [
  { event: 'claim', from: 'queued', to: 'running' },
  { event: 'cancel_queued', from: 'queued', to: 'cancelled' },
  { event: 'finish', from: 'running', to: 'succeeded' },
  { event: 'finish', from: 'running', to: 'failed' },
  { event: 'finish', from: 'running', to: 'timed_out' },
  { event: 'finish', from: 'running', to: 'cancelled' },
  { event: 'requeue', from: 'running', to: 'queued' },
  { event: 'release', from: 'running', to: 'queued' },
  { event: 'worker_lost', from: 'running', to: 'failed' },
] as const satisfies readonly { event: string; from: RunStatus; to: RunStatus }[];

export type RunTransition = (typeof RUN_TRANSITIONS)[number];
export type RunEvent = RunTransition['event'];

/** The statuses a run may be created in: `queued`, or `skipped` for a fire time a policy dropped. */
export const INITIAL_STATUSES = ['queued', 'skipped'] as const satisfies readonly RunStatus[];
export type InitialStatus = (typeof INITIAL_STATUSES)[number];

/** A status change the table does not allow. A bug, not bad input: it names both ends. */
export class IllegalTransitionError extends Error {
  readonly code = 'illegal_transition';
  readonly from: RunStatus | null;
  readonly to: RunStatus;
  constructor(from: RunStatus | null, to: RunStatus) {
    super(
      from === null
        ? `run lifecycle: a run cannot be created as '${to}'; it starts as ${INITIAL_STATUSES.join(' or ')}`
        : `run lifecycle: no transition from '${from}' to '${to}'${
            toStatesOf(from).length > 0
              ? `; from '${from}' a run may go to ${toStatesOf(from).join(', ')}`
              : ` ('${from}' is final)`
          }`,
    );
    this.name = 'IllegalTransitionError';
    this.from = from;
    this.to = to;
  }
}

/** True when the table has a transition from `from` to `to`. */
export function canTransition(from: RunStatus, to: RunStatus): boolean {
  return RUN_TRANSITIONS.some((t) => t.from === from && t.to === to);
}

/**
 * Throws `IllegalTransitionError` unless `from → to` is in the table; returns `from`, for the guard
 * (`WHERE status = from`) of the statement that makes the change. With `event`, that event must be
 * the one making it.
 */
export function assertTransition<From extends RunStatus>(from: From, to: RunStatus, event?: RunEvent): From {
  const ok = RUN_TRANSITIONS.some(
    (t) => t.from === from && t.to === to && (event === undefined || t.event === event),
  );
  if (!ok) throw new IllegalTransitionError(from, to);
  return from;
}

/** Throws unless a run may be created in `status`. */
export function assertInitial(status: RunStatus): InitialStatus {
  if (!(INITIAL_STATUSES as readonly RunStatus[]).includes(status))
    throw new IllegalTransitionError(null, status);
  return status as InitialStatus;
}

/** The statuses a run may reach `to` from (deduplicated, in table order). */
export function fromStatesOf(to: RunStatus): RunStatus[] {
  return [...new Set(RUN_TRANSITIONS.filter((t) => t.to === to).map((t) => t.from))];
}

/** The statuses a run in `from` may go to (deduplicated, in table order); none for a final status. */
export function toStatesOf(from: RunStatus): RunStatus[] {
  return [...new Set<RunStatus>(RUN_TRANSITIONS.filter((t) => t.from === from).map((t) => t.to))];
}

/** Statuses with no way out: the table's final states (the same as `FINAL_STATUSES`). */
export function terminalStatuses(): RunStatus[] {
  return RUN_STATUSES.filter((s) => toStatesOf(s).length === 0);
}

/**
 * For a `switch` that must handle every case: `default: assertExhaustive(x)` fails to compile when a
 * case is missing, and throws if a value outside the type arrives anyway.
 */
export function assertExhaustive(value: never, what = 'value'): never {
  throw new Error(`unexpected ${what}: ${JSON.stringify(value)}`);
}

/** A run to insert: queued (or a skipped fire time), with no claim yet. */
export interface NewRun {
  id: string;
  workspaceId: string;
  projectId: string;
  versionId: string | null;
  trigger: RunTrigger;
  context: RunContext;
  private: boolean;
  inputs: Record<string, InputValue>;
  createdBy: string | null;
  createdAt: Date;
  scheduledFor: Date | null;
  maxAttempts: number;
  expiresAt: Date | null;
  scheduleId?: string | null;
  jitterMs?: number | null;
  timeoutMs?: number | null;
  retryOf?: string | null;
  retryNumber?: number;
  afterRunId?: string | null;
  /** Insert as a final entry instead of queued (a skipped fire time). */
  status?: InitialStatus;
  reason?: string | null;
  errorMessage?: string | null;
  /** Notification rules sent inline (JSON list of NotificationRuleSpec). */
  notify?: string | null;
}

/** What a new run must be told; the rest has defaults (see `newRun`). */
export type NewRunFields = Pick<
  NewRun,
  'workspaceId' | 'projectId' | 'versionId' | 'trigger' | 'context' | 'inputs' | 'createdBy' | 'createdAt'
> &
  Partial<NewRun>;

/**
 * Builds a run to insert, the one place its defaults are written: a fresh id, not private,
 * no fire time, `DEFAULT_MAX_ATTEMPTS` attempts, no expiry, queued.
 */
export function newRun(fields: NewRunFields): NewRun {
  return {
    id: randomUUID(),
    private: false,
    scheduledFor: null,
    maxAttempts: DEFAULT_MAX_ATTEMPTS,
    expiresAt: null,
    // An option passed as undefined takes the default, not undefined.
    ...(Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as NewRunFields),
  };
}
