/**
 * Projects and publishing. A project holds an editable draft; publishing freezes the draft and the
 * project's files into an immutable version identified by a content hash, and enqueues a publish run
 * whose snapshot becomes the app's default state when it succeeds. Publishing content that already
 * has a version creates nothing but makes that version current again (a rollback); so does
 * `makeCurrent`. The project points at its current version: schedules run it and apps show it.
 */
import { createHash, randomUUID } from 'node:crypto';
import { type AccessLevel, type Action, atLeast, type WorkspaceDefault } from '../domain/access-policy.ts';
import { ConflictError, NotFoundError, ValidationError } from '../domain/errors.ts';
import { validateProjectFiles } from '../domain/file-names.ts';
import { checkBytes, MAX_NOTEBOOK_BYTES, MAX_PROJECT_BYTES, MAX_PROJECT_FILES } from '../domain/limits.ts';
import type { Notebook } from '../domain/notebook/notebook.ts';
import { parseNotebook } from '../domain/notebook/parse-notebook.ts';
import type { AppSettings, Project, Version } from '../domain/project.ts';
import type { Run } from '../domain/run.ts';
import { newRun } from '../domain/run-lifecycle.ts';
import { type Db, transaction } from '../store/database.ts';
import { isUniqueViolation } from '../store/errors.ts';
import * as ps from '../store/project-store.ts';
import * as rs from '../store/run-store.ts';
import { recordAudit } from './audit-service.ts';
import { accessByProject, assertAllowed, assertWorkspaceMember, projectAccess } from './authorize.ts';
import type { Principal, ServiceContext } from './service-context.ts';

/** Limits on what a version may carry (domain/limits.ts; re-exported for older imports). */
export { MAX_PROJECT_BYTES, MAX_PROJECT_FILES };

const SLUG = /^[a-z0-9][a-z0-9-]{0,62}$/;

export function slugify(text: string): string {
  const slug = text
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63);
  return slug || 'project';
}

/** Parses a notebook for a request, naming the body field in the error. */
async function parseForRequest(source: string, file: string): Promise<Notebook> {
  if (typeof source !== 'string' || source.trim() === '') {
    throw new ValidationError('source', 'must be the notebook text (Markdown with cells)');
  }
  checkBytes('source', source, MAX_NOTEBOOK_BYTES, 'MAX_NOTEBOOK_BYTES', 'the notebook');
  return parseNotebook(source, { file });
}

/** Checks a version's file names and sizes (domain/file-names.ts): 400 naming the file, 413 for sizes. */
export function validateFiles(files: ReadonlyMap<string, Buffer>): void {
  validateProjectFiles(files);
}

export function contentHash(source: string, files: ReadonlyMap<string, Buffer>): string {
  const hash = createHash('sha256').update('notebook\0').update(source).update('\0');
  for (const path of [...files.keys()].sort()) {
    hash
      .update(`file\0${path}\0`)
      .update(createHash('sha256').update(files.get(path)!).digest())
      .update('\0');
  }
  return hash.digest('hex');
}

export async function createProject(
  ctx: ServiceContext,
  principal: Principal,
  input: { source: string; slug?: string | undefined; file?: string | undefined },
): Promise<Project> {
  const notebook = await parseForRequest(input.source, input.file ?? 'source');
  const slug = input.slug ?? slugify(notebook.title);
  if (!SLUG.test(slug)) {
    throw new ValidationError(
      'slug',
      `'${slug.slice(0, 80)}' must be 1-63 lowercase letters, digits or dashes, starting with a letter or digit`,
    );
  }
  const taken = () =>
    new ConflictError(
      `a project with slug '${slug}' already exists; update its draft with PUT /api/projects/${slug}/draft`,
    );
  if (await ps.findProject(ctx.db, principal.workspaceId, slug)) throw taken();
  const now = ctx.now();
  const project: Project = {
    id: randomUUID(),
    visibility: 'workspace',
    workspaceId: principal.workspaceId,
    slug,
    title: notebook.title,
    draftSource: input.source,
    draftUpdatedAt: now,
    createdBy: principal.userId,
    createdAt: now,
  };
  try {
    await transaction(ctx.db, async (trx) => {
      await ps.insertProject(trx, project);
      await ps.updateAppSettings(trx, project.id, { showLastRun: notebook.app.showLastRun }, now);
    });
  } catch (error) {
    // Another request took the slug since the check: the unique key on (workspace, slug) decides.
    if (isUniqueViolation(error)) throw taken();
    throw error;
  }
  return project;
}

export async function getProject(
  ctx: ServiceContext,
  principal: Principal,
  idOrSlug: string,
): Promise<Project> {
  const project = await ps.findProject(ctx.db, principal.workspaceId, idOrSlug);
  if (!project) throw new NotFoundError('project', idOrSlug);
  assertWorkspaceMember(principal, project.workspaceId, 'project', idOrSlug);
  // A project the caller has no access to does not exist for them (404, not 403).
  const access = await projectAccess(ctx, principal, project.id);
  if (!access || access.access === null) throw new NotFoundError('project', idOrSlug);
  return project;
}

/**
 * A project the caller may do `action` on: 404 when they cannot see it at all, 403 naming the access
 * it needs when they can see it but their access does not reach (domain/access-policy.ts).
 */
export async function projectFor(
  ctx: ServiceContext,
  principal: Principal,
  action: Action,
  idOrSlug: string,
): Promise<Project> {
  const project = await getProject(ctx, principal, idOrSlug);
  const access = await projectAccess(ctx, principal, project.id);
  assertAllowed(principal, action, access!, 'project', idOrSlug);
  return project;
}

/** Throws NotFoundError(what, id) unless the caller sees the project `projectId` (for runs, schedules, rules). */
export async function assertSeesProject(
  ctx: ServiceContext,
  principal: Principal,
  projectId: string,
  what: string,
  id: string,
): Promise<void> {
  // Admins see every project of their workspace (the caller checked the workspace): no read needed.
  if (principal.role === 'admin') return;
  const access = await projectAccess(ctx, principal, projectId);
  if (!access || access.access === null) throw new NotFoundError(what, id);
}

/**
 * Ids of the workspace's projects where the caller's access is below `min` (to leave out of
 * listings): runs and schedules list what Can View reaches; projects, what App Only does.
 */
export async function hiddenProjectIds(
  ctx: ServiceContext,
  principal: Principal,
  min: AccessLevel = 'can_view',
): Promise<string[]> {
  if (principal.role === 'admin') return [];
  const access = await accessByProject(ctx, principal);
  return [...access].filter(([, level]) => !atLeast(level, min)).map(([id]) => id);
}

/**
 * Who sees a project: `workspace` (the workspace default, Can View) or `restricted` (only grantees,
 * admins and its creator). Changing it is sharing: Full access.
 */
export async function setVisibility(
  ctx: ServiceContext,
  principal: Principal,
  idOrSlug: string,
  visibility: unknown,
): Promise<Project> {
  if (visibility !== 'workspace' && visibility !== 'restricted') {
    throw new ValidationError(
      'visibility',
      `must be workspace or restricted (got ${JSON.stringify(visibility)})`,
    );
  }
  const project = await projectFor(ctx, principal, 'project.share', idOrSlug);
  await ps.setVisibility(ctx.db, project.id, visibility);
  // Servers drop what they cached for the app, so the change holds at once.
  await ctx.wakeups.notify('app_state', project.id);
  return { ...project, visibility };
}

/** A project's sharing: its workspace default and its grants (user:<id> or group:<id>) with levels. */
export async function listAccess(
  ctx: ServiceContext,
  principal: Principal,
  idOrSlug: string,
): Promise<{
  workspace: WorkspaceDefault;
  grants: { principal: string; access: AccessLevel; reason: string }[];
}> {
  const project = await projectFor(ctx, principal, 'project.share', idOrSlug);
  const [row] = await ps.accessRows(ctx.db, principal.workspaceId, principal.userId, project.id);
  return { workspace: row!.workspaceDefault, grants: await ps.listGrantLevels(ctx.db, project.id) };
}

/** Grants (or changes) a user's or group's access to a project; Full access holders share. */
export async function shareProject(
  ctx: ServiceContext,
  principal: Principal,
  idOrSlug: string,
  grant: { principal: string; access: AccessLevel },
): Promise<void> {
  const project = await projectFor(ctx, principal, 'project.share', idOrSlug);
  if (!/^(user|group):.+$/.test(grant.principal)) {
    throw new ValidationError(
      'principal',
      `must be user:<id> or group:<id> (got ${JSON.stringify(grant.principal)})`,
    );
  }
  await ps.upsertGrant(ctx.db, {
    projectId: project.id,
    principal: grant.principal,
    access: grant.access,
    reason: 'shared',
    grantedBy: principal.userId,
    now: ctx.now(),
  });
  await recordAudit(ctx, principal, {
    action: 'grant.set',
    target: `project:${project.id}`,
    detail: { project: project.slug, principal: grant.principal, access: grant.access },
  });
  await ctx.wakeups.notify('app_state', project.id);
}

/** Takes a user's or group's grant away. */
export async function unshareProject(
  ctx: ServiceContext,
  principal: Principal,
  idOrSlug: string,
  grantee: string,
): Promise<void> {
  const project = await projectFor(ctx, principal, 'project.share', idOrSlug);
  if (!(await ps.deleteGrant(ctx.db, project.id, grantee))) throw new NotFoundError('grant', grantee);
  await recordAudit(ctx, principal, {
    action: 'grant.remove',
    target: `project:${project.id}`,
    detail: { project: project.slug, principal: grantee },
  });
  await ctx.wakeups.notify('app_state', project.id);
}

/** What every member of the workspace gets on a project. */
export async function setWorkspaceAccess(
  ctx: ServiceContext,
  principal: Principal,
  idOrSlug: string,
  access: WorkspaceDefault,
): Promise<void> {
  const project = await projectFor(ctx, principal, 'project.share', idOrSlug);
  await ps.setWorkspaceAccess(ctx.db, project.id, access);
  await recordAudit(ctx, principal, {
    action: 'project.workspace_access',
    target: `project:${project.id}`,
    detail: { project: project.slug, access },
  });
  await ctx.wakeups.notify('app_state', project.id);
}

export async function listProjects(ctx: ServiceContext, principal: Principal): Promise<Project[]> {
  const hidden = new Set(await hiddenProjectIds(ctx, principal, 'app_only'));
  return (await ps.listProjects(ctx.db, principal.workspaceId)).filter((p) => !hidden.has(p.id));
}

export async function updateDraft(
  ctx: ServiceContext,
  principal: Principal,
  idOrSlug: string,
  source: string,
): Promise<Project> {
  const project = await projectFor(ctx, principal, 'project.edit_draft', idOrSlug);
  const notebook = await parseForRequest(source, 'source');
  const now = ctx.now();
  await ps.updateDraft(ctx.db, project.id, source, notebook.title, now);
  return { ...project, draftSource: source, title: notebook.title, draftUpdatedAt: now };
}

export interface PublishResult {
  version: Version;
  /** False when the same content was already published: no new version. */
  created: boolean;
  /** True when the content matched an existing version, which was reused (made current if it was not). */
  reused: boolean;
  /**
   * True when the version became current by this call: a new version, or an older one with the same
   * content (a rollback by re-publishing, issue 15 bug 3). False when it was current already.
   */
  madeCurrent: boolean;
  /** The publish run, when one was queued (a new version, or a reused one with no default state). */
  run: Run | null;
  /** The run whose snapshot became the app's default state (a reused version's last good run). */
  defaultRunId: string | null;
}

/** What making a version current did (rollback). */
export interface MakeCurrentResult {
  version: Version;
  /** False when it was current already (nothing changed). */
  madeCurrent: boolean;
  /** The version's last successful publish or scheduled run, now the app's default state. */
  defaultRunId: string | null;
  /** A publish run queued because the version had no such run. */
  run: Run | null;
}

/** Publish message length: like a commit subject and body. */
export const MAX_PUBLISH_MESSAGE = 2000;

/**
 * Publishes the draft. `files` are the project's data files and modules; when omitted, the files of
 * the current version carry over. Content equal to an existing version reuses it and makes it current
 * again (a rollback), rather than doing nothing.
 */
export async function publish(
  ctx: ServiceContext,
  principal: Principal,
  idOrSlug: string,
  options: { files?: ReadonlyMap<string, Buffer> | undefined; message?: string | undefined } = {},
): Promise<PublishResult> {
  const project = await projectFor(ctx, principal, 'project.publish', idOrSlug);
  await parseForRequest(project.draftSource, 'draft');
  const message = options.message?.trim() || null;
  if (message !== null && message.length > MAX_PUBLISH_MESSAGE) {
    throw new ValidationError('message', `must be at most ${MAX_PUBLISH_MESSAGE} characters`);
  }
  const result = await transaction(ctx.db, async (trx): Promise<PublishResult> => {
    let files = options.files;
    if (!files) {
      const current = await ps.currentVersion(trx, project.id);
      files = current ? await ps.listVersionFiles(trx, current.id) : new Map();
    }
    validateFiles(files);
    const hash = contentHash(project.draftSource, files);
    const existing = await ps.findVersionByHash(trx, project.id, hash);
    if (existing) {
      const made = await makeCurrentIn(trx, ctx, principal, project, existing);
      return { ...made, created: false, reused: true };
    }
    const now = ctx.now();
    const version = await ps.insertVersion(
      trx,
      {
        id: randomUUID(),
        projectId: project.id,
        contentHash: hash,
        source: project.draftSource,
        createdBy: principal.userId,
        createdAt: now,
        message,
      },
      files,
    );
    await ps.setCurrentVersion(trx, project.id, version.id);
    const run = await insertPublishRun(trx, ctx, principal, project, version);
    return { version, created: true, reused: false, madeCurrent: true, run, defaultRunId: null };
  });
  await recordAudit(ctx, principal, {
    action: 'project.publish',
    target: `project:${project.id}`,
    detail: {
      project: project.slug,
      version: result.version.number,
      created: result.created,
      madeCurrent: result.madeCurrent,
    },
  });
  if (result.run) await ctx.wakeups.notify('run_queued', result.run.id);
  if (result.madeCurrent) await ctx.wakeups.notify('app_state', project.id);
  return result;
}

async function insertPublishRun(
  trx: Db,
  ctx: ServiceContext,
  principal: Principal,
  project: Project,
  version: Version,
): Promise<Run> {
  const notebook = await parseNotebook(version.source);
  const inputs = Object.fromEntries(notebook.inputs.map((i) => [i.name, i.default]));
  return rs.insertRun(
    trx,
    newRun({
      workspaceId: project.workspaceId,
      projectId: project.id,
      versionId: version.id,
      trigger: 'publish',
      context: 'app',
      inputs,
      createdBy: principal.userId,
      createdAt: ctx.now(),
    }),
  );
}

/**
 * Makes `version` current in `trx`. Its last successful publish or scheduled run's snapshot becomes the
 * app's default state at once; a version with no such run gets a publish run, whose snapshot becomes
 * the default state when it succeeds (until then the app keeps showing what it showed).
 */
async function makeCurrentIn(
  trx: Db,
  ctx: ServiceContext,
  principal: Principal,
  project: Project,
  version: Version,
): Promise<MakeCurrentResult> {
  if (!(await ps.setCurrentVersion(trx, project.id, version.id))) {
    return { version, madeCurrent: false, defaultRunId: null, run: null };
  }
  const good = await ps.lastDefaultableRun(trx, version.id);
  if (good) {
    await ps.updateAppSettings(trx, project.id, { defaultRunId: good }, ctx.now());
    return { version, madeCurrent: true, defaultRunId: good, run: null };
  }
  const run = await insertPublishRun(trx, ctx, principal, project, version);
  return { version, madeCurrent: true, defaultRunId: null, run };
}

/**
 * Rollback: makes version `number` (or id) of the project current. Schedules run it from their next
 * fire, the app shows it, and new runs default to it. Needs edit rights, as publishing does.
 */
export async function makeCurrent(
  ctx: ServiceContext,
  principal: Principal,
  idOrSlug: string,
  versionRef: string,
): Promise<MakeCurrentResult> {
  const project = await projectFor(ctx, principal, 'project.rollback', idOrSlug);
  const version = await ps.findVersion(ctx.db, project.id, versionRef);
  if (!version) throw new NotFoundError('version', versionRef);
  const result = await transaction(ctx.db, (trx) => makeCurrentIn(trx, ctx, principal, project, version));
  await recordAudit(ctx, principal, {
    action: 'project.rollback',
    target: `project:${project.id}`,
    detail: { project: project.slug, version: version.number, madeCurrent: result.madeCurrent },
  });
  if (result.run) await ctx.wakeups.notify('run_queued', result.run.id);
  if (result.madeCurrent) await ctx.wakeups.notify('app_state', project.id);
  return result;
}

export async function listVersions(
  ctx: ServiceContext,
  principal: Principal,
  idOrSlug: string,
): Promise<ps.VersionListing[]> {
  const project = await projectFor(ctx, principal, 'project.view_source', idOrSlug);
  return ps.listVersionsDetailed(ctx.db, project.id);
}

/** The current version of a project the caller may already see, or null before the first publish. */
export async function currentVersion(ctx: ServiceContext, project: Project): Promise<Version | null> {
  return ps.currentVersion(ctx.db, project.id);
}

/** @deprecated it is the current version (after a rollback, not the newest): use `currentVersion`. */
export const latestVersion = currentVersion;

export async function getVersion(
  ctx: ServiceContext,
  principal: Principal,
  idOrSlug: string,
  version: string,
): Promise<Version> {
  const project = await projectFor(ctx, principal, 'project.view_source', idOrSlug);
  const found = await ps.findVersion(ctx.db, project.id, version);
  if (!found) throw new NotFoundError('version', version);
  return found;
}

export async function getAppSettings(
  ctx: ServiceContext,
  principal: Principal,
  idOrSlug: string,
): Promise<AppSettings> {
  const project = await getProject(ctx, principal, idOrSlug);
  return ps.getAppSettings(ctx.db, project.id);
}

export async function updateAppSettings(
  ctx: ServiceContext,
  principal: Principal,
  idOrSlug: string,
  patch: {
    showLastRun?: boolean | undefined;
    keepRuns?: number | null | undefined;
    keepDays?: number | null | undefined;
  },
): Promise<AppSettings> {
  const project = await projectFor(ctx, principal, 'project.settings', idOrSlug);
  for (const field of ['keepRuns', 'keepDays'] as const) {
    const value = patch[field];
    if (value !== undefined && value !== null && (!Number.isInteger(value) || value < 1)) {
      throw new ValidationError(field, 'must be a whole number >= 1, or null for no limit');
    }
  }
  const clean: Partial<Omit<AppSettings, 'projectId'>> = {};
  if (patch.showLastRun !== undefined) clean.showLastRun = patch.showLastRun;
  if (patch.keepRuns !== undefined) clean.keepRuns = patch.keepRuns;
  if (patch.keepDays !== undefined) clean.keepDays = patch.keepDays;
  await ps.updateAppSettings(ctx.db, project.id, clean, ctx.now());
  await ctx.wakeups.notify('app_state', project.id);
  return ps.getAppSettings(ctx.db, project.id);
}
