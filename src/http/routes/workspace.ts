/**
 * The workspace's settings.
 */
import * as workspaces from '../../services/workspace-service.ts';
import type { RouteDeps } from '../route-deps.ts';
import { type AnyRoute, route } from '../routes.ts';
import * as S from '../schemas.ts';

export function workspaceRoutes(deps: RouteDeps): AnyRoute[] {
  const { ctx } = deps;
  return [
    route({
      method: 'get',
      path: '/api/workspace/settings',
      action: 'workspace.read_settings',
      summary: "The workspace's settings (network access for cells)",
      tag: 'workspace',
      responses: { 200: { description: 'Settings', schema: S.WorkspaceSettings } },
      handler: async ({ c, principal }) => c.json(await workspaces.getSettings(ctx, principal)),
    }),
    route({
      method: 'put',
      path: '/api/workspace/settings',
      action: 'workspace.settings',
      summary: "Change the workspace's settings (admins)",
      tag: 'workspace',
      body: S.UpdateWorkspaceSettingsBody,
      responses: { 200: { description: 'Settings', schema: S.WorkspaceSettings } },
      handler: async ({ c, principal, body }) =>
        c.json(await workspaces.updateSettings(ctx, principal, body)),
    }),
  ];
}
