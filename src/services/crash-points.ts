/**
 * Named crash points for the reliability suite (test/reliability/). With `ALMANAC_CRASH_AT=<point>`
 * (several may be given, comma-separated), the process SIGKILLs itself the first time it reaches that
 * point: no cleanup, no finally blocks, as when a machine loses power. Unset, a crash point costs one
 * comparison.
 *
 * Points:
 * - `after_fire_insert`: the scheduler committed a batch of fire times (runs inserted, next fire
 *   times advanced), before it notifies anyone;
 * - `after_claim`: a worker claimed runs, before it starts them;
 * - `mid_cell`: a cell of a run is executing in its child process;
 * - `before_commit`: a worker is inside the transaction that finishes a run, before it commits;
 * - `after_send`: the notifier handed a message to its channel, before it records it as sent.
 */
export const CRASH_POINTS = [
  'after_fire_insert',
  'after_claim',
  'mid_cell',
  'before_commit',
  'after_send',
] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

const armed = new Set((process.env['ALMANAC_CRASH_AT'] ?? '').split(',').filter(Boolean));

/** Dies here if this point is armed. */
export function crashPoint(point: CrashPoint): void {
  if (armed.size === 0 || !armed.has(point)) return;
  process.stderr.write(`ALMANAC_CRASH_AT: crashing at ${point} (pid ${process.pid})\n`);
  process.kill(process.pid, 'SIGKILL');
}
