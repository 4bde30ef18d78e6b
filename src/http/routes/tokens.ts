/**
 * A user's API tokens (issue 16): create with a name and an optional expiry (the secret is shown once),
 * list (prefix, use and expiry; never the secret), revoke. A token acts with its user's rights, and
 * stops working when the user is deactivated or changes their password.
 */
import { z } from 'zod';
import * as accounts from '../../services/account-service.ts';
import type { ApiTokenInfo } from '../../store/workspace-store.ts';
import type { RouteDeps } from '../route-deps.ts';
import { type AnyRoute, route } from '../routes.ts';

const TokenInfo = z
  .object({
    id: z.string(),
    name: z.string(),
    prefix: z.string().nullable().describe('The first characters of the token, to recognize it'),
    createdAt: z.string(),
    lastUsedAt: z.string().nullable().describe('To the minute'),
    expiresAt: z.string().nullable(),
  })
  .meta({ id: 'ApiToken' });

function tokenJson(t: ApiTokenInfo): z.output<typeof TokenInfo> {
  return {
    id: t.id,
    name: t.name,
    prefix: t.prefix,
    createdAt: t.createdAt.toISOString(),
    lastUsedAt: t.lastUsedAt?.toISOString() ?? null,
    expiresAt: t.expiresAt?.toISOString() ?? null,
  };
}

export function tokenRoutes(deps: RouteDeps): AnyRoute[] {
  const { ctx, hot } = deps;
  return [
    route({
      method: 'post',
      path: '/api/tokens',
      summary: 'Create an API token for the caller, acting with their rights; the secret is shown once',
      tag: 'auth',
      action: 'token.manage_own',
      body: z.strictObject({
        name: z.string().min(1).max(200).describe('What the token is for'),
        expiresAt: z.iso
          .datetime({ offset: true })
          .optional()
          .describe('When the token stops working (default: never)'),
      }),
      responses: {
        201: {
          description: 'The token, shown once',
          schema: TokenInfo.extend({ token: z.string().describe('Shown once; store it now') }),
        },
      },
      handler: async ({ c, principal, body }) => {
        const created = await accounts.createToken(ctx, principal, {
          name: body.name,
          expiresAt: body.expiresAt ? new Date(body.expiresAt) : null,
        });
        c.header('Cache-Control', 'no-store');
        return c.json({ ...tokenJson(created), token: created.token }, 201);
      },
    }),
    route({
      method: 'get',
      path: '/api/tokens',
      summary: "The caller's API tokens: name, prefix, last use and expiry (never the secret)",
      tag: 'auth',
      action: 'token.manage_own',
      responses: { 200: { description: 'The tokens, newest first', schema: z.array(TokenInfo) } },
      handler: async ({ c, principal }) => c.json((await accounts.listTokens(ctx, principal)).map(tokenJson)),
    }),
    route({
      method: 'delete',
      path: '/api/tokens/:token',
      summary: "Revoke one of the caller's API tokens",
      tag: 'auth',
      action: 'token.manage_own',
      params: z.object({ token: z.string().describe("The token's id (from the list), not its secret") }),
      responses: { 204: { description: 'Revoked' } },
      handler: async ({ c, principal, params }) => {
        await accounts.revokeToken(ctx, principal, params.token);
        // Other processes' caches let it work for up to their auth cache time (5 s by default).
        hot.forgetUser(principal.userId);
        return c.body(null, 204);
      },
    }),
  ];
}
