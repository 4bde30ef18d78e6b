/**
 * Request and response shapes of the HTTP API. The same zod schemas validate requests and generate
 * the OpenAPI document at /api/openapi.json, so the two cannot drift apart. Field names are camelCase
 * and mean what the glossary (docs/glossary.md) says.
 *
 * Each glossary noun is defined once, in `src/domain/` (issue 15): the shapes here pick its fields,
 * turn its `Date`s into ISO 8601 strings (`jsonOf`), and add what only the API says (URLs, the current
 * version's number). Enum lists and defaults come from the domain too.
 */
import { z } from 'zod';
import { connectionUrlProblem } from '../domain/connection-url.ts';
import {
  INPUT_SUMMARY_CHARS,
  MAX_INPUT_VALUE_CHARS,
  MAX_INPUTS,
  MAX_NAME_LENGTH,
  MAX_NOTE_LENGTH,
  MAX_NOTEBOOK_BYTES,
  MAX_PROJECT_BYTES,
  MAX_PROJECT_FILES,
} from '../domain/limits.ts';
import { INPUT_TYPES } from '../domain/notebook/notebook.ts';
import { DELIVERY_CHANNELS, DELIVERY_STATUSES } from '../domain/notification/delivery.ts';
import { integrationsChangeSchema, integrationsViewSchema } from '../domain/notification/integrations.ts';
import {
  destinationSchema,
  notificationContentSchema,
  notificationRuleSpecSchema,
  notifyTriggerSchema,
} from '../domain/notification/rule.ts';
import {
  appSettingsSchema,
  PROJECT_VISIBILITIES,
  projectSchema,
  versionListingSchema,
  versionSchema,
} from '../domain/project.ts';
import {
  inputValueSchema,
  MAX_BULK_RUNS,
  RUN_STATUSES,
  RUN_TRIGGERS,
  runCellProgressSchema,
  runSchema,
} from '../domain/run.ts';
import { cadenceSchema, schedulePoliciesSchema, scheduleSchema } from '../domain/schedule/schedule.ts';
import { connectionSchema, userSchema, workspaceSettingsSchema } from '../domain/workspace.ts';

// Every request body and query is strict (`z.strictObject`): an unknown field is a 400 naming it, never
// silently ignored (issue 14: `{"context": "logic"}` on POST /runs was accepted and did nothing).
// Sizes (input values, notebooks, files) are checked by the domain with a 413 naming the limit; lengths
// (names, notes) here with a 400 naming the field (limits in src/domain/limits.ts).

/** A `Date` field as JSON: an ISO 8601 instant, keeping the field's description. */
type JsonField<F> = F extends z.ZodDate
  ? z.ZodString
  : F extends z.ZodNullable<z.ZodDate>
    ? z.ZodNullable<z.ZodString>
    : F;

function jsonField(field: z.ZodType): z.ZodType {
  const inner = field instanceof z.ZodNullable ? (field.unwrap() as z.ZodType) : field;
  if (!(inner instanceof z.ZodDate)) return field;
  const text = inner === field ? z.string() : z.string().nullable();
  const description = field.description ?? inner.description;
  return description ? text.describe(description) : text;
}

/** A domain object schema as the API writes it: the same fields, `Date`s as ISO 8601 strings. */
export function jsonOf<S extends z.ZodRawShape>(
  schema: z.ZodObject<S>,
): z.ZodObject<{ -readonly [K in keyof S]: JsonField<S[K]> }> {
  const shape: Record<string, z.ZodType> = {};
  for (const [key, field] of Object.entries(schema.shape)) shape[key] = jsonField(field as z.ZodType);
  return z.object(shape) as never;
}

/** Input values of a request: sizes are checked by the domain (413 naming the input and the limit). */
const inputValues = z
  .record(z.string(), inputValueSchema)
  .describe(
    `Input values by name; defaults fill the rest. At most ${MAX_INPUTS} values of ${MAX_INPUT_VALUE_CHARS.toLocaleString('en-US')} characters each (413 beyond)`,
  );

/** A name (schedule, token, connection): 1 to MAX_NAME_LENGTH characters. */
const name = (description: string) =>
  z
    .string()
    .min(1, 'must not be empty')
    .max(MAX_NAME_LENGTH, `must be at most ${MAX_NAME_LENGTH} characters (MAX_NAME_LENGTH)`)
    .describe(description);

export const ProjectParams = z.object({ project: z.string().describe('Project id or slug') });
export const RunParams = z.object({ run: z.string().describe('Run id') });
export const VersionParams = z.object({
  project: z.string().describe('Project id or slug'),
  version: z.string().describe('Version id or number'),
});

export const Project = jsonOf(
  projectSchema.pick({
    id: true,
    slug: true,
    title: true,
    draftUpdatedAt: true,
    createdAt: true,
    visibility: true,
  }),
)
  .extend({
    latestVersion: z
      .number()
      .int()
      .nullable()
      .describe('Number of the current version (kept for older clients; same as currentVersion)'),
    currentVersion: z
      .number()
      .int()
      .nullable()
      .describe(
        'Number of the current version: the one schedules run and the app shows (after a rollback, not the newest)',
      ),
    appUrl: z.string(),
  })
  .meta({ id: 'Project' });

export const ProjectWithDraft = Project.extend({ draftSource: projectSchema.shape.draftSource }).meta({
  id: 'ProjectWithDraft',
});

export const VisibilityBody = z.strictObject({
  visibility: z.enum(PROJECT_VISIBILITIES, { error: `must be ${PROJECT_VISIBILITIES.join(' or ')}` }),
});

const notebookSource = (description: string) =>
  z
    .string()
    .min(1)
    .describe(`${description} (at most ${MAX_NOTEBOOK_BYTES / 1024 / 1024} MiB; 413 beyond)`);

export const CreateProjectBody = z.strictObject({
  source: notebookSource('The notebook: Markdown with SQL/JS/TS cells'),
  slug: z
    .string()
    .max(63, 'must be at most 63 characters')
    .optional()
    .describe('URL name; derived from the title when omitted'),
});

export const UpdateDraftBody = z.strictObject({ source: notebookSource('The new draft notebook') });

export const PublishBody = z.strictObject({
  message: z
    .string()
    .max(2000)
    .optional()
    .describe('What changed, shown in the versions list (at most 2,000 characters)'),
  files: z
    .record(z.string(), z.string())
    .optional()
    .describe(
      `Project files (data, modules) by relative path, base64-encoded. Omit to keep the latest version's files. At most ${MAX_PROJECT_FILES} files and ${MAX_PROJECT_BYTES / 1024 / 1024} MiB (413 beyond); names are checked (400 naming the file)`,
    ),
});

export const Version = jsonOf(
  versionSchema.pick({ id: true, number: true, contentHash: true, createdAt: true }),
)
  .extend({
    message: versionSchema.shape.message.unwrap().describe(versionSchema.shape.message.description ?? ''),
  })
  .meta({ id: 'Version' });

export const VersionListing = Version.extend({
  createdBy: versionListingSchema.shape.createdBy,
  publishedBy: versionListingSchema.shape.publishedBy,
  publishRun: z
    .object({ id: z.string(), status: z.string().nullable() })
    .nullable()
    .describe("The version's newest publish run"),
  current: versionListingSchema.shape.current,
}).meta({ id: 'VersionListing' });

export const VersionWithSource = Version.extend({
  source: versionSchema.shape.source,
  files: z.array(z.string()),
});

export const RunCell = jsonOf(runCellProgressSchema);

export const Run = jsonOf(
  runSchema.pick({
    id: true,
    versionId: true,
    trigger: true,
    context: true,
    status: true,
    private: true,
    inputs: true,
    createdBy: true,
    createdAt: true,
    scheduledFor: true,
    startedAt: true,
    finishedAt: true,
    attempts: true,
    maxAttempts: true,
    worker: true,
    reason: true,
    scheduleId: true,
    jitterMs: true,
    retryOf: true,
    retryNumber: true,
  }),
)
  .extend({
    project: z.string().describe('Project id'),
    inputs: runSchema.shape.inputs.describe(
      `In lists (GET /api/runs) each text value is cut to ${INPUT_SUMMARY_CHARS} characters followed by '… (N characters)'; GET /api/runs/{run} has them whole`,
    ),
    error: z.object({ cell: z.string().nullable(), message: z.string() }).nullable(),
    latenessMs: z
      .number()
      .nullable()
      .describe('Scheduled runs: from the fire time (plus jitter) to the claim by a worker'),
  })
  .meta({ id: 'Run' });

export const RunWithCells = Run.extend({
  projectSlug: z.string(),
  versionNumber: z.number().int(),
  cells: z.array(RunCell),
}).meta({ id: 'RunWithCells' });

export const PublishResult = z.object({
  version: Version,
  created: z.boolean().describe('False when this content was already published (no new version)'),
  reused: z.boolean().describe('True when the content matched an existing version, which was reused'),
  madeCurrent: z
    .boolean()
    .describe(
      'True when the version became current (a new one, or a rollback by re-publishing older content)',
    ),
  defaultRunId: z
    .string()
    .nullable()
    .describe("A reused version's last good run, now the app's default state"),
  run: Run.nullable().describe('The publish run, when one was queued'),
});

export const MakeCurrentResult = z.object({
  version: Version,
  madeCurrent: z.boolean().describe('False when it was current already'),
  defaultRunId: z.string().nullable().describe("The version's last good run, now the app's default state"),
  run: Run.nullable().describe('A publish run, queued because the version had no good run'),
});

export const CreateRunBody = z.strictObject({
  inputs: inputValues.optional(),
  version: z.string().optional().describe('Version id or number; the latest by default'),
  private: z
    .boolean()
    .optional()
    .describe(
      "A viewer's own re-run in context app: never the default state, visible only to you, kept for an hour",
    ),
  notifications: z
    .array(notificationRuleSpecSchema)
    .optional()
    .describe(
      'Notification rules for this run only, shaped as NotificationRule bodies (see /api/projects/{project}/notification-rules)',
    ),
});

export const CreateRunsBody = z.strictObject({
  runs: z
    .array(z.strictObject({ inputs: inputValues.optional() }))
    .min(1)
    .max(MAX_BULK_RUNS)
    .describe(
      `One entry per run to queue (at most ${MAX_BULK_RUNS.toLocaleString('en-US')}); all or none are queued`,
    ),
  version: z.string().optional().describe('Version id or number; the latest by default'),
  notifications: z
    .array(notificationRuleSpecSchema)
    .optional()
    .describe('Notification rules for each of these runs, shaped as NotificationRule bodies'),
});

export const ListRunsQuery = z.strictObject({
  project: z.string().optional(),
  schedule: z.string().optional().describe('Only runs of this schedule'),
  status: z
    .string()
    .optional()
    .describe(`One of ${RUN_STATUSES.join(', ')}`),
  trigger: z
    .string()
    .optional()
    .describe(`One of ${RUN_TRIGGERS.join(', ')}`),
  limit: z.coerce.number().optional().describe('Page size, 1-200 (default 50)'),
  cursor: z.string().optional().describe('nextCursor from the previous page'),
});

export const RunPage = z.object({ runs: z.array(Run), nextCursor: z.string().nullable() });

export const AppSettings = appSettingsSchema.omit({ projectId: true }).meta({ id: 'AppSettings' });

export const UpdateAppSettingsBody = appSettingsSchema
  .pick({ showLastRun: true, keepRuns: true, keepDays: true })
  .partial()
  .strict();

export const AppManifest = z
  .object({
    project: z.string(),
    title: z.string(),
    description: z.string(),
    version: z.number().int().nullable(),
    inputs: z.array(
      z.object({
        name: z.string(),
        type: z.enum(INPUT_TYPES),
        label: z.string(),
        default: inputValueSchema,
        options: z.array(z.union([z.string(), z.number()])).optional(),
        min: z.number().optional(),
        max: z.number().optional(),
        description: z.string().optional(),
      }),
    ),
    hideCode: z.boolean(),
    showLastRun: z.boolean(),
    defaultRunId: z.string().nullable(),
  })
  .meta({ id: 'AppManifest' });

export const AppOpenStarted = z.object({
  kind: z.literal('run'),
  run: Run,
});

export const Connection = jsonOf(
  connectionSchema.pick({ id: true, name: true, kind: true, createdAt: true }),
).meta({ id: 'Connection' });

export const CreateConnectionBody = z.strictObject({
  name: name(connectionSchema.shape.name.description!),
  url: z
    .string()
    .describe('postgres://user:password@host:port/database (encrypted at rest)')
    .superRefine((url, check) => {
      const problem = connectionUrlProblem(url);
      if (problem) check.addIssue({ code: 'custom', message: problem });
    }),
});

export const WorkspaceSettings = workspaceSettingsSchema;
export const UpdateWorkspaceSettingsBody = WorkspaceSettings.partial().strict();

export const CreateTokenBody = z.strictObject({ name: name('What the token is for') });
export const TokenCreated = z.object({ token: z.string().describe('Shown once; store it now') });

/** The caller: a user of the workspace, with their role in it. */
export const Me = z.object({
  userId: userSchema.shape.id,
  workspaceId: userSchema.shape.workspaceId,
  name: userSchema.shape.name,
  role: userSchema.shape.role,
  workspaceName: z.string().describe("The workspace's name, as the top bar shows it"),
  notifyVia: z
    .enum(['email', 'slack', 'both'])
    .describe('How notifications that leave it to the user reach them (PUT /api/me/notify-via)'),
});

export const Health = z.object({ ok: z.literal(true), version: z.string() });

// ---- schedules ----

/** A cadence, as the domain defines it (src/domain/schedule/schedule.ts). */
export const Cadence = cadenceSchema;

/** Policies in a request: each optional, the domain's default when omitted. */
export const Policies = schedulePoliciesSchema.partial().strict().meta({ id: 'SchedulePoliciesInput' });

export const ScheduleParams = z.object({ schedule: z.string().describe('Schedule id') });

export const CreateScheduleBody = z
  .object({
    name: name(scheduleSchema.shape.name.description!),
    cadence: Cadence,
    timezone: scheduleSchema.shape.timezone.max(100),
    inputs: inputValues.optional(),
    enabled: z.boolean().optional(),
    policies: Policies.optional(),
  })
  .strict();

export const UpdateScheduleBody = CreateScheduleBody.partial().strict();

export const PauseBody = z
  .object({
    until: z.string().optional().describe('ISO instant: resume by itself then'),
    note: z
      .string()
      .max(MAX_NOTE_LENGTH, `must be at most ${MAX_NOTE_LENGTH} characters (MAX_NOTE_LENGTH)`)
      .optional()
      .describe('Why it is paused'),
  })
  .strict();

export const BackfillBody = z
  .object({
    from: z.string().describe('ISO instant (exclusive)'),
    to: z.string().describe('ISO instant (inclusive)'),
  })
  .strict();

export const PreviewBody = z
  .object({
    cadence: Cadence,
    timezone: z.string(),
    count: z.number().int().optional().describe('How many, 1-500 (default 10)'),
    from: z.string().optional().describe('ISO instant; default now'),
  })
  .strict();

export const PreviewQuery = z.strictObject({
  count: z.coerce.number().optional(),
  from: z.string().optional(),
});

export const PreviewEntry = z.object({
  at: z.string().describe('UTC'),
  local: z.string().describe('Local date, time and UTC offset'),
  offset: z.string(),
  dst: z
    .enum(['gap', 'repeat'])
    .nullable()
    .describe('gap: moved past a DST gap; repeat: the local time occurs twice'),
});

export const Schedule = jsonOf(
  scheduleSchema.pick({
    id: true,
    name: true,
    cadence: true,
    timezone: true,
    inputs: true,
    policies: true,
    enabled: true,
    pausedUntil: true,
    pauseNote: true,
    nextFireAt: true,
    createdAt: true,
  }),
)
  .extend({
    project: z.string().describe('Project id'),
    description: z.string().describe('The cadence in words: "daily at 09:00 Europe/Berlin"'),
  })
  .meta({ id: 'Schedule' });

export const ScheduleWithHealth = Schedule.extend({
  health: z.object({
    lastRun: Run.nullable(),
    nextFireAt: z.string().nullable(),
    skipped: z.number().int(),
    missed: z.number().int(),
    overdue: z.boolean(),
    overdueReason: z.string().nullable(),
  }),
});

// ---- notifications ----

/** A rule in a request: the domain's rule, and the schedule it belongs to. */
export const RuleBody = notificationRuleSpecSchema
  .extend({
    scheduleId: z
      .string()
      .nullable()
      .optional()
      .describe('The schedule it belongs to; omitted or null: every scheduled run of the project'),
  })
  .strict();

export const Rule = z
  .object({
    id: z.string(),
    projectId: z.string(),
    scheduleId: z.string().nullable(),
    name: z.string(),
    trigger: notifyTriggerSchema,
    destinations: z.array(destinationSchema),
    content: notificationContentSchema,
    enabled: z.boolean(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'NotificationRule' });

export const Delivery = z
  .object({
    id: z.string(),
    runId: z.string(),
    rule: z.string().describe("The rule's name when the delivery was made"),
    channel: z.enum(DELIVERY_CHANNELS),
    destination: z.string(),
    status: z.enum(DELIVERY_STATUSES),
    attempts: z.number().int(),
    maxAttempts: z.number().int(),
    nextAttemptAt: z.string().nullable().describe('When it is pending: its next attempt'),
    error: z.string().nullable(),
    note: z.string().nullable(),
    because: z.string().describe('Why the rule fired, in words'),
    createdAt: z.string(),
    sentAt: z.string().nullable(),
  })
  .meta({ id: 'Delivery' });

export const Integrations = integrationsViewSchema.meta({ id: 'Integrations' });

export const IntegrationsBody = integrationsChangeSchema;
