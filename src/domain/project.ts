/**
 * A project (glossary "Project"): a notebook with an editable draft; its versions (glossary "Version"):
 * immutable published snapshots of its logic, identified by a content hash; and its app's settings.
 * These schemas are the one definition of each: the store's rows map to them, and the API's request
 * and response bodies and the OpenAPI document derive from them.
 */
import { z } from 'zod';

/** `workspace`: every member sees it; `restricted`: admins, its creator and those granted view access. */
export const PROJECT_VISIBILITIES = ['workspace', 'restricted'] as const;
export type ProjectVisibility = (typeof PROJECT_VISIBILITIES)[number];

export const projectSchema = z.object({
  id: z.string(),
  workspaceId: z.string(),
  slug: z.string().describe('URL name, unique in the workspace'),
  title: z.string(),
  draftSource: z.string().describe('The draft notebook: Markdown with SQL/JS/TS cells'),
  draftUpdatedAt: z.date(),
  createdBy: z.string().nullable(),
  createdAt: z.date(),
  visibility: z
    .enum(PROJECT_VISIBILITIES)
    .describe(
      'workspace: every member sees it; restricted: admins, its creator and those granted view access',
    ),
});
export type Project = z.infer<typeof projectSchema>;

export const versionSchema = z.object({
  id: z.string(),
  projectId: z.string(),
  /** 1, 2, 3… in the order they were published. */
  number: z.number().int(),
  /** The hash of the notebook and its files: publishing the same content again makes no new version. */
  contentHash: z.string(),
  source: z.string(),
  createdBy: z.string().nullable(),
  createdAt: z.date(),
  /** What the publisher said about this version, if anything. */
  message: z.string().nullable().optional().describe('What the publisher said about it, if anything'),
});
export type Version = z.infer<typeof versionSchema>;

/** A version with what the versions list shows besides it. */
export const versionListingSchema = versionSchema.extend({
  publishedBy: z.object({ id: z.string(), email: z.string(), name: z.string() }).nullable(),
  /** The status of the version's newest publish run (null when it has none). */
  publishRunStatus: z.string().nullable(),
  publishRunId: z.string().nullable(),
  current: z.boolean().describe('The current version: schedules run it and the app shows it'),
});
export type VersionListing = z.infer<typeof versionListingSchema>;

export const appSettingsSchema = z.object({
  projectId: z.string(),
  /** Show results from the last scheduled run or publish (Hex's "show results from last run"). @default true */
  showLastRun: z.boolean().describe('Open the app on the last scheduled run or publish (default true)'),
  /** The run whose snapshot is the app's default state. */
  defaultRunId: z.string().nullable(),
  /** Retention: keep the newest N finished runs; null: no limit. */
  keepRuns: z.number().int().nullable().describe('Keep the newest N finished runs; null: no limit'),
  /** Retention: keep runs for D days; null: no limit. */
  keepDays: z.number().int().nullable().describe('Keep runs for D days; null: no limit'),
});
export type AppSettings = z.infer<typeof appSettingsSchema>;
