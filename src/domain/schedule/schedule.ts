/**
 * A schedule (glossary "Schedule"): a cadence in an IANA timezone, the inputs its runs use, and its
 * policies. Everything here is pure: validation with messages that name the field and the rule, the
 * cron a cadence stands for, and the deterministic jitter.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ValidationError } from '../errors.ts';
import { inputValueSchema } from '../run.ts';
import { kindError, oneOfSchema } from '../schema-errors.ts';
import { type ParsedCron, parseCron } from './cron.ts';
import type { FireSpec } from './fire-times.ts';
import { isTimeZone } from './zoned-time.ts';

export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

const hhmm = z.string().describe('Local time HH:MM in the schedule timezone');

/**
 * How often: the one definition of a cadence, for the domain (`Cadence`), request and response
 * validation and the OpenAPI document. Times are local `HH:MM` in the schedule's timezone. `monthly`
 * on days 29-31: `shortMonths: 'last_day'` (the default) fires on the month's last day when the month
 * is shorter; `'skip'` skips those months. Ranges (minute 0-59, day 1-31, a valid cron) are checked by
 * `cadenceSpec`, with messages naming the field.
 */
export const cadenceSchema = z
  .discriminatedUnion(
    'kind',
    [
      z.strictObject({
        kind: z.literal('hourly'),
        minute: z.number().int().describe('Minute of the hour, 0-59'),
      }),
      z.strictObject({ kind: z.literal('daily'), time: hhmm }),
      z.strictObject({
        kind: z.literal('weekly'),
        days: z.array(oneOfSchema(WEEKDAYS)).describe('Days of the week'),
        time: hhmm,
      }),
      z.strictObject({
        kind: z.literal('monthly'),
        day: z.number().int().describe('Day of the month, 1-31'),
        time: hhmm,
        shortMonths: oneOfSchema(['last_day', 'skip'])
          .optional()
          .describe('Days 29-31 in shorter months: fire on the last day (default) or skip the month'),
      }),
      z.strictObject({
        kind: z.literal('cron'),
        expression: z
          .string()
          .max(200, 'must be at most 200 characters')
          .describe('5 fields (minute hour day month weekday) or 6 with seconds first'),
      }),
    ],
    { error: kindError },
  )
  .meta({ id: 'Cadence' });
export type Cadence = z.infer<typeof cadenceSchema>;

export const OVERLAP_POLICIES = ['skip', 'buffer_one', 'allow', 'cancel_previous'] as const;
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];
export const CATCHUP_MODES = ['coalesce', 'all'] as const;
export type CatchupMode = (typeof CATCHUP_MODES)[number];

/**
 * A schedule's policies, every one with its default (`DEFAULT_POLICIES`); ranges are checked by
 * `validatePolicies`, with messages naming the field.
 */
export const schedulePoliciesSchema = z
  .strictObject({
    /** When the previous run of this schedule is still queued or running. @default 'skip' */
    overlap: oneOfSchema(OVERLAP_POLICIES).describe('Default skip'),
    /** Fire times missed while no scheduler ran are caught up if they are at most this old. @default 3600000 (1 h) */
    catchupWindowMs: z.number().int().describe('Catch up missed fire times at most this old (default 1 h)'),
    /** Inside the window: one run for all missed fire times, or one each. @default 'coalesce' */
    catchupMode: oneOfSchema(CATCHUP_MODES).describe('Default coalesce'),
    /** Deterministic offset in 0..jitterSeconds s, from the schedule id. @default 0 */
    jitterSeconds: z.number().int().describe('Deterministic offset 0..J s (default 0)'),
    /** Wall-clock limit for each run, in ms; null: the server's default. */
    timeoutMs: z.number().int().nullable(),
    /** Attempts per fire time, including the first. @default 1 */
    maxAttempts: z.number().int().describe('Attempts per fire time, 1-10 (default 1)'),
    /** Delay before the first retry, doubling each time. @default 30000 */
    retryBackoffMs: z.number().int().describe('First retry delay, doubling (default 30 s)'),
    /** A schedule whose expected run has not started this long after its fire time is flagged overdue. @default 300000 */
    overdueAfterMs: z.number().int().describe('Flag the schedule overdue after this (default 5 min)'),
  })
  .meta({ id: 'SchedulePolicies' });
export type SchedulePolicies = z.infer<typeof schedulePoliciesSchema>;

/**
 * A schedule (glossary "Schedule") as stored: the one definition its type, the API's bodies and the
 * OpenAPI document derive from.
 */
export const scheduleSchema = z.object({
  id: z.string(),
  workspaceId: z.string(),
  projectId: z.string(),
  name: z.string().describe('What the schedule is for, unique in the project'),
  cadence: cadenceSchema,
  timezone: z.string().describe('IANA zone, for example Europe/Berlin'),
  /** The inputs its runs use; the notebook's defaults fill the rest. */
  inputs: z.record(z.string(), inputValueSchema),
  policies: schedulePoliciesSchema,
  enabled: z.boolean(),
  /** A pause that ends by itself at this instant (null: until resumed, when `enabled` is false). */
  pausedUntil: z.date().nullable(),
  /** Why it is paused. */
  pauseNote: z.string().nullable(),
  /** The next fire time (the run's `scheduledFor`); null while disabled. */
  nextFireAt: z.date().nullable(),
  /** The next fire time plus the schedule's jitter: when a scheduler takes it. */
  nextDueAt: z.date().nullable(),
  createdBy: z.string().nullable(),
  createdAt: z.date(),
  updatedAt: z.date(),
});
export type Schedule = z.infer<typeof scheduleSchema>;

export const DEFAULT_POLICIES: Readonly<SchedulePolicies> = Object.freeze({
  overlap: 'skip',
  catchupWindowMs: 3_600_000,
  catchupMode: 'coalesce',
  jitterSeconds: 0,
  timeoutMs: null,
  maxAttempts: 1,
  retryBackoffMs: 30_000,
  overdueAfterMs: 300_000,
});

const TIME = /^([01]\d|2[0-3]):([0-5]\d)$/;

function parseTime(field: string, time: unknown): { hour: number; minute: number } {
  const match = typeof time === 'string' ? TIME.exec(time) : null;
  if (!match)
    throw new ValidationError(
      field,
      `must be a local time written HH:MM (00:00-23:59), not ${JSON.stringify(time)}`,
    );
  return { hour: Number(match[1]), minute: Number(match[2]) };
}

function wholeIn(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ValidationError(field, `must be a whole number ${min}-${max}, not ${JSON.stringify(value)}`);
  }
  return value;
}

/** The cron a cadence stands for, and any rule on the date that cron cannot say. */
export function cadenceSpec(cadence: Cadence): { cron: ParsedCron; accept?: (wall: Date) => boolean } {
  switch (cadence.kind) {
    case 'hourly':
      return { cron: parseCron(`${wholeIn('cadence.minute', cadence.minute, 0, 59)} * * * *`) };
    case 'daily': {
      const { hour, minute } = parseTime('cadence.time', cadence.time);
      return { cron: parseCron(`${minute} ${hour} * * *`) };
    }
    case 'weekly': {
      const { hour, minute } = parseTime('cadence.time', cadence.time);
      if (!Array.isArray(cadence.days) || cadence.days.length === 0) {
        throw new ValidationError('cadence.days', `must list at least one day: ${WEEKDAYS.join(', ')}`);
      }
      const days = cadence.days.map((d, i) => {
        const index = WEEKDAYS.indexOf(String(d).toLowerCase() as Weekday);
        if (index < 0)
          throw new ValidationError(`cadence.days.${i}`, `'${d}' is not a day; use ${WEEKDAYS.join(', ')}`);
        return index;
      });
      return { cron: parseCron(`${minute} ${hour} * * ${[...new Set(days)].sort().join(',')}`) };
    }
    case 'monthly': {
      const { hour, minute } = parseTime('cadence.time', cadence.time);
      const day = wholeIn('cadence.day', cadence.day, 1, 31);
      const shortMonths = cadence.shortMonths ?? 'last_day';
      if (shortMonths !== 'last_day' && shortMonths !== 'skip') {
        throw new ValidationError(
          'cadence.shortMonths',
          "must be 'last_day' (fire on the last day of shorter months) or 'skip'",
        );
      }
      if (day <= 28 || shortMonths === 'skip') return { cron: parseCron(`${minute} ${hour} ${day} * *`) };
      // Days 29-31 in shorter months: the last day of the month instead.
      return {
        cron: parseCron(`${minute} ${hour} 28-31 * *`),
        accept: (wall) => wall.getUTCDate() === Math.min(day, lastDayOfMonth(wall)),
      };
    }
    case 'cron':
      if (typeof cadence.expression !== 'string')
        throw new ValidationError('cadence.expression', 'must be a cron expression');
      try {
        return { cron: parseCron(cadence.expression) };
      } catch (error) {
        if (error instanceof ValidationError)
          throw new ValidationError('cadence.expression', error.message.replace(/^cron: /, ''));
        throw error;
      }
    default:
      throw new ValidationError(
        'cadence.kind',
        `must be hourly, daily, weekly, monthly or cron, not ${JSON.stringify((cadence as { kind?: unknown }).kind)}`,
      );
  }
}

function lastDayOfMonth(wall: Date): number {
  return new Date(Date.UTC(wall.getUTCFullYear(), wall.getUTCMonth() + 1, 0)).getUTCDate();
}

export function validateTimeZone(timeZone: unknown): string {
  if (typeof timeZone !== 'string' || !isTimeZone(timeZone)) {
    throw new ValidationError(
      'timezone',
      `'${String(timeZone)}' is not an IANA zone (for example Europe/Berlin, America/New_York, UTC)`,
    );
  }
  return timeZone;
}

export function fireSpec(cadence: Cadence, timeZone: string): FireSpec {
  const spec = cadenceSpec(cadence);
  return {
    cron: spec.cron,
    timeZone: validateTimeZone(timeZone),
    ...(spec.accept ? { accept: spec.accept } : {}),
  };
}

/** A one-line description: "daily at 09:00 Europe/Berlin". */
export function describeCadence(cadence: Cadence, timeZone: string): string {
  switch (cadence.kind) {
    case 'hourly':
      return `hourly at minute ${cadence.minute} (${timeZone})`;
    case 'daily':
      return `daily at ${cadence.time} ${timeZone}`;
    case 'weekly':
      return `weekly on ${cadence.days.join(', ')} at ${cadence.time} ${timeZone}`;
    case 'monthly':
      return `monthly on day ${cadence.day} at ${cadence.time} ${timeZone}${cadence.day > 28 ? ((cadence.shortMonths ?? 'last_day') === 'skip' ? ', skipping shorter months' : ', or the last day of shorter months') : ''}`;
    case 'cron':
      return `cron '${cadence.expression}' in ${timeZone}`;
  }
}

export function validatePolicies(input: Partial<SchedulePolicies>): SchedulePolicies {
  const p = { ...DEFAULT_POLICIES, ...input };
  if (!OVERLAP_POLICIES.includes(p.overlap)) {
    throw new ValidationError(
      'overlap',
      `must be one of ${OVERLAP_POLICIES.join(', ')}, not ${JSON.stringify(p.overlap)}`,
    );
  }
  if (!CATCHUP_MODES.includes(p.catchupMode)) {
    throw new ValidationError(
      'catchupMode',
      `must be one of ${CATCHUP_MODES.join(', ')}, not ${JSON.stringify(p.catchupMode)}`,
    );
  }
  wholeIn('catchupWindowMs', p.catchupWindowMs, 0, 366 * 86_400_000);
  wholeIn('jitterSeconds', p.jitterSeconds, 0, 3600);
  if (p.timeoutMs !== null) wholeIn('timeoutMs', p.timeoutMs, 100, 86_400_000);
  wholeIn('maxAttempts', p.maxAttempts, 1, 10);
  wholeIn('retryBackoffMs', p.retryBackoffMs, 0, 86_400_000);
  wholeIn('overdueAfterMs', p.overdueAfterMs, 1000, 7 * 86_400_000);
  return p;
}

/** The schedule's fixed offset in 0..jitterSeconds seconds (whole ms), the same on every node. */
export function jitterMs(scheduleId: string, jitterSeconds: number): number {
  if (jitterSeconds <= 0) return 0;
  const n = createHash('sha256').update(scheduleId).digest().readUInt32BE(0);
  return n % (jitterSeconds * 1000 + 1);
}

/** Delay before retry number `retry` (1 for the first retry): backoff, doubled each time, at most a day. */
export function retryDelayMs(backoffMs: number, retry: number): number {
  return Math.min(86_400_000, backoffMs * 2 ** (retry - 1));
}
