/**
 * The caller's access to a project, as far as the pages need it: which tabs to show and whether to
 * offer sharing. The API has no "your access" field yet, so it is read from what the caller may open:
 * admins have Full access everywhere; the sharing settings answer only Full access; the project's
 * source answers Can View and up; anyone who sees the app has at least App Only.
 */
import { useQuery } from '@tanstack/react-query';
import { ApiError, client } from './api.ts';
import { useMe } from './me.ts';

/** Project access levels, lowest first (domain/access-policy.ts). */
export const ACCESS_LEVELS = ['app_only', 'can_view', 'can_edit', 'full_access'] as const;
export type AccessLevel = (typeof ACCESS_LEVELS)[number];
export const ACCESS_LABELS: Readonly<Record<AccessLevel, string>> = {
  app_only: 'App Only',
  can_view: 'Can View',
  can_edit: 'Can Edit',
  full_access: 'Full access',
};
export const WORKSPACE_DEFAULTS = ['none', 'app_only', 'can_view', 'can_edit'] as const;
export type WorkspaceDefault = (typeof WORKSPACE_DEFAULTS)[number];
export const WORKSPACE_ROLES = ['admin', 'editor', 'member', 'guest'] as const;
export type WorkspaceRole = (typeof WORKSPACE_ROLES)[number];
export const ROLE_LABELS: Readonly<Record<WorkspaceRole, string>> = {
  admin: 'Admin',
  editor: 'Editor',
  member: 'Member',
  guest: 'Guest',
};

export function atLeast(level: AccessLevel | null | undefined, min: AccessLevel): boolean {
  return !!level && ACCESS_LEVELS.indexOf(level) >= ACCESS_LEVELS.indexOf(min);
}

async function answers(response: Promise<{ response: Response }>): Promise<boolean> {
  const { response: r } = await response;
  if (r.ok) return true;
  if (r.status === 403 || r.status === 404) return false;
  throw new ApiError(r.status, `the server answered ${r.status} while checking your access`);
}

/**
 * The caller's access to `project` ('can_view' stands for Can View or Can Edit: the tabs need no
 * finer answer), or undefined while it is being worked out.
 */
export function useProjectAccess(project: string | null): AccessLevel | undefined {
  const me = useMe();
  const admin = me.data?.role === 'admin';
  const probe = useQuery({
    queryKey: ['access-level', project, me.data?.userId],
    enabled: !!project && me.isSuccess && !admin,
    retry: false,
    staleTime: 60_000,
    queryFn: async ({ signal }): Promise<AccessLevel> => {
      const path = { project: project! };
      if (await answers(client.GET('/api/projects/{project}/access', { params: { path }, signal })))
        return 'full_access';
      if (await answers(client.GET('/api/projects/{project}', { params: { path }, signal })))
        return 'can_view';
      return 'app_only';
    },
  });
  if (!project || !me.data) return undefined;
  if (admin) return 'full_access';
  return probe.data;
}
