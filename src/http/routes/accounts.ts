/**
 * Accounts over HTTP (issue 16): email and password sign-in, invitations, password reset, password
 * change, and the people list (admins). Sign-in, reset and invitation acceptance are rate-limited per
 * address and per client IP (`RateLimiter`); they answer the same whether or not an address exists.
 */
import { randomUUID } from 'node:crypto';
import type { Context } from 'hono';
import { getCookie } from 'hono/cookie';
import { z } from 'zod';
import { ForbiddenError } from '../../domain/errors.ts';
import { accountSchema, MAX_PASSWORD_LENGTH } from '../../domain/user.ts';
import { WORKSPACE_ROLES } from '../../domain/workspace.ts';
import * as accounts from '../../services/account-service.ts';
import * as notifications from '../../services/notification-service.ts';
import type { ServiceContext } from '../../services/service-context.ts';
import * as workspaces from '../../services/workspace-service.ts';
import type { RouteDeps } from '../route-deps.ts';
import { type AnyRoute, route, SESSION_COOKIE } from '../routes.ts';
import { clientIp, type OriginOptions, requestOrigin, sameOriginRequest } from '../security-headers.ts';

/**
 * Sends account email (invitations, resets) through the notifier's email channel: over the workspace's
 * SMTP settings, or into the outbox folder when there are none (app/ wires `EmailChannel`).
 */
export interface AccountMailChannel {
  send(
    smtp: notifications.Integrations['smtp'],
    email: {
      from: string;
      to: string;
      subject: string;
      text: string;
      html: string;
      attachments: [];
    },
    name: string,
  ): Promise<unknown>;
}

/** A bucket per key: `burst` attempts at once, then one more every `everyMs`. */
export interface RateRule {
  burst: number;
  everyMs: number;
}

/**
 * Sign-in guessing limits. Per address: 5 at once, then one a minute. Per IP: 30 at once, then one
 * every 2 s (a shared office NAT signs in a lot).
 */
export const LIMITS = {
  signInPerAddress: { burst: 5, everyMs: 60_000 },
  signInPerIp: { burst: 30, everyMs: 2_000 },
  resetPerAddress: { burst: 3, everyMs: 10 * 60_000 },
  resetPerIp: { burst: 10, everyMs: 30_000 },
  acceptPerCode: { burst: 5, everyMs: 60_000 },
  acceptPerIp: { burst: 10, everyMs: 30_000 },
} as const satisfies Record<string, RateRule>;

/**
 * In-memory token buckets, on the service clock. One process's memory: with several web processes
 * (scale-out) each keeps its own buckets, so the limits multiply by the number of web nodes; nothing
 * else depends on them (docs/decisions.md, "Accounts").
 */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #now: () => Date;
  constructor(now: () => Date) {
    this.#now = now;
  }
  /** Takes one attempt from `key`'s bucket: null when allowed, else the seconds to wait. */
  take(key: string, rule: RateRule): number | null {
    const now = this.#now().getTime();
    const bucket = this.#buckets.get(key) ?? { tokens: rule.burst, at: now };
    const tokens = Math.min(rule.burst, bucket.tokens + Math.max(0, now - bucket.at) / rule.everyMs);
    if (tokens < 1) {
      this.#buckets.set(key, { tokens, at: now });
      return Math.max(1, Math.ceil(((1 - tokens) * rule.everyMs) / 1000));
    }
    if (this.#buckets.size > 50_000) this.#buckets.clear();
    this.#buckets.set(key, { tokens: tokens - 1, at: now });
    return null;
  }
}

function tooMany(c: Context, seconds: number, what: string): Response {
  c.header('Retry-After', String(seconds));
  return c.json(
    {
      error: {
        code: 'rate_limited',
        message: `too many ${what} attempts; wait ${seconds} s and try again`,
      },
    },
    429,
  );
}

const Email = z.string().max(254).describe('An email address (compared without case)');
const Password = z.string().max(MAX_PASSWORD_LENGTH);
const Workspace = z
  .string()
  .max(200)
  .optional()
  .describe('The workspace, when one address belongs to several (default: any)');

const SignedIn = z.object({
  user: z.object({
    userId: z.string(),
    workspaceId: z.string(),
    name: z.string(),
    role: z.enum(WORKSPACE_ROLES),
  }),
  expiresAt: z.string().describe('When the session ends at the latest'),
});

export const AccountJson = accountSchema;
const Accounts = z.array(accountSchema);

/** Routes that start a session refuse foreign origins (login CSRF); programs send no Origin at all. */
function assertNotCrossSite(c: Context, origin: OriginOptions): void {
  if (c.req.header('origin') === undefined && c.req.header('sec-fetch-site') === undefined) return;
  const check = sameOriginRequest(c, origin);
  if (!check.ok) throw new ForbiddenError(`sign-in must come from this site's own pages, and ${check.why}`);
}

export function accountRoutes(deps: RouteDeps, mail: AccountMailChannel | null): AnyRoute[] {
  const { ctx, publicUrl, origin, hot, setSessionCookie } = deps;
  const limiter = new RateLimiter(ctx.now);
  const site = (c: Context) => (publicUrl ? new URL(publicUrl).origin : requestOrigin(c, origin));

  /** Answers with a fresh session: the browser's previous one (if any) ends, so sign-in rotates it. */
  const signedIn = async (c: Context, session: workspaces.StartedSession, status: 200 | 201) => {
    const previous = getCookie(c, SESSION_COOKIE);
    if (previous?.startsWith(workspaces.SESSION_PREFIX)) {
      hot.forget(previous);
      await workspaces.endSession(ctx, previous);
    }
    setSessionCookie(c, session);
    c.header('Cache-Control', 'no-store');
    return c.json({ user: session.principal, expiresAt: session.expiresAt.toISOString() }, status);
  };

  const limited = (c: Context, checks: [string, RateRule][], what: string): Response | null => {
    for (const [key, rule] of checks) {
      const wait = limiter.take(key, rule);
      if (wait !== null) return tooMany(c, wait, what);
    }
    return null;
  };

  return [
    route({
      method: 'post',
      path: '/api/auth/login',
      summary:
        'Sign in with an email and a password; sets the session cookie. Every failure answers the same 401, whether or not the address exists',
      tag: 'auth',
      action: 'public',
      auth: false,
      body: z.strictObject({ email: Email, password: Password, workspace: Workspace }),
      responses: {
        200: { description: 'Signed in; the session cookie is set', schema: SignedIn },
        429: { description: 'Too many attempts for this address or from this IP; see Retry-After' },
      },
      handler: async ({ c, body }) => {
        assertNotCrossSite(c, origin);
        const stop = limited(
          c,
          [
            [`login:ip:${clientIp(c, origin)}`, LIMITS.signInPerIp],
            [`login:email:${body.email.trim().toLowerCase()}`, LIMITS.signInPerAddress],
          ],
          'sign-in',
        );
        if (stop) return stop;
        return signedIn(c, await accounts.signInWithPassword(ctx, { ...body, ip: clientIp(c, origin) }), 200);
      },
    }),
    route({
      method: 'post',
      path: '/api/auth/token',
      summary:
        'Sign a program in (`almanac login`): an email and a password buy an API token acting as that user, shown once',
      tag: 'auth',
      action: 'public',
      auth: false,
      body: z.strictObject({
        email: Email,
        password: Password,
        workspace: Workspace,
        name: z.string().min(1).max(200).describe('What the token is for (like "laptop CLI")'),
        expiresAt: z.iso.datetime({ offset: true }).optional().describe('When the token stops working'),
      }),
      responses: {
        201: {
          description: 'The token, shown once',
          schema: z.object({ token: z.string(), id: z.string() }),
        },
        429: { description: 'Too many attempts for this address or from this IP; see Retry-After' },
      },
      handler: async ({ c, body }) => {
        const stop = limited(
          c,
          [
            [`login:ip:${clientIp(c, origin)}`, LIMITS.signInPerIp],
            [`login:email:${body.email.trim().toLowerCase()}`, LIMITS.signInPerAddress],
          ],
          'sign-in',
        );
        if (stop) return stop;
        const session = await accounts.signInWithPassword(ctx, { ...body, ip: clientIp(c, origin) });
        // The session only proved the password; the program keeps the token.
        await workspaces.endSession(ctx, session.secret);
        const created = await accounts.createToken(
          ctx,
          { ...session.principal, ip: clientIp(c, origin) },
          {
            name: body.name,
            expiresAt: body.expiresAt ? new Date(body.expiresAt) : null,
          },
        );
        c.header('Cache-Control', 'no-store');
        return c.json({ token: created.token, id: created.id }, 201);
      },
    }),
    route({
      method: 'post',
      path: '/api/auth/accept-invite',
      summary:
        "Accept an invitation (its link's code, once, within 7 days): sets a name and password and signs in",
      tag: 'auth',
      action: 'public',
      auth: false,
      body: z.strictObject({
        code: z.string().max(200),
        name: z.string().max(200),
        password: Password,
      }),
      responses: {
        201: { description: 'The user is active and signed in', schema: SignedIn },
        429: { description: 'Too many attempts; see Retry-After' },
      },
      handler: async ({ c, body }) => {
        assertNotCrossSite(c, origin);
        const stop = limited(
          c,
          [
            [`accept:ip:${clientIp(c, origin)}`, LIMITS.acceptPerIp],
            [`accept:code:${workspaces.hashToken(body.code)}`, LIMITS.acceptPerCode],
          ],
          'invitation',
        );
        if (stop) return stop;
        return signedIn(c, await accounts.acceptInvite(ctx, { ...body, ip: clientIp(c, origin) }), 201);
      },
    }),
    route({
      method: 'post',
      path: '/api/auth/password-reset',
      summary:
        'Ask for a password reset link by email. Always 202, whether or not the address has an account',
      tag: 'auth',
      action: 'public',
      auth: false,
      body: z.strictObject({ email: Email, workspace: Workspace }),
      responses: {
        202: { description: 'If the address has an account, a link that works for 1 hour is on its way' },
        429: { description: 'Too many requests for this address or from this IP; see Retry-After' },
      },
      handler: async ({ c, body }) => {
        const stop = limited(
          c,
          [
            [`reset:ip:${clientIp(c, origin)}`, LIMITS.resetPerIp],
            [`reset:email:${body.email.trim().toLowerCase()}`, LIMITS.resetPerAddress],
          ],
          'password reset',
        );
        if (stop) return stop;
        const base = site(c);
        // Not awaited: the answer takes the same time whether or not a message goes out.
        void (async () => {
          for (const issued of await accounts.requestPasswordReset(ctx, body)) {
            await sendAccountMail(ctx, mail, issued.account.workspaceId, {
              to: issued.account.email,
              subject: 'Reset your Almanac password',
              text: `Someone (hopefully you) asked to reset the password of ${issued.account.email}.\n\nSet a new one within an hour:\n${base}/reset-password?code=${encodeURIComponent(issued.code)}\n\nIf it was not you, ignore this message: your password stays as it is.\n`,
            });
          }
        })().catch(() => {});
        return c.body(null, 202);
      },
    }),
    route({
      method: 'post',
      path: '/api/auth/password-reset/complete',
      summary:
        "Set a new password with a reset link's code (once, within 1 hour); every session and token of the user is revoked, and this browser is signed in",
      tag: 'auth',
      action: 'public',
      auth: false,
      body: z.strictObject({ code: z.string().max(200), password: Password }),
      responses: {
        200: { description: 'The password is set and the browser signed in', schema: SignedIn },
        429: { description: 'Too many attempts; see Retry-After' },
      },
      handler: async ({ c, body }) => {
        assertNotCrossSite(c, origin);
        const stop = limited(
          c,
          [
            [`reset:ip:${clientIp(c, origin)}`, LIMITS.resetPerIp],
            [`reset:code:${workspaces.hashToken(body.code)}`, LIMITS.acceptPerCode],
          ],
          'password reset',
        );
        if (stop) return stop;
        const session = await accounts.completePasswordReset(ctx, { ...body, ip: clientIp(c, origin) });
        hot.forgetUser(session.principal.userId);
        return signedIn(c, session, 200);
      },
    }),
    route({
      method: 'post',
      path: '/api/auth/password',
      summary:
        "Change the caller's password; every session and token of theirs is revoked, and a browser gets a fresh session",
      tag: 'auth',
      action: 'session.manage_own',
      body: z.strictObject({
        currentPassword: Password.describe('Empty for an admin created at first start, who has none yet'),
        newPassword: Password,
      }),
      responses: { 200: { description: 'Changed; a fresh session cookie is set', schema: SignedIn } },
      handler: async ({ c, principal, body }) => {
        const session = await accounts.changePassword(ctx, principal, body);
        hot.forgetUser(principal.userId);
        return signedIn(c, session, 200);
      },
    }),
    route({
      method: 'get',
      path: '/api/users',
      summary: "The workspace's users, with their status and last sign-in (admins)",
      tag: 'people',
      action: 'workspace.people',
      responses: { 200: { description: 'The users', schema: Accounts } },
      handler: async ({ c, principal }) => {
        assertAdminOf(principal);
        return c.json(await accounts.listUsers(ctx, principal));
      },
    }),
    route({
      method: 'post',
      path: '/api/users/invitations',
      summary:
        'Invite someone by email (admins): an invited user and a single-use link that works for 7 days, sent through the mailer (the outbox folder without SMTP)',
      tag: 'people',
      action: 'workspace.people',
      body: z.strictObject({
        email: Email,
        name: z.string().max(200).optional(),
        role: z.enum(WORKSPACE_ROLES).optional().describe('@default member'),
      }),
      responses: {
        201: {
          description: 'Invited; the link is in the email, never in this answer',
          schema: z.object({ user: accountSchema, expiresAt: z.string(), sentTo: z.string() }),
        },
      },
      handler: async ({ c, principal, body }) => {
        const issued = await accounts.inviteUser(ctx, principal, body);
        const link = `${site(c)}/invite?code=${encodeURIComponent(issued.code)}`;
        await sendAccountMail(ctx, mail, principal.workspaceId, {
          to: issued.account.email,
          subject: `${principal.name} invited you to Almanac`,
          text: `${principal.name} invited you to their Almanac workspace.\n\nAccept within 7 days (the link works once):\n${link}\n`,
        });
        return c.json(
          {
            user: issued.account,
            expiresAt: issued.expiresAt.toISOString(),
            sentTo: issued.account.email,
          },
          201,
        );
      },
    }),
    route({
      method: 'post',
      path: '/api/users/:user/deactivate',
      summary:
        'Deactivate a user (admins): they cannot sign in, and every session and API token of theirs is revoked',
      tag: 'people',
      action: 'workspace.people',
      params: z.object({ user: z.string() }),
      responses: { 200: { description: 'The user, deactivated', schema: accountSchema } },
      handler: async ({ c, principal, params }) => {
        const account = await accounts.deactivateUser(ctx, principal, params.user);
        hot.forgetUser(account.id);
        return c.json(account);
      },
    }),
    route({
      method: 'put',
      path: '/api/users/:user/role',
      summary: "Change a user's workspace role (admins); the last admin keeps theirs",
      tag: 'people',
      action: 'workspace.people',
      params: z.object({ user: z.string() }),
      body: z.strictObject({ role: z.enum(WORKSPACE_ROLES) }),
      responses: { 200: { description: 'The user with the new role', schema: accountSchema } },
      handler: async ({ c, principal, params, body }) => {
        const account = await accounts.setUserRole(ctx, principal, params.user, body.role);
        hot.forgetUser(account.id);
        return c.json(account);
      },
    }),
  ];
}

/** The policy table decides on `workspace.people`; this keeps the rule where the service also checks. */
function assertAdminOf(principal: { role: string }): void {
  if (principal.role !== 'admin') throw new ForbiddenError('only a workspace admin may list its people');
}

async function sendAccountMail(
  ctx: ServiceContext,
  mail: AccountMailChannel | null,
  workspaceId: string,
  message: { to: string; subject: string; text: string },
): Promise<void> {
  if (!mail) throw new Error('no email channel is wired: account email cannot be sent');
  const integrations = await notifications.loadIntegrations(ctx, workspaceId);
  const html = `<p>${escapeHtml(message.text).replace(/\n/g, '<br>')}</p>`;
  await mail.send(
    integrations.smtp,
    {
      from: integrations.emailFrom,
      to: message.to,
      subject: message.subject,
      text: message.text,
      html,
      attachments: [],
    },
    `${ctx.now().toISOString().replace(/[-:.]/g, '')}-account-${randomUUID().slice(0, 8)}`,
  );
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
