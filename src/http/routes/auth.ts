/**
 * Credentials: one-time login links for browsers, browser sessions and sign-out (API tokens are in
 * tokens.ts; passwords, invitations and resets in accounts.ts).
 */
import { deleteCookie, getCookie } from 'hono/cookie';
import { z } from 'zod';
import { ForbiddenError } from '../../domain/errors.ts';
import { assertAdmin } from '../../services/authorize.ts';
import * as workspaces from '../../services/workspace-service.ts';
import type { RouteDeps } from '../route-deps.ts';
import { type AnyRoute, route, SESSION_COOKIE } from '../routes.ts';
import * as S from '../schemas.ts';
import { isHttps, requestOrigin, safeNext, sameOriginRequest } from '../security-headers.ts';

export function authRoutes(deps: RouteDeps): AnyRoute[] {
  const { ctx, publicUrl, origin, hot, setSessionCookie } = deps;
  return [
    route({
      method: 'post',
      path: '/api/auth/login-codes',
      action: 'workspace.login_links',
      summary:
        'Mint a one-time login link for the caller (admins, with an API token): it signs a browser in once, within 10 minutes',
      tag: 'auth',
      bearerOnly: true,
      body: z
        .object({
          next: z.string().max(2048).optional().describe('Where the browser goes after signing in (a path)'),
        })
        .strict(),
      responses: {
        201: {
          description: 'The code and the link that uses it',
          schema: z.object({ code: z.string(), path: z.string(), url: z.string(), expiresAt: z.string() }),
        },
      },
      handler: async ({ c, principal, body }) => {
        assertAdmin(principal, 'login links (mint them with an admin API token)');
        const site = publicUrl ? new URL(publicUrl).origin : requestOrigin(c, origin);
        const next = safeNext(body.next, site);
        const { code, expiresAt } = await workspaces.createLoginCode(ctx, principal.userId);
        const path = `/login?code=${encodeURIComponent(code)}&next=${encodeURIComponent(next)}`;
        return c.json({ code, path, url: `${site}${path}`, expiresAt: expiresAt.toISOString() }, 201);
      },
    }),
    route({
      method: 'post',
      path: '/api/auth/session',
      action: 'session.manage_own',
      summary:
        'Start a browser session for the holder of an API token (sent in Authorization, never in a URL); sets the session cookie',
      tag: 'auth',
      bearerOnly: true,
      responses: {
        201: {
          description: 'Signed in; the session cookie is set',
          schema: z.object({ user: S.Me, expiresAt: z.string() }),
        },
      },
      handler: async ({ c, principal, caller }) => {
        if (caller?.via !== 'token') throw new ForbiddenError('a browser session starts from an API token');
        const session = await workspaces.sessionForPrincipal(ctx, principal);
        setSessionCookie(c, session);
        c.header('Cache-Control', 'no-store');
        return c.json({ user: session.principal, expiresAt: session.expiresAt.toISOString() }, 201);
      },
    }),
    route({
      method: 'post',
      path: '/api/auth/logout',
      action: 'public',
      summary: "End the browser's session and clear its cookie (a no-op without one)",
      tag: 'auth',
      auth: false,
      responses: { 204: { description: 'Signed out' } },
      handler: async ({ c }) => {
        const secret = getCookie(c, SESSION_COOKIE);
        if (secret) {
          // Forced sign-out is a CSRF too: only this site's pages may end the session.
          const check = sameOriginRequest(c, origin);
          if (!check.ok)
            throw new ForbiddenError(`sign-out must come from this site's own pages, and ${check.why}`);
          hot.forget(secret);
          if (!secret.startsWith(workspaces.TICKET_PREFIX)) await workspaces.endSession(ctx, secret);
        }
        deleteCookie(c, SESSION_COOKIE, { path: '/', secure: isHttps(c, origin) });
        return c.body(null, 204);
      },
    }),
  ];
}
