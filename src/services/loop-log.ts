/**
 * The log a long-running loop writes to (the scheduler, worker, housekeeper and notifier): the subset of
 * pino's logger they use, so the composition root passes its logger and tests pass nothing or a list.
 * It lives below the loops so none of them imports another for it.
 */
export interface LoopLog {
  debug?(object: object, message?: string): void;
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
  error(object: object, message?: string): void;
}

/** A log that drops everything: the default when a loop is given none. */
export const QUIET_LOG: LoopLog = Object.freeze({ info() {}, warn() {}, error() {} });
