/**
 * Accounts (issue 16): email and password sign-in, invitations, password reset, the people list, and
 * each user's API tokens. Passwords are hashed with argon2id (Node's `crypto.argon2`, memory-hard);
 * invitation and reset codes, like tokens and sessions, are random strings whose SHA-256 alone is
 * stored. Sign-in and reset never say whether an address exists: the same error, after the same work.
 */
import { argon2, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { ConflictError, NotFoundError, UnauthorizedError, ValidationError } from '../domain/errors.ts';
import { type Account, assertEmail, assertPassword, INVITE_TTL_MS, RESET_TTL_MS } from '../domain/user.ts';
import { WORKSPACE_ROLES, type WorkspaceRole } from '../domain/workspace.ts';
import { transaction } from '../store/database.ts';
import { isUniqueViolation } from '../store/errors.ts';
import * as ws from '../store/workspace-store.ts';
import { recordAudit } from './audit-service.ts';
import { assertAdmin } from './authorize.ts';
import type { Principal, ServiceContext } from './service-context.ts';
import {
  DEFAULT_WORKSPACE,
  hashToken,
  newToken,
  type StartedSession,
  startSession,
} from './workspace-service.ts';

/**
 * argon2id at OWASP's first recommended setting (19 MiB, 2 passes, 1 lane): about 80 ms a hash on one
 * core, which sign-in's rate limits keep from becoming a way to load the server.
 */
export const ARGON2_PARAMS = { memory: 19_456, passes: 2, parallelism: 1, tagLength: 32 } as const;

/** Prefix of invitation codes (`/invite?code=…`). */
export const INVITE_CODE_PREFIX = 'almi_';
/** Prefix of password reset codes (`/reset-password?code=…`). */
export const RESET_CODE_PREFIX = 'almr_';

interface Argon2Params {
  memory: number;
  passes: number;
  parallelism: number;
  tagLength: number;
}

function argon2id(password: string, salt: Buffer, params: Argon2Params): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    argon2(
      'argon2id',
      {
        message: password,
        nonce: salt,
        memory: params.memory,
        passes: params.passes,
        parallelism: params.parallelism,
        tagLength: params.tagLength,
      },
      (error, key) => (error ? reject(error) : resolve(key)),
    ),
  );
}

/** An argon2id hash of `password` in PHC form: `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await argon2id(password, salt, ARGON2_PARAMS);
  const { memory: m, passes: t, parallelism: p } = ARGON2_PARAMS;
  return `$argon2id$v=19$m=${m},t=${t},p=${p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

/** Whether `password` matches a hash from `hashPassword` (with the parameters it was made with). */
export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  const match = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([\w-]+)\$([\w-]+)$/.exec(hash);
  if (!match) return false;
  const expected = Buffer.from(match[5]!, 'base64url');
  const key = await argon2id(password, Buffer.from(match[4]!, 'base64url'), {
    memory: Number(match[1]),
    passes: Number(match[2]),
    parallelism: Number(match[3]),
    tagLength: expected.length,
  });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** Hashed once per process: unknown addresses are checked against it, so they cost what known ones do. */
let dummyHash: Promise<string> | null = null;

/** The one answer to every failed sign-in: it does not say which part was wrong. */
export const SIGN_IN_FAILED = 'the email or password is not right (or the account is not active)';

/**
 * Signs in with an email and a password. Every failure (unknown address, wrong password, an invited
 * or deactivated user) throws the same UnauthorizedError after one password check.
 */
export async function signInWithPassword(
  ctx: ServiceContext,
  input: { email: string; password: string; workspace?: string | undefined; ip?: string | undefined },
): Promise<StartedSession> {
  const candidates = (await ws.findAccountsByEmail(ctx.db, input.email, input.workspace)).filter(
    (a) => a.status === 'active' && a.passwordHash,
  );
  let user: (typeof candidates)[number] | null = null;
  for (const candidate of candidates) {
    if (await verifyPassword(candidate.passwordHash!, input.password)) {
      user = candidate;
      break;
    }
  }
  if (candidates.length === 0) {
    dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
    await verifyPassword(await dummyHash, input.password);
  }
  if (!user) {
    // Failed sign-ins are recorded too: the address tried (never the password), and from where.
    await recordAudit(
      ctx,
      {
        userId: null,
        workspaceId: input.workspace ?? candidates[0]?.workspaceId ?? DEFAULT_WORKSPACE,
        name: input.email.slice(0, 254),
      },
      { action: 'auth.sign_in_failed', detail: { email: input.email.slice(0, 254) }, ip: input.ip },
    );
    throw new UnauthorizedError(SIGN_IN_FAILED);
  }
  await ws.touchUserLastSeen(ctx.db, user.id, ctx.now());
  await recordAudit(
    ctx,
    { userId: user.id, workspaceId: user.workspaceId, name: user.name },
    { action: 'auth.sign_in', target: `user:${user.id}`, detail: { email: user.email }, ip: input.ip },
  );
  return startSession(ctx, user);
}

export interface IssuedCode {
  account: Account;
  /** Shown once (in the email's link); stored only as a hash. */
  code: string;
  expiresAt: Date;
}

async function issueCode(
  ctx: ServiceContext,
  kind: ws.AccountCodeKind,
  account: Account,
  createdBy: string | null,
): Promise<IssuedCode> {
  const code =
    (kind === 'invite' ? INVITE_CODE_PREFIX : RESET_CODE_PREFIX) + randomBytes(24).toString('base64url');
  const now = ctx.now();
  const expiresAt = new Date(now.getTime() + (kind === 'invite' ? INVITE_TTL_MS : RESET_TTL_MS));
  await ws.deleteExpiredAccountCodes(ctx.db, new Date(now.getTime() - 86_400_000));
  // One live link at a time: a fresh invitation or reset ends the older ones.
  await ws.expireAccountCodes(ctx.db, account.id, kind, now);
  await ws.insertAccountCode(ctx.db, {
    codeHash: hashToken(code),
    kind,
    userId: account.id,
    createdBy,
    now,
    expiresAt,
  });
  return { account, code, expiresAt };
}

function assertRole(role: string, field = 'role'): WorkspaceRole {
  if (!(WORKSPACE_ROLES as readonly string[]).includes(role)) {
    throw new ValidationError(field, `must be one of ${WORKSPACE_ROLES.join(', ')} (got '${role}')`);
  }
  return role as WorkspaceRole;
}

/**
 * Invites `email` to the caller's workspace (admins only): an `invited` user and a single-use code
 * that works for 7 days. Inviting an address that is still invited sends a fresh code (the old one
 * stops working); one that already has an account is a conflict.
 */
export async function inviteUser(
  ctx: ServiceContext,
  principal: Principal,
  input: { email: string; name?: string | undefined; role?: string | undefined },
): Promise<IssuedCode> {
  assertAdmin(principal, 'who is in the workspace (invitations)');
  const email = assertEmail(input.email);
  const role = assertRole(input.role ?? 'member');
  const [existing] = await ws.findAccountsByEmail(ctx.db, email, principal.workspaceId);
  if (existing && existing.status !== 'invited') {
    throw new ConflictError(
      `'${existing.email}' already has an account in this workspace (${existing.status}); change its role instead`,
    );
  }
  if (existing) {
    if (existing.role !== role) await ws.updateAccount(ctx.db, existing.id, { role });
    await recordAudit(ctx, principal, {
      action: 'user.invite',
      target: `user:${existing.id}`,
      detail: { email, role, again: true },
    });
    return issueCode(ctx, 'invite', { ...existing, role }, principal.userId);
  }
  const id = randomUUID();
  try {
    await ws.insertUser(ctx.db, {
      id,
      workspaceId: principal.workspaceId,
      email,
      name: input.name?.trim() || email.replace(/@.*$/, ''),
      role,
      status: 'invited',
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw new ConflictError(`'${email}' was invited a moment ago`);
    throw error;
  }
  await recordAudit(ctx, principal, { action: 'user.invite', target: `user:${id}`, detail: { email, role } });
  return issueCode(ctx, 'invite', (await ws.findAccount(ctx.db, id))!, principal.userId);
}

const BAD_INVITE =
  'the invitation is not valid, was already used, or expired (after 7 days); ask an admin to invite you again';

/** Accepts an invitation (once, within 7 days): the user becomes active with this name and password. */
export async function acceptInvite(
  ctx: ServiceContext,
  input: { code: string; name: string; password: string; ip?: string | undefined },
): Promise<StartedSession> {
  if (!input.name.trim()) throw new ValidationError('name', 'must not be empty: say what people call you');
  assertPassword(input.password);
  if (!input.code.startsWith(INVITE_CODE_PREFIX)) throw new UnauthorizedError(BAD_INVITE);
  const passwordHash = await hashPassword(input.password);
  const user = await transaction(ctx.db, async (trx) => {
    const userId = await ws.consumeAccountCode(trx, hashToken(input.code), 'invite', ctx.now());
    const account = userId ? await ws.findAccount(trx, userId) : null;
    if (account?.status !== 'invited') throw new UnauthorizedError(BAD_INVITE);
    await ws.updateAccount(trx, account.id, { name: input.name.trim(), passwordHash, status: 'active' });
    await ws.touchUserLastSeen(trx, account.id, ctx.now());
    return { ...account, name: input.name.trim(), status: 'active' as const };
  });
  await recordAudit(
    ctx,
    { userId: user.id, workspaceId: user.workspaceId, name: user.name },
    { action: 'user.accept_invite', target: `user:${user.id}`, detail: { email: user.email }, ip: input.ip },
  );
  return startSession(ctx, user);
}

/**
 * A reset code for each active user with this address (none when there is none: the caller answers
 * the same either way). The code works once, within an hour.
 */
export async function requestPasswordReset(
  ctx: ServiceContext,
  input: { email: string; workspace?: string | undefined },
): Promise<IssuedCode[]> {
  const accounts = (await ws.findAccountsByEmail(ctx.db, input.email, input.workspace)).filter(
    (a) => a.status === 'active',
  );
  const codes: IssuedCode[] = [];
  for (const account of accounts) codes.push(await issueCode(ctx, 'reset', account, null));
  return codes;
}

const BAD_RESET =
  'the reset link is not valid, was already used, or expired (after 1 hour); ask for a new one';

/**
 * Sets a new password with a reset code (once, within an hour). Every session and API token the user
 * had is revoked; a fresh session is returned.
 */
export async function completePasswordReset(
  ctx: ServiceContext,
  input: { code: string; password: string; ip?: string | undefined },
): Promise<StartedSession> {
  assertPassword(input.password);
  if (!input.code.startsWith(RESET_CODE_PREFIX)) throw new UnauthorizedError(BAD_RESET);
  const passwordHash = await hashPassword(input.password);
  const user = await transaction(ctx.db, async (trx) => {
    const userId = await ws.consumeAccountCode(trx, hashToken(input.code), 'reset', ctx.now());
    const account = userId ? await ws.findAccount(trx, userId) : null;
    if (account?.status !== 'active') throw new UnauthorizedError(BAD_RESET);
    await ws.updateAccount(trx, account.id, { passwordHash });
    await ws.revokeUserCredentials(trx, account.id, ctx.now());
    return account;
  });
  await recordAudit(
    ctx,
    { userId: user.id, workspaceId: user.workspaceId, name: user.name },
    { action: 'auth.password_reset', target: `user:${user.id}`, ip: input.ip },
  );
  return startSession(ctx, user);
}

/**
 * Changes the caller's password (the current one proves it is them). Every session and API token of
 * theirs is revoked, this one included; a fresh session is returned.
 */
export async function changePassword(
  ctx: ServiceContext,
  principal: Principal,
  input: { currentPassword: string; newPassword: string },
): Promise<StartedSession> {
  assertPassword(input.newPassword, 'newPassword');
  const account = await ws.findPasswordHash(ctx.db, principal.userId);
  if (!account) throw new UnauthorizedError('your user no longer exists');
  // An admin created at first start has no password yet: its token proves who it is.
  if (account?.passwordHash && !(await verifyPassword(account.passwordHash, input.currentPassword))) {
    throw new ValidationError('currentPassword', 'is not your current password');
  }
  const passwordHash = await hashPassword(input.newPassword);
  await transaction(ctx.db, async (trx) => {
    await ws.updateAccount(trx, principal.userId, { passwordHash });
    await ws.revokeUserCredentials(trx, principal.userId, ctx.now());
  });
  await recordAudit(ctx, principal, { action: 'auth.password_changed', target: `user:${principal.userId}` });
  return startSession(ctx, (await ws.findUser(ctx.db, principal.userId))!);
}

/** The workspace's users (every member may see who is in it). */
export async function listUsers(ctx: ServiceContext, principal: Principal): Promise<Account[]> {
  return ws.listAccounts(ctx.db, principal.workspaceId);
}

async function userOfWorkspace(ctx: ServiceContext, principal: Principal, userId: string): Promise<Account> {
  const account = await ws.findAccount(ctx.db, userId);
  if (!account || account.workspaceId !== principal.workspaceId) throw new NotFoundError('user', userId);
  return account;
}

async function assertNotLastAdmin(ctx: ServiceContext, account: Account, what: string): Promise<void> {
  if (account.role === 'admin' && account.status === 'active') {
    if ((await ws.countActiveAdmins(ctx.db, account.workspaceId)) <= 1) {
      throw new ConflictError(`'${account.email}' is the workspace's last admin; ${what}`);
    }
  }
}

/**
 * Deactivates a user (admins only): they can no longer sign in, and every session and API token they
 * had is revoked at once. The workspace's last active admin cannot be deactivated.
 */
export async function deactivateUser(
  ctx: ServiceContext,
  principal: Principal,
  userId: string,
): Promise<Account> {
  assertAdmin(principal, 'who is in the workspace (deactivation)');
  const account = await userOfWorkspace(ctx, principal, userId);
  if (account.status === 'deactivated') return account;
  await assertNotLastAdmin(ctx, account, 'make another user admin first');
  await transaction(ctx.db, async (trx) => {
    await ws.updateAccount(trx, account.id, { status: 'deactivated' });
    await ws.revokeUserCredentials(trx, account.id, ctx.now());
    await ws.expireAccountCodes(trx, account.id, 'invite', ctx.now());
    await ws.expireAccountCodes(trx, account.id, 'reset', ctx.now());
  });
  await recordAudit(ctx, principal, {
    action: 'user.deactivate',
    target: `user:${account.id}`,
    detail: { email: account.email },
  });
  return { ...account, status: 'deactivated' };
}

/** Changes a user's workspace role (admins only); the last active admin keeps theirs. */
export async function setUserRole(
  ctx: ServiceContext,
  principal: Principal,
  userId: string,
  role: string,
): Promise<Account> {
  assertAdmin(principal, 'workspace roles');
  const next = assertRole(role);
  const account = await userOfWorkspace(ctx, principal, userId);
  if (account.role === next) return account;
  if (next !== 'admin') await assertNotLastAdmin(ctx, account, 'make another user admin first');
  await ws.updateAccount(ctx.db, account.id, { role: next });
  await recordAudit(ctx, principal, {
    action: 'user.role',
    target: `user:${account.id}`,
    detail: { email: account.email, from: account.role, to: next },
  });
  return { ...account, role: next };
}

/** A token as its owner sees it when creating it: the secret, this once. */
export interface CreatedToken extends ws.ApiTokenInfo {
  token: string;
}

/** How many characters of a token its list shows: `alm_` and 8 more (48 bits: enough to tell apart). */
const PREFIX_LENGTH = 12;

/** Creates an API token for the caller, acting with the caller's rights, until `expiresAt` if given. */
export async function createToken(
  ctx: ServiceContext,
  principal: Principal,
  input: { name: string; expiresAt?: Date | null | undefined },
): Promise<CreatedToken> {
  const name = input.name.trim();
  if (!name) throw new ValidationError('name', 'must not be empty: say what the token is for');
  const now = ctx.now();
  if (input.expiresAt && input.expiresAt.getTime() <= now.getTime()) {
    throw new ValidationError('expiresAt', `must be in the future (got ${input.expiresAt.toISOString()})`);
  }
  const token = newToken();
  const id = randomUUID();
  const prefix = token.slice(0, PREFIX_LENGTH);
  await ws.insertApiToken(ctx.db, {
    id,
    userId: principal.userId,
    name,
    tokenHash: hashToken(token),
    now,
    expiresAt: input.expiresAt ?? null,
    prefix,
  });
  await recordAudit(ctx, principal, {
    action: 'token.create',
    target: `token:${id}`,
    detail: { name, prefix, expiresAt: input.expiresAt?.toISOString() ?? null },
  });
  return { id, name, prefix, createdAt: now, lastUsedAt: null, expiresAt: input.expiresAt ?? null, token };
}

/** The caller's tokens: name, prefix, use and expiry; never a secret. */
export async function listTokens(ctx: ServiceContext, principal: Principal): Promise<ws.ApiTokenInfo[]> {
  return ws.listApiTokens(ctx.db, principal.userId);
}

/** Revokes one of the caller's tokens; another user's id answers 404. */
export async function revokeToken(ctx: ServiceContext, principal: Principal, id: string): Promise<void> {
  if (!(await ws.revokeApiToken(ctx.db, id, principal.userId, ctx.now())))
    throw new NotFoundError('token', id);
  await recordAudit(ctx, principal, { action: 'token.revoke', target: `token:${id}` });
}
