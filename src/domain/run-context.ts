/**
 * The run context tells user code how it is running (ARCHITECTURE.md, glossary "Run").
 * - `logic`: run from the notebook editor or `almanac run` (the default for the CLI).
 * - `app`: a viewer opened or re-ran the published app.
 * - `scheduled`: a schedule fired (or "run now" on a schedule).
 * - `api-triggered`: a program started the run through the API.
 */
export const RUN_CONTEXTS = ['logic', 'app', 'scheduled', 'api-triggered'] as const;
export type RunContext = (typeof RUN_CONTEXTS)[number];

export function isRunContext(value: string): value is RunContext {
  return (RUN_CONTEXTS as readonly string[]).includes(value);
}

/** Final states of a run, as in the run state machine (docs/run-lifecycle.md). */
export const RUN_OUTCOMES = ['succeeded', 'failed', 'timed_out', 'cancelled'] as const;
export type RunOutcome = (typeof RUN_OUTCOMES)[number];

/** Why a run that did not succeed ended the way it did. */
export type RunFailureReason =
  | 'cell_error'
  | 'timeout'
  | 'memory_limit'
  | 'cpu_limit'
  | 'output_limit'
  | 'cancelled'
  | 'crashed'
  | 'invalid_input'
  /** The run's process sent a message that is malformed, oversize or out of order (issue 14). */
  | 'protocol_violation';

/**
 * What user code sees as `almanac` (ARCHITECTURE.md, decision 5). Plain data: it crosses the process
 * boundary into the sandboxed child.
 */
export interface AlmanacRunInfo {
  /** True when the run was started by a schedule. Same as `runContext === 'scheduled'`. */
  scheduled: boolean;
  runContext: RunContext;
  runId: string;
  /** The nominal fire time of a scheduled run; null for other runs. */
  scheduledFor: Date | null;
  /** The input values the run uses, after defaults and validation. */
  inputs: Record<string, InputValue>;
}

export type InputValue = string | number | boolean | null;
