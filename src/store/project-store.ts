/**
 * Queries on projects (drafts), their immutable versions with files, and app settings.
 */
import { type Selectable, sql } from 'kysely';
import {
  ACCESS_LEVELS,
  type AccessLevel,
  WORKSPACE_DEFAULTS,
  type WorkspaceDefault,
} from '../domain/access-policy.ts';
import type { AppSettings, Project, Version, VersionListing } from '../domain/project.ts';
import { DEFAULT_STATE_TRIGGERS } from '../domain/run.ts';
import type { Db } from './database.ts';
import type { ProjectsTable, VersionsTable } from './schema.ts';
import { iso, toBuffer, toDate } from './schema.ts';

// The glossary's nouns are defined once, in domain/; re-exported here for the store's importers.
export type { AppSettings, Project, Version, VersionListing } from '../domain/project.ts';

function toProject(row: Selectable<ProjectsTable>): Project {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    slug: row.slug,
    title: row.title,
    draftSource: row.draft_source,
    draftUpdatedAt: toDate(row.draft_updated_at),
    createdBy: row.created_by,
    createdAt: toDate(row.created_at),
    visibility: row.visibility === 'restricted' ? 'restricted' : 'workspace',
  };
}

function toVersion(row: Selectable<VersionsTable>): Version {
  return {
    id: row.id,
    projectId: row.project_id,
    number: Number(row.number),
    contentHash: row.content_hash,
    source: row.source,
    createdBy: row.created_by,
    createdAt: toDate(row.created_at),
    message: row.message ?? null,
  };
}

export async function insertProject(db: Db, p: Project): Promise<void> {
  await db
    .insertInto('projects')
    .values({
      id: p.id,
      workspace_id: p.workspaceId,
      slug: p.slug,
      title: p.title,
      draft_source: p.draftSource,
      draft_updated_at: iso(p.draftUpdatedAt),
      created_by: p.createdBy,
      created_at: iso(p.createdAt),
    })
    .execute();
  await db
    .insertInto('app_settings')
    .values({
      project_id: p.id,
      default_run_id: null,
      keep_runs: null,
      keep_days: null,
      updated_at: iso(p.createdAt),
    })
    .execute();
}

/** By id or by slug, within a workspace. */
export async function findProject(db: Db, workspaceId: string, idOrSlug: string): Promise<Project | null> {
  const row = await db
    .selectFrom('projects')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where((eb) => eb.or([eb('id', '=', idOrSlug), eb('slug', '=', idOrSlug)]))
    .executeTakeFirst();
  return row ? toProject(row) : null;
}

export async function listProjects(db: Db, workspaceId: string): Promise<Project[]> {
  const rows = await db
    .selectFrom('projects')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .orderBy('slug')
    .execute();
  return rows.map(toProject);
}

export async function updateDraft(
  db: Db,
  id: string,
  source: string,
  title: string,
  now: Date,
): Promise<void> {
  await db
    .updateTable('projects')
    .set({ draft_source: source, title, draft_updated_at: iso(now) })
    .where('id', '=', id)
    .execute();
}

export async function findVersionByHash(db: Db, projectId: string, hash: string): Promise<Version | null> {
  const row = await db
    .selectFrom('versions')
    .selectAll()
    .where('project_id', '=', projectId)
    .where('content_hash', '=', hash)
    .executeTakeFirst();
  return row ? toVersion(row) : null;
}

export async function findVersion(db: Db, projectId: string, idOrNumber: string): Promise<Version | null> {
  const asNumber = /^\d+$/.test(idOrNumber) ? Number(idOrNumber) : null;
  const row = await db
    .selectFrom('versions')
    .selectAll()
    .where('project_id', '=', projectId)
    .where((eb) => (asNumber !== null ? eb('number', '=', asNumber) : eb('id', '=', idOrNumber)))
    .executeTakeFirst();
  return row ? toVersion(row) : null;
}

export async function findVersionById(db: Db, id: string): Promise<Version | null> {
  const row = await db.selectFrom('versions').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toVersion(row) : null;
}

/**
 * The current version (glossary "Current version"): the one schedules run, apps show, runs default to
 * and publish carries files from. The project points at it, so a rollback can make an older version
 * current (issue 15, bug 3); before migration 0009 "current" meant "newest by number".
 */
export async function currentVersion(db: Db, projectId: string): Promise<Version | null> {
  const row = await db
    .selectFrom('versions')
    .innerJoin('projects', 'projects.current_version_id', 'versions.id')
    .selectAll('versions')
    .where('projects.id', '=', projectId)
    .executeTakeFirst();
  return row ? toVersion(row) : null;
}

/** @deprecated the name from before rollback: it is the *current* version, not the newest. */
export const latestVersion = currentVersion;

/** Makes `versionId` (a version of the project) current. True when it was not current already. */
export async function setCurrentVersion(db: Db, projectId: string, versionId: string): Promise<boolean> {
  const result = await db
    .updateTable('projects')
    .set({ current_version_id: versionId })
    .where('id', '=', projectId)
    .where((eb) => eb.or([eb('current_version_id', 'is', null), eb('current_version_id', '!=', versionId)]))
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/** The id of the project's current version, or null before the first publish. */
export async function currentVersionId(db: Db, projectId: string): Promise<string | null> {
  const row = await db
    .selectFrom('projects')
    .select('current_version_id')
    .where('id', '=', projectId)
    .executeTakeFirst();
  return row?.current_version_id ?? null;
}

/** Versions newest first, with who published each, its publish run's status and the `current` flag. */
export async function listVersionsDetailed(db: Db, projectId: string): Promise<VersionListing[]> {
  const current = await currentVersionId(db, projectId);
  const rows = await db
    .selectFrom('versions')
    .leftJoin('users', 'users.id', 'versions.created_by')
    .selectAll('versions')
    .select(['users.email as user_email', 'users.name as user_name'])
    .where('versions.project_id', '=', projectId)
    .orderBy('versions.number', 'desc')
    .execute();
  const runs = await db
    .selectFrom('runs')
    .select(['id', 'version_id', 'status', 'created_at'])
    .where('project_id', '=', projectId)
    .where('trigger', '=', 'publish')
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  const publishRun = new Map<string, { id: string; status: string }>();
  for (const run of runs) if (run.version_id) publishRun.set(run.version_id, run);
  return rows.map((row) => {
    const version = toVersion(row);
    const run = publishRun.get(version.id);
    return {
      ...version,
      publishedBy:
        row.created_by && row.user_email
          ? { id: row.created_by, email: row.user_email, name: row.user_name ?? '' }
          : null,
      publishRunStatus: run?.status ?? null,
      publishRunId: run?.id ?? null,
      current: version.id === current,
    };
  });
}

/**
 * The newest successful, shared run of a version whose snapshot may be an app's default state (a
 * publish or scheduled run), or null.
 */
export async function lastDefaultableRun(db: Db, versionId: string): Promise<string | null> {
  const row = await db
    .selectFrom('runs')
    .select('id')
    .where('version_id', '=', versionId)
    .where('status', '=', 'succeeded')
    .where('private', '=', 0)
    .where('trigger', 'in', [...DEFAULT_STATE_TRIGGERS])
    .where(({ exists, selectFrom }) =>
      exists(selectFrom('snapshots').select('snapshots.run_id').whereRef('snapshots.run_id', '=', 'runs.id')),
    )
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row?.id ?? null;
}

export async function listVersions(db: Db, projectId: string): Promise<Version[]> {
  const rows = await db
    .selectFrom('versions')
    .selectAll()
    .where('project_id', '=', projectId)
    .orderBy('number', 'desc')
    .execute();
  return rows.map(toVersion);
}

export async function insertVersion(
  db: Db,
  v: Omit<Version, 'number'>,
  files: ReadonlyMap<string, Buffer>,
): Promise<Version> {
  const last = await db
    .selectFrom('versions')
    .select((eb) => eb.fn.max('number').as('n'))
    .where('project_id', '=', v.projectId)
    .executeTakeFirst();
  const number = Number(last?.n ?? 0) + 1;
  await db
    .insertInto('versions')
    .values({
      id: v.id,
      project_id: v.projectId,
      number,
      content_hash: v.contentHash,
      source: v.source,
      created_by: v.createdBy,
      created_at: iso(v.createdAt),
      message: v.message ?? null,
    })
    .execute();
  for (const [path, content] of files) {
    await db.insertInto('version_files').values({ version_id: v.id, path, content }).execute();
  }
  return { ...v, number };
}

export async function listVersionFiles(db: Db, versionId: string): Promise<Map<string, Buffer>> {
  const rows = await db
    .selectFrom('version_files')
    .select(['path', 'content'])
    .where('version_id', '=', versionId)
    .execute();
  return new Map(rows.map((r) => [r.path, toBuffer(r.content)]));
}

export async function getAppSettings(db: Db, projectId: string): Promise<AppSettings> {
  const row = await db
    .selectFrom('app_settings')
    .selectAll()
    .where('project_id', '=', projectId)
    .executeTakeFirstOrThrow();
  return {
    projectId: row.project_id,
    showLastRun: Number(row.show_last_run) === 1,
    defaultRunId: row.default_run_id,
    keepRuns: row.keep_runs === null ? null : Number(row.keep_runs),
    keepDays: row.keep_days === null ? null : Number(row.keep_days),
  };
}

export async function updateAppSettings(
  db: Db,
  projectId: string,
  patch: Partial<Omit<AppSettings, 'projectId'>>,
  now: Date,
): Promise<void> {
  await db
    .updateTable('app_settings')
    .set({
      ...(patch.showLastRun !== undefined ? { show_last_run: patch.showLastRun ? 1 : 0 } : {}),
      ...(patch.defaultRunId !== undefined ? { default_run_id: patch.defaultRunId } : {}),
      ...(patch.keepRuns !== undefined ? { keep_runs: patch.keepRuns } : {}),
      ...(patch.keepDays !== undefined ? { keep_days: patch.keepDays } : {}),
      updated_at: iso(now),
    })
    .where('project_id', '=', projectId)
    .execute();
}

/** Projects that have a retention rule. */
export async function listRetentionRules(db: Db): Promise<AppSettings[]> {
  const rows = await db
    .selectFrom('app_settings')
    .selectAll()
    .where((eb) => eb.or([eb('keep_runs', 'is not', null), eb('keep_days', 'is not', null)]))
    .execute();
  return rows.map((row) => ({
    projectId: row.project_id,
    showLastRun: Number(row.show_last_run) === 1,
    defaultRunId: row.default_run_id,
    keepRuns: row.keep_runs === null ? null : Number(row.keep_runs),
    keepDays: row.keep_days === null ? null : Number(row.keep_days),
  }));
}

/**
 * Makes `runId` the app's default state unless the current default run is newer. True when it changed.
 */
export async function adoptDefaultRun(
  db: Db,
  projectId: string,
  runId: string,
  createdAt: Date,
  now: Date,
): Promise<boolean> {
  const result = await db
    .updateTable('app_settings')
    .set({ default_run_id: runId, updated_at: iso(now) })
    .where('project_id', '=', projectId)
    // Only a run of the current version: after a rollback, a late run of the version rolled back
    // from must not take the app back to it.
    .where(({ exists, selectFrom }) =>
      exists(
        selectFrom('runs as r')
          .innerJoin('projects as p', 'p.id', 'r.project_id')
          .select(sql`1`.as('one'))
          .where('r.id', '=', runId)
          .where((eb) =>
            eb.or([
              eb('p.current_version_id', 'is', null),
              eb('p.current_version_id', '=', eb.ref('r.version_id')),
            ]),
          ),
      ),
    )
    .where((eb) =>
      eb.or([
        eb('default_run_id', 'is', null),
        eb.not(
          eb.exists(
            eb
              .selectFrom('runs')
              .select(sql`1`.as('one'))
              .whereRef('runs.id', '=', 'app_settings.default_run_id')
              .where('runs.created_at', '>', iso(createdAt)),
          ),
        ),
      ]),
    )
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

export async function setVisibility(
  db: Db,
  projectId: string,
  visibility: Project['visibility'],
): Promise<void> {
  await db.updateTable('projects').set({ visibility }).where('id', '=', projectId).execute();
  // The workspace default follows: a restricted project grants the workspace nothing, and opening
  // one up again grants Can View (a default it already had is kept).
  await db
    .updateTable('projects')
    .set({ workspace_access: visibility === 'restricted' ? 'none' : 'can_view' })
    .where('id', '=', projectId)
    .where((eb) =>
      visibility === 'restricted'
        ? eb('workspace_access', '!=', 'none')
        : eb('workspace_access', '=', 'none'),
    )
    .execute();
}

function accessLevel(value: string): AccessLevel {
  return (ACCESS_LEVELS as readonly string[]).includes(value) ? (value as AccessLevel) : 'app_only';
}

function workspaceDefault(value: string, visibility: string): WorkspaceDefault {
  if (visibility === 'restricted') return 'none';
  return (WORKSPACE_DEFAULTS as readonly string[]).includes(value) ? (value as WorkspaceDefault) : 'none';
}

/** What decides one user's access to a project (domain/access-policy.ts `effectiveAccess`). */
export interface ProjectAccessRow {
  projectId: string;
  slug: string;
  createdBy: string | null;
  workspaceDefault: WorkspaceDefault;
  /** The user's own grant. */
  own: AccessLevel | null;
  /** Their groups' grants. */
  groups: AccessLevel[];
}

/**
 * For each project of the workspace (or only `projectId`, by id or slug): its creator, its workspace
 * default, and the grants that hold for `userId` directly or through their groups.
 */
export async function accessRows(
  db: Db,
  workspaceId: string,
  userId: string,
  projectId?: string,
): Promise<ProjectAccessRow[]> {
  const keys = await grantKeysOf(db, userId);
  let query = db
    .selectFrom('projects')
    .leftJoin('project_grants', (join) =>
      join.onRef('project_grants.project_id', '=', 'projects.id').on('project_grants.principal', 'in', keys),
    )
    .select([
      'projects.id',
      'projects.slug',
      'projects.created_by',
      'projects.visibility',
      'projects.workspace_access',
      'project_grants.principal',
      'project_grants.access',
    ])
    .where('projects.workspace_id', '=', workspaceId);
  if (projectId !== undefined) {
    query = query.where((eb) =>
      eb.or([eb('projects.id', '=', projectId), eb('projects.slug', '=', projectId)]),
    );
  }
  const byId = new Map<string, ProjectAccessRow>();
  for (const row of await query.execute()) {
    const entry = byId.get(row.id) ?? {
      projectId: row.id,
      slug: row.slug,
      createdBy: row.created_by,
      workspaceDefault: workspaceDefault(row.workspace_access, row.visibility),
      own: null,
      groups: [],
    };
    if (row.principal && row.access) {
      if (row.principal === `user:${userId}`) entry.own = accessLevel(row.access);
      else entry.groups.push(accessLevel(row.access));
    }
    byId.set(row.id, entry);
  }
  return [...byId.values()];
}

/** A project's grants with their levels. */
export async function listGrantLevels(
  db: Db,
  projectId: string,
): Promise<{ principal: string; access: AccessLevel; reason: string }[]> {
  const rows = await db
    .selectFrom('project_grants')
    .select(['principal', 'access', 'reason'])
    .where('project_id', '=', projectId)
    .orderBy('principal')
    .execute();
  return rows.map((r) => ({ principal: r.principal, access: accessLevel(r.access), reason: r.reason }));
}

/** Sets (or replaces) a grant's level. */
export async function upsertGrant(
  db: Db,
  grant: {
    projectId: string;
    principal: string;
    access: AccessLevel;
    reason: string;
    grantedBy: string | null;
    now: Date;
  },
): Promise<void> {
  await db
    .insertInto('project_grants')
    .values({
      project_id: grant.projectId,
      principal: grant.principal,
      access: grant.access,
      reason: grant.reason,
      granted_by: grant.grantedBy,
      created_at: iso(grant.now),
    })
    .onConflict((oc) =>
      oc.columns(['project_id', 'principal']).doUpdateSet({
        access: grant.access,
        reason: grant.reason,
        granted_by: grant.grantedBy,
      }),
    )
    .execute();
}

export async function deleteGrant(db: Db, projectId: string, principal: string): Promise<boolean> {
  const result = await db
    .deleteFrom('project_grants')
    .where('project_id', '=', projectId)
    .where('principal', '=', principal)
    .executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

export async function setWorkspaceAccess(db: Db, projectId: string, access: WorkspaceDefault): Promise<void> {
  await db
    .updateTable('projects')
    .set({ workspace_access: access, visibility: access === 'none' ? 'restricted' : 'workspace' })
    .where('id', '=', projectId)
    .execute();
}

/** The grant keys (`user:<id>`, `group:<id>`) that hold for a user: theirs and their groups'. */
export async function grantKeysOf(db: Db, userId: string): Promise<string[]> {
  const groups = await db
    .selectFrom('group_members')
    .select('group_id')
    .where('user_id', '=', userId)
    .execute();
  return [`user:${userId}`, ...groups.map((g) => `group:${g.group_id}`)];
}

/** Restricted projects of a workspace, with the grant keys that may see each. */
export async function restrictedProjects(
  db: Db,
  workspaceId: string,
): Promise<{ id: string; createdBy: string | null; grants: string[] }[]> {
  const rows = await db
    .selectFrom('projects')
    .leftJoin('project_grants', 'project_grants.project_id', 'projects.id')
    .select(['projects.id', 'projects.created_by', 'project_grants.principal'])
    .where('projects.workspace_id', '=', workspaceId)
    .where('projects.visibility', '=', 'restricted')
    .execute();
  const byId = new Map<string, { id: string; createdBy: string | null; grants: string[] }>();
  for (const row of rows) {
    const entry = byId.get(row.id) ?? { id: row.id, createdBy: row.created_by, grants: [] };
    if (row.principal) entry.grants.push(row.principal);
    byId.set(row.id, entry);
  }
  return [...byId.values()];
}

/** By id alone, in any workspace: for callers that hold an id from a row of their own (runs, schedules). */
export async function findProjectById(db: Db, id: string): Promise<Project | null> {
  const row = await db.selectFrom('projects').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toProject(row) : null;
}

/** The grant keys (`user:<id>`, `group:<id>`) that may see a restricted project. */
export async function listGrants(db: Db, projectId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('project_grants')
    .select('principal')
    .where('project_id', '=', projectId)
    .execute();
  return rows.map((r) => r.principal);
}

/** Lets `principal` (a grant key) see a restricted project; a grant already there is left as it is. */
export async function insertGrant(
  db: Db,
  grant: { projectId: string; principal: string; reason: string; grantedBy: string | null; now: Date },
): Promise<void> {
  await db
    .insertInto('project_grants')
    .values({
      project_id: grant.projectId,
      principal: grant.principal,
      reason: grant.reason,
      granted_by: grant.grantedBy,
      created_at: iso(grant.now),
    })
    .onConflict((oc) => oc.columns(['project_id', 'principal']).doNothing())
    .execute();
}
