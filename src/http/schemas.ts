/**
 * Request and response shapes of the HTTP API. The same zod schemas validate requests and generate
 * the OpenAPI document at /api/openapi.json, so the two cannot drift apart. Field names are camelCase
 * and mean what the glossary (docs/glossary.md) says.
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
import { MAX_BULK_RUNS, RUN_STATUSES, RUN_TRIGGERS } from '../domain/run.ts';
import { RUN_CONTEXTS } from '../domain/run-context.ts';

// Every request body and query is strict (`z.strictObject`): an unknown field is a 400 naming it, never
// silently ignored (issue 14: `{"context": "logic"}` on POST /runs was accepted and did nothing).
// Sizes (input values, notebooks, files) are checked by the domain with a 413 naming the limit; lengths
// (names, notes) here with a 400 naming the field (limits in src/domain/limits.ts).

const inputValue = z.union([z.string(), z.number(), z.boolean(), z.null()]);

/** Input values of a request: sizes are checked by the domain (413 naming the input and the limit). */
const inputValues = z
  .record(z.string(), inputValue)
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

export const Project = z
  .object({
    id: z.string(),
    slug: z.string(),
    title: z.string(),
    draftUpdatedAt: z.string(),
    createdAt: z.string(),
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
    visibility: z
      .enum(['workspace', 'restricted'])
      .describe(
        'workspace: every member sees it; restricted: admins, its creator and those granted view access',
      ),
  })
  .meta({ id: 'Project' });

export const ProjectWithDraft = Project.extend({ draftSource: z.string() }).meta({ id: 'ProjectWithDraft' });

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

export const Version = z
  .object({
    id: z.string(),
    number: z.number().int(),
    contentHash: z.string(),
    createdAt: z.string(),
    message: z.string().nullable().describe('What the publisher said about it, if anything'),
  })
  .meta({ id: 'Version' });

export const VersionListing = Version.extend({
  createdBy: z.string().nullable(),
  publishedBy: z.object({ id: z.string(), email: z.string(), name: z.string() }).nullable(),
  publishRun: z
    .object({ id: z.string(), status: z.string().nullable() })
    .nullable()
    .describe("The version's newest publish run"),
  current: z.boolean().describe('The current version: schedules run it and the app shows it'),
}).meta({ id: 'VersionListing' });

export const VersionWithSource = Version.extend({ source: z.string(), files: z.array(z.string()) });

export const RunCell = z.object({
  index: z.number().int(),
  name: z.string(),
  kind: z.string(),
  status: z.enum(['queued', 'running', 'succeeded', 'failed', 'skipped']),
  startedAt: z.string().nullable(),
  durationMs: z.number().nullable(),
});

export const Run = z
  .object({
    id: z.string(),
    project: z.string().describe('Project id'),
    versionId: z.string().nullable(),
    trigger: z.enum(RUN_TRIGGERS),
    context: z.enum(RUN_CONTEXTS),
    status: z.enum(RUN_STATUSES),
    private: z.boolean(),
    inputs: z
      .record(z.string(), inputValue)
      .describe(
        `In lists (GET /api/runs) each text value is cut to ${INPUT_SUMMARY_CHARS} characters followed by '… (N characters)'; GET /api/runs/{run} has them whole`,
      ),
    createdBy: z.string().nullable(),
    createdAt: z.string(),
    scheduledFor: z.string().nullable(),
    startedAt: z.string().nullable(),
    finishedAt: z.string().nullable(),
    attempts: z.number().int(),
    maxAttempts: z.number().int(),
    worker: z.string().nullable(),
    reason: z.string().nullable(),
    error: z.object({ cell: z.string().nullable(), message: z.string() }).nullable(),
    scheduleId: z.string().nullable(),
    jitterMs: z.number().int().nullable(),
    latenessMs: z
      .number()
      .nullable()
      .describe('Scheduled runs: from the fire time (plus jitter) to the claim by a worker'),
    retryOf: z.string().nullable(),
    retryNumber: z.number().int(),
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
    .array(z.record(z.string(), z.unknown()))
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
    .array(z.record(z.string(), z.unknown()))
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

export const AppSettings = z
  .object({
    showLastRun: z.boolean().describe('Open the app on the last scheduled run or publish (default true)'),
    defaultRunId: z.string().nullable(),
    keepRuns: z.number().int().nullable(),
    keepDays: z.number().int().nullable(),
  })
  .meta({ id: 'AppSettings' });

export const UpdateAppSettingsBody = z.strictObject({
  showLastRun: z.boolean().optional(),
  keepRuns: z
    .number()
    .int()
    .nullable()
    .optional()
    .describe('Keep the newest N finished runs; null: no limit'),
  keepDays: z.number().int().nullable().optional().describe('Keep runs for D days; null: no limit'),
});

export const AppManifest = z
  .object({
    project: z.string(),
    title: z.string(),
    description: z.string(),
    version: z.number().int().nullable(),
    inputs: z.array(
      z.object({
        name: z.string(),
        type: z.enum(['select', 'text', 'number', 'date', 'checkbox']),
        label: z.string(),
        default: inputValue,
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

export const Connection = z.object({
  id: z.string(),
  name: z.string(),
  kind: z.literal('postgres'),
  createdAt: z.string(),
});

export const CreateConnectionBody = z.strictObject({
  name: name('The id SQL cells use: ```sql name connection=<name>'),
  url: z
    .string()
    .describe('postgres://user:password@host:port/database (encrypted at rest)')
    .superRefine((url, check) => {
      const problem = connectionUrlProblem(url);
      if (problem) check.addIssue({ code: 'custom', message: problem });
    }),
});

export const WorkspaceSettings = z.object({
  cellNetwork: z
    .boolean()
    .describe(
      'May cells reach the network? false runs them in a network namespace (needs bubblewrap on workers)',
    ),
});
export const UpdateWorkspaceSettingsBody = WorkspaceSettings.partial().strict();

export const CreateTokenBody = z.strictObject({ name: name('What the token is for') });
export const TokenCreated = z.object({ token: z.string().describe('Shown once; store it now') });

export const Me = z.object({
  userId: z.string(),
  workspaceId: z.string(),
  name: z.string(),
  role: z.string(),
});

export const Health = z.object({ ok: z.literal(true), version: z.string() });

// ---- schedules ----

const hhmm = z.string().describe('Local time HH:MM in the schedule timezone');
export const Cadence = z
  .discriminatedUnion('kind', [
    z.strictObject({
      kind: z.literal('hourly'),
      minute: z.number().int().describe('Minute of the hour, 0-59'),
    }),
    z.strictObject({ kind: z.literal('daily'), time: hhmm }),
    z.strictObject({
      kind: z.literal('weekly'),
      days: z.array(z.enum(['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'])).describe('Days of the week'),
      time: hhmm,
    }),
    z.strictObject({
      kind: z.literal('monthly'),
      day: z.number().int().describe('Day of the month, 1-31'),
      time: hhmm,
      shortMonths: z
        .enum(['last_day', 'skip'])
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
  ])
  .meta({ id: 'Cadence' });

export const Policies = z
  .object({
    overlap: z.enum(['skip', 'buffer_one', 'allow', 'cancel_previous']).optional().describe('Default skip'),
    catchupWindowMs: z
      .number()
      .int()
      .optional()
      .describe('Catch up missed fire times at most this old (default 1 h)'),
    catchupMode: z.enum(['coalesce', 'all']).optional().describe('Default coalesce'),
    jitterSeconds: z.number().int().optional().describe('Deterministic offset 0..J s (default 0)'),
    timeoutMs: z.number().int().nullable().optional(),
    maxAttempts: z.number().int().optional().describe('Attempts per fire time, 1-10 (default 1)'),
    retryBackoffMs: z.number().int().optional().describe('First retry delay, doubling (default 30 s)'),
    overdueAfterMs: z
      .number()
      .int()
      .optional()
      .describe('Flag the schedule overdue after this (default 5 min)'),
  })
  .strict()
  .meta({ id: 'SchedulePolicies' });

export const ScheduleParams = z.object({ schedule: z.string().describe('Schedule id') });

export const CreateScheduleBody = z
  .object({
    name: name('What the schedule is for, unique in the project'),
    cadence: Cadence,
    timezone: z.string().max(100).describe('IANA zone, for example Europe/Berlin'),
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

export const Schedule = z
  .object({
    id: z.string(),
    project: z.string(),
    name: z.string(),
    description: z.string(),
    cadence: Cadence,
    timezone: z.string(),
    inputs: z.record(z.string(), inputValue),
    policies: Policies,
    enabled: z.boolean(),
    pausedUntil: z.string().nullable(),
    pauseNote: z.string().nullable(),
    nextFireAt: z.string().nullable(),
    createdAt: z.string(),
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
