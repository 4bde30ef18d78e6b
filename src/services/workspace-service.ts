/**
 * Workspaces, users, API tokens, browser sign-in (login codes and sessions), view tickets and
 * connections. Tokens, login codes and session secrets are random strings shown once; only their
 * SHA-256 is stored, so a leaked database does not leak working credentials.
 */
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { isPostgresUrl } from '../domain/connection-url.ts';
import { UnauthorizedError, ValidationError } from '../domain/errors.ts';
import { IDENTIFIER } from '../domain/notebook/frontmatter.ts';
import { EMBEDDED_CONNECTION } from '../domain/notebook/notebook.ts';
import {
  DEFAULT_PLAN,
  downgradePauseNote,
  isPlan,
  PLAN_LIMITS,
  PLANS,
  type PlanView,
  planView,
} from '../domain/plan.ts';
import type { Connection } from '../domain/workspace.ts';
import { lockForTransaction, transaction } from '../store/database.ts';
import { isUniqueViolation } from '../store/errors.ts';
import * as ss from '../store/schedule-store.ts';
import * as ws from '../store/workspace-store.ts';
import { recordAudit } from './audit-service.ts';
import { assertAdmin } from './authorize.ts';
import { decryptSecret, encryptSecret } from './secrets.ts';
import type { Principal, ServiceContext } from './service-context.ts';

export const TOKEN_PREFIX = 'alm_';
export const DEFAULT_WORKSPACE = 'default';

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function newToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

/** Prefix of view tickets: short-lived, signed, never stored (see `issueViewTicket`). */
export const TICKET_PREFIX = 'alm_view_';

function ticketMac(key: Buffer, payload: string): Buffer {
  return createHmac('sha256', key).update(`view-ticket:${payload}`).digest();
}

/**
 * What a view ticket may read: one run's page of one project. The HTTP layer lets a ticket call only
 * the GET routes that page needs, for this project and this run (`http/routes.ts`).
 */
export interface ViewScope {
  projectId: string;
  projectSlug: string;
  runId: string;
}

/** How a caller proved who it is, and what that proof allows. */
export interface Caller {
  principal: Principal;
  /** `token`: an API token; `session`: a browser session; `ticket`: a screenshot's view ticket. */
  via: 'token' | 'session' | 'ticket';
  /** A ticket's scope; null for tokens and sessions, which act as their user everywhere. */
  scope: ViewScope | null;
  /** When the credential stops working (service clock), if it does by itself. */
  expiresAt: Date | null;
  /** When to check it with the store again at the latest (a session renews its idle expiry then). */
  recheckAt?: Date;
}

/** @default 2 minutes: a screenshot takes seconds, and the ticket must not outlive it by much. */
export const VIEW_TICKET_TTL_MS = 120_000;

/**
 * A short-lived ticket that lets a headless browser read one run's app page as `userId` sees it (the
 * screenshot of a notification is taken as its recipient, so nobody receives a picture of a project
 * they cannot see). Signed with the secrets key, it carries the user, the run and its project, and an
 * expiry. It is no API token: the HTTP layer accepts it only on the GET routes of that page, so a
 * script running in that page cannot use it to mint tokens or read anything else. On use, the user's
 * current role applies, so a ticket never grants more than the user has.
 */
export async function issueViewTicket(
  ctx: ServiceContext,
  userId: string,
  runId: string,
  ttlMs = VIEW_TICKET_TTL_MS,
): Promise<string> {
  const page = await ws.findRunPage(ctx.db, runId);
  if (!page) throw new ValidationError('run', `run '${runId}' was not found; no view ticket for it`);
  const payload = Buffer.from(
    JSON.stringify({
      u: userId,
      p: page.projectId,
      s: page.projectSlug,
      r: runId,
      e: ctx.now().getTime() + ttlMs,
    }),
  ).toString('base64url');
  return `${TICKET_PREFIX}${payload}.${ticketMac(ctx.secretKey, payload).toString('base64url')}`;
}

/** A view ticket's user and scope; throws UnauthorizedError when it is forged, malformed or expired. */
export async function authenticateViewTicket(ctx: ServiceContext, ticket: string): Promise<Caller> {
  const [payload, mac] = ticket.slice(TICKET_PREFIX.length).split('.');
  const expected = payload ? ticketMac(ctx.secretKey, payload) : null;
  const given = mac ? Buffer.from(mac, 'base64url') : Buffer.alloc(0);
  if (!expected || given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new UnauthorizedError('the view ticket is not valid');
  }
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as {
    u: string;
    p?: string;
    s?: string;
    r?: string;
    e: number;
  };
  // A ticket without a scope (from an older build) reads nothing.
  if (!claims.p || !claims.s || !claims.r) throw new UnauthorizedError('the view ticket is not valid');
  if (ctx.now().getTime() >= claims.e) throw new UnauthorizedError('the view ticket has expired');
  // A deactivated user's tickets end with their sessions and tokens.
  const user = await ws.findAccount(ctx.db, claims.u);
  if (user?.status !== 'active') throw new UnauthorizedError('the view ticket is not valid');
  return {
    principal: { userId: user.id, workspaceId: user.workspaceId, role: user.role, name: user.name },
    via: 'ticket',
    scope: { projectId: claims.p, projectSlug: claims.s, runId: claims.r },
    expiresAt: new Date(claims.e),
  };
}

/** Prefix of login codes (`GET /login?code=…`). */
export const LOGIN_CODE_PREFIX = 'almc_';
/** Prefix of session secrets, the value of the session cookie. */
export const SESSION_PREFIX = 'alms_';
/** @default 10 minutes */
export const LOGIN_CODE_TTL_MS = 10 * 60_000;
/** A session ends after this long unused. @default 7 days */
export const SESSION_IDLE_MS = 7 * 86_400_000;
/** A session ends this long after sign-in, however much it is used. @default 30 days */
export const SESSION_MAX_MS = 30 * 86_400_000;
/** A session's idle expiry is pushed forward at most this often (one write a minute, not per request). */
export const SESSION_TOUCH_MS = 60_000;

/**
 * A one-time login code for `userId`: `GET /login?code=…` exchanges it for a browser session. Only
 * its hash is stored; it works once, within `ttlMs`.
 */
export async function createLoginCode(
  ctx: ServiceContext,
  userId: string,
  ttlMs = LOGIN_CODE_TTL_MS,
): Promise<{ code: string; expiresAt: Date }> {
  const code = LOGIN_CODE_PREFIX + randomBytes(24).toString('base64url');
  const now = ctx.now();
  const expiresAt = new Date(now.getTime() + ttlMs);
  await ws.deleteExpiredLoginCodes(ctx.db, new Date(now.getTime() - 86_400_000));
  await ws.insertLoginCode(ctx.db, { codeHash: hashToken(code), userId, now, expiresAt });
  return { code, expiresAt };
}

export interface StartedSession {
  /** The cookie's value: shown once, stored only as a hash. */
  secret: string;
  principal: Principal;
  /** The absolute expiry (the cookie's Max-Age). */
  expiresAt: Date;
}

/** Starts a session for `user` (sign-in of any kind): a fresh secret, so sign-in always rotates it. */
export async function startSession(ctx: ServiceContext, user: ws.User): Promise<StartedSession> {
  const secret = SESSION_PREFIX + randomBytes(32).toString('base64url');
  const now = ctx.now();
  const expiresAt = new Date(now.getTime() + SESSION_MAX_MS);
  await ws.insertSession(ctx.db, {
    id: randomUUID(),
    userId: user.id,
    secretHash: hashToken(secret),
    now,
    idleExpiresAt: new Date(Math.min(now.getTime() + SESSION_IDLE_MS, expiresAt.getTime())),
    expiresAt,
  });
  return {
    secret,
    principal: { userId: user.id, workspaceId: user.workspaceId, role: user.role, name: user.name },
    expiresAt,
  };
}

/** Exchanges a login code (once, before it expires) for a session of its user. */
export async function signInWithCode(ctx: ServiceContext, code: string | undefined): Promise<StartedSession> {
  if (!code?.startsWith(LOGIN_CODE_PREFIX)) {
    throw new UnauthorizedError(
      'the login link has no valid code; ask for a fresh link with `almanac login-link`',
    );
  }
  const userId = await ws.consumeLoginCode(ctx.db, hashToken(code), ctx.now());
  const user = userId ? await ws.findUser(ctx.db, userId) : null;
  if (!user) {
    throw new UnauthorizedError(
      'the login code is not valid, was already used, or expired; ask for a fresh link with `almanac login-link`',
    );
  }
  return startSession(ctx, user);
}

/** A browser session for the holder of an API token (`POST /api/auth/session`). */
export async function sessionForPrincipal(
  ctx: ServiceContext,
  principal: Principal,
): Promise<StartedSession> {
  const user = await ws.findUser(ctx.db, principal.userId);
  if (!user) throw new UnauthorizedError('the user of this token no longer exists');
  return startSession(ctx, user);
}

/**
 * The user of a live session. Use pushes its idle expiry forward (at most once a minute), never past
 * its absolute expiry.
 */
export async function authenticateSession(ctx: ServiceContext, secret: string): Promise<Caller> {
  const now = ctx.now();
  const session = secret.startsWith(SESSION_PREFIX)
    ? await ws.findLiveSession(ctx.db, hashToken(secret), now)
    : null;
  if (!session) throw new UnauthorizedError('the session has ended or is not valid; sign in again');
  let idleExpiresAt = session.idleExpiresAt;
  let lastSeenAt = session.lastSeenAt;
  if (now.getTime() - lastSeenAt.getTime() >= SESSION_TOUCH_MS) {
    idleExpiresAt = new Date(Math.min(now.getTime() + SESSION_IDLE_MS, session.expiresAt.getTime()));
    lastSeenAt = now;
    await ws.touchSession(ctx.db, session.id, now, idleExpiresAt);
    await ws.touchUserLastSeen(ctx.db, session.user.id, now);
  }
  const { user } = session;
  return {
    principal: { userId: user.id, workspaceId: user.workspaceId, role: user.role, name: user.name },
    via: 'session',
    scope: null,
    expiresAt: idleExpiresAt,
    recheckAt: new Date(lastSeenAt.getTime() + SESSION_TOUCH_MS),
  };
}

/** Ends a session (sign-out); a no-op for one that already ended. */
export async function endSession(ctx: ServiceContext, secret: string): Promise<void> {
  await ws.revokeSession(ctx.db, hashToken(secret), ctx.now());
}

/**
 * Who presents `credential`, and how: from an `Authorization: Bearer` header an API token (or a
 * view ticket), from the session cookie a session (or the view ticket the screenshot browser sets).
 */
export async function authenticateCaller(
  ctx: ServiceContext,
  credential: string | null | undefined,
  from: 'bearer' | 'cookie',
): Promise<Caller> {
  if (!credential) throw new UnauthorizedError();
  if (credential.startsWith(TICKET_PREFIX)) return authenticateViewTicket(ctx, credential);
  if (from === 'cookie') return authenticateSession(ctx, credential);
  const { principal, expiresAt } = await authenticateToken(ctx, credential);
  return { principal, via: 'token', scope: null, expiresAt };
}

export interface Bootstrap {
  /** Present only when this call created the admin: shown once, never stored in clear. */
  adminToken: string | null;
  workspaceId: string;
  adminUserId: string | null;
}

/**
 * On first start (no users yet), creates the default workspace, an admin user, and an API token for
 * it: `adminToken` when given (ALMANAC_ADMIN_TOKEN), else a fresh one returned to print once.
 */
export async function bootstrap(
  ctx: ServiceContext,
  options: { adminToken?: string | null; adminEmail?: string | null } = {},
): Promise<Bootstrap> {
  return transaction(ctx.db, async (trx) => {
    // Several processes starting at once on an empty store: one creates the admin, the others wait for
    // it and then find it (before, the others failed on the default workspace's key and hung).
    await lockForTransaction(trx, ctx.dialect, 'bootstrap');
    if ((await ws.countUsers(trx)) > 0) {
      if (options.adminToken) {
        // A configured admin token is always accepted, so automation keeps working across restarts.
        // Also when the token was revoked since (the admin changed their password, say): the
        // configuration wins at start (before, the second insert of its hash failed the start).
        const existing = await ws.findUserByTokenHash(trx, hashToken(options.adminToken), ctx.now());
        if (!existing) {
          const admin = await ws.findFirstAdmin(trx);
          if (admin) {
            await ws.reinstateApiToken(trx, {
              id: randomUUID(),
              userId: admin.id,
              name: 'ALMANAC_ADMIN_TOKEN',
              tokenHash: hashToken(options.adminToken),
              now: ctx.now(),
            });
          }
        }
      }
      return { adminToken: null, workspaceId: DEFAULT_WORKSPACE, adminUserId: null };
    }
    if (!(await ws.findWorkspace(trx, DEFAULT_WORKSPACE)))
      await ws.insertWorkspace(trx, DEFAULT_WORKSPACE, 'Default workspace');
    const userId = randomUUID();
    await ws.insertUser(trx, {
      id: userId,
      workspaceId: DEFAULT_WORKSPACE,
      email: options.adminEmail ?? 'admin@localhost',
      name: 'Admin',
      role: 'admin',
    });
    const token = options.adminToken ?? newToken();
    await ws.insertApiToken(trx, {
      id: randomUUID(),
      userId,
      name: 'first start',
      tokenHash: hashToken(token),
      now: ctx.now(),
    });
    return { adminToken: token, workspaceId: DEFAULT_WORKSPACE, adminUserId: userId };
  });
}

/** The first admin of a workspace (the default one unless named), as a principal: for seeding and tests. */
/** The caller as the web app shows it: the principal, its workspace's name and its notification preference. */
export async function describeCaller(
  ctx: ServiceContext,
  principal: Principal,
): Promise<Principal & { workspaceName: string; notifyVia: 'email' | 'slack' | 'both' }> {
  const [workspace, notifyVia] = await Promise.all([
    ws.findWorkspace(ctx.db, principal.workspaceId),
    ws.findNotifyVia(ctx.db, principal.userId),
  ]);
  return {
    ...principal,
    workspaceName: workspace?.name ?? principal.workspaceId,
    notifyVia: notifyVia ?? 'email',
  };
}

export async function firstAdmin(ctx: ServiceContext, workspaceId = DEFAULT_WORKSPACE): Promise<Principal> {
  const admin = await ws.findFirstAdmin(ctx.db, workspaceId);
  if (!admin) throw new Error(`workspace '${workspaceId}' has no admin; start the server once to create one`);
  return { userId: admin.id, workspaceId: admin.workspaceId, role: admin.role, name: admin.name };
}

export async function authenticate(
  ctx: ServiceContext,
  token: string | null | undefined,
): Promise<Principal> {
  return (await authenticateToken(ctx, token)).principal;
}

/** An API token's user, and when the token expires by itself (null: never). */
async function authenticateToken(
  ctx: ServiceContext,
  token: string | null | undefined,
): Promise<{ principal: Principal; expiresAt: Date | null }> {
  if (!token) throw new UnauthorizedError();
  // A view ticket is no API token: it reads one page, through the HTTP layer's scope check only.
  if (token.startsWith(TICKET_PREFIX)) {
    throw new UnauthorizedError('a view ticket only reads the app page it was issued for; send an API token');
  }
  if (token.startsWith(SESSION_PREFIX) || token.startsWith(LOGIN_CODE_PREFIX)) {
    throw new UnauthorizedError(
      'that is a browser session or login code, not an API token; create a token with POST /api/tokens',
    );
  }
  if (!token.startsWith(TOKEN_PREFIX)) {
    throw new UnauthorizedError(`that is not an Almanac API token (tokens start with '${TOKEN_PREFIX}')`);
  }
  const now = ctx.now();
  const user = await ws.findUserByTokenHash(ctx.db, hashToken(token), now);
  if (!user) {
    // Word for word as before (scripts match it): an expired token, or a deactivated user's, is not valid.
    throw new UnauthorizedError('the API token is not valid or was revoked');
  }
  // "Last used", to the minute: one write a minute per token, not one per request.
  if (!user.lastUsedAt || now.getTime() - user.lastUsedAt.getTime() >= SESSION_TOUCH_MS) {
    await ws.touchApiToken(ctx.db, user.tokenId, user.id, now);
  }
  return {
    principal: { userId: user.id, workspaceId: user.workspaceId, role: user.role, name: user.name },
    expiresAt: user.expiresAt,
  };
}

/** Creates a workspace with one user and returns that user's token (tests, admin tooling). */
export async function createWorkspaceWithUser(
  ctx: ServiceContext,
  options: { workspaceId: string; name: string; email: string; role?: ws.WorkspaceRole },
): Promise<{ token: string; principal: Principal }> {
  return transaction(ctx.db, async (trx) => {
    if (!(await ws.findWorkspace(trx, options.workspaceId)))
      await ws.insertWorkspace(trx, options.workspaceId, options.name);
    const userId = randomUUID();
    const role = options.role ?? 'admin';
    await ws.insertUser(trx, {
      id: userId,
      workspaceId: options.workspaceId,
      email: options.email,
      name: options.email,
      role,
    });
    const token = newToken();
    await ws.insertApiToken(trx, {
      id: randomUUID(),
      userId,
      name: 'created',
      tokenHash: hashToken(token),
      now: ctx.now(),
    });
    return { token, principal: { userId, workspaceId: options.workspaceId, role, name: options.email } };
  });
}

export async function createApiToken(
  ctx: ServiceContext,
  principal: Principal,
  name: string,
): Promise<string> {
  if (!name.trim()) throw new ValidationError('name', 'must not be empty: say what the token is for');
  const token = newToken();
  await ws.insertApiToken(ctx.db, {
    id: randomUUID(),
    userId: principal.userId,
    name,
    tokenHash: hashToken(token),
    now: ctx.now(),
  });
  return token;
}

/** A connection as the API lists it: the domain's Connection without its workspace. */
export type ConnectionInfo = Omit<Connection, 'workspaceId'>;

/** Adds a connection; its URL (with credentials) is encrypted before it reaches the store. */
export async function createConnection(
  ctx: ServiceContext,
  principal: Principal,
  input: { name: string; url: string },
): Promise<ConnectionInfo> {
  if (!IDENTIFIER.test(input.name)) {
    throw new ValidationError(
      'name',
      `'${input.name}' must be an identifier (letters, digits, _; not starting with a digit)`,
    );
  }
  if (input.name === EMBEDDED_CONNECTION) {
    throw new ValidationError(
      'name',
      `'${EMBEDDED_CONNECTION}' is the embedded database and cannot be redefined`,
    );
  }
  if (!isPostgresUrl(input.url)) {
    throw new ValidationError('url', 'must be a postgres://user:password@host:port/database URL');
  }
  const taken = () =>
    new ValidationError('name', `a connection named '${input.name}' already exists in this workspace`);
  const existing = await ws.listConnections(ctx.db, principal.workspaceId);
  if (existing.some((c) => c.name === input.name)) throw taken();
  const id = randomUUID();
  const now = ctx.now();
  try {
    await ws.insertConnection(ctx.db, {
      id,
      workspaceId: principal.workspaceId,
      name: input.name,
      kind: 'postgres',
      secret: encryptSecret(ctx.secretKey, input.url),
      now,
    });
  } catch (error) {
    // Another request took the name since the check: the unique key on (workspace, name) decides.
    if (isUniqueViolation(error)) throw taken();
    throw error;
  }
  await ctx.wakeups.notify('connections_changed', principal.workspaceId);
  return { id, name: input.name, kind: 'postgres', createdAt: now };
}

export async function listConnections(ctx: ServiceContext, principal: Principal): Promise<ConnectionInfo[]> {
  return (await ws.listConnections(ctx.db, principal.workspaceId)).map(({ id, name, kind, createdAt }) => ({
    id,
    name,
    kind,
    createdAt,
  }));
}

/** A workspace's settings. Every member may read them. */
export async function getSettings(ctx: ServiceContext, principal: Principal): Promise<ws.WorkspaceSettings> {
  return (await ws.findWorkspaceSettings(ctx.db, principal.workspaceId)) ?? { cellNetwork: true };
}

/** Changes a workspace's settings (admins only); workers hear of it at once. */
export async function updateSettings(
  ctx: ServiceContext,
  principal: Principal,
  patch: Partial<ws.WorkspaceSettings>,
): Promise<ws.WorkspaceSettings> {
  assertAdmin(principal, 'change workspace settings');
  const next = { ...(await getSettings(ctx, principal)), ...patch };
  await ws.updateWorkspaceSettings(ctx.db, principal.workspaceId, next);
  await recordAudit(ctx, principal, {
    action: 'workspace.settings',
    target: `workspace:${principal.workspaceId}`,
    detail: { ...next },
  });
  // Workers cache a workspace's run settings with its connections.
  await ctx.wakeups.notify('connections_changed', principal.workspaceId);
  return next;
}

/** The workspace's plan and its limits (domain/plan.ts). Every member may read it. */
export async function getPlan(ctx: ServiceContext, principal: Principal): Promise<PlanView> {
  return planView((await ws.findWorkspacePlan(ctx.db, principal.workspaceId)) ?? DEFAULT_PLAN);
}

/** What setting a plan did: the plan, and the schedules it paused (a downgrade loses nothing). */
export interface PlanChange extends PlanView {
  paused: { id: string; name: string; projectId: string; note: string }[];
}

/**
 * Sets the workspace's plan (admins only). Moving to a plan with limits pauses, with a note naming the
 * plan, the schedules it does not allow: cron cadences, and in each project the schedules beyond the
 * limit (the oldest are kept). Nothing is deleted; after an upgrade they are resumed as usual. Slack
 * deliveries are skipped at send time (delivery-service.ts), so rules keep their destinations.
 */
export async function setPlan(ctx: ServiceContext, principal: Principal, plan: unknown): Promise<PlanChange> {
  assertAdmin(principal, 'the plan');
  if (!isPlan(plan)) {
    throw new ValidationError('plan', `must be ${PLANS.join(', ')} (got ${JSON.stringify(plan)})`);
  }
  const limits = PLAN_LIMITS[plan];
  const now = ctx.now();
  const paused: PlanChange['paused'] = [];
  await transaction(ctx.db, async (trx) => {
    await ws.updateWorkspacePlan(trx, principal.workspaceId, plan);
    const schedules = (await ss.listSchedules(trx, principal.workspaceId))
      .filter((s) => s.enabled)
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.id.localeCompare(b.id));
    const kept = new Map<string, number>();
    for (const schedule of schedules) {
      let why: 'cron' | 'schedules' | null = null;
      if (!limits.cronSchedules && schedule.cadence.kind === 'cron') why = 'cron';
      else if (limits.schedulesPerProject !== null) {
        const count = kept.get(schedule.projectId) ?? 0;
        if (count >= limits.schedulesPerProject) why = 'schedules';
        else kept.set(schedule.projectId, count + 1);
      }
      if (!why) continue;
      const note = downgradePauseNote(plan, why);
      await ss.updateSchedule(trx, {
        ...schedule,
        enabled: false,
        pausedUntil: null,
        pauseNote: note,
        nextFireAt: null,
        nextDueAt: null,
        updatedAt: now,
      });
      paused.push({ id: schedule.id, name: schedule.name, projectId: schedule.projectId, note });
    }
  });
  await recordAudit(ctx, principal, {
    action: 'workspace.plan',
    target: `workspace:${principal.workspaceId}`,
    detail: { plan, paused: paused.map((p) => p.id) },
  });
  for (const p of paused) await ctx.wakeups.notify('schedule_changed', p.id);
  return { ...planView(plan), paused };
}

/** What a worker needs to run a workspace's notebooks: connection URLs (decrypted) and settings. */
export async function runEnvironment(
  ctx: ServiceContext,
  workspaceId: string,
): Promise<{ urls: Map<string, string>; cellNetwork: boolean }> {
  const [urls, settings] = await Promise.all([
    resolveConnectionUrls(ctx, workspaceId),
    ws.findWorkspaceSettings(ctx.db, workspaceId),
  ]);
  return { urls, cellNetwork: settings?.cellNetwork ?? true };
}

/** Decrypted connection URLs of a workspace, for the worker only. */
export async function resolveConnectionUrls(
  ctx: ServiceContext,
  workspaceId: string,
): Promise<Map<string, string>> {
  const rows = await ws.listConnections(ctx.db, workspaceId);
  return new Map(rows.map((c) => [c.name, decryptSecret(ctx.secretKey, c.secret)]));
}
