/**
 * The audit log's use cases (domain/audit.ts): services record what people did with `recordAudit`,
 * admins read it with `listAudit`, and housekeeping prunes it with `pruneAudit`. The client's IP comes
 * with the principal (`Principal.ip`, set by the HTTP layer, which honours ALMANAC_TRUST_PROXY) or,
 * where nobody is signed in yet (sign-in), as `event.ip`.
 */
import { randomUUID } from 'node:crypto';
import {
  type AuditEvent,
  type AuditPage,
  type AuditQuery,
  DEFAULT_AUDIT_RETENTION_DAYS,
  SECRET_KEY,
} from '../domain/audit.ts';
import { ValidationError } from '../domain/errors.ts';
import * as as from '../store/audit-store.ts';
import type { Db } from '../store/database.ts';
import { assertAdmin } from './authorize.ts';
import type { Principal, ServiceContext } from './service-context.ts';

/** What recording needs: the store (or the transaction in progress) and the clock. */
export type AuditContext = Pick<ServiceContext, 'db' | 'now'>;

/** Who acted: a signed-in principal, or someone unknown (a failed sign-in) in a workspace. */
export type AuditActor =
  | Pick<Principal, 'userId' | 'workspaceId' | 'name' | 'ip'>
  | { userId: null; workspaceId: string; name: string; ip?: string | undefined };

export interface AuditInput {
  action: string;
  target?: string | null | undefined;
  detail?: Record<string, unknown> | undefined;
  /** The client's address when the actor carries none. */
  ip?: string | null | undefined;
}

/** A copy of `value` without secret-named keys, at any depth (a second guard: callers pass no secrets). */
export function withoutSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutSecrets);
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([k]) => !SECRET_KEY.test(k))
        .map(([k, v]) => [k, withoutSecrets(v)]),
    );
  }
  return value;
}

/** Appends one event. Pass a transaction as `ctx.db` to record it with the change it describes. */
export async function recordAudit(ctx: AuditContext, actor: AuditActor, input: AuditInput): Promise<void> {
  const event: AuditEvent = {
    id: randomUUID(),
    workspaceId: actor.workspaceId,
    at: ctx.now(),
    actorId: actor.userId,
    actorName: actor.name,
    action: input.action,
    target: input.target ?? null,
    detail: withoutSecrets(input.detail ?? {}) as Record<string, unknown>,
    ip: input.ip ?? actor.ip ?? null,
  };
  await as.insertAuditEvent(ctx.db, event);
}

/** A page of the caller's workspace's audit log, newest first (admins only). */
export async function listAudit(
  ctx: ServiceContext,
  principal: Principal,
  query: AuditQuery,
): Promise<AuditPage> {
  assertAdmin(principal, 'the audit log (reading it)');
  if (query.cursor && !as.parseCursor(query.cursor)) {
    throw new ValidationError('cursor', 'is not a cursor this server gave; pass `next` of the previous page');
  }
  return as.listAuditEvents(ctx.db, principal.workspaceId, query);
}

/** Deletes events older than the retention (housekeeping); returns how many went. */
export function pruneAudit(
  db: Db,
  now: Date,
  retentionDays: number = DEFAULT_AUDIT_RETENTION_DAYS,
): Promise<number> {
  return as.deleteAuditEventsBefore(db, new Date(now.getTime() - retentionDays * 86_400_000));
}
