/**
 * The one place that applies the access policy (domain/access-policy.ts) to stored things. A caller
 * sees only its own workspace, and anything outside it answers 404 (not 403), so ids from other
 * workspaces do not even leak their existence. Within the workspace, a project the caller has no
 * access to is a 404 too; an action their access does not reach is a 403 naming what it needs
 * ("project.publish needs Can Edit on 'sales'"). Private runs are visible to their creator only.
 */
import {
  type AccessLevel,
  type Action,
  allowed,
  effectiveAccess,
  needsMessage,
  POLICY,
} from '../domain/access-policy.ts';
import { ForbiddenError, NotFoundError } from '../domain/errors.ts';
import type { Run } from '../domain/run.ts';
import * as ns from '../store/notification-store.ts';
import * as ps from '../store/project-store.ts';
import * as rs from '../store/run-store.ts';
import * as ss from '../store/schedule-store.ts';
import type { Principal, ServiceContext } from './service-context.ts';

export function assertWorkspaceMember(
  principal: Principal,
  workspaceId: string,
  what: string,
  id: string,
): void {
  if (principal.workspaceId !== workspaceId) throw new NotFoundError(what, id);
}

export function assertCanSeeRun(principal: Principal, run: Run): void {
  assertWorkspaceMember(principal, run.workspaceId, 'run', run.id);
  if (run.private && run.createdBy !== principal.userId) throw new NotFoundError('run', run.id);
}

/** Workspace settings that hold secrets (SMTP, Slack), people and login links are for admins. */
export function assertAdmin(principal: Principal, what: string): void {
  if (principal.role !== 'admin') throw new ForbiddenError(`only a workspace admin may change ${what}`);
}

/** A project and the caller's effective access to it (null: none, so it does not exist for them). */
export interface ProjectAccess {
  projectId: string;
  slug: string;
  access: AccessLevel | null;
}

/** The caller's access to one project of their workspace (by id or slug); null when there is no such project. */
export async function projectAccess(
  ctx: ServiceContext,
  principal: Principal,
  idOrSlug: string,
): Promise<ProjectAccess | null> {
  const [row] = await ps.accessRows(ctx.db, principal.workspaceId, principal.userId, idOrSlug);
  if (!row) return null;
  return { projectId: row.projectId, slug: row.slug, access: accessOf(principal, row) };
}

/** The caller's access to every project of their workspace, by project id. */
export async function accessByProject(
  ctx: ServiceContext,
  principal: Principal,
): Promise<Map<string, AccessLevel | null>> {
  const rows = await ps.accessRows(ctx.db, principal.workspaceId, principal.userId);
  return new Map(rows.map((row) => [row.projectId, accessOf(principal, row)]));
}

function accessOf(principal: Principal, row: ps.ProjectAccessRow): AccessLevel | null {
  return effectiveAccess({
    role: principal.role,
    userId: principal.userId,
    createdBy: row.createdBy,
    own: row.own,
    groups: row.groups,
    workspaceDefault: row.workspaceDefault,
  });
}

/** Throws unless `access` reaches `action` on the project `slug`: 404 for no access at all, else 403. */
export function assertAllowed(
  principal: Principal,
  action: Action,
  project: ProjectAccess,
  what: string,
  id: string,
  options: { ownRun?: boolean } = {},
): void {
  if (project.access === null) throw new NotFoundError(what, id);
  if (!allowed(action, project.access, principal.role, options)) {
    throw new ForbiddenError(needsMessage(action, project.slug, project.access));
  }
}

/** Throws unless the caller may do `action` on the project `projectId` (404 or 403, as `assertAllowed`). */
export async function assertProjectAction(
  ctx: ServiceContext,
  principal: Principal,
  action: Action,
  projectId: string,
): Promise<void> {
  const project = await projectAccess(ctx, principal, projectId);
  if (!project) throw new NotFoundError('project', projectId);
  assertAllowed(principal, action, project, 'project', projectId);
}

/** What a request names, from which the project it acts on is found. */
export interface ActionTarget {
  project?: string | undefined;
  schedule?: string | undefined;
  run?: string | undefined;
  rule?: string | undefined;
  delivery?: string | undefined;
}

/**
 * Applies the policy to one request before its handler runs: workspace actions check the role;
 * project actions find the project the request names (through its schedule, run, rule or delivery)
 * and check the caller's effective access to it. Project actions that name no project (lists) pass:
 * their results are filtered to what the caller sees.
 */
export async function authorizeAction(
  ctx: ServiceContext,
  principal: Principal,
  action: Action,
  target: ActionTarget,
): Promise<void> {
  const rule = POLICY[action];
  if (rule.kind === 'public' || rule.kind === 'signed_in') return;
  if (rule.kind === 'workspace') {
    if (!allowed(action, null, principal.role)) throw new ForbiddenError(needsMessage(action));
    return;
  }
  // An admin has Full access to every project of their workspace, and every handler still answers 404
  // for another workspace's ids (the matrix test checks both): no read on the hot path.
  if (principal.role === 'admin') return;
  const found = await projectOfTarget(ctx, principal, target);
  if (!found) return;
  const project = await projectAccess(ctx, principal, found.projectId);
  if (!project) throw new NotFoundError(found.what, found.id);
  assertAllowed(principal, action, project, found.what, found.id, { ownRun: found.ownRun });
}

async function projectOfTarget(
  ctx: ServiceContext,
  principal: Principal,
  target: ActionTarget,
): Promise<{ projectId: string; what: string; id: string; ownRun: boolean } | null> {
  if (target.run !== undefined) {
    const run = await rs.findRun(ctx.db, target.run);
    if (!run) throw new NotFoundError('run', target.run);
    assertCanSeeRun(principal, run);
    // App Only reaches the runs they started and the runs they were told about (the app as it was).
    const ownRun =
      run.createdBy === principal.userId || (await ns.runAddressedTo(ctx.db, run.id, principal.userId));
    return { projectId: run.projectId, what: 'run', id: run.id, ownRun };
  }
  if (target.schedule !== undefined) {
    const schedule = await ss.findSchedule(ctx.db, target.schedule);
    if (!schedule) throw new NotFoundError('schedule', target.schedule);
    assertWorkspaceMember(principal, schedule.workspaceId, 'schedule', target.schedule);
    return { projectId: schedule.projectId, what: 'schedule', id: target.schedule, ownRun: false };
  }
  if (target.rule !== undefined) {
    const rule = await ns.findRule(ctx.db, target.rule);
    if (!rule) throw new NotFoundError('notification rule', target.rule);
    assertWorkspaceMember(principal, rule.workspaceId, 'notification rule', target.rule);
    return { projectId: rule.projectId, what: 'notification rule', id: target.rule, ownRun: false };
  }
  if (target.delivery !== undefined) {
    const delivery = await ns.findDelivery(ctx.db, target.delivery);
    if (!delivery) throw new NotFoundError('delivery', target.delivery);
    assertWorkspaceMember(principal, delivery.workspaceId, 'delivery', target.delivery);
    const run = await rs.findRun(ctx.db, delivery.runId);
    if (!run) throw new NotFoundError('delivery', target.delivery);
    return { projectId: run.projectId, what: 'delivery', id: target.delivery, ownRun: false };
  }
  if (target.project !== undefined) {
    return { projectId: target.project, what: 'project', id: target.project, ownRun: false };
  }
  return null;
}
