/**
 * Queries on workspaces, their members, groups, API tokens and connections.
 */

import { sql } from 'kysely';
import type { NotifyVia } from '../domain/notification/rule.ts';
import { DEFAULT_PLAN, isPlan, type Plan } from '../domain/plan.ts';
import type { Account, UserStatus } from '../domain/user.ts';
import type { Connection, User, WorkspaceSettings } from '../domain/workspace.ts';
import type { Db } from './database.ts';
import { iso, toDate } from './schema.ts';

// The glossary's nouns are defined once, in domain/; re-exported here for the store's importers.
export type { Connection, User, WorkspaceRole, WorkspaceSettings } from '../domain/workspace.ts';

export async function insertWorkspace(db: Db, id: string, name: string): Promise<void> {
  await db.insertInto('workspaces').values({ id, name }).execute();
}

export async function findWorkspace(db: Db, id: string): Promise<{ id: string; name: string } | null> {
  return (
    (await db.selectFrom('workspaces').select(['id', 'name']).where('id', '=', id).executeTakeFirst()) ?? null
  );
}

export async function findWorkspaceSettings(db: Db, id: string): Promise<WorkspaceSettings | null> {
  const row = await db
    .selectFrom('workspaces')
    .select('cell_network')
    .where('id', '=', id)
    .executeTakeFirst();
  return row ? { cellNetwork: Number(row.cell_network) === 1 } : null;
}

export async function updateWorkspaceSettings(
  db: Db,
  id: string,
  settings: WorkspaceSettings,
): Promise<void> {
  await db
    .updateTable('workspaces')
    .set({ cell_network: settings.cellNetwork ? 1 : 0 })
    .where('id', '=', id)
    .execute();
}

/** The workspace's plan (domain/plan.ts), or null when there is no such workspace. */
export async function findWorkspacePlan(db: Db, id: string): Promise<Plan | null> {
  const row = await db.selectFrom('workspaces').select('plan').where('id', '=', id).executeTakeFirst();
  if (!row) return null;
  return isPlan(row.plan) ? row.plan : DEFAULT_PLAN;
}

export async function updateWorkspacePlan(db: Db, id: string, plan: Plan): Promise<void> {
  await db.updateTable('workspaces').set({ plan }).where('id', '=', id).execute();
}

export async function countUsers(db: Db): Promise<number> {
  const row = await db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<string | number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

export async function insertUser(
  db: Db,
  user: User & { status?: UserStatus; passwordHash?: string | null },
): Promise<void> {
  await db
    .insertInto('users')
    .values({
      id: user.id,
      workspace_id: user.workspaceId,
      email: user.email,
      name: user.name,
      role: user.role,
      ...(user.status ? { status: user.status } : {}),
      ...(user.passwordHash ? { password_hash: user.passwordHash } : {}),
    })
    .execute();
}

/** How a user's notifications reach them (email, slack or both). */
export async function findNotifyVia(db: Db, userId: string): Promise<'email' | 'slack' | 'both' | null> {
  const row = await db.selectFrom('users').select('notify_via').where('id', '=', userId).executeTakeFirst();
  return row ? (row.notify_via as 'email' | 'slack' | 'both') : null;
}

export async function findUser(db: Db, id: string): Promise<User | null> {
  const row = await db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  return row
    ? { id: row.id, workspaceId: row.workspace_id, email: row.email, name: row.name, role: row.role }
    : null;
}

export async function insertGroup(
  db: Db,
  group: { id: string; workspaceId: string; name: string },
): Promise<void> {
  await db
    .insertInto('groups')
    .values({ id: group.id, workspace_id: group.workspaceId, name: group.name })
    .execute();
}

export async function addGroupMember(db: Db, groupId: string, userId: string): Promise<void> {
  await db.insertInto('group_members').values({ group_id: groupId, user_id: userId }).execute();
}

export async function listGroupMembers(db: Db, groupId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('group_members')
    .select('user_id')
    .where('group_id', '=', groupId)
    .execute();
  return rows.map((r) => r.user_id);
}

export async function insertApiToken(
  db: Db,
  token: {
    id: string;
    userId: string;
    name: string;
    tokenHash: string;
    now: Date;
    expiresAt?: Date | null;
    prefix?: string | null;
  },
): Promise<void> {
  await db
    .insertInto('api_tokens')
    .values({
      id: token.id,
      user_id: token.userId,
      name: token.name,
      token_hash: token.tokenHash,
      created_at: iso(token.now),
      last_used_at: null,
      revoked_at: null,
      expires_at: token.expiresAt ? iso(token.expiresAt) : null,
      prefix: token.prefix ?? null,
    })
    .execute();
}

/**
 * The user a live token belongs to: not revoked, not expired at `now` (when given), and its user
 * active. Without `now` (bootstrap's "is this token known"), expiry and status are not checked.
 */
export async function findUserByTokenHash(
  db: Db,
  tokenHash: string,
  now?: Date,
): Promise<(User & { tokenId: string; lastUsedAt: Date | null; expiresAt: Date | null }) | null> {
  let query = db
    .selectFrom('api_tokens')
    .innerJoin('users', 'users.id', 'api_tokens.user_id')
    .select([
      'api_tokens.id as token_id',
      'api_tokens.last_used_at',
      'api_tokens.expires_at',
      'users.id',
      'users.workspace_id',
      'users.email',
      'users.name',
      'users.role',
    ])
    .where('api_tokens.token_hash', '=', tokenHash)
    .where('api_tokens.revoked_at', 'is', null);
  if (now) {
    query = query
      .where('users.status', '=', 'active')
      .where((eb) =>
        eb.or([eb('api_tokens.expires_at', 'is', null), eb('api_tokens.expires_at', '>', iso(now))]),
      );
  }
  const row = await query.executeTakeFirst();
  return row
    ? {
        tokenId: row.token_id,
        lastUsedAt: row.last_used_at ? toDate(row.last_used_at) : null,
        expiresAt: row.expires_at ? toDate(row.expires_at) : null,
        id: row.id,
        workspaceId: row.workspace_id,
        email: row.email,
        name: row.name,
        role: row.role,
      }
    : null;
}

/**
 * Makes a configured token (ALMANAC_ADMIN_TOKEN) work for `userId` again: un-revokes its row, or
 * inserts one. Returns whether a row changed. (A password change or a revocation revokes the row;
 * the configuration wins at the next start, as it always has.)
 */
export async function reinstateApiToken(
  db: Db,
  token: { id: string; userId: string; name: string; tokenHash: string; now: Date },
): Promise<boolean> {
  const existing = await db
    .selectFrom('api_tokens')
    .select(['id', 'revoked_at', 'user_id'])
    .where('token_hash', '=', token.tokenHash)
    .executeTakeFirst();
  if (!existing) {
    await insertApiToken(db, token);
    return true;
  }
  if (existing.revoked_at === null && existing.user_id === token.userId) return false;
  await db
    .updateTable('api_tokens')
    .set({ revoked_at: null, user_id: token.userId, expires_at: null })
    .where('id', '=', existing.id)
    .execute();
  return true;
}

/** Records a token's use (and its user's), for the token list's "last used". */
export async function touchApiToken(db: Db, tokenId: string, userId: string, now: Date): Promise<void> {
  await db
    .updateTable('api_tokens')
    .set({ last_used_at: iso(now) })
    .where('id', '=', tokenId)
    .execute();
  await touchUserLastSeen(db, userId, now);
}

export async function touchUserLastSeen(db: Db, userId: string, now: Date): Promise<void> {
  await db
    .updateTable('users')
    .set({ last_seen_at: iso(now) })
    .where('id', '=', userId)
    .execute();
}

/** A token as its owner lists it: never its secret nor its hash. */
export interface ApiTokenInfo {
  id: string;
  name: string;
  prefix: string | null;
  createdAt: Date;
  lastUsedAt: Date | null;
  expiresAt: Date | null;
}

/** A user's tokens that are not revoked (expired ones too, marked by their expiry), newest first. */
export async function listApiTokens(db: Db, userId: string): Promise<ApiTokenInfo[]> {
  const rows = await db
    .selectFrom('api_tokens')
    .select(['id', 'name', 'prefix', 'created_at', 'last_used_at', 'expires_at'])
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .orderBy('created_at', 'desc')
    .orderBy('id')
    .execute();
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    prefix: r.prefix,
    createdAt: toDate(r.created_at),
    lastUsedAt: r.last_used_at ? toDate(r.last_used_at) : null,
    expiresAt: r.expires_at ? toDate(r.expires_at) : null,
  }));
}

/** Revokes one of a user's tokens; true when a live one was revoked. */
export async function revokeApiToken(db: Db, id: string, userId: string, now: Date): Promise<boolean> {
  const result = await db
    .updateTable('api_tokens')
    .set({ revoked_at: iso(now) })
    .where('id', '=', id)
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/** Revokes every session and API token of a user (deactivation, a new password). */
export async function revokeUserCredentials(db: Db, userId: string, now: Date): Promise<void> {
  await db
    .updateTable('sessions')
    .set({ revoked_at: iso(now) })
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .execute();
  await db
    .updateTable('api_tokens')
    .set({ revoked_at: iso(now) })
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .execute();
}

function accountOf(row: {
  id: string;
  workspace_id: string;
  email: string;
  name: string;
  role: User['role'];
  status: string;
  created_at: Date | string;
  last_seen_at: Date | string | null;
}): Account {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    email: row.email,
    name: row.name,
    role: row.role,
    status: row.status as UserStatus,
    createdAt: toDate(row.created_at),
    lastSeenAt: row.last_seen_at ? toDate(row.last_seen_at) : null,
  };
}

const ACCOUNT_COLUMNS = [
  'id',
  'workspace_id',
  'email',
  'name',
  'role',
  'status',
  'created_at',
  'last_seen_at',
] as const;

export async function findAccount(db: Db, id: string): Promise<Account | null> {
  const row = await db.selectFrom('users').select(ACCOUNT_COLUMNS).where('id', '=', id).executeTakeFirst();
  return row ? accountOf(row) : null;
}

/** A workspace's users, by email. */
export async function listAccounts(db: Db, workspaceId: string): Promise<Account[]> {
  const rows = await db
    .selectFrom('users')
    .select(ACCOUNT_COLUMNS)
    .where('workspace_id', '=', workspaceId)
    .orderBy(sql`lower(email)`)
    .orderBy('id')
    .execute();
  return rows.map(accountOf);
}

/**
 * The users with this email (any case), with their password hashes: one per workspace at most. Only
 * `workspaceId`'s when given.
 */
export async function findAccountsByEmail(
  db: Db,
  email: string,
  workspaceId?: string,
): Promise<(Account & { passwordHash: string | null })[]> {
  let query = db
    .selectFrom('users')
    .select([...ACCOUNT_COLUMNS, 'password_hash'])
    .where(sql`lower(email)`, '=', email.trim().toLowerCase());
  if (workspaceId !== undefined) query = query.where('workspace_id', '=', workspaceId);
  const rows = await query.orderBy('created_at').orderBy('id').execute();
  return rows.map((r) => ({ ...accountOf(r), passwordHash: r.password_hash }));
}

/** A user's password hash (null: none set yet); null when there is no such user. */
export async function findPasswordHash(
  db: Db,
  userId: string,
): Promise<{ passwordHash: string | null } | null> {
  const row = await db
    .selectFrom('users')
    .select('password_hash')
    .where('id', '=', userId)
    .executeTakeFirst();
  return row ? { passwordHash: row.password_hash } : null;
}

export async function updateAccount(
  db: Db,
  id: string,
  set: { name?: string; status?: UserStatus; role?: User['role']; passwordHash?: string; email?: string },
): Promise<void> {
  await db
    .updateTable('users')
    .set({
      ...(set.name !== undefined ? { name: set.name } : {}),
      ...(set.status !== undefined ? { status: set.status } : {}),
      ...(set.role !== undefined ? { role: set.role } : {}),
      ...(set.email !== undefined ? { email: set.email } : {}),
      ...(set.passwordHash !== undefined ? { password_hash: set.passwordHash } : {}),
    })
    .where('id', '=', id)
    .execute();
}

/** How many active admins a workspace has (the last one may not be deactivated or demoted). */
export async function countActiveAdmins(db: Db, workspaceId: string): Promise<number> {
  const row = await db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<string | number>().as('n'))
    .where('workspace_id', '=', workspaceId)
    .where('role', '=', 'admin')
    .where('status', '=', 'active')
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

export type AccountCodeKind = 'invite' | 'reset';

export async function insertAccountCode(
  db: Db,
  code: {
    codeHash: string;
    kind: AccountCodeKind;
    userId: string;
    createdBy: string | null;
    now: Date;
    expiresAt: Date;
  },
): Promise<void> {
  await db
    .insertInto('account_codes')
    .values({
      code_hash: code.codeHash,
      kind: code.kind,
      user_id: code.userId,
      created_by: code.createdBy,
      created_at: iso(code.now),
      expires_at: iso(code.expiresAt),
      used_at: null,
    })
    .execute();
}

/**
 * Marks a code used in one guarded UPDATE (two requests with one code cannot both win). Returns its
 * user when the code was of `kind`, unused and not expired at `now`.
 */
export async function consumeAccountCode(
  db: Db,
  codeHash: string,
  kind: AccountCodeKind,
  now: Date,
): Promise<string | null> {
  const row = await db
    .updateTable('account_codes')
    .set({ used_at: iso(now) })
    .where('code_hash', '=', codeHash)
    .where('kind', '=', kind)
    .where('used_at', 'is', null)
    .where('expires_at', '>', iso(now))
    .returning('user_id')
    .executeTakeFirst();
  return row?.user_id ?? null;
}

/** Ends a user's unused codes of `kind` (a fresh invitation or reset replaces the older ones). */
export async function expireAccountCodes(
  db: Db,
  userId: string,
  kind: AccountCodeKind,
  now: Date,
): Promise<void> {
  await db
    .updateTable('account_codes')
    .set({ used_at: iso(now) })
    .where('user_id', '=', userId)
    .where('kind', '=', kind)
    .where('used_at', 'is', null)
    .execute();
}

/** Unused for long: kept a day past expiry, then deleted. */
export async function deleteExpiredAccountCodes(db: Db, before: Date): Promise<void> {
  await db.deleteFrom('account_codes').where('expires_at', '<', iso(before)).execute();
}

/** A connection with its encrypted URL (`secret`), which only the executor's side decrypts. */
export type StoredConnection = Connection & { secret: string };

export async function insertConnection(
  db: Db,
  c: Omit<StoredConnection, 'createdAt'> & { now: Date },
): Promise<void> {
  await db
    .insertInto('connections')
    .values({
      id: c.id,
      workspace_id: c.workspaceId,
      name: c.name,
      kind: c.kind,
      secret: c.secret,
      created_at: iso(c.now),
    })
    .execute();
}

export async function listConnections(db: Db, workspaceId: string): Promise<StoredConnection[]> {
  const rows = await db
    .selectFrom('connections')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .orderBy('name')
    .execute();
  return rows.map((r) => ({
    id: r.id,
    workspaceId: r.workspace_id,
    name: r.name,
    kind: r.kind,
    secret: r.secret,
    createdAt: toDate(r.created_at),
  }));
}

export async function insertLoginCode(
  db: Db,
  code: { codeHash: string; userId: string; now: Date; expiresAt: Date },
): Promise<void> {
  await db
    .insertInto('login_codes')
    .values({
      code_hash: code.codeHash,
      user_id: code.userId,
      created_at: iso(code.now),
      expires_at: iso(code.expiresAt),
      used_at: null,
    })
    .execute();
}

/**
 * Marks a login code used, in one guarded UPDATE, so two requests with one code cannot both win.
 * Returns its user when the code existed, was unused and had not expired at `now`.
 */
export async function consumeLoginCode(db: Db, codeHash: string, now: Date): Promise<string | null> {
  const row = await db
    .updateTable('login_codes')
    .set({ used_at: iso(now) })
    .where('code_hash', '=', codeHash)
    .where('used_at', 'is', null)
    .where('expires_at', '>', iso(now))
    .returning('user_id')
    .executeTakeFirst();
  return row?.user_id ?? null;
}

/** Deletes login codes that expired before `before` (used or not). */
export async function deleteExpiredLoginCodes(db: Db, before: Date): Promise<void> {
  await db.deleteFrom('login_codes').where('expires_at', '<', iso(before)).execute();
}

export interface StoredSession {
  id: string;
  user: User;
  lastSeenAt: Date;
  idleExpiresAt: Date;
  expiresAt: Date;
}

export async function insertSession(
  db: Db,
  session: {
    id: string;
    userId: string;
    secretHash: string;
    now: Date;
    idleExpiresAt: Date;
    expiresAt: Date;
  },
): Promise<void> {
  await db
    .insertInto('sessions')
    .values({
      id: session.id,
      user_id: session.userId,
      secret_hash: session.secretHash,
      created_at: iso(session.now),
      last_seen_at: iso(session.now),
      idle_expires_at: iso(session.idleExpiresAt),
      expires_at: iso(session.expiresAt),
      revoked_at: null,
    })
    .execute();
}

/** A session that is not revoked and has not expired (idle or absolute) at `now`, with its user. */
export async function findLiveSession(db: Db, secretHash: string, now: Date): Promise<StoredSession | null> {
  const row = await db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select([
      'sessions.id as session_id',
      'sessions.last_seen_at',
      'sessions.idle_expires_at',
      'sessions.expires_at',
      'users.id',
      'users.workspace_id',
      'users.email',
      'users.name',
      'users.role',
    ])
    .where('sessions.secret_hash', '=', secretHash)
    .where('sessions.revoked_at', 'is', null)
    .where('users.status', '=', 'active')
    .where('sessions.idle_expires_at', '>', iso(now))
    .where('sessions.expires_at', '>', iso(now))
    .executeTakeFirst();
  return row
    ? {
        id: row.session_id,
        user: { id: row.id, workspaceId: row.workspace_id, email: row.email, name: row.name, role: row.role },
        lastSeenAt: toDate(row.last_seen_at),
        idleExpiresAt: toDate(row.idle_expires_at),
        expiresAt: toDate(row.expires_at),
      }
    : null;
}

export async function touchSession(db: Db, id: string, now: Date, idleExpiresAt: Date): Promise<void> {
  await db
    .updateTable('sessions')
    .set({ last_seen_at: iso(now), idle_expires_at: iso(idleExpiresAt) })
    .where('id', '=', id)
    .execute();
}

/** Revokes a live session; true when one was revoked. */
export async function revokeSession(db: Db, secretHash: string, now: Date): Promise<boolean> {
  const result = await db
    .updateTable('sessions')
    .set({ revoked_at: iso(now) })
    .where('secret_hash', '=', secretHash)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/** The project (id and slug) of a run, for a view ticket's scope. */
export async function findRunPage(
  db: Db,
  runId: string,
): Promise<{ projectId: string; projectSlug: string } | null> {
  const row = await db
    .selectFrom('runs')
    .innerJoin('projects', 'projects.id', 'runs.project_id')
    .select(['projects.id', 'projects.slug'])
    .where('runs.id', '=', runId)
    .executeTakeFirst();
  return row ? { projectId: row.id, projectSlug: row.slug } : null;
}

/** The workspace's first admin by creation time (or, without `workspaceId`, the store's first admin). */
export async function findFirstAdmin(db: Db, workspaceId?: string): Promise<User | null> {
  let query = db.selectFrom('users').selectAll().where('role', '=', 'admin').where('status', '=', 'active');
  if (workspaceId !== undefined) query = query.where('workspace_id', '=', workspaceId);
  const row = await query.orderBy('created_at').orderBy('id').executeTakeFirst();
  return row
    ? { id: row.id, workspaceId: row.workspace_id, email: row.email, name: row.name, role: row.role }
    : null;
}

/** Ids of a workspace's admins, in id order. */
export async function listAdminIds(db: Db, workspaceId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('users')
    .select('id')
    .where('workspace_id', '=', workspaceId)
    .where('role', '=', 'admin')
    .orderBy('id')
    .execute();
  return rows.map((r) => r.id);
}

export async function findGroup(
  db: Db,
  id: string,
): Promise<{ id: string; workspaceId: string; name: string } | null> {
  const row = await db
    .selectFrom('groups')
    .select(['id', 'workspace_id', 'name'])
    .where('id', '=', id)
    .executeTakeFirst();
  return row ? { id: row.id, workspaceId: row.workspace_id, name: row.name } : null;
}

/** How a user likes to hear from notification rules that leave it to them. */
export type { NotifyVia } from '../domain/notification/rule.ts';

/** Of `userIds`, the users in `workspaceId`, with where notifications reach them. */
export async function listRecipients(
  db: Db,
  workspaceId: string,
  userIds: readonly string[],
): Promise<{ id: string; email: string; notifyVia: NotifyVia }[]> {
  if (userIds.length === 0) return [];
  const rows = await db
    .selectFrom('users')
    .select(['id', 'email', 'notify_via'])
    .where('id', 'in', userIds)
    .where('workspace_id', '=', workspaceId)
    .execute();
  return rows.map((r) => ({ id: r.id, email: r.email, notifyVia: r.notify_via as NotifyVia }));
}

export async function setNotifyVia(db: Db, userId: string, via: NotifyVia): Promise<void> {
  await db.updateTable('users').set({ notify_via: via }).where('id', '=', userId).execute();
}
