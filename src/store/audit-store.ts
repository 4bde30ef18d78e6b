/**
 * Queries on the audit log (`audit_events`, migration 0014): append-only. Rows are inserted and read,
 * never changed; housekeeping deletes those older than the retention setting.
 */
import { type AuditEvent, type AuditPage, type AuditQuery, MAX_AUDIT_PAGE } from '../domain/audit.ts';
import type { Db } from './database.ts';
import { iso, toDate } from './schema.ts';

export async function insertAuditEvent(db: Db, event: AuditEvent): Promise<void> {
  await db
    .insertInto('audit_events')
    .values({
      id: event.id,
      workspace_id: event.workspaceId,
      at: iso(event.at),
      actor_id: event.actorId,
      actor_name: event.actorName,
      action: event.action,
      target: event.target,
      detail: JSON.stringify(event.detail),
      ip: event.ip,
    })
    .execute();
}

/** Cursor of a keyset page: the last row's instant and id. */
function cursorOf(event: AuditEvent): string {
  return Buffer.from(`${event.at.toISOString()}|${event.id}`).toString('base64url');
}

export function parseCursor(cursor: string): { at: string; id: string } | null {
  const [at, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  if (!at || !id || Number.isNaN(Date.parse(at))) return null;
  return { at: new Date(at).toISOString(), id };
}

/** A page of the workspace's events, newest first; `next` continues after the last one. */
export async function listAuditEvents(db: Db, workspaceId: string, query: AuditQuery): Promise<AuditPage> {
  const limit = Math.min(Math.max(1, query.limit ?? 100), MAX_AUDIT_PAGE);
  let q = db.selectFrom('audit_events').selectAll().where('workspace_id', '=', workspaceId);
  if (query.actor) q = q.where('actor_id', '=', query.actor);
  if (query.action) {
    // `schedule` matches `schedule.create`, `schedule.update`…; a full name matches itself.
    const action = query.action;
    q = q.where((eb) => eb.or([eb('action', '=', action), eb('action', 'like', `${action}.%`)]));
  }
  if (query.since) q = q.where('at', '>=', iso(query.since));
  const after = query.cursor ? parseCursor(query.cursor) : null;
  if (after) {
    q = q.where((eb) =>
      eb.or([eb('at', '<', after.at), eb.and([eb('at', '=', after.at), eb('id', '<', after.id)])]),
    );
  }
  const rows = await q
    .orderBy('at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit + 1)
    .execute();
  const events: AuditEvent[] = rows.slice(0, limit).map((r) => ({
    id: r.id,
    workspaceId: r.workspace_id,
    at: toDate(r.at),
    actorId: r.actor_id,
    actorName: r.actor_name,
    action: r.action,
    target: r.target,
    detail: JSON.parse(r.detail) as Record<string, unknown>,
    ip: r.ip,
  }));
  const last = events.at(-1);
  return { events, next: rows.length > limit && last ? cursorOf(last) : null };
}

/** Deletes events older than `before` (retention); returns how many. */
export async function deleteAuditEventsBefore(db: Db, before: Date): Promise<number> {
  const result = await db.deleteFrom('audit_events').where('at', '<', iso(before)).executeTakeFirst();
  return Number(result.numDeletedRows);
}
