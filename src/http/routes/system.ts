/**
 * The server itself: liveness with the package version, and who the caller is.
 */
import * as workspaces from '../../services/workspace-service.ts';
import type { RouteDeps } from '../route-deps.ts';
import { type AnyRoute, route } from '../routes.ts';
import * as S from '../schemas.ts';

export function systemRoutes(deps: RouteDeps): AnyRoute[] {
  const { ctx, version } = deps;
  return [
    route({
      method: 'get',
      path: '/api/health',
      action: 'public',
      summary: 'Liveness',
      tag: 'system',
      auth: false,
      responses: { 200: { description: 'The server is up', schema: S.Health } },
      handler: async ({ c }) => c.json({ ok: true, version }),
    }),
    route({
      method: 'get',
      path: '/api/me',
      action: 'me.read',
      summary: 'The caller',
      tag: 'system',
      responses: { 200: { description: 'Who the token belongs to', schema: S.Me } },
      handler: async ({ c, principal }) => c.json(await workspaces.describeCaller(ctx, principal)),
    }),
  ];
}
