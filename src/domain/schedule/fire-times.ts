/**
 * When a schedule fires: cron matching on local wall time in the schedule's IANA zone, mapped to real
 * instants with these DST rules (docs/schedules.md):
 * - a wall time that does not exist (spring forward) fires once, at the first valid instant after the
 *   gap; interval crons (hour field `*`) simply have no fire time inside the gap, so their real-time
 *   spacing holds;
 * - a wall time that occurs twice (fall back) fires once, at its first occurrence; interval crons fire in
 *   both copies of the repeated hour, again keeping their real-time spacing.
 * Fire times come out strictly increasing, and each is derived from the schedule alone, so a restart
 * (even inside a repeated hour) recomputes exactly the same instants.
 */
import { Cron } from 'croner';
import type { ParsedCron } from './cron.ts';
import { instantsAt, offsetMs, wallTime } from './zoned-time.ts';

export interface FireSpec {
  cron: ParsedCron;
  timeZone: string;
  /** An extra rule on the local date (monthly schedules on days 29-31). */
  accept?: (wall: Date) => boolean;
}

export interface FireTime {
  /** The nominal fire time: `almanac.scheduledFor`. */
  at: Date;
  /** The local wall time the cron matched. */
  wall: Date;
  /** UTC offset in effect at `at`, in ms. */
  offsetMs: number;
  /** `gap`: moved to the end of a DST gap; `repeat`: the wall time occurs twice that day. */
  dst: 'gap' | 'repeat' | null;
}

const DAY = 86_400_000;

/** Croner objects by pattern; `nextRun(date)` is pure, so one per pattern serves every schedule. */
const crons = new Map<string, Cron>();
function cronFor(pattern: string): Cron {
  let cron = crons.get(pattern);
  if (!cron) {
    cron = new Cron(pattern, { utcOffset: 0, paused: true });
    if (crons.size > 10_000) crons.clear();
    crons.set(pattern, cron);
  }
  return cron;
}

const stableByZone = new Map<string, Map<number, number | null>>();

/**
 * The UTC offset that holds for every wall time of a UTC day, or null when a transition may fall near
 * it. Offsets are checked a day either side; no zone changes twice within three days. Cached per zone
 * and day for every schedule.
 */
function stableOffsets(timeZone: string) {
  let byDay = stableByZone.get(timeZone);
  if (!byDay) {
    byDay = new Map();
    stableByZone.set(timeZone, byDay);
  }
  const cache = byDay;
  return (wall: number): number | null => {
    const day = Math.floor(wall / DAY);
    let offset = cache.get(day);
    if (offset === undefined) {
      const before = offsetMs(new Date((day - 1) * DAY), timeZone);
      const after = offsetMs(new Date((day + 2) * DAY), timeZone);
      offset = before === after ? before : null;
      if (cache.size > 20_000) cache.clear();
      cache.set(day, offset);
    }
    return offset;
  };
}

/** Fire times strictly after `after`, in order, without end (take what you need). */
export function* fireTimesAfter(spec: FireSpec, after: Date): Generator<FireTime> {
  const cron = cronFor(spec.cron.pattern);
  const zone = spec.timeZone;
  const stable = stableOffsets(zone);
  // The wall time of `after`: from the day's stable offset when there is one (no Intl call).
  const guess = stable(after.getTime());
  const afterWall =
    guess !== null && stable(after.getTime() + guess) === guess
      ? after.getTime() + guess
      : wallTime(after, zone).getTime();
  // Near a transition, start a little earlier in wall time: a repeated hour maps earlier wall times to
  // later instants.
  let cursor = new Date(stable(afterWall) === null ? afterWall - 3 * 3_600_000 : afterWall - 1);
  const buffer: FireTime[] = [];
  let last = after.getTime();
  let guard = 0;
  for (;;) {
    const wall = cron.nextRun(cursor);
    if (!wall) return;
    cursor = wall;
    if (++guard > 5_000_000) return;
    if (spec.accept && !spec.accept(wall)) continue;
    const w = wall.getTime();
    const known = stable(w);
    let safe: number;
    if (known !== null) {
      // The common case: no DST change near this day, one instant per wall time.
      buffer.push({ at: new Date(w - known), wall, offsetMs: known, dst: null });
      safe = w - known;
    } else {
      const mapping = instantsAt(wall, zone);
      if (mapping.instants.length === 0) {
        if (!spec.cron.interval && mapping.gapEnd) {
          buffer.push({ at: mapping.gapEnd, wall, offsetMs: offsetMs(mapping.gapEnd, zone), dst: 'gap' });
        }
      } else {
        const repeated = mapping.instants.length > 1;
        const chosen = spec.cron.interval ? mapping.instants : mapping.instants.slice(0, 1);
        for (const at of chosen)
          buffer.push({ at, wall, offsetMs: offsetMs(at, zone), dst: repeated ? 'repeat' : null });
      }
      // Every later wall time maps to an instant at or after (wall - the largest offset near it).
      safe =
        w -
        Math.max(
          offsetMs(new Date(w - DAY), zone),
          offsetMs(new Date(w), zone),
          offsetMs(new Date(w + DAY), zone),
        );
    }
    if (buffer.length > 1) buffer.sort((a, b) => a.at.getTime() - b.at.getTime());
    while (buffer.length > 0 && buffer[0]!.at.getTime() <= safe) {
      const next = buffer.shift()!;
      if (next.at.getTime() <= last) continue;
      last = next.at.getTime();
      yield next;
    }
  }
}

export function nextFireTimes(spec: FireSpec, after: Date, count: number): FireTime[] {
  const out: FireTime[] = [];
  for (const fire of fireTimesAfter(spec, after)) {
    out.push(fire);
    if (out.length >= count) break;
  }
  return out;
}

/** Fire times in (from, to], at most `limit`. */
export function fireTimesBetween(spec: FireSpec, from: Date, to: Date, limit: number): FireTime[] {
  const out: FireTime[] = [];
  for (const fire of fireTimesAfter(spec, from)) {
    if (fire.at.getTime() > to.getTime() || out.length >= limit) break;
    out.push(fire);
  }
  return out;
}
