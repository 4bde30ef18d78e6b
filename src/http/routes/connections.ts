/**
 * Connections: data sources SQL cells query; their credentials are never returned.
 */
import * as workspaces from '../../services/workspace-service.ts';
import type { RouteDeps } from '../route-deps.ts';
import { type AnyRoute, route } from '../routes.ts';
import * as S from '../schemas.ts';

export function connectionRoutes(deps: RouteDeps): AnyRoute[] {
  const { ctx } = deps;
  return [
    route({
      method: 'get',
      path: '/api/connections',
      action: 'connection.list',
      summary: 'List connections (never their credentials)',
      tag: 'connections',
      responses: { 200: { description: 'Connections', schema: S.Connection.array() } },
      handler: async ({ c, principal }) =>
        c.json(
          (await workspaces.listConnections(ctx, principal)).map((x) => ({
            ...x,
            createdAt: x.createdAt.toISOString(),
          })),
        ),
    }),
    route({
      method: 'post',
      path: '/api/connections',
      action: 'connection.manage',
      summary: 'Add a PostgreSQL connection; its URL is encrypted at rest',
      tag: 'connections',
      body: S.CreateConnectionBody,
      responses: { 201: { description: 'Created', schema: S.Connection } },
      handler: async ({ c, principal, body }) => {
        const created = await workspaces.createConnection(ctx, principal, body);
        return c.json({ ...created, createdAt: created.createdAt.toISOString() }, 201);
      },
    }),
  ];
}
