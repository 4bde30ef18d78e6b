/**
 * Projects and publishing. A project holds an editable draft; publishing freezes the draft and the
 * project's files into an immutable version identified by a content hash, and enqueues a publish run
 * whose snapshot becomes the app's default state when it succeeds. Publishing content that already
 * has a version creates nothing.
 */
import { createHash, randomUUID } from 'node:crypto';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../domain/errors.ts';
import { validateProjectFiles } from '../domain/file-names.ts';
import { checkBytes, MAX_NOTEBOOK_BYTES, MAX_PROJECT_BYTES, MAX_PROJECT_FILES } from '../domain/limits.ts';
import type { Notebook } from '../domain/notebook/notebook.ts';
import { parseNotebook } from '../domain/notebook/parse-notebook.ts';
import type { Run } from '../domain/run.ts';
import type { AppSettings, Project, Version } from '../store/project-store.ts';
import * as ps from '../store/project-store.ts';
import * as rs from '../store/run-store.ts';
import { assertWorkspaceMember, canSeeProject } from './authorize.ts';
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
  if (await ps.findProject(ctx.db, principal.workspaceId, slug)) {
    throw new ConflictError(
      `a project with slug '${slug}' already exists; update its draft with PUT /api/projects/${slug}/draft`,
    );
  }
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
  await ctx.db.transaction().execute(async (trx) => {
    await ps.insertProject(trx, project);
    await ps.updateAppSettings(trx, project.id, { showLastRun: notebook.app.showLastRun }, now);
  });
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
  // A restricted project the caller may not see does not exist for them (404, not 403).
  if (!(await canSee(ctx, principal, project))) throw new NotFoundError('project', idOrSlug);
  return project;
}

async function canSee(ctx: ServiceContext, principal: Principal, project: Project): Promise<boolean> {
  if (project.visibility === 'workspace' || principal.role === 'admin') return true;
  const grants = await ctx.db
    .selectFrom('project_grants')
    .select('principal')
    .where('project_id', '=', project.id)
    .execute();
  return canSeeProject(
    principal,
    project,
    await ps.grantKeysOf(ctx.db, principal.userId),
    grants.map((g) => g.principal),
  );
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
  const project = await ps.findProject(ctx.db, principal.workspaceId, projectId);
  if (!project || !(await canSee(ctx, principal, project))) throw new NotFoundError(what, id);
}

/** Ids of the workspace's restricted projects the caller may not see (to leave out of listings). */
export async function hiddenProjectIds(ctx: ServiceContext, principal: Principal): Promise<string[]> {
  if (principal.role === 'admin') return [];
  const restricted = await ps.restrictedProjects(ctx.db, principal.workspaceId);
  if (restricted.length === 0) return [];
  const keys = await ps.grantKeysOf(ctx.db, principal.userId);
  return restricted
    .filter(
      (p) =>
        !canSeeProject(
          principal,
          { ...p, workspaceId: principal.workspaceId, visibility: 'restricted' },
          keys,
          p.grants,
        ),
    )
    .map((p) => p.id);
}

/** Who may see a project: `workspace` (every member) or `restricted`. Admins and the creator may change it. */
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
  const project = await getProject(ctx, principal, idOrSlug);
  if (principal.role !== 'admin' && project.createdBy !== principal.userId) {
    throw new ForbiddenError("only an admin or the project's creator may change who sees it");
  }
  await ps.setVisibility(ctx.db, project.id, visibility);
  // Servers drop what they cached for the app, so the change holds at once.
  await ctx.wakeups.notify('app_state', project.id);
  return { ...project, visibility };
}

export async function listProjects(ctx: ServiceContext, principal: Principal): Promise<Project[]> {
  const hidden = new Set(await hiddenProjectIds(ctx, principal));
  return (await ps.listProjects(ctx.db, principal.workspaceId)).filter((p) => !hidden.has(p.id));
}

export async function updateDraft(
  ctx: ServiceContext,
  principal: Principal,
  idOrSlug: string,
  source: string,
): Promise<Project> {
  const project = await getProject(ctx, principal, idOrSlug);
  const notebook = await parseForRequest(source, 'source');
  const now = ctx.now();
  await ps.updateDraft(ctx.db, project.id, source, notebook.title, now);
  return { ...project, draftSource: source, title: notebook.title, draftUpdatedAt: now };
}

export interface PublishResult {
  version: Version;
  /** False when the same content was already published: no new version and no run. */
  created: boolean;
  /** The publish run, when a version was created. */
  run: Run | null;
}

/**
 * Publishes the draft. `files` are the project's data files and modules; when omitted, the files of
 * the latest version carry over.
 */
export async function publish(
  ctx: ServiceContext,
  principal: Principal,
  idOrSlug: string,
  options: { files?: ReadonlyMap<string, Buffer> | undefined } = {},
): Promise<PublishResult> {
  const project = await getProject(ctx, principal, idOrSlug);
  await parseForRequest(project.draftSource, 'draft');
  const result = await ctx.db.transaction().execute(async (trx) => {
    let files = options.files;
    if (!files) {
      const latest = await ps.latestVersion(trx, project.id);
      files = latest ? await ps.listVersionFiles(trx, latest.id) : new Map();
    }
    validateFiles(files);
    const hash = contentHash(project.draftSource, files);
    const existing = await ps.findVersionByHash(trx, project.id, hash);
    if (existing) return { version: existing, created: false, run: null };
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
      },
      files,
    );
    const notebook = await parseNotebook(project.draftSource);
    const inputs = Object.fromEntries(notebook.inputs.map((i) => [i.name, i.default]));
    const run = await rs.insertRun(trx, {
      id: randomUUID(),
      workspaceId: project.workspaceId,
      projectId: project.id,
      versionId: version.id,
      trigger: 'publish',
      context: 'app',
      private: false,
      inputs,
      createdBy: principal.userId,
      createdAt: now,
      scheduledFor: null,
      maxAttempts: 3,
      expiresAt: null,
    });
    return { version, created: true, run };
  });
  if (result.run) await ctx.wakeups.notify('run_queued', result.run.id);
  return result;
}

export async function listVersions(
  ctx: ServiceContext,
  principal: Principal,
  idOrSlug: string,
): Promise<Version[]> {
  const project = await getProject(ctx, principal, idOrSlug);
  return ps.listVersions(ctx.db, project.id);
}

/** The newest published version of a project the caller may already see, or null. */
export async function latestVersion(ctx: ServiceContext, project: Project): Promise<Version | null> {
  return ps.latestVersion(ctx.db, project.id);
}

export async function getVersion(
  ctx: ServiceContext,
  principal: Principal,
  idOrSlug: string,
  version: string,
): Promise<Version> {
  const project = await getProject(ctx, principal, idOrSlug);
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
  const project = await getProject(ctx, principal, idOrSlug);
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
