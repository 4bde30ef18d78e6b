/**
 * Wall-clock time in an IANA timezone, from the platform's time zone database (Intl). A *wall time* is
 * a `Date` whose UTC fields hold the local date and time ("floating"), which lets cron matching work on
 * local time while instants stay real.
 */

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** True when `timeZone` is an IANA zone this platform knows (`Europe/Berlin`, `UTC`). */
export function isTimeZone(timeZone: string): boolean {
  if (!timeZone || /^[+-]?\d/.test(timeZone)) return false;
  try {
    formatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** The local wall time of `instant` in `timeZone`, as a floating Date (whole seconds kept, ms kept). */
export function wallTime(instant: Date, timeZone: string): Date {
  const parts = formatter(timeZone).formatToParts(instant);
  const get = (type: string) => Number(parts.find((p) => p.type === type)!.value);
  return new Date(
    Date.UTC(
      get('year'),
      get('month') - 1,
      get('day'),
      get('hour'),
      get('minute'),
      get('second'),
      instant.getUTCMilliseconds(),
    ),
  );
}

/** Offset from UTC at `instant`, in milliseconds (Berlin in winter: +3,600,000). */
export function offsetMs(instant: Date, timeZone: string): number {
  return wallTime(instant, timeZone).getTime() - instant.getTime();
}

/** `+05:45`, `-03:30`, `+00:00`. */
export function formatOffset(ms: number): string {
  const sign = ms < 0 ? '-' : '+';
  const minutes = Math.abs(Math.round(ms / 60_000));
  return `${sign}${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
}

export interface WallMapping {
  /** The instants whose local time is `wall`: none (in a gap), one, or two (in a repeated hour). */
  instants: Date[];
  /** For a wall time in a gap: the first valid instant after the gap (the moment the clocks jumped). */
  gapEnd: Date | null;
}

/** Every instant at which the clocks in `timeZone` show `wall`. */
export function instantsAt(wall: Date, timeZone: string): WallMapping {
  const w = wall.getTime();
  // Offsets a day either side cover every transition (no zone shifts by more than 24 hours).
  const before = offsetMs(new Date(w - 86_400_000), timeZone);
  const after = offsetMs(new Date(w + 86_400_000), timeZone);
  const candidates = [...new Set([before, after, offsetMs(new Date(w), timeZone)])]
    .map((offset) => new Date(w - offset))
    .filter((instant) => wallTime(instant, timeZone).getTime() === w)
    .sort((a, b) => a.getTime() - b.getTime());
  const instants = candidates.filter((d, i) => i === 0 || d.getTime() !== candidates[i - 1]!.getTime());
  if (instants.length > 0) return { instants, gapEnd: null };
  // In a gap: the transition lies between (w - before) and (w - after); find the first instant whose
  // wall time is past `wall`.
  let lo = Math.min(w - before, w - after);
  let hi = Math.max(w - before, w - after);
  while (hi - lo > 1000) {
    const mid = Math.floor((lo + hi) / 2000) * 1000;
    if (wallTime(new Date(mid), timeZone).getTime() > w) hi = mid;
    else lo = mid;
  }
  return { instants: [], gapEnd: new Date(hi) };
}
