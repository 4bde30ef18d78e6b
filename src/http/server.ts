/**
 * The HTTP server (ARCHITECTURE.md, decision 7): the JSON API under /api (documented at
 * /api/openapi.json), live run progress over Server-Sent Events, browser sign-in (a one-time login
 * code exchanged for a server-side session), and the web app's built files. Every response carries the
 * security headers (`security-headers.ts`), every request body has a size limit, and one error handler
 * (`errors.ts`, shared with the operations endpoints) turns every error into
 * `{ error: { code, message, field? } }` with its status.
 *
 * This module composes; the routes live one module per resource in `routes/`, each built with the
 * route table of `routes.ts`, which validates requests and writes the OpenAPI document from the same
 * zod schemas.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, normalize } from 'node:path';
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { setCookie } from 'hono/cookie';
import { ForbiddenError, PayloadTooLargeError, ValidationError } from '../domain/errors.ts';
import { authorizeAction } from '../services/authorize.ts';
import * as projects from '../services/project-service.ts';
import type { ServiceContext } from '../services/service-context.ts';
import * as workspaces from '../services/workspace-service.ts';
import { handleErrors, notFoundResponse } from './errors.ts';
import { HotPathCache } from './hot-path-cache.ts';
import { mountOps, type OpsDeps } from './ops.ts';
import type { RouteDeps } from './route-deps.ts';
import { type AccountMailChannel, accountRoutes } from './routes/accounts.ts';
import { appRoutes } from './routes/apps.ts';
import { auditRoutes } from './routes/audit.ts';
import { authRoutes } from './routes/auth.ts';
import { connectionRoutes } from './routes/connections.ts';
import { type NotificationHttpDeps, notificationRoutes } from './routes/notifications.ts';
import { type OutboxDeps, outboxRoutes } from './routes/outbox.ts';
import { planRoutes } from './routes/plan.ts';
import { projectRoutes } from './routes/projects.ts';
import { runRoutes } from './routes/runs.ts';
import { scheduleRoutes } from './routes/schedules.ts';
import { systemRoutes } from './routes/system.ts';
import { tokenRoutes } from './routes/tokens.ts';
import { versionRoutes } from './routes/versions.ts';
import { workspaceRoutes } from './routes/workspace.ts';
import { type AnyRoute, mount, openApiDocument, SESSION_COOKIE } from './routes.ts';
import { isHttps, type OriginOptions, requestOrigin, safeNext, securityHeaders } from './security-headers.ts';
import { SnapshotCache } from './snapshots.ts';

/** The package's version, from package.json (read once): /api/health and the OpenAPI document report it. */
export const PACKAGE_VERSION: string = JSON.parse(
  readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
).version;

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
  /** The version /api/health and the OpenAPI document report. @default PACKAGE_VERSION */
  version?: string;
  /** How long a token's principal is cached; 0 turns it off. @default 5000 */
  authCacheMs?: number;
  /** How long an app's default-state pointer is cached (it is also dropped on every change). @default 10000 */
  stateCacheMs?: number;
  /** Called for unexpected errors (5xx); never with secrets. */
  onError?: (error: unknown, c: Context) => void;
  /** Slack and the email outbox, for the notification routes. */
  notify?: Omit<NotificationHttpDeps, 'ctx'> & Omit<OutboxDeps, 'ctx'>;
  /** The email channel account mail (invitations, password resets) goes through. */
  mail?: AccountMailChannel | null;
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

export function createHttpApp(options: HttpOptions): HttpApp {
  const { ctx } = options;
  const version = options.version ?? PACKAGE_VERSION;
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
  const origin: OriginOptions = {
    trustProxy: options.trustProxy ?? false,
    publicUrl: options.publicUrl ?? null,
  };
  const deps: RouteDeps = {
    ctx,
    version,
    publicUrl: options.publicUrl ?? null,
    origin,
    hot,
    snapshots: new SnapshotCache(),
    setSessionCookie: (c, session) => setSessionCookie(c, ctx, origin, session),
    currentVersion: (project) => projects.currentVersion(ctx, project),
  };
  const notify = { ctx, slack: options.notify?.slack ?? null, outbox: options.notify?.outbox ?? null };
  // One module per resource; this order is the order of the OpenAPI document's paths.
  const table: AnyRoute[] = [
    ...systemRoutes(deps),
    ...authRoutes(deps),
    ...tokenRoutes(deps),
    ...accountRoutes(deps, options.mail ?? null),
    ...projectRoutes(deps),
    ...versionRoutes(deps),
    ...appRoutes(deps),
    ...runRoutes(deps),
    ...scheduleRoutes(deps),
    ...workspaceRoutes(deps),
    ...planRoutes(deps),
    ...auditRoutes(deps),
    ...connectionRoutes(deps),
    ...notificationRoutes(notify),
    ...outboxRoutes(notify),
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
  handleErrors(app, options.onError);

  if (options.ops) mountOps(app, { ...options.ops, ctx, authenticate: authenticateToken });
  const document = openApiDocument(table, { title: 'Almanac API', version });
  app.get('/api/openapi.json', (c) => c.json(document));
  mount(app, table, {
    authenticate: authenticateCaller,
    origin,
    authorize: (principal, action, target) => authorizeAction(ctx, principal, action, target),
  });
  app.all('/api/*', (c) =>
    notFoundResponse(c, `no API route ${c.req.method} ${c.req.path}; see /api/openapi.json`),
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
    deps.setSessionCookie(c, session);
    return c.redirect(safeNext(c.req.query('next'), requestOrigin(c, origin)), 302);
  });

  if (options.webDir && existsSync(join(options.webDir, 'index.html'))) mountWeb(app, options.webDir);
  else {
    app.get('*', (c) =>
      c.text('The web app is not built. Run `npm run build:web` (npm start does it for you).', 503),
    );
  }
  return { app, routes: table };
}

/** The session cookie: HttpOnly, SameSite=Lax, Secure when the request came over https. */
function setSessionCookie(
  c: Context,
  ctx: ServiceContext,
  origin: OriginOptions,
  session: workspaces.StartedSession,
): void {
  setCookie(c, SESSION_COOKIE, session.secret, {
    httpOnly: true,
    sameSite: 'Lax',
    path: '/',
    secure: isHttps(c, origin),
    maxAge: Math.max(0, Math.floor((session.expiresAt.getTime() - ctx.now().getTime()) / 1000)),
  });
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
