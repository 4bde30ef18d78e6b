/**
 * The audit log: who did what, when, and from where. An *audit event* is one thing a person (or, for
 * a failed sign-in, someone unknown) did: an `action` like `auth.sign_in_failed` or `schedule.update`,
 * its `target` (`schedule:<id>`, `user:<id>`), a `detail` object that never holds a secret, and the
 * client's IP address. The log is append-only and kept for the retention setting
 * (`ALMANAC_AUDIT_RETENTION_DAYS`).
 */

/** The kinds of event, by area (`GET /api/audit?action=schedule` takes an area or a full name). */
export const AUDIT_ACTIONS = [
  'auth.sign_in',
  'auth.sign_in_failed',
  'auth.password_changed',
  'auth.password_reset',
  'user.invite',
  'user.accept_invite',
  'user.role',
  'user.deactivate',
  'grant.set',
  'grant.remove',
  'grant.auto',
  'project.workspace_access',
  'token.create',
  'token.revoke',
  'schedule.create',
  'schedule.update',
  'schedule.pause',
  'schedule.delete',
  'rule.create',
  'rule.update',
  'rule.delete',
  'project.publish',
  'project.rollback',
  'integrations.update',
  'workspace.plan',
  'workspace.settings',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export interface AuditEvent {
  id: string;
  workspaceId: string;
  at: Date;
  /** The user who acted; null when nobody is known (a failed sign-in). */
  actorId: string | null;
  /** Their name when it happened (or the address a failed sign-in named). */
  actorName: string;
  action: string;
  /** What it acted on: `kind:id`. */
  target: string | null;
  /** What changed, never a secret (services/audit-service.ts also strips secret-named keys). */
  detail: Record<string, unknown>;
  /** The client's address (behind a trusted proxy, X-Forwarded-For's first hop); null off HTTP. */
  ip: string | null;
}

export interface AuditQuery {
  /** A user id. */
  actor?: string | undefined;
  /** An action, or an area (`schedule`). */
  action?: string | undefined;
  since?: Date | undefined;
  /** From `next` of the previous page. */
  cursor?: string | undefined;
  /** @default 100 */
  limit?: number | undefined;
}

export interface AuditPage {
  events: AuditEvent[];
  /** The cursor of the next page; null on the last. */
  next: string | null;
}

export const MAX_AUDIT_PAGE = 500;

/** @default 365 days (`ALMANAC_AUDIT_RETENTION_DAYS`) */
export const DEFAULT_AUDIT_RETENTION_DAYS = 365;

/** Keys whose values are never written to the log, at any depth. */
export const SECRET_KEY = /pass|secret|token|key|authorization|cookie|code/i;
