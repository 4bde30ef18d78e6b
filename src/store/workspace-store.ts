/**
 * Queries on workspaces, their members, groups, API tokens and connections.
 */
import type { NotifyVia } from '../domain/notification/rule.ts';
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

export async function countUsers(db: Db): Promise<number> {
  const row = await db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<string | number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

export async function insertUser(db: Db, user: User): Promise<void> {
  await db
    .insertInto('users')
    .values({
      id: user.id,
      workspace_id: user.workspaceId,
      email: user.email,
      name: user.name,
      role: user.role,
    })
    .execute();
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
  token: { id: string; userId: string; name: string; tokenHash: string; now: Date },
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
    })
    .execute();
}

/** The user a live (not revoked) token belongs to. */
export async function findUserByTokenHash(
  db: Db,
  tokenHash: string,
): Promise<(User & { tokenId: string }) | null> {
  const row = await db
    .selectFrom('api_tokens')
    .innerJoin('users', 'users.id', 'api_tokens.user_id')
    .select([
      'api_tokens.id as token_id',
      'users.id',
      'users.workspace_id',
      'users.email',
      'users.name',
      'users.role',
    ])
    .where('api_tokens.token_hash', '=', tokenHash)
    .where('api_tokens.revoked_at', 'is', null)
    .executeTakeFirst();
  return row
    ? {
        tokenId: row.token_id,
        id: row.id,
        workspaceId: row.workspace_id,
        email: row.email,
        name: row.name,
        role: row.role,
      }
    : null;
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
  let query = db.selectFrom('users').selectAll().where('role', '=', 'admin');
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
