/**
 * A notification rule (glossary "Notification rule"): when to notify, whom, and with what. Pure:
 * validation with messages that name the field and the rule, and the decision whether a finished run
 * triggers the rule, given the runs of the same schedule before it.
 */
import { z } from 'zod';
import { assertExhaustive, ValidationError } from '../errors.ts';
import { MAX_INPUT_VALUE_CHARS, MAX_NAME_LENGTH, MAX_URL_LENGTH } from '../limits.ts';
import type { RunStatus } from '../run.ts';
import { kindError, oneOfSchema, validationErrorOf } from '../schema-errors.ts';
import { decodeValue, type RunSnapshot } from '../snapshot.ts';

export const COMPARISONS = ['gt', 'gte', 'lt', 'lte', 'eq', 'ne'] as const;
export type Comparison = (typeof COMPARISONS)[number];
export const CONDITION_MEASURES = ['value', 'row_count'] as const;

// The schemas below are the one definition of a rule's shape (issue 15): the types, the API's request
// and response bodies and the OpenAPI document derive from them. Their output is the stored form, with
// defaults filled in. `validateRule` checks what a shape cannot say (ranges, URLs, screenshots), with
// messages that name the field.

/**
 * A test on a named cell's output after a successful run: its value (a number, string or boolean) or,
 * for a table, its row count, compared with `value`. `changedOnly`: send only when the measured result
 * differs from the one the last successful run produced.
 */
export const conditionSchema = z
  .strictObject({
    cell: z
      .string({ error: 'must name a cell of the notebook' })
      .describe('The name of a cell of the notebook'),
    measure: oneOfSchema(CONDITION_MEASURES)
      .default('value')
      .describe("value: the cell's value (a one-row, one-column table counts); row_count: a table's rows"),
    op: oneOfSchema(COMPARISONS).describe('gt, gte, lt and lte compare numbers; eq and ne any value'),
    value: z.union([z.number(), z.string(), z.boolean()], {
      error: 'must be a number, a string or a boolean',
    }),
    changedOnly: z
      .boolean({ error: 'must be true or false' })
      .default(false)
      .describe("Send only when the result differs from the last successful run's"),
  })
  .meta({ id: 'NotifyCondition' });
export type Condition = z.infer<typeof conditionSchema>;

export const TRIGGER_KINDS = [
  'success',
  'failure',
  'all',
  'recovery',
  'failure_streak',
  'condition',
] as const;

/** When a rule notifies. */
export const notifyTriggerSchema = z
  .discriminatedUnion(
    'kind',
    [
      z.strictObject({ kind: z.literal('success') }),
      z.strictObject({ kind: z.literal('failure') }),
      z.strictObject({ kind: z.literal('all') }),
      /** The first success after one or more failures. */
      z.strictObject({ kind: z.literal('recovery') }),
      /** Once when `count` failures in a row have happened, then once more at the recovery. */
      z.strictObject({
        kind: z.literal('failure_streak'),
        count: z
          .number({ error: 'must be a whole number of failures in a row, 1-1000' })
          .int({ error: 'must be a whole number of failures in a row, 1-1000' })
          .describe('Failures in a row, 1-1000'),
      }),
      z.strictObject({ kind: z.literal('condition'), condition: conditionSchema }),
    ],
    { error: kindError },
  )
  .describe(
    'success, failure, all (both), recovery (the first success after failures), failure_streak (after count failures in a row, and at the recovery), or condition (on a cell of a successful run)',
  )
  .meta({ id: 'NotifyTrigger' });
export type NotifyTrigger = z.infer<typeof notifyTriggerSchema>;

/** How a rule reaches a user: `preference` follows each user's own choice (email by default). */
export const NOTIFY_VIAS = ['preference', 'email', 'slack', 'both'] as const;
export type NotifyVia = (typeof NOTIFY_VIAS)[number];
const required = z.string({ error: 'is required' });
const via = oneOfSchema(NOTIFY_VIAS).optional().describe("preference (default): the user's own choice");

export const DESTINATION_KINDS = ['user', 'group', 'slack_channel', 'webhook'] as const;

/** Whom a rule notifies. */
export const destinationSchema = z
  .discriminatedUnion(
    'kind',
    [
      z.strictObject({ kind: z.literal('user'), userId: required, via }),
      z.strictObject({ kind: z.literal('group'), groupId: required, via }),
      z.strictObject({
        kind: z.literal('slack_channel'),
        channel: required.describe('A channel name (with or without #) or id; the bot must be in it'),
      }),
      z.strictObject({
        kind: z.literal('webhook'),
        url: required.describe('An http(s) URL without credentials; requests are signed'),
      }),
    ],
    { error: kindError },
  )
  .meta({ id: 'NotifyDestination' });
export type Destination = z.infer<typeof destinationSchema>;

/** What a rule sends. */
export const notificationContentSchema = z
  .strictObject({
    /** A template (see `renderTemplate`); the default names the app, the status and the fire time. */
    subject: z
      .string({ error: 'must be text of at most 500 characters' })
      .nullable()
      .default(null)
      .describe('A template; at most 500 characters'),
    body: z
      .string({ error: 'must be text of at most 20000 characters' })
      .nullable()
      .default(null)
      .describe('A template; at most 20,000 characters'),
    /** A picture of the run's app page, for successful runs. */
    screenshot: z
      .enum(['png', 'pdf'], {
        error: (issue) => `must be png, pdf or null (got ${JSON.stringify(issue.input)})`,
      })
      .nullable()
      .default(null)
      .describe("A picture of the run's app page (successful runs; not to webhooks)"),
    /** Table cells attached as CSV files. */
    csvCells: z
      .array(z.string({ error: 'must be a list of cell names' }), { error: 'must be a list of cell names' })
      .default([])
      .describe('Table cells attached as CSV files'),
  })
  .meta({ id: 'NotificationContent' });
export type NotificationContent = z.infer<typeof notificationContentSchema>;

/** A rule as sent by the API or CLI, and (its output) as stored. */
export const notificationRuleSpecSchema = z.strictObject({
  name: z
    .string({ error: `must be 1-${MAX_NAME_LENGTH} characters (MAX_NAME_LENGTH)` })
    .default('notification')
    .describe(`1-${MAX_NAME_LENGTH} characters`),
  trigger: notifyTriggerSchema.default({ kind: 'failure' }),
  destinations: z
    .array(destinationSchema, {
      error: 'has no recipients: add at least one user, group, Slack channel or webhook',
    })
    .describe('At least one, at most 100'),
  content: notificationContentSchema.default({ subject: null, body: null, screenshot: null, csvCells: [] }),
  enabled: z.boolean({ error: 'must be true or false' }).default(true),
});
export type NotificationRuleSpec = z.infer<typeof notificationRuleSpecSchema>;

/** A stored rule: a spec that belongs to a project, and to one of its schedules or all of them. */
export const notificationRuleSchema = z.object({
  id: z.string(),
  workspaceId: z.string(),
  projectId: z.string(),
  /** Null for a project-wide rule (every scheduled run of the project). */
  scheduleId: z.string().nullable(),
  spec: notificationRuleSpecSchema,
  /** What the rule's condition measured on the last successful run (for `changedOnly`). */
  lastMeasured: z.union([z.number(), z.string(), z.boolean()]).nullable(),
  createdBy: z.string().nullable(),
  createdAt: z.date(),
  updatedAt: z.date(),
});
export type NotificationRule = z.infer<typeof notificationRuleSchema>;

export const DEFAULT_CONTENT: Readonly<NotificationContent> = Object.freeze({
  subject: null,
  body: null,
  screenshot: null,
  csvCells: [],
});

/** The name of the rule every new schedule starts with (issue 15, bug 6). */
export const OWNERS_ON_FAILURE_RULE_NAME = 'project owners on failure';

/**
 * The rule every new schedule starts with, as Hex pre-fills it: the project's owners (its creator, or
 * the workspace admins when it has none) hear about failures. It is an ordinary rule: listed with the
 * schedule's rules, editable and removable. (It was an implicit default that lapsed as soon as the
 * schedule had any rule, even a success-only one.)
 */
export function ownersOnFailureRule(ownerIds: readonly string[]): NotificationRuleSpec {
  return {
    name: OWNERS_ON_FAILURE_RULE_NAME,
    trigger: { kind: 'failure' },
    destinations: ownerIds.map((userId) => ({ kind: 'user', userId, via: 'preference' })),
    content: { ...DEFAULT_CONTENT, csvCells: [] },
    enabled: true,
  };
}

/**
 * Refuses a screenshot that could never be sent (issue 15, bug 7). Pictures are taken of successful
 * runs only (a failed run's app page holds no outputs worth showing), so a rule that fires only on
 * failure would never carry one; and webhooks carry JSON, never files.
 */
function checkScreenshot(
  spec: Pick<NotificationRuleSpec, 'trigger' | 'destinations' | 'content'>,
  field: string,
) {
  if (spec.content.screenshot === null) return;
  if (spec.trigger.kind === 'failure') {
    throw new ValidationError(
      `${field}.content.screenshot`,
      'a rule that fires only on failure never sends a picture (screenshots are of successful runs); remove the screenshot or notify on success, all or recovery',
    );
  }
  const hook = spec.destinations.findIndex((d) => d.kind === 'webhook');
  if (hook >= 0) {
    throw new ValidationError(
      `${field}.content.screenshot`,
      `webhooks carry JSON, not pictures (destinations[${hook}] is a webhook); remove the screenshot, or put the webhook in a rule of its own`,
    );
  }
}

const FAILURES: readonly RunStatus[] = ['failed', 'timed_out'];
export function isFailure(status: RunStatus): boolean {
  return FAILURES.includes(status);
}

function checkTrigger(trigger: NotifyTrigger, field: string): void {
  if (trigger.kind === 'failure_streak' && (trigger.count < 1 || trigger.count > 1000)) {
    throw new ValidationError(`${field}.count`, 'must be a whole number of failures in a row, 1-1000');
  }
  if (trigger.kind !== 'condition') return;
  const { cell, measure, op, value } = trigger.condition;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(cell)) {
    throw new ValidationError(`${field}.condition.cell`, 'must name a cell of the notebook');
  }
  if (typeof value === 'string' && value.length > MAX_INPUT_VALUE_CHARS) {
    throw new ValidationError(
      `${field}.condition.value`,
      `must be at most ${MAX_INPUT_VALUE_CHARS} characters (MAX_INPUT_VALUE_CHARS)`,
    );
  }
  if (measure === 'row_count' && typeof value !== 'number') {
    throw new ValidationError(`${field}.condition.value`, 'must be a number to compare a row count with');
  }
  if (typeof value !== 'number' && !['eq', 'ne'].includes(op)) {
    throw new ValidationError(
      `${field}.condition.op`,
      `'${op}' compares numbers; use eq or ne for ${typeof value}s`,
    );
  }
}

/** A destination with its defaults filled in and its address normalized (`#ops` → `ops`). */
function checkDestination(d: Destination, field: string): Destination {
  const id = (key: string, value: string) => {
    if (value.length === 0) throw new ValidationError(`${field}.${key}`, 'is required');
    return value;
  };
  switch (d.kind) {
    case 'user':
      return { kind: d.kind, userId: id('userId', d.userId), via: d.via ?? 'preference' };
    case 'group':
      return { kind: d.kind, groupId: id('groupId', d.groupId), via: d.via ?? 'preference' };
    case 'slack_channel': {
      const channel = id('channel', d.channel).replace(/^#/, '');
      if (!/^[A-Za-z0-9][\w.-]{0,79}$/.test(channel)) {
        throw new ValidationError(`${field}.channel`, `'${channel}' is not a Slack channel name or id`);
      }
      return { kind: d.kind, channel };
    }
    case 'webhook': {
      const url = id('url', d.url);
      if (url.length > MAX_URL_LENGTH) {
        throw new ValidationError(
          `${field}.url`,
          `must be at most ${MAX_URL_LENGTH} characters (MAX_URL_LENGTH)`,
        );
      }
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        throw new ValidationError(`${field}.url`, `'${url.slice(0, 100)}' is not a URL`);
      }
      if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
        throw new ValidationError(`${field}.url`, 'must be an http or https URL');
      }
      if (parsed.username || parsed.password) {
        throw new ValidationError(
          `${field}.url`,
          'must not carry credentials; the request is signed instead',
        );
      }
      return { kind: d.kind, url: parsed.toString() };
    }
    default:
      return assertExhaustive(d, 'destination');
  }
}

/**
 * Validates a rule as sent by the API or CLI: its shape by `notificationRuleSpecSchema` (the same
 * schema the API's bodies use; an unknown key is refused, naming it, rather than silently ignored: a
 * misspelt `changedOnly` would change what the rule does), then what a shape cannot say. The store and
 * the services check what names refer to.
 */
export function validateRule(input: unknown, field = 'rule'): NotificationRuleSpec {
  // A rule's schedule travels next to it in some bodies; it is not part of the rule itself.
  const isObject = typeof input === 'object' && input !== null && !Array.isArray(input);
  const { scheduleId: _, ...rule } = isObject ? (input as Record<string, unknown>) : {};
  const parsed = notificationRuleSpecSchema.safeParse(isObject ? rule : input);
  if (!parsed.success) throw validationErrorOf(parsed.error.issues[0]!, { prefix: field });
  const r = parsed.data;
  const name = r.name.trim();
  if (name.length === 0 || r.name.length > MAX_NAME_LENGTH) {
    throw new ValidationError(`${field}.name`, `must be 1-${MAX_NAME_LENGTH} characters (MAX_NAME_LENGTH)`);
  }
  checkTrigger(r.trigger, `${field}.trigger`);
  if (r.destinations.length === 0) {
    throw new ValidationError(
      `${field}.destinations`,
      'has no recipients: add at least one user, group, Slack channel or webhook',
    );
  }
  if (r.destinations.length > 100) throw new ValidationError(`${field}.destinations`, 'at most 100 per rule');
  const destinations = r.destinations.map((d, i) => checkDestination(d, `${field}.destinations[${i}]`));
  const text = (key: 'subject' | 'body', max: number) => {
    const value = r.content[key];
    if (value !== null && value.length > max) {
      throw new ValidationError(`${field}.content.${key}`, `must be text of at most ${max} characters`);
    }
    return value;
  };
  const csv = r.content.csvCells;
  if (csv.length > 100 || csv.some((x) => x.length > 200)) {
    throw new ValidationError(`${field}.content.csvCells`, 'must be a list of cell names');
  }
  const spec: NotificationRuleSpec = {
    name,
    trigger: r.trigger,
    destinations,
    content: {
      subject: text('subject', 500),
      body: text('body', 20_000),
      screenshot: r.content.screenshot,
      csvCells: [...new Set(csv)],
    },
    enabled: r.enabled,
  };
  checkScreenshot(spec, field);
  return spec;
}

/** What a condition measured: the cell's value or row count, or why it could not. */
export type Measured = { ok: true; value: number | string | boolean } | { ok: false; why: string };

export function measure(snapshot: RunSnapshot, condition: Condition): Measured {
  const cell = snapshot.cells.find((c) => c.name === condition.cell);
  if (!cell) return { ok: false, why: `the notebook has no cell '${condition.cell}'` };
  const output = cell.output;
  if (condition.measure === 'row_count') {
    if (output?.kind !== 'table') return { ok: false, why: `cell '${condition.cell}' is not a table` };
    return { ok: true, value: output.totalRows };
  }
  if (output?.kind === 'table') {
    // A one-row, one-column table (a SQL `select count(*)`) measures as its single value.
    if (output.rows.length === 1 && output.rows[0]!.length === 1) {
      const v = output.rows[0]![0];
      const n = typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
      if (typeof n === 'number' || typeof n === 'string' || typeof n === 'boolean')
        return { ok: true, value: n };
    }
    return {
      ok: false,
      why: `cell '${condition.cell}' is a table; measure its row_count, or return one value`,
    };
  }
  if (output?.kind !== 'value') return { ok: false, why: `cell '${condition.cell}' has no value` };
  const value = decodeValue(output.value);
  if (typeof value === 'bigint') return { ok: true, value: Number(value) };
  if (typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean')
    return { ok: true, value };
  return { ok: false, why: `cell '${condition.cell}' is not a number, string or boolean` };
}

export function compare(
  actual: number | string | boolean,
  op: Comparison,
  expected: number | string | boolean,
): boolean {
  if (op === 'eq') return actual === expected;
  if (op === 'ne') return actual !== expected;
  if (typeof actual !== 'number' || typeof expected !== 'number') return false;
  switch (op) {
    case 'gt':
      return actual > expected;
    case 'gte':
      return actual >= expected;
    case 'lt':
      return actual < expected;
    case 'lte':
      return actual <= expected;
  }
}

/** The decision and, for conditions, what was measured (stored, so "changed" can compare next time). */
export interface Decision {
  notify: boolean;
  /** Why, in words, for the delivery log. */
  because: string;
  measured?: number | string | boolean;
}

/**
 * Whether a finished run triggers a rule. `previous` lists the statuses of the same schedule's (or
 * project's) earlier finished runs, newest first, without skipped entries; `lastMeasured` is what the
 * condition measured on the last successful run (undefined when none did).
 */
export function decide(
  trigger: NotifyTrigger,
  status: RunStatus,
  snapshot: RunSnapshot | null,
  previous: readonly RunStatus[],
  lastMeasured?: number | string | boolean,
): Decision {
  const failed = isFailure(status);
  const succeeded = status === 'succeeded';
  // Failures in a row before this run.
  let streak = 0;
  for (const s of previous) {
    if (!isFailure(s)) break;
    streak++;
  }
  switch (trigger.kind) {
    case 'success':
      return { notify: succeeded, because: 'the run succeeded' };
    case 'failure':
      return { notify: failed, because: `the run ${status.replace('_', ' ')}` };
    case 'all':
      return { notify: succeeded || failed, because: `the run ${status.replace('_', ' ')}` };
    case 'recovery':
      return { notify: succeeded && streak > 0, because: `the run succeeded after ${streak} failure(s)` };
    case 'failure_streak':
      if (failed) {
        return {
          notify: streak + 1 === trigger.count,
          because: `${streak + 1} failure(s) in a row (the rule notifies at ${trigger.count})`,
        };
      }
      return {
        notify: succeeded && streak >= trigger.count,
        because: `the run recovered after ${streak} failures in a row`,
      };
    case 'condition': {
      if (!succeeded || !snapshot)
        return { notify: false, because: 'conditions are checked on successful runs' };
      const m = measure(snapshot, trigger.condition);
      if (!m.ok) return { notify: false, because: m.why };
      const { op, value, changedOnly, cell } = trigger.condition;
      const holds = compare(m.value, op, value);
      const shown = `${cell} = ${JSON.stringify(m.value)} (${op} ${JSON.stringify(value)})`;
      if (!holds) return { notify: false, because: `${shown} does not hold`, measured: m.value };
      if (changedOnly && lastMeasured !== undefined && lastMeasured === m.value) {
        return {
          notify: false,
          because: `${shown} holds, but the result has not changed`,
          measured: m.value,
        };
      }
      return { notify: true, because: `${shown} holds`, measured: m.value };
    }
  }
}
