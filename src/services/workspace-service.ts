/**
 * Workspaces, users, API tokens and connections. Tokens are random 32-byte strings shown once; only
 * their SHA-256 is stored, so a leaked database does not leak working tokens.
 */
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { UnauthorizedError, ValidationError } from '../domain/errors.ts';
import { IDENTIFIER } from '../domain/notebook/frontmatter.ts';
import { EMBEDDED_CONNECTION } from '../domain/notebook/notebook.ts';
import { lockForTransaction } from '../store/database.ts';
import * as ws from '../store/workspace-store.ts';
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
const TICKET_PREFIX = 'alm_view_';

function ticketMac(key: Buffer, payload: string): Buffer {
  return createHmac('sha256', key).update(`view-ticket:${payload}`).digest();
}

/**
 * A short-lived token that lets a headless browser see the app pages as `userId` sees them (the
 * screenshot of a notification is taken as its recipient, so nobody receives a picture of a project
 * they cannot see). Signed with the secrets key, it carries the user and an expiry; on use, the user's
 * current role applies, so a ticket never grants more than the user has.
 */
export function issueViewTicket(ctx: ServiceContext, userId: string, ttlMs = 60_000): string {
  const payload = Buffer.from(JSON.stringify({ u: userId, e: ctx.now().getTime() + ttlMs })).toString(
    'base64url',
  );
  return `${TICKET_PREFIX}${payload}.${ticketMac(ctx.secretKey, payload).toString('base64url')}`;
}

async function authenticateTicket(ctx: ServiceContext, token: string): Promise<Principal> {
  const [payload, mac] = token.slice(TICKET_PREFIX.length).split('.');
  const expected = payload ? ticketMac(ctx.secretKey, payload) : null;
  const given = mac ? Buffer.from(mac, 'base64url') : Buffer.alloc(0);
  if (!expected || given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new UnauthorizedError('the view ticket is not valid');
  }
  const { u, e } = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as { u: string; e: number };
  if (ctx.now().getTime() > e) throw new UnauthorizedError('the view ticket has expired');
  const user = await ws.findUser(ctx.db, u);
  if (!user) throw new UnauthorizedError('the view ticket is not valid');
  return { userId: user.id, workspaceId: user.workspaceId, role: user.role, name: user.name };
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
  options: { adminToken?: string | null } = {},
): Promise<Bootstrap> {
  return ctx.db.transaction().execute(async (trx) => {
    // Several processes starting at once on an empty store: one creates the admin, the others wait for
    // it and then find it (before, the others failed on the default workspace's key and hung).
    await lockForTransaction(trx, ctx.dialect, 'bootstrap');
    if ((await ws.countUsers(trx)) > 0) {
      if (options.adminToken) {
        // A configured admin token is always accepted, so automation keeps working across restarts.
        const existing = await ws.findUserByTokenHash(trx, hashToken(options.adminToken));
        if (!existing) {
          const admin = await trx
            .selectFrom('users')
            .select('id')
            .where('role', '=', 'admin')
            .orderBy('created_at')
            .executeTakeFirst();
          if (admin) {
            await ws.insertApiToken(trx, {
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
      email: 'admin@localhost',
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

export async function authenticate(
  ctx: ServiceContext,
  token: string | null | undefined,
): Promise<Principal> {
  if (!token) throw new UnauthorizedError();
  if (token.startsWith(TICKET_PREFIX)) return authenticateTicket(ctx, token);
  if (!token.startsWith(TOKEN_PREFIX)) {
    throw new UnauthorizedError(`that is not an Almanac API token (tokens start with '${TOKEN_PREFIX}')`);
  }
  const user = await ws.findUserByTokenHash(ctx.db, hashToken(token));
  if (!user) throw new UnauthorizedError('the API token is not valid or was revoked');
  return { userId: user.id, workspaceId: user.workspaceId, role: user.role, name: user.name };
}

/** Creates a workspace with one user and returns that user's token (tests, admin tooling). */
export async function createWorkspaceWithUser(
  ctx: ServiceContext,
  options: { workspaceId: string; name: string; email: string; role?: ws.Role },
): Promise<{ token: string; principal: Principal }> {
  return ctx.db.transaction().execute(async (trx) => {
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

export interface ConnectionInfo {
  id: string;
  name: string;
  kind: 'postgres';
  createdAt: Date;
}

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
  if (!/^postgres(ql)?:\/\/.+/.test(input.url)) {
    throw new ValidationError('url', 'must be a postgres://user:password@host:port/database URL');
  }
  const existing = await ws.listConnections(ctx.db, principal.workspaceId);
  if (existing.some((c) => c.name === input.name)) {
    throw new ValidationError('name', `a connection named '${input.name}' already exists in this workspace`);
  }
  const id = randomUUID();
  const now = ctx.now();
  await ws.insertConnection(ctx.db, {
    id,
    workspaceId: principal.workspaceId,
    name: input.name,
    kind: 'postgres',
    secret: encryptSecret(ctx.secretKey, input.url),
    now,
  });
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
  // Workers cache a workspace's run settings with its connections.
  await ctx.wakeups.notify('connections_changed', principal.workspaceId);
  return next;
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
