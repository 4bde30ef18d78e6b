/**
 * The HTTP server (ARCHITECTURE.md, decision 7): the JSON API under /api (documented at
 * /api/openapi.json), live run progress over Server-Sent Events, browser sign-in (a one-time login
 * code exchanged for a server-side session), and the web app's built files. Every response carries the
 * security headers (`security-headers.ts`), every request body has a size limit, and one error handler
 * turns every error into `{ error: { code, message, field? } }` with its status.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, normalize } from 'node:path';
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import { AlmanacError, ForbiddenError, PayloadTooLargeError, ValidationError } from '../domain/errors.ts';
import { summarizeInputs } from '../domain/input-summary.ts';
import { isFinal, latenessMs, type Run } from '../domain/run.ts';
import { validateTimeZone } from '../domain/schedule/schedule.ts';
import { assertAdmin } from '../services/authorize.ts';
import * as projects from '../services/project-service.ts';
import * as runs from '../services/run-service.ts';
import * as schedules from '../services/schedule-service.ts';
import type { ServiceContext } from '../services/service-context.ts';
import * as workspaces from '../services/workspace-service.ts';
import type { Project, Version, VersionListing } from '../store/project-store.ts';
import type { StoredSnapshot } from '../store/run-store.ts';
import type { Schedule } from '../store/schedule-store.ts';
import { transientReason } from '../store/transient.ts';
import { RESYNC } from '../store/wakeups.ts';
import { type NotificationHttpDeps, notificationRoutes } from './notification-routes.ts';
import { mountOps, type OpsDeps } from './ops.ts';
import { type AnyRoute, mount, openApiDocument, route, SESSION_COOKIE } from './routes.ts';
import * as S from './schemas.ts';
import {
  isHttps,
  type OriginOptions,
  requestOrigin,
  safeNext,
  sameOriginRequest,
  securityHeaders,
} from './security-headers.ts';

/** @default 1 MiB: every JSON request but a publish. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/**
 * @default 72 MiB: a publish carries the notebook and its folder's files in base64 (files up to
 * 50 MiB, MAX_PROJECT_BYTES, are 67 MiB in base64).
 */
export const DEFAULT_MAX_PUBLISH_BYTES = 72 * 1024 * 1024;

const PUBLISH_PATH = /^\/api\/projects\/[^/]+\/publish\/?$/;

export interface HttpOptions {
  ctx: ServiceContext;
  /** The built web app (index.html and assets), if any. */
  webDir?: string | null;
  version?: string;
  /** How long a token's principal is cached; 0 turns it off. @default 5000 */
  authCacheMs?: number;
  /** How long an app's default-state pointer is cached (it is also dropped on every change). @default 10000 */
  stateCacheMs?: number;
  /** Called for unexpected errors (5xx); never with secrets. */
  onError?: (error: unknown, c: Context) => void;
  /** Slack and the email outbox, for the notification routes. */
  notify?: Omit<NotificationHttpDeps, 'ctx'>;
  /** /metrics, /healthz and /readyz (http/ops.ts); without them those paths are not served. */
  ops?: Omit<OpsDeps, 'ctx' | 'authenticate'>;
  /** Trust `X-Forwarded-Proto`/`X-Forwarded-Host` from a proxy in front (Secure cookies, CSRF origin). @default false */
  trustProxy?: boolean;
  /** Where people reach the server; its origin is accepted as this server's own (CSRF). */
  publicUrl?: string | null;
  /** The largest request body, in bytes, except a publish. @default DEFAULT_MAX_BODY_BYTES */
  maxBodyBytes?: number;
  /** The largest publish body (notebook and files), in bytes. @default DEFAULT_MAX_PUBLISH_BYTES */
  maxPublishBytes?: number;
}

export interface HttpApp {
  app: Hono;
  routes: readonly AnyRoute[];
}

function projectJson(project: Project, latest: Version | null) {
  return {
    id: project.id,
    slug: project.slug,
    title: project.title,
    draftUpdatedAt: project.draftUpdatedAt.toISOString(),
    createdAt: project.createdAt.toISOString(),
    latestVersion: latest?.number ?? null,
    currentVersion: latest?.number ?? null,
    appUrl: `/apps/${project.slug}`,
    visibility: project.visibility,
  };
}

function versionJson(version: Version) {
  return {
    id: version.id,
    number: version.number,
    contentHash: version.contentHash,
    createdAt: version.createdAt.toISOString(),
    message: version.message ?? null,
  };
}

function versionListingJson(version: VersionListing) {
  return {
    ...versionJson(version),
    createdBy: version.createdBy,
    publishedBy: version.publishedBy,
    publishRun: version.publishRunId ? { id: version.publishRunId, status: version.publishRunStatus } : null,
    current: version.current,
  };
}

export function runJson(run: Run) {
  return {
    id: run.id,
    project: run.projectId,
    versionId: run.versionId,
    trigger: run.trigger,
    context: run.context,
    status: run.status,
    private: run.private,
    inputs: run.inputs,
    createdBy: run.createdBy,
    createdAt: run.createdAt.toISOString(),
    scheduledFor: run.scheduledFor?.toISOString() ?? null,
    startedAt: run.startedAt?.toISOString() ?? null,
    finishedAt: run.finishedAt?.toISOString() ?? null,
    attempts: run.attempts,
    maxAttempts: run.maxAttempts,
    worker: run.worker,
    reason: run.reason,
    error: run.errorMessage ? { cell: run.errorCell, message: run.errorMessage } : null,
    scheduleId: run.scheduleId,
    jitterMs: run.jitterMs,
    latenessMs: latenessMs(run),
    retryOf: run.retryOf,
    retryNumber: run.retryNumber,
  };
}

/** A run in a list (the run log): input values shortened, so one huge value cannot bloat every page. */
export function runSummaryJson(run: Run) {
  return { ...runJson(run), inputs: summarizeInputs(run.inputs) };
}

function scheduleJson(schedule: Schedule) {
  return {
    id: schedule.id,
    project: schedule.projectId,
    name: schedule.name,
    description: schedules.describe(schedule),
    cadence: schedule.cadence,
    timezone: schedule.timezone,
    inputs: schedule.inputs,
    policies: schedule.policies,
    enabled: schedule.enabled,
    pausedUntil: schedule.pausedUntil?.toISOString() ?? null,
    pauseNote: schedule.pauseNote,
    nextFireAt: schedule.nextFireAt?.toISOString() ?? null,
    createdAt: schedule.createdAt.toISOString(),
  };
}

function instant(field: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value);
  if (Number.isNaN(date.getTime()) || !/^\d{4}-\d{2}-\d{2}T/.test(value)) {
    throw new ValidationError(field, `must be an ISO 8601 instant like 2026-03-01T09:00:00Z, not '${value}'`);
  }
  return date;
}

function runDetailsJson(details: runs.RunDetails) {
  return {
    ...runJson(details.run),
    projectSlug: details.projectSlug,
    versionNumber: details.versionNumber,
    cells: details.cells.map((c) => ({ ...c, startedAt: c.startedAt?.toISOString() ?? null })),
  };
}

/**
 * A stored snapshot as is: gzip bytes when the client accepts them (nearly always), with a strong
 * ETag so a client that has it gets 304 without a body.
 */
function sendSnapshot(
  c: Context,
  snapshot: StoredSnapshot,
  cacheControl: string,
  headers: Record<string, string> = {},
) {
  const common: Record<string, string> = {
    ETag: snapshot.etag,
    'Cache-Control': cacheControl,
    Vary: 'Accept-Encoding',
    ...headers,
  };
  const match = c.req.header('if-none-match');
  if (match?.split(',').some((t) => t.trim() === snapshot.etag)) {
    return new Response(null, { status: 304, headers: common });
  }
  const gzip = /\bgzip\b/.test(c.req.header('accept-encoding') ?? '');
  return new Response(gzip ? snapshot.gzip : snapshot.body, {
    status: 200,
    headers: {
      ...common,
      'Content-Type': 'application/json; charset=utf-8',
      ...(gzip ? { 'Content-Encoding': 'gzip' } : {}),
    },
  });
}

function decodeFiles(files: Record<string, string> | undefined): Map<string, Buffer> | undefined {
  if (!files) return undefined;
  const map = new Map<string, Buffer>();
  for (const [path, base64] of Object.entries(files)) {
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(base64))
      throw new ValidationError(`files.${path}`, 'must be base64-encoded');
    map.set(path, Buffer.from(base64, 'base64'));
  }
  return map;
}

/** Immutable snapshots (a finished run's) by run id, so the cached app open does not re-read them. */
class SnapshotCache {
  readonly #entries = new Map<string, StoredSnapshot>();
  readonly #max: number;
  constructor(max = 64) {
    this.#max = max;
  }
  get(runId: string): StoredSnapshot | undefined {
    return this.#entries.get(runId);
  }
  set(runId: string, snapshot: StoredSnapshot): void {
    this.#entries.set(runId, snapshot);
    if (this.#entries.size > this.#max) this.#entries.delete(this.#entries.keys().next().value!);
  }
}

/**
 * Short-lived caches for the hot path of opening an app, which every viewer hits:
 * - callers by credential hash, for `authTtlMs` (so a revoked token, or a session ended on another
 *   node, may work that much longer; a credential's own expiry is checked on every hit);
 * - each app's default-state pointer, dropped at once on an `app_state` wake-up (which PostgreSQL
 *   delivers to every node) and after `stateTtlMs` in any case.
 * Both are only caches: every node can rebuild them from the store.
 */
class HotPathCache {
  readonly #callers = new Map<string, { caller: workspaces.Caller; until: number }>();
  readonly #states = new Map<string, { runId: string; projectId: string; until: number }>();
  readonly authTtlMs: number;
  readonly stateTtlMs: number;
  constructor(authTtlMs: number, stateTtlMs: number) {
    this.authTtlMs = authTtlMs;
    this.stateTtlMs = stateTtlMs;
  }
  async caller(
    credential: string | null,
    from: 'bearer' | 'cookie',
    load: (credential: string | null, from: 'bearer' | 'cookie') => Promise<workspaces.Caller>,
    clock: () => Date,
  ): Promise<workspaces.Caller> {
    if (!credential || this.authTtlMs <= 0) return load(credential, from);
    const key = `${from}:${workspaces.hashToken(credential)}`;
    const hit = this.#callers.get(key);
    const now = Date.now();
    if (hit && hit.until > now) {
      const { expiresAt, recheckAt } = hit.caller;
      const at = clock();
      if (!(expiresAt && expiresAt <= at) && !(recheckAt && recheckAt <= at)) return hit.caller;
    }
    const caller = await load(credential, from);
    if (this.#callers.size > 10_000) this.#callers.clear();
    this.#callers.set(key, { caller, until: now + this.authTtlMs });
    return caller;
  }
  /** Drops a credential at once (sign-out on this node). */
  forget(credential: string): void {
    const hash = workspaces.hashToken(credential);
    this.#callers.delete(`bearer:${hash}`);
    this.#callers.delete(`cookie:${hash}`);
  }
  state(key: string): { runId: string; projectId: string } | null {
    const hit = this.#states.get(key);
    return hit && hit.until > Date.now() ? hit : null;
  }
  setState(key: string, value: { runId: string; projectId: string }): void {
    if (this.stateTtlMs <= 0) return;
    if (this.#states.size > 10_000) this.#states.clear();
    this.#states.set(key, { ...value, until: Date.now() + this.stateTtlMs });
  }
  invalidate(projectId: string): void {
    if (projectId === RESYNC) {
      this.#states.clear();
      return;
    }
    for (const [key, value] of this.#states) if (value.projectId === projectId) this.#states.delete(key);
  }
}

export function createHttpApp(options: HttpOptions): HttpApp {
  const { ctx } = options;
  const version = options.version ?? '0.1.0';
  const snapshots = new SnapshotCache();
  const hot = new HotPathCache(options.authCacheMs ?? 5000, options.stateCacheMs ?? 10_000);
  ctx.wakeups.subscribe('app_state', (projectId) => hot.invalidate(projectId));
  const authenticateCaller = (credential: string | null, from: 'bearer' | 'cookie') =>
    hot.caller(credential, from, (value, f) => workspaces.authenticateCaller(ctx, value, f), ctx.now);
  /** An API token only (for /metrics). */
  const authenticateToken = async (token: string | null) => {
    const caller = await authenticateCaller(token, 'bearer');
    if (caller.via !== 'token') throw new ForbiddenError('this endpoint takes an API token');
    return caller.principal;
  };
  const originOptions: OriginOptions = {
    trustProxy: options.trustProxy ?? false,
    publicUrl: options.publicUrl ?? null,
  };
  /** The session cookie: HttpOnly, SameSite=Lax, Secure when the request came over https. */
  const setSessionCookie = (c: Context, session: workspaces.StartedSession) => {
    setCookie(c, SESSION_COOKIE, session.secret, {
      httpOnly: true,
      sameSite: 'Lax',
      path: '/',
      secure: isHttps(c, originOptions),
      maxAge: Math.max(0, Math.floor((session.expiresAt.getTime() - ctx.now().getTime()) / 1000)),
    });
  };
  const loadSnapshot = async (runId: string, load: () => Promise<StoredSnapshot | null>) => {
    const cached = snapshots.get(runId);
    if (cached) return cached;
    const stored = await load();
    if (stored) snapshots.set(runId, stored);
    return stored;
  };
  const latestOf = (project: Project) => projects.currentVersion(ctx, project);

  const table: AnyRoute[] = [
    route({
      method: 'get',
      path: '/api/health',
      summary: 'Liveness',
      tag: 'system',
      auth: false,
      responses: { 200: { description: 'The server is up', schema: S.Health } },
      handler: async ({ c }) => c.json({ ok: true, version }),
    }),
    route({
      method: 'get',
      path: '/api/me',
      summary: 'The caller',
      tag: 'system',
      responses: { 200: { description: 'Who the token belongs to', schema: S.Me } },
      handler: async ({ c, principal }) => c.json(principal),
    }),
    route({
      method: 'post',
      path: '/api/tokens',
      summary: 'Create an API token for the caller',
      tag: 'system',
      body: S.CreateTokenBody,
      responses: { 201: { description: 'The token, shown once', schema: S.TokenCreated } },
      handler: async ({ c, principal, body }) =>
        c.json({ token: await workspaces.createApiToken(ctx, principal, body.name) }, 201),
    }),
    route({
      method: 'post',
      path: '/api/auth/login-codes',
      summary:
        'Mint a one-time login link for the caller (admins, with an API token): it signs a browser in once, within 10 minutes',
      tag: 'auth',
      bearerOnly: true,
      body: z
        .object({
          next: z.string().max(2048).optional().describe('Where the browser goes after signing in (a path)'),
        })
        .strict(),
      responses: {
        201: {
          description: 'The code and the link that uses it',
          schema: z.object({ code: z.string(), path: z.string(), url: z.string(), expiresAt: z.string() }),
        },
      },
      handler: async ({ c, principal, body }) => {
        assertAdmin(principal, 'login links (mint them with an admin API token)');
        const origin = options.publicUrl
          ? new URL(options.publicUrl).origin
          : requestOrigin(c, originOptions);
        const next = safeNext(body.next, origin);
        const { code, expiresAt } = await workspaces.createLoginCode(ctx, principal.userId);
        const path = `/login?code=${encodeURIComponent(code)}&next=${encodeURIComponent(next)}`;
        return c.json({ code, path, url: `${origin}${path}`, expiresAt: expiresAt.toISOString() }, 201);
      },
    }),
    route({
      method: 'post',
      path: '/api/auth/session',
      summary:
        'Start a browser session for the holder of an API token (sent in Authorization, never in a URL); sets the session cookie',
      tag: 'auth',
      bearerOnly: true,
      responses: {
        201: {
          description: 'Signed in; the session cookie is set',
          schema: z.object({ user: S.Me, expiresAt: z.string() }),
        },
      },
      handler: async ({ c, principal, caller }) => {
        if (caller?.via !== 'token') throw new ForbiddenError('a browser session starts from an API token');
        const session = await workspaces.sessionForPrincipal(ctx, principal);
        setSessionCookie(c, session);
        c.header('Cache-Control', 'no-store');
        return c.json({ user: session.principal, expiresAt: session.expiresAt.toISOString() }, 201);
      },
    }),
    route({
      method: 'post',
      path: '/api/auth/logout',
      summary: "End the browser's session and clear its cookie (a no-op without one)",
      tag: 'auth',
      auth: false,
      responses: { 204: { description: 'Signed out' } },
      handler: async ({ c }) => {
        const secret = getCookie(c, SESSION_COOKIE);
        if (secret) {
          // Forced sign-out is a CSRF too: only this site's pages may end the session.
          const check = sameOriginRequest(c, originOptions);
          if (!check.ok)
            throw new ForbiddenError(`sign-out must come from this site's own pages, and ${check.why}`);
          hot.forget(secret);
          if (!secret.startsWith(workspaces.TICKET_PREFIX)) await workspaces.endSession(ctx, secret);
        }
        deleteCookie(c, SESSION_COOKIE, { path: '/', secure: isHttps(c, originOptions) });
        return c.body(null, 204);
      },
    }),
    route({
      method: 'get',
      path: '/api/projects',
      summary: 'List projects',
      tag: 'projects',
      responses: { 200: { description: 'Projects of the workspace', schema: S.Project.array() } },
      handler: async ({ c, principal }) => {
        const list = await projects.listProjects(ctx, principal);
        return c.json(await Promise.all(list.map(async (p) => projectJson(p, await latestOf(p)))));
      },
    }),
    route({
      method: 'post',
      path: '/api/projects',
      summary: 'Create a project from a notebook',
      tag: 'projects',
      body: S.CreateProjectBody,
      responses: { 201: { description: 'Created', schema: S.ProjectWithDraft } },
      handler: async ({ c, principal, body }) => {
        const project = await projects.createProject(ctx, principal, body);
        return c.json({ ...projectJson(project, null), draftSource: project.draftSource }, 201);
      },
    }),
    route({
      method: 'get',
      path: '/api/projects/:project',
      summary: 'Get a project with its draft',
      tag: 'projects',
      params: S.ProjectParams,
      responses: { 200: { description: 'The project', schema: S.ProjectWithDraft } },
      handler: async ({ c, principal, params }) => {
        const project = await projects.getProject(ctx, principal, params.project);
        return c.json({ ...projectJson(project, await latestOf(project)), draftSource: project.draftSource });
      },
    }),
    route({
      method: 'put',
      path: '/api/projects/:project/visibility',
      summary:
        'Who sees the project and its app: workspace (every member) or restricted (admins, its creator, grantees)',
      tag: 'projects',
      params: S.ProjectParams,
      body: z.object({ visibility: z.string() }).strict(),
      responses: { 200: { description: 'The project', schema: S.Project } },
      handler: async ({ c, principal, params, body }) => {
        const project = await projects.setVisibility(ctx, principal, params.project, body.visibility);
        return c.json(projectJson(project, await latestOf(project)));
      },
    }),
    route({
      method: 'put',
      path: '/api/projects/:project/draft',
      summary: "Replace the project's draft",
      tag: 'projects',
      params: S.ProjectParams,
      body: S.UpdateDraftBody,
      responses: { 200: { description: 'The updated project', schema: S.ProjectWithDraft } },
      handler: async ({ c, principal, params, body }) => {
        const project = await projects.updateDraft(ctx, principal, params.project, body.source);
        return c.json({ ...projectJson(project, await latestOf(project)), draftSource: project.draftSource });
      },
    }),
    route({
      method: 'post',
      path: '/api/projects/:project/publish',
      summary: 'Publish the draft as a version and start its publish run',
      tag: 'projects',
      params: S.ProjectParams,
      body: S.PublishBody,
      responses: {
        201: { description: 'A new version and its publish run', schema: S.PublishResult },
        200: { description: 'This content was already published', schema: S.PublishResult },
      },
      handler: async ({ c, principal, params, body }) => {
        const result = await projects.publish(ctx, principal, params.project, {
          files: decodeFiles(body.files),
          message: body.message,
        });
        return c.json(
          {
            version: versionJson(result.version),
            created: result.created,
            reused: result.reused,
            madeCurrent: result.madeCurrent,
            defaultRunId: result.defaultRunId,
            run: result.run ? runJson(result.run) : null,
          },
          result.created ? 201 : 200,
        );
      },
    }),
    route({
      method: 'get',
      path: '/api/projects/:project/versions',
      summary: 'List versions, newest first, with who published each, its publish run and which is current',
      tag: 'projects',
      params: S.ProjectParams,
      responses: { 200: { description: 'Versions', schema: S.VersionListing.array() } },
      handler: async ({ c, principal, params }) =>
        c.json((await projects.listVersions(ctx, principal, params.project)).map(versionListingJson)),
    }),
    route({
      method: 'post',
      path: '/api/projects/:project/versions/:version/make-current',
      summary:
        "Roll back (or forward): make a version current. Its last good run's snapshot becomes the app's default state, or a publish run is queued",
      tag: 'projects',
      params: S.VersionParams,
      responses: { 200: { description: 'The version is current', schema: S.MakeCurrentResult } },
      handler: async ({ c, principal, params }) => {
        const result = await projects.makeCurrent(ctx, principal, params.project, params.version);
        return c.json({
          version: versionJson(result.version),
          madeCurrent: result.madeCurrent,
          defaultRunId: result.defaultRunId,
          run: result.run ? runJson(result.run) : null,
        });
      },
    }),
    route({
      method: 'get',
      path: '/api/projects/:project/versions/:version',
      summary: 'Get a version with its notebook source',
      tag: 'projects',
      params: S.VersionParams,
      responses: { 200: { description: 'The version', schema: S.VersionWithSource } },
      handler: async ({ c, principal, params }) => {
        const found = await projects.getVersion(ctx, principal, params.project, params.version);
        const files = await runs.loadVersionFiles(ctx, found.id);
        return c.json({ ...versionJson(found), source: found.source, files: [...files.keys()].sort() });
      },
    }),
    route({
      method: 'get',
      path: '/api/projects/:project/app',
      summary:
        "Open the app: its cached default state, or a fresh run when 'show results from the last run' is off",
      tag: 'apps',
      params: S.ProjectParams,
      responses: {
        200: {
          description: 'The default state: the snapshot of the last publish or scheduled run (gzip, ETag)',
        },
        202: { description: 'A private run in context app was started', schema: S.AppOpenStarted },
        304: { description: 'Not modified (If-None-Match)' },
      },
      handler: async ({ c, principal, params }) => {
        const key = `${principal.workspaceId}/${params.project}`;
        const cached = hot.state(key);
        if (cached) {
          const stored = snapshots.get(cached.runId);
          if (stored) return sendSnapshot(c, stored, 'private, no-cache', { 'X-Almanac-Run': cached.runId });
        }
        const state = await runs.openApp(ctx, principal, params.project);
        switch (state.kind) {
          case 'snapshot': {
            const stored = await loadSnapshot(state.runId, () => runs.defaultStateSnapshot(ctx, state.runId));
            if (!stored)
              throw new AlmanacError('not_found', 'the default state was pruned; publish again', 404);
            // Only apps every member sees are cached for the workspace; a restricted one is checked each time.
            if (state.project.visibility === 'workspace') {
              hot.setState(key, { runId: state.runId, projectId: state.project.id });
            }
            return sendSnapshot(c, stored, 'private, no-cache', { 'X-Almanac-Run': state.runId });
          }
          case 'run':
            return c.json({ kind: 'run', run: runJson(state.run) }, 202);
          case 'empty':
            throw new AlmanacError(
              'not_found',
              `app '${state.project.slug}' has no default state yet: ${state.reason}`,
              404,
            );
        }
      },
    }),
    route({
      method: 'get',
      path: '/api/projects/:project/app/manifest',
      summary: "What an app page needs besides the snapshot: the published version's title and inputs",
      tag: 'apps',
      ticket: 'project',
      params: S.ProjectParams,
      responses: { 200: { description: 'The manifest', schema: S.AppManifest } },
      handler: async ({ c, principal, params }) => {
        const project = await projects.getProject(ctx, principal, params.project);
        const latest = await latestOf(project);
        const settings = await projects.getAppSettings(ctx, principal, project.id);
        const notebook = latest ? await runs.notebookOfVersion(latest.id, latest.source) : null;
        return c.json({
          project: project.slug,
          title: notebook?.title ?? project.title,
          description: notebook?.description ?? '',
          version: latest?.number ?? null,
          inputs: notebook?.inputs ?? [],
          hideCode: notebook?.app.hideCode ?? true,
          showLastRun: settings.showLastRun,
          defaultRunId: settings.defaultRunId,
        });
      },
    }),
    route({
      method: 'get',
      path: '/api/projects/:project/app/settings',
      summary: 'App settings',
      tag: 'apps',
      params: S.ProjectParams,
      responses: { 200: { description: 'Settings', schema: S.AppSettings } },
      handler: async ({ c, principal, params }) => {
        const { projectId: _, ...settings } = await projects.getAppSettings(ctx, principal, params.project);
        return c.json(settings);
      },
    }),
    route({
      method: 'patch',
      path: '/api/projects/:project/app/settings',
      summary: "Change app settings ('show results from the last run', retention)",
      tag: 'apps',
      params: S.ProjectParams,
      body: S.UpdateAppSettingsBody,
      responses: { 200: { description: 'Settings', schema: S.AppSettings } },
      handler: async ({ c, principal, params, body }) => {
        const { projectId: _, ...settings } = await projects.updateAppSettings(
          ctx,
          principal,
          params.project,
          body,
        );
        return c.json(settings);
      },
    }),
    route({
      method: 'post',
      path: '/api/projects/:project/runs',
      summary: 'Start a run: API-triggered (context api-triggered), or a private re-run in context app',
      tag: 'runs',
      params: S.ProjectParams,
      body: S.CreateRunBody,
      responses: { 201: { description: 'The queued run', schema: S.Run } },
      handler: async ({ c, principal, params, body }) => {
        const run = await runs.enqueueRun(ctx, principal, params.project, {
          inputs: body.inputs,
          version: body.version,
          trigger: body.private ? 'manual' : 'api',
          context: body.private ? 'app' : 'api-triggered',
          private: body.private ?? false,
          notifications: body.notifications,
        });
        return c.json(runJson(run), 201);
      },
    }),
    route({
      method: 'post',
      path: '/api/projects/:project/runs/batch',
      summary:
        'Queue many API-triggered runs at once (up to 1,000, one statement and one wake-up); all or none',
      tag: 'runs',
      params: S.ProjectParams,
      body: S.CreateRunsBody,
      responses: {
        201: { description: 'The queued runs, in request order', schema: z.object({ runs: z.array(S.Run) }) },
      },
      handler: async ({ c, principal, params, body }) => {
        const queued = await runs.enqueueRuns(
          ctx,
          principal,
          params.project,
          {
            version: body.version,
            trigger: 'api',
            context: 'api-triggered',
            notifications: body.notifications,
          },
          body.runs.map((r) => r.inputs),
        );
        return c.json({ runs: queued.map(runJson) }, 201);
      },
    }),
    route({
      method: 'get',
      path: '/api/runs',
      summary: 'The run log: list runs, newest first, with filters and keyset pagination',
      tag: 'runs',
      ticket: 'project',
      query: S.ListRunsQuery,
      responses: { 200: { description: 'A page of runs', schema: S.RunPage } },
      handler: async ({ c, principal, query }) => {
        const page = await runs.listRuns(ctx, principal, query);
        return c.json({ runs: page.runs.map(runSummaryJson), nextCursor: page.nextCursor });
      },
    }),
    route({
      method: 'get',
      path: '/api/runs/:run',
      summary: 'A run with its per-cell progress',
      tag: 'runs',
      ticket: 'run',
      params: S.RunParams,
      responses: { 200: { description: 'The run', schema: S.RunWithCells } },
      handler: async ({ c, principal, params }) =>
        c.json(runDetailsJson(await runs.getRun(ctx, principal, params.run))),
    }),
    route({
      method: 'post',
      path: '/api/runs/:run/cancel',
      summary: "Cancel a queued or running run (a running run's process is killed)",
      tag: 'runs',
      params: S.RunParams,
      responses: { 200: { description: 'The run after the request', schema: S.Run } },
      handler: async ({ c, principal, params }) =>
        c.json(runJson(await runs.cancelRun(ctx, principal, params.run))),
    }),
    route({
      method: 'get',
      path: '/api/runs/:run/snapshot',
      summary: "A finished run's snapshot: the app as it was at that run",
      tag: 'runs',
      ticket: 'run',
      params: S.RunParams,
      responses: { 200: { description: 'The snapshot (gzip, ETag)' }, 304: { description: 'Not modified' } },
      handler: async ({ c, principal, params }) => {
        await runs.getRun(ctx, principal, params.run);
        const stored = await loadSnapshot(params.run, () => runs.getSnapshot(ctx, principal, params.run));
        return sendSnapshot(c, stored!, 'private, max-age=31536000, immutable');
      },
    }),
    route({
      method: 'get',
      path: '/api/runs/:run/events',
      summary: 'Live progress as Server-Sent Events: a `run` event per change, then `end`',
      tag: 'runs',
      ticket: 'run',
      params: S.RunParams,
      responses: {
        200: {
          description: 'text/event-stream of RunWithCells',
          contentType: 'text/event-stream',
          schema: S.RunWithCells,
        },
      },
      handler: async ({ c, principal, params }) => {
        const first = await runs.getRun(ctx, principal, params.run);
        return streamSSE(c, async (stream) => {
          let pending = true;
          let wake: (() => void) | null = null;
          const off = ctx.wakeups.subscribe('run_progress', (id) => {
            if (id !== params.run) return;
            pending = true;
            wake?.();
          });
          stream.onAbort(() => {
            off();
            wake?.();
          });
          try {
            let details = first;
            let id = 0;
            while (!stream.aborted) {
              if (pending) {
                pending = false;
                if (id > 0) details = await runs.getRun(ctx, principal, params.run);
                await stream.writeSSE({
                  event: 'run',
                  id: String(id++),
                  data: JSON.stringify(runDetailsJson(details)),
                });
                if (isFinal(details.run.status)) {
                  await stream.writeSSE({ event: 'end', data: details.run.status });
                  break;
                }
              }
              // Wait for the next change; a keep-alive comment every 15 s holds proxies open.
              await new Promise<void>((resolve) => {
                wake = resolve;
                setTimeout(resolve, 15_000).unref();
              });
              wake = null;
              if (!pending && !stream.aborted) await stream.write(': keep-alive\n\n');
            }
          } finally {
            off();
          }
        });
      },
    }),
    route({
      method: 'post',
      path: '/api/projects/:project/schedules',
      summary: 'Create a schedule: a cadence in an IANA timezone, inputs and policies',
      tag: 'schedules',
      params: S.ProjectParams,
      body: S.CreateScheduleBody,
      responses: { 201: { description: 'Created', schema: S.Schedule } },
      handler: async ({ c, principal, params, body }) =>
        c.json(scheduleJson(await schedules.createSchedule(ctx, principal, params.project, body)), 201),
    }),
    route({
      method: 'get',
      path: '/api/projects/:project/schedules',
      summary: "A project's schedules",
      tag: 'schedules',
      params: S.ProjectParams,
      responses: { 200: { description: 'Schedules', schema: S.Schedule.array() } },
      handler: async ({ c, principal, params }) =>
        c.json((await schedules.listSchedules(ctx, principal, params.project)).map(scheduleJson)),
    }),
    route({
      method: 'post',
      path: '/api/schedules/preview',
      summary: 'The next fire times of a cadence, in local and UTC time, marking DST moves',
      tag: 'schedules',
      body: S.PreviewBody,
      responses: { 200: { description: 'Fire times', schema: S.PreviewEntry.array() } },
      handler: async ({ c, body }) => {
        validateTimeZone(body.timezone);
        return c.json(
          schedules.preview(
            body.cadence,
            body.timezone,
            body.count ?? 10,
            instant('from', body.from) ?? ctx.now(),
          ),
        );
      },
    }),
    route({
      method: 'get',
      path: '/api/schedules/:schedule',
      summary:
        'A schedule with its health: last run, next fire time, skipped and missed counts, overdue flag',
      tag: 'schedules',
      params: S.ScheduleParams,
      responses: { 200: { description: 'The schedule', schema: S.ScheduleWithHealth } },
      handler: async ({ c, principal, params }) => {
        const schedule = await schedules.getSchedule(ctx, principal, params.schedule);
        const health = await schedules.health(ctx, schedule);
        return c.json({
          ...scheduleJson(schedule),
          health: {
            ...health,
            lastRun: health.lastRun ? runJson(health.lastRun) : null,
            nextFireAt: health.nextFireAt?.toISOString() ?? null,
          },
        });
      },
    }),
    route({
      method: 'patch',
      path: '/api/schedules/:schedule',
      summary: 'Change a schedule',
      tag: 'schedules',
      params: S.ScheduleParams,
      body: S.UpdateScheduleBody,
      responses: { 200: { description: 'The schedule', schema: S.Schedule } },
      handler: async ({ c, principal, params, body }) =>
        c.json(scheduleJson(await schedules.updateSchedule(ctx, principal, params.schedule, body))),
    }),
    route({
      method: 'delete',
      path: '/api/schedules/:schedule',
      summary: 'Delete a schedule (its runs stay in the run log)',
      tag: 'schedules',
      params: S.ScheduleParams,
      responses: { 204: { description: 'Deleted' } },
      handler: async ({ c, principal, params }) => {
        await schedules.deleteSchedule(ctx, principal, params.schedule);
        return c.body(null, 204);
      },
    }),
    route({
      method: 'post',
      path: '/api/schedules/:schedule/pause',
      summary: 'Pause, optionally until an instant (it resumes by itself), with a note',
      tag: 'schedules',
      params: S.ScheduleParams,
      body: S.PauseBody,
      responses: { 200: { description: 'The schedule', schema: S.Schedule } },
      handler: async ({ c, principal, params, body }) =>
        c.json(
          scheduleJson(
            await schedules.pauseSchedule(ctx, principal, params.schedule, {
              until: instant('until', body.until) ?? null,
              note: body.note ?? null,
            }),
          ),
        ),
    }),
    route({
      method: 'post',
      path: '/api/schedules/:schedule/resume',
      summary: 'Resume a paused schedule from now',
      tag: 'schedules',
      params: S.ScheduleParams,
      responses: { 200: { description: 'The schedule', schema: S.Schedule } },
      handler: async ({ c, principal, params }) =>
        c.json(scheduleJson(await schedules.resumeSchedule(ctx, principal, params.schedule))),
    }),
    route({
      method: 'post',
      path: '/api/schedules/:schedule/run',
      summary:
        "Run now: a scheduled run started early (trigger schedule, context scheduled, the schedule's inputs); it refreshes the default state",
      tag: 'schedules',
      params: S.ScheduleParams,
      responses: { 201: { description: 'The queued run', schema: S.Run } },
      handler: async ({ c, principal, params }) =>
        c.json(runJson(await schedules.runNow(ctx, principal, params.schedule)), 201),
    }),
    route({
      method: 'post',
      path: '/api/schedules/:schedule/backfill',
      summary: 'Create runs for the fire times in (from, to], each with its own almanac.scheduledFor',
      tag: 'schedules',
      params: S.ScheduleParams,
      body: S.BackfillBody,
      responses: {
        201: {
          description: 'The runs created',
          schema: z.object({ created: S.Run.array(), existing: z.number().int() }),
        },
      },
      handler: async ({ c, principal, params, body }) => {
        const result = await schedules.backfill(ctx, principal, params.schedule, {
          from: instant('from', body.from)!,
          to: instant('to', body.to)!,
        });
        return c.json({ created: result.created.map(runJson), existing: result.existing }, 201);
      },
    }),
    route({
      method: 'get',
      path: '/api/schedules/:schedule/preview',
      summary: "A schedule's next fire times, in local and UTC time, marking DST moves",
      tag: 'schedules',
      params: S.ScheduleParams,
      query: S.PreviewQuery,
      responses: { 200: { description: 'Fire times', schema: S.PreviewEntry.array() } },
      handler: async ({ c, principal, params, query }) => {
        const schedule = await schedules.getSchedule(ctx, principal, params.schedule);
        return c.json(
          schedules.preview(
            schedule.cadence,
            schedule.timezone,
            query.count ?? 10,
            instant('from', query.from) ?? ctx.now(),
          ),
        );
      },
    }),
    route({
      method: 'get',
      path: '/api/workspace/settings',
      summary: "The workspace's settings (network access for cells)",
      tag: 'workspace',
      responses: { 200: { description: 'Settings', schema: S.WorkspaceSettings } },
      handler: async ({ c, principal }) => c.json(await workspaces.getSettings(ctx, principal)),
    }),
    route({
      method: 'put',
      path: '/api/workspace/settings',
      summary: "Change the workspace's settings (admins)",
      tag: 'workspace',
      body: S.UpdateWorkspaceSettingsBody,
      responses: { 200: { description: 'Settings', schema: S.WorkspaceSettings } },
      handler: async ({ c, principal, body }) =>
        c.json(await workspaces.updateSettings(ctx, principal, body)),
    }),
    route({
      method: 'get',
      path: '/api/connections',
      summary: 'List connections (never their credentials)',
      tag: 'connections',
      responses: { 200: { description: 'Connections', schema: S.Connection.array() } },
      handler: async ({ c, principal }) =>
        c.json(
          (await workspaces.listConnections(ctx, principal)).map((x) => ({
            ...x,
            createdAt: x.createdAt.toISOString(),
          })),
        ),
    }),
    route({
      method: 'post',
      path: '/api/connections',
      summary: 'Add a PostgreSQL connection; its URL is encrypted at rest',
      tag: 'connections',
      body: S.CreateConnectionBody,
      responses: { 201: { description: 'Created', schema: S.Connection } },
      handler: async ({ c, principal, body }) => {
        const created = await workspaces.createConnection(ctx, principal, body);
        return c.json({ ...created, createdAt: created.createdAt.toISOString() }, 201);
      },
    }),
  ];

  const app = new Hono();
  // First, so every response gets the headers: errors, 404s, event streams and files too.
  app.use('*', securityHeaders());
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const maxPublish = options.maxPublishBytes ?? DEFAULT_MAX_PUBLISH_BYTES;
  const tooLarge = (limit: number, what: string, option: string) => () => {
    throw new PayloadTooLargeError(
      limit,
      `the request body is larger than the ${formatBytes(limit)} limit for ${what}; send less (split the request), or raise ${option}`,
    );
  };
  const limitBody = bodyLimit({
    maxSize: maxBody,
    onError: tooLarge(maxBody, 'a request', 'ALMANAC_MAX_BODY_MB'),
  });
  const limitPublish = bodyLimit({
    maxSize: maxPublish,
    onError: tooLarge(maxPublish, 'a publish (notebook and files)', 'ALMANAC_MAX_PUBLISH_MB'),
  });
  app.use('*', (c, next) => (PUBLISH_PATH.test(c.req.path) ? limitPublish(c, next) : limitBody(c, next)));
  app.onError((error, c) => {
    if (error instanceof AlmanacError) {
      const body: Record<string, unknown> = { code: error.code, message: error.message };
      if (error instanceof ValidationError) body['field'] = error.field;
      if ('problems' in error) body['problems'] = (error as { problems: unknown }).problems;
      if (error instanceof PayloadTooLargeError) body['limit'] = error.limit;
      if ('header' in error) body['header'] = (error as { header: unknown }).header;
      return c.json({ error: body }, error.status as 400);
    }
    const transient = transientReason(error);
    if (transient) {
      // The store dropped a connection or conflicted: nothing was committed by this request, and the
      // same request can pass in a moment.
      c.header('Retry-After', '1');
      return c.json(
        {
          error: {
            code: 'unavailable',
            message: `the store is briefly unavailable (${transient}); try again`,
          },
        },
        503,
      );
    }
    options.onError?.(error, c);
    return c.json(
      { error: { code: 'internal', message: 'an unexpected error occurred; see the server log' } },
      500,
    );
  });

  table.push(
    ...notificationRoutes({
      ctx,
      slack: options.notify?.slack ?? null,
      outbox: options.notify?.outbox ?? null,
    }),
  );
  if (options.ops) mountOps(app, { ...options.ops, ctx, authenticate: authenticateToken });
  const document = openApiDocument(table, { title: 'Almanac API', version });
  app.get('/api/openapi.json', (c) => c.json(document));
  mount(app, table, { authenticate: authenticateCaller, origin: originOptions });
  app.all('/api/*', (c) =>
    c.json(
      {
        error: {
          code: 'not_found',
          message: `no API route ${c.req.method} ${c.req.path}; see /api/openapi.json`,
        },
      },
      404,
    ),
  );

  // Browser sign-in: /login?code=almc_…&next=/apps/sales exchanges a one-time login code for a
  // session cookie and redirects to `next` when it is a path on this origin (else to /).
  app.get('/login', async (c) => {
    c.header('Cache-Control', 'no-store');
    const code = c.req.query('code');
    if (code === undefined && c.req.query('token') !== undefined) {
      throw new ValidationError(
        'token',
        'login links no longer carry API tokens; get a one-time link with `almanac login-link`, or POST /api/auth/session with the token in the Authorization header',
      );
    }
    const session = await workspaces.signInWithCode(ctx, code);
    setSessionCookie(c, session);
    return c.redirect(safeNext(c.req.query('next'), requestOrigin(c, originOptions)), 302);
  });

  if (options.webDir && existsSync(join(options.webDir, 'index.html'))) mountWeb(app, options.webDir);
  else {
    app.get('*', (c) =>
      c.text('The web app is not built. Run `npm run build:web` (npm start does it for you).', 503),
    );
  }
  return { app, routes: table };
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

/** Built assets have content hashes in their names: cached for a year. Other paths get index.html. */
function mountWeb(app: Hono, webDir: string): void {
  const index = readFileSync(join(webDir, 'index.html'));
  app.get('*', (c) => {
    let decoded: string;
    try {
      decoded = decodeURIComponent(c.req.path);
    } catch {
      return c.text('not found', 404); // malformed percent-encoding names no file
    }
    const path = normalize(decoded).replace(/^(\.\.[/\\])+/, '');
    if (path.startsWith('/assets/')) {
      const file = join(webDir, path);
      if (file.startsWith(webDir) && existsSync(file) && statSync(file).isFile()) {
        return new Response(readFileSync(file), {
          headers: {
            'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
            'Cache-Control': 'public, max-age=31536000, immutable',
          },
        });
      }
      return c.text('not found', 404);
    }
    return new Response(index, { headers: { 'Content-Type': TYPES['.html']!, 'Cache-Control': 'no-cache' } });
  });
}

function formatBytes(bytes: number): string {
  return bytes % 1048576 === 0 ? `${bytes / 1048576} MiB` : `${Math.round(bytes / 1024)} KiB`;
}
