/**
 * Cron expressions: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first.
 * Validation names the field and its rule ("cron '61 * * * *': minute must be 0-59"); croner then does
 * the matching (ARCHITECTURE.md, decision 4). Matching runs on local wall time (see fire-times.ts).
 */
import { Cron } from 'croner';
import { ValidationError } from '../errors.ts';

interface FieldRule {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
  extra?: RegExp;
}

const SECOND: FieldRule = { name: 'second', min: 0, max: 59 };
const MINUTE: FieldRule = { name: 'minute', min: 0, max: 59 };
const HOUR: FieldRule = { name: 'hour', min: 0, max: 23 };
const DAY: FieldRule = { name: 'day of month', min: 1, max: 31, extra: /^(L|\?|\d{1,2}W|LW)$/i };
const MONTH: FieldRule = {
  name: 'month',
  min: 1,
  max: 12,
  names: ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'],
};
const WEEKDAY: FieldRule = {
  name: 'day of week',
  min: 0,
  max: 7,
  names: ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'],
  extra: /^(\?|[0-7]L|[0-7]#[1-5])$/i,
};

export interface ParsedCron {
  expression: string;
  /** Six fields: the first is seconds. */
  hasSeconds: boolean;
  /**
   * An interval cron repeats within every hour (its hour field is `*`): it keeps
   * real-time spacing through DST changes, firing in both copies of a repeated hour. Other crons name
   * wall-clock times, which fire once even when the clock shows them twice.
   */
  interval: boolean;
  /** The expression croner matches (always 6 fields). */
  pattern: string;
}

function fail(expression: string, message: string): never {
  throw new ValidationError('cron', `cron '${expression}': ${message}`);
}

function checkValue(expression: string, rule: FieldRule, raw: string): void {
  const upper = raw.toUpperCase();
  if (rule.names?.includes(upper)) return;
  if (!/^\d+$/.test(raw)) {
    fail(
      expression,
      `${rule.name} '${raw}' is not a number${rule.names ? ` or a name (${rule.names.join(', ')})` : ''}`,
    );
  }
  const n = Number(raw);
  if (n < rule.min || n > rule.max)
    fail(expression, `${rule.name} must be ${rule.min}-${rule.max}, not ${raw}`);
}

function checkField(expression: string, rule: FieldRule, field: string): void {
  for (const part of field.split(',')) {
    if (part === '') fail(expression, `${rule.name} has an empty list item`);
    if (rule.extra?.test(part)) continue;
    const [range, step, ...rest] = part.split('/');
    if (rest.length > 0) fail(expression, `${rule.name} '${part}' has more than one '/'`);
    if (step !== undefined && (!/^\d+$/.test(step) || Number(step) === 0)) {
      fail(expression, `${rule.name} step '/${step}' must be a whole number of at least 1`);
    }
    if (range === '*') continue;
    const bounds = range!.split('-');
    if (bounds.length > 2) fail(expression, `${rule.name} range '${range}' must be a-b`);
    for (const b of bounds) checkValue(expression, rule, b);
  }
}

export function parseCron(expression: string): ParsedCron {
  const trimmed = expression.trim();
  if (trimmed.startsWith('@')) {
    fail(
      trimmed,
      'nicknames like @daily are not supported; use a preset (hourly, daily, weekly, monthly) or 5-6 fields',
    );
  }
  const fields = trimmed.split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) {
    fail(
      trimmed,
      `has ${fields.length} field(s); write 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)`,
    );
  }
  const hasSeconds = fields.length === 6;
  const rules = hasSeconds
    ? [SECOND, MINUTE, HOUR, DAY, MONTH, WEEKDAY]
    : [MINUTE, HOUR, DAY, MONTH, WEEKDAY];
  for (const [i, field] of fields.entries()) checkField(trimmed, rules[i]!, field);
  const pattern = hasSeconds ? trimmed : `0 ${trimmed}`;
  let cron: Cron;
  try {
    cron = new Cron(pattern, { utcOffset: 0, paused: true });
  } catch (error) {
    fail(trimmed, (error as Error).message.replace(/^CronPattern: /, ''));
  }
  // A pattern such as "0 0 31 2 *" is valid syntax but never fires.
  if (!cron.nextRun(new Date(Date.UTC(2000, 0, 1)))) fail(trimmed, 'never fires (no date matches it)');
  const hourField = fields[hasSeconds ? 2 : 1]!;
  return { expression: trimmed, hasSeconds, interval: hourField === '*', pattern };
}
