/**
 * The one place that decides whether a principal may see or change a thing. For now the rule is
 * membership: a caller sees only its own workspace, and anything outside it answers 404 (not 403), so
 * ids from other workspaces do not even leak their existence. Private runs are visible to their
 * creator only. Roles refine these functions later without touching any route.
 */
import { ForbiddenError, NotFoundError } from '../domain/errors.ts';
import type { Run } from '../domain/run.ts';
import type { Principal } from './service-context.ts';

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

/** Workspace settings that hold secrets (SMTP, Slack) are for admins. */
export function assertAdmin(principal: Principal, what: string): void {
  if (principal.role !== 'admin') throw new ForbiddenError(`only a workspace admin may change ${what}`);
}

/**
 * Whether a principal sees a project: every member sees a `workspace` project; a `restricted` one is
 * seen by admins, its creator, and holders of a grant (`user:<id>` or `group:<id>`).
 */
export function canSeeProject(
  principal: Principal,
  project: { workspaceId: string; visibility: 'workspace' | 'restricted'; createdBy: string | null },
  grantKeys: readonly string[],
  grants: readonly string[],
): boolean {
  if (principal.workspaceId !== project.workspaceId) return false;
  if (project.visibility === 'workspace' || principal.role === 'admin') return true;
  if (project.createdBy === principal.userId) return true;
  return grantKeys.some((key) => grants.includes(key));
}
