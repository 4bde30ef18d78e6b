/**
 * Issue 14 ("Hostile notebooks and hostile pages"), the HTTP layer's defences, each test named after
 * the class of attack it guards and saying how it failed before:
 * - security headers and CSP on every response (finding 2: no CSP, so a stored XSS ran in an admin's
 *   browser);
 * - CSRF (finding 9: cookie-authenticated changes from any origin, text/plain parsed as JSON);
 * - open redirect (finding 10: /login?next=/%5Cevil.example left the site);
 * - login codes and sessions (finding 11: the login link put a long-lived admin token in the URL and
 *   used it as a 30-day cookie without Secure);
 * - scoped view tickets (finding 2: the screenshot browser's ticket worked as a full API token);
 * - body size limits (finding 12: a 60 MB input was accepted).
 * All in-process through `app.request`, on a real SQLite store, with the service clock driven by hand.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Hono } from 'hono';
import { createOpsApp } from '../src/http/ops.ts';
import { SESSION_COOKIE } from '../src/http/routes.ts';
import {
  API_CONTENT_SECURITY_POLICY,
  CONTENT_SECURITY_POLICY,
  safeNext,
  securityHeaders,
} from '../src/http/security-headers.ts';
import { createMetrics } from '../src/services/metrics.ts';
import {
  authenticate,
  createWorkspaceWithUser,
  issueViewTicket,
  LOGIN_CODE_TTL_MS,
  SESSION_IDLE_MS,
  SESSION_MAX_MS,
  VIEW_TICKET_TTL_MS,
} from '../src/services/workspace-service.ts';
import { fence } from './support/harness.ts';
import { notebook, startTestServer, type TestServer, testStores } from './support/server-harness.ts';

const sqlite = (await testStores())[0]!;
const ORIGIN = 'http://localhost';

function assertSecurityHeaders(response: Response, what: string, html = false): void {
  assert.equal(response.headers.get('x-frame-options'), 'DENY', `${what}: X-Frame-Options`);
  assert.equal(response.headers.get('x-content-type-options'), 'nosniff', `${what}: X-Content-Type-Options`);
  assert.equal(response.headers.get('referrer-policy'), 'same-origin', `${what}: Referrer-Policy`);
  assert.equal(
    response.headers.get('content-security-policy'),
    html ? CONTENT_SECURITY_POLICY : API_CONTENT_SECURITY_POLICY,
    `${what}: Content-Security-Policy`,
  );
}

/** The `name=value` of a Set-Cookie header, for sending back. */
function cookiePair(setCookie: string | null): string {
  assert.ok(setCookie, 'a cookie is set');
  return setCookie.split(';')[0]!;
}

describe('HTTP security (issue 14)', () => {
  let t: TestServer;
  let webDir: string;
  let runId = '';
  let otherRunId = '';
  let adminId = '';
  const request = (path: string, init?: RequestInit) =>
    t.server.http.app.request(path, init) as Promise<Response>;

  /** A fresh browser session of the admin, through a login code. */
  const signIn = async (): Promise<string> => {
    const link = await t.server.loginLink('/');
    const response = await request(link);
    assert.equal(response.status, 302);
    return cookiePair(response.headers.get('set-cookie'));
  };

  before(async () => {
    webDir = mkdtempSync(join(tmpdir(), 'almanac-web-'));
    mkdirSync(join(webDir, 'assets'));
    writeFileSync(join(webDir, 'index.html'), '<!doctype html><main>app</main>');
    writeFileSync(join(webDir, 'assets', 'app.js'), 'console.log(1)');
    t = await startTestServer(sqlite, { webDir });
    adminId = (await t.server.admin()).userId;
    for (const slug of ['shop', 'other']) {
      await t.json('POST', '/api/projects', {
        source: notebook(slug, fence('sql one', 'select 1 as n')),
        slug,
      });
    }
    runId = (await t.json('POST', '/api/projects/shop/publish', {})).body.run.id;
    otherRunId = (await t.json('POST', '/api/projects/other/publish', {})).body.run.id;
    await t.server.worker!.drain();
  });
  after(async () => {
    await t?.close();
    rmSync(webDir, { recursive: true, force: true });
  });

  describe('security headers', () => {
    it('are on API, HTML, asset, SSE, 404, error and ops responses, with the strict CSP on HTML', async () => {
      // Before: no response carried a CSP or framing protection.
      assertSecurityHeaders(await t.api('GET', '/api/projects'), 'API JSON');
      assertSecurityHeaders(await request('/apps/shop'), 'HTML page', true);
      assertSecurityHeaders(await request('/'), 'HTML root', true);
      assertSecurityHeaders(await request('/assets/app.js'), 'asset');
      assertSecurityHeaders(await request('/assets/missing.js'), 'asset 404');
      const sse = await t.api('GET', `/api/runs/${runId}/events`);
      assert.match(sse.headers.get('content-type') ?? '', /text\/event-stream/);
      assertSecurityHeaders(sse, 'SSE');
      await sse.body?.cancel();
      assertSecurityHeaders(await t.api('GET', '/api/no-such-route'), 'API 404');
      assertSecurityHeaders(await t.api('GET', '/api/runs/no-such-run'), 'not found error');
      assertSecurityHeaders(await t.api('GET', '/api/me', undefined, null), '401 error');
      assertSecurityHeaders(await t.api('POST', '/api/tokens', {}), '400 error');
      assertSecurityHeaders(await request('/%E0%A4%A'), 'malformed path');
      assertSecurityHeaders(await request('/healthz'), 'ops');
      const ops = createOpsApp({
        ctx: t.server.ctx,
        metrics: createMetrics(t.server.ctx, { roles: ['worker'] }),
        metricsToken: null,
        authenticate: (token) => authenticate(t.server.ctx, token),
        roles: ['worker'],
      });
      assertSecurityHeaders(await ops.request('/healthz'), 'worker ops');
      assertSecurityHeaders(await ops.request('/anything'), 'worker ops 404');
    });

    it('HTML under /api/ (an outbox attachment a notebook wrote) gets the policy that runs nothing', async () => {
      const app = new Hono();
      app.use('*', securityHeaders());
      app.get('*', (c) => c.html('<script>alert(1)</script>'));
      assertSecurityHeaders(await app.request('/api/outbox/x/attachments/0'), 'HTML under /api/');
      assertSecurityHeaders(await app.request('/apps/x'), 'a page', true);
    });
  });

  describe('CSRF', () => {
    it('refuses a cookie-authenticated change from another origin, or with no origin at all', async () => {
      // Before: any site could POST with the victim's cookie (and a text/plain form body parsed as JSON).
      const cookie = await signIn();
      const mint = (headers: Record<string, string>) =>
        request('/api/tokens', {
          method: 'POST',
          headers: { cookie, 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ name: 'csrf' }),
        });
      const cross = await mint({ origin: 'https://evil.example' });
      assert.equal(cross.status, 403);
      assert.match(((await cross.json()) as any).error.message, /another origin/);
      assert.equal((await mint({ 'sec-fetch-site': 'cross-site' })).status, 403);
      const bare = await mint({});
      assert.equal(bare.status, 403);
      assert.match(((await bare.json()) as any).error.message, /neither an Origin nor a Sec-Fetch-Site/);
      assert.equal((await mint({ origin: 'null' })).status, 403);
      // The same origin, by Origin or by Sec-Fetch-Site, may.
      assert.equal((await mint({ origin: ORIGIN })).status, 201);
      assert.equal((await mint({ 'sec-fetch-site': 'same-origin' })).status, 201);
      // Reads need no origin.
      assert.equal((await request('/api/me', { headers: { cookie } })).status, 200);
    });

    it('accepts a bearer token without an Origin (programs are not browsers)', async () => {
      const response = await t.api('POST', '/api/tokens', { name: 'ci' });
      assert.equal(response.status, 201);
      const crossBearer = await request('/api/tokens', {
        method: 'POST',
        headers: {
          authorization: `Bearer ${t.token}`,
          origin: 'https://elsewhere.example',
          'content-type': 'application/json',
        },
        body: JSON.stringify({ name: 'ci2' }),
      });
      assert.equal(crossBearer.status, 201);
    });

    it('answers 415 naming Content-Type for a body that is not application/json', async () => {
      // Before: a text/plain body (what a cross-site form can send) was parsed as JSON.
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', null]) {
        const response = await request('/api/tokens', {
          method: 'POST',
          headers: { authorization: `Bearer ${t.token}`, ...(type ? { 'content-type': type } : {}) },
          body: JSON.stringify({ name: 'plain' }),
        });
        assert.equal(response.status, 415, `Content-Type ${type}`);
        const { error } = (await response.json()) as any;
        assert.equal(error.code, 'unsupported_media_type');
        assert.equal(error.header, 'Content-Type');
        assert.match(error.message, /Content-Type: application\/json/);
      }
      const charset = await request('/api/tokens', {
        method: 'POST',
        headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json; charset=utf-8' },
        body: JSON.stringify({ name: 'charset' }),
      });
      assert.equal(charset.status, 201);
    });

    it('refuses a cross-site sign-out', async () => {
      const cookie = await signIn();
      const forced = await request('/api/auth/logout', {
        method: 'POST',
        headers: { cookie, origin: 'https://evil.example' },
      });
      assert.equal(forced.status, 403);
      assert.equal((await request('/api/me', { headers: { cookie } })).status, 200);
    });
  });

  describe('open redirect', () => {
    const hostile = [
      '/%5Cevil.example',
      '//evil',
      '/\\evil',
      '\\\\evil',
      'https://evil',
      'http:/evil',
      '%0d%0aSet-Cookie:x',
      '/%0d%0aSet-Cookie:x=1',
      '/ok\r\nSet-Cookie: x=1',
      '%E0%A4%A',
      '/%E0%A4%A',
      'javascript:alert(1)',
      '/\t/evil',
      '/%09/evil',
      ' //evil',
      '/.//evil',
      '',
    ];

    it('safeNext turns every hostile next into a same-origin path', () => {
      for (const next of hostile) {
        const path = safeNext(next, ORIGIN);
        assert.ok(
          path.startsWith('/') && !path.startsWith('//') && !path.includes('\\'),
          `${next} -> ${path}`,
        );
        assert.equal(new URL(path, ORIGIN).origin, ORIGIN, `${next} stays on the origin`);
      }
      assert.equal(safeNext('/apps/sales?x=1#top', ORIGIN), '/apps/sales?x=1#top');
      assert.equal(safeNext('/\\evil', ORIGIN), '/');
    });

    it('/login lands every hostile next on a same-origin path, never a 500', async () => {
      // Before: /login?next=/%5Cevil.example redirected to /\evil.example, which browsers read as //evil.example.
      for (const next of hostile) {
        const link = await t.server.loginLink('/');
        const code = new URL(link, ORIGIN).searchParams.get('code')!;
        const raw = `/login?code=${encodeURIComponent(code)}&next=${next.replace(/[\r\n\t ]/g, encodeURIComponent)}`;
        const response = await request(raw);
        assert.equal(response.status, 302, `next=${JSON.stringify(next)}: ${response.status}`);
        const location = response.headers.get('location')!;
        assert.ok(location.startsWith('/') && !location.startsWith('//'), `${next} -> ${location}`);
        assert.ok(!/[\\\r\n]/.test(location), `${next} -> ${location}`);
        assert.equal(new URL(location, ORIGIN).origin, ORIGIN);
        assert.equal(response.headers.get('set-cookie')?.includes('Set-Cookie'), false);
      }
    });

    it('a malformed login link is a 4xx, never a 500', async () => {
      for (const path of [
        '/login?code=%E0%A4%A',
        '/login?code=almc_x&next=%E0%A4%A',
        '/login',
        '/login?code=',
      ]) {
        const response = await request(path);
        assert.ok(response.status >= 400 && response.status < 500, `${path}: ${response.status}`);
      }
    });
  });

  describe('login codes and sessions', () => {
    it('a login code works once, and a session cookie is HttpOnly, SameSite=Lax, Path=/', async () => {
      // Before: /login?token=<admin API token> set that token as a 30-day cookie.
      const link = await t.server.loginLink('/apps/shop');
      assert.doesNotMatch(link, /alm_(?!c)/, 'no API token in the link');
      const first = await request(link);
      assert.equal(first.status, 302);
      assert.equal(first.headers.get('location'), '/apps/shop');
      const setCookie = first.headers.get('set-cookie')!;
      assert.match(setCookie, new RegExp(`^${SESSION_COOKIE}=alms_[^;]+;`));
      assert.match(setCookie, /HttpOnly/);
      assert.match(setCookie, /SameSite=Lax/);
      assert.match(setCookie, /Path=\//);
      assert.doesNotMatch(setCookie, /Secure/, 'plain http: no Secure flag, or the browser drops it');
      assert.ok(!setCookie.includes(t.token), 'the cookie is not the API token');
      const cookie = cookiePair(setCookie);
      const me = await request('/api/me', { headers: { cookie } });
      assert.equal(me.status, 200);
      const caller = (await me.json()) as any;
      assert.equal(caller.userId, adminId);
      assert.equal(caller.workspaceName, 'Default workspace', 'the top bar names the workspace');
      assert.equal(caller.notifyVia, 'email', 'the profile reads the saved preference back');
      assert.equal((await t.api('PUT', '/api/me/notify-via', { via: 'both' })).status, 204);
      assert.equal((await t.json('GET', '/api/me')).body.notifyVia, 'both');
      assert.equal((await t.api('PUT', '/api/me/notify-via', { via: 'email' })).status, 204);
      // Single use.
      const again = await request(link);
      assert.equal(again.status, 401);
      assert.match(((await again.json()) as any).error.message, /already used, or expired.*login-link/);
      // The old form of link is refused with what to do instead.
      const old = await request(`/login?token=${t.token}&next=/`);
      assert.equal(old.status, 400);
      assert.match(((await old.json()) as any).error.message, /login-link/);
    });

    it('a login code expires after 10 minutes (service clock)', async () => {
      const link = await t.server.loginLink('/');
      t.clock.advance(LOGIN_CODE_TTL_MS + 1);
      assert.equal((await request(link)).status, 401);
    });

    it('the session cookie is Secure behind https (URL scheme, or X-Forwarded-Proto from a trusted proxy)', async () => {
      const https = await request(`https://almanac.example${await t.server.loginLink('/')}`);
      assert.match(https.headers.get('set-cookie') ?? '', /; Secure/);
      // The proxy header counts only when the config says to trust the proxy.
      const untrusted = await request(await t.server.loginLink('/'), {
        headers: { 'x-forwarded-proto': 'https' },
      });
      assert.doesNotMatch(untrusted.headers.get('set-cookie') ?? '', /Secure/);
      const proxied = await startTestServer(sqlite, { env: { ALMANAC_TRUST_PROXY: 'true' } });
      try {
        const behind = await proxied.server.http.app.request(await proxied.server.loginLink('/'), {
          headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'almanac.example' },
        });
        assert.equal(behind.status, 302);
        assert.match(behind.headers.get('set-cookie') ?? '', /; Secure/);
        // And the CSRF check takes the proxy's origin as its own.
        const cookie = cookiePair(behind.headers.get('set-cookie'));
        const post = await proxied.server.http.app.request('/api/tokens', {
          method: 'POST',
          headers: {
            cookie,
            origin: 'https://almanac.example',
            'x-forwarded-proto': 'https',
            'x-forwarded-host': 'almanac.example',
            'content-type': 'application/json',
          },
          body: JSON.stringify({ name: 'proxied' }),
        });
        assert.equal(post.status, 201);
      } finally {
        await proxied.close();
      }
    });

    it('logout revokes the session', async () => {
      const cookie = await signIn();
      const out = await request('/api/auth/logout', { method: 'POST', headers: { cookie, origin: ORIGIN } });
      assert.equal(out.status, 204);
      assert.match(out.headers.get('set-cookie') ?? '', new RegExp(`${SESSION_COOKIE}=;`));
      const after = await request('/api/me', { headers: { cookie } });
      assert.equal(after.status, 401);
      assert.match(((await after.json()) as any).error.message, /sign in again/);
    });

    it('a session ends after its idle time, is renewed by use, and ends at its absolute expiry', async () => {
      const cookie = await signIn();
      const me = () => request('/api/me', { headers: { cookie } }).then((r) => r.status);
      // Used every 6 days, it lives on past the 7-day idle limit...
      for (let day = 6; day < 30; day += 6) {
        t.clock.advance(6 * 86_400_000);
        assert.equal(await me(), 200, `day ${day}`);
      }
      // ...but not past 30 days from sign-in.
      t.clock.advance(SESSION_MAX_MS - 24 * 86_400_000);
      assert.equal(await me(), 401);
      const idle = await signIn();
      t.clock.advance(SESSION_IDLE_MS + 1);
      assert.equal((await request('/api/me', { headers: { cookie: idle } })).status, 401);
    });

    it('a session is not an API token, and an API token becomes a session only through a header', async () => {
      const cookie = await signIn();
      const secret = cookie.split('=')[1]!;
      assert.equal((await t.api('GET', '/api/me', undefined, secret)).status, 401);
      const exchanged = await request('/api/auth/session', {
        method: 'POST',
        headers: { authorization: `Bearer ${t.token}` },
      });
      assert.equal(exchanged.status, 201);
      const session = cookiePair(exchanged.headers.get('set-cookie'));
      assert.equal((await request('/api/me', { headers: { cookie: session } })).status, 200);
      // A session cannot mint login codes or sessions (a script in a signed-in page must not).
      const mint = await request('/api/auth/login-codes', {
        method: 'POST',
        headers: { cookie: session, origin: ORIGIN, 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(mint.status, 403);
    });

    it('almanac login-link prints a fresh one-time link from the API token', async () => {
      const served = await startTestServer(sqlite, { listen: true });
      try {
        const output = await new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
          execFile(
            process.execPath,
            [join(import.meta.dirname, '..', 'src', 'cli', 'main.ts'), 'login-link', '--next', '/apps/shop'],
            {
              env: {
                ...process.env,
                NO_COLOR: '1',
                ALMANAC_URL: served.server.url!,
                ALMANAC_TOKEN: served.token,
              },
              timeout: 60_000,
            },
            (error, stdout, stderr) => done({ code: error ? 1 : 0, stdout, stderr }),
          );
        });
        assert.equal(output.code, 0, output.stderr);
        const link = new URL(output.stdout.trim());
        assert.equal(link.origin, served.server.url);
        assert.match(link.searchParams.get('code') ?? '', /^almc_/);
        assert.ok(!output.stdout.includes(served.token), 'the API token is not in the link');
        const signedIn = await served.server.http.app.request(`${link.pathname}${link.search}`);
        assert.equal(signedIn.status, 302);
        assert.equal(signedIn.headers.get('location'), '/apps/shop');
      } finally {
        await served.close();
      }
    });

    it('login codes are minted by admins only, for a same-origin next', async () => {
      const minted = await t.json('POST', '/api/auth/login-codes', { next: '//evil.example' });
      assert.equal(minted.status, 201);
      assert.match(minted.body.path, /^\/login\?code=almc_[^&]+&next=%2F$/);
      const viewer = await createWorkspaceWithUser(t.server.ctx, {
        workspaceId: 'default',
        name: 'Default',
        email: 'viewer@example.com',
        role: 'member',
      });
      const refused = await t.json('POST', '/api/auth/login-codes', {}, viewer.token);
      assert.equal(refused.status, 403);
    });
  });

  describe('view tickets', () => {
    it('read their own run page and nothing else, GET only, and expire', async () => {
      // Before: the screenshot browser's ticket authenticated every route as its user, so a script in
      // the screenshotted page could mint an API token with it.
      const ticket = await issueViewTicket(t.server.ctx, adminId, runId);
      const cookie = `${SESSION_COOKIE}=${ticket}`;
      const get = (path: string) => request(path, { headers: { cookie } });
      for (const path of [
        `/api/runs/${runId}`,
        `/api/runs/${runId}/snapshot`,
        '/api/projects/shop/app/manifest',
        '/api/runs?project=shop&limit=25',
      ]) {
        assert.equal((await get(path)).status, 200, path);
      }
      const events = await get(`/api/runs/${runId}/events`);
      assert.equal(events.status, 200);
      await events.body?.cancel();
      for (const path of [
        `/api/runs/${otherRunId}`,
        `/api/runs/${otherRunId}/snapshot`,
        '/api/projects/other/app/manifest',
        '/api/runs?project=other',
        '/api/runs',
        '/api/projects',
        '/api/projects/shop',
        '/api/projects/shop/app',
        `/api/runs/${runId}/deliveries`,
        '/api/me',
        '/api/connections',
        '/api/outbox',
      ]) {
        const response = await get(path);
        assert.equal(response.status, 403, path);
        assert.match(((await response.json()) as any).error.message, /view ticket only reads/);
      }
      for (const [method, path, body] of [
        ['POST', '/api/tokens', { name: 'stolen' }],
        ['POST', '/api/auth/session', {}],
        ['POST', '/api/projects/shop/runs', {}],
        ['POST', `/api/runs/${runId}/cancel`, {}],
      ] as const) {
        const response = await request(path, {
          method,
          headers: { cookie, origin: ORIGIN, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        assert.equal(response.status, 403, `${method} ${path}`);
      }
      // As a bearer token it is no API token either.
      const bearer = await t.api('POST', '/api/tokens', { name: 'stolen' }, ticket);
      assert.equal(bearer.status, 403);
      await assert.rejects(authenticate(t.server.ctx, ticket), /only reads the app page/);
      assert.equal((await t.api('GET', '/metrics', undefined, ticket)).status, 403);
      // Minutes, by the service clock.
      t.clock.advance(VIEW_TICKET_TTL_MS);
      assert.equal((await get(`/api/runs/${runId}`)).status, 401);
    });

    it('a forged or tampered ticket is refused', async () => {
      const ticket = await issueViewTicket(t.server.ctx, adminId, runId);
      const [payload, mac] = ticket.slice('alm_view_'.length).split('.');
      const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
      const widened = Buffer.from(JSON.stringify({ ...claims, r: otherRunId })).toString('base64url');
      const forged = `alm_view_${widened}.${mac}`;
      const response = await request(`/api/runs/${otherRunId}`, {
        headers: { cookie: `${SESSION_COOKIE}=${forged}` },
      });
      assert.equal(response.status, 401);
    });
  });

  describe('body size limits', () => {
    it('answers 413 naming the limit for a 60 MB body', async () => {
      // Before: a 60 MB input was read, parsed and stored.
      const huge = JSON.stringify({ inputs: { n: 'x'.repeat(60 * 1024 * 1024) } });
      const response = await t.api('POST', '/api/projects/shop/runs', huge);
      assert.equal(response.status, 413);
      const { error } = (await response.json()) as any;
      assert.equal(error.code, 'payload_too_large');
      assert.equal(error.limit, 1024 * 1024);
      assert.match(error.message, /1 MiB limit.*ALMANAC_MAX_BODY_MB/);
      assertSecurityHeaders(response, '413');
      // With a Content-Length, too (the header alone decides).
      const declared = await request('/api/tokens', {
        method: 'POST',
        headers: {
          authorization: `Bearer ${t.token}`,
          'content-type': 'application/json',
          'content-length': String(2 * 1024 * 1024),
        },
        body: 'x'.repeat(2 * 1024 * 1024),
      });
      assert.equal(declared.status, 413);
    });

    it('a publish may be larger, up to its own limit', async () => {
      const files = { 'data.txt': Buffer.alloc(2 * 1024 * 1024, 1).toString('base64') };
      const published = await t.api('POST', '/api/projects/shop/publish', { files });
      assert.ok(published.status === 201 || published.status === 200, `publish: ${published.status}`);
      await t.server.worker!.drain();
      const small = await startTestServer(sqlite, { env: { ALMANAC_MAX_PUBLISH_MB: '1' } });
      try {
        await small.json('POST', '/api/projects', {
          source: notebook('s', fence('sql one', 'select 1')),
          slug: 's',
        });
        const refused = await small.api('POST', '/api/projects/s/publish', { files });
        assert.equal(refused.status, 413);
        assert.match(
          ((await refused.json()) as any).error.message,
          /1 MiB limit for a publish.*ALMANAC_MAX_PUBLISH_MB/,
        );
      } finally {
        await small.close();
      }
    });
  });
});

// The login code's guarded UPDATE … RETURNING and the sessions' instant comparisons on both stores.
for (const store of await testStores()) {
  describe(`login codes and sessions on ${store.name}`, { skip: store.skip }, () => {
    it('sign in once, use, expire idle, sign out', async () => {
      const t = await startTestServer(store);
      try {
        const request = (path: string, init?: RequestInit) => t.server.http.app.request(path, init);
        const link = await t.server.loginLink('/');
        const signedIn = await request(link);
        assert.equal(signedIn.status, 302);
        assert.equal((await request(link)).status, 401, 'single use');
        const cookie = cookiePair(signedIn.headers.get('set-cookie'));
        assert.equal((await request('/api/me', { headers: { cookie } })).status, 200);
        t.clock.advance(2 * 60_000);
        assert.equal((await request('/api/me', { headers: { cookie } })).status, 200, 'renewed');
        const out = await request('/api/auth/logout', {
          method: 'POST',
          headers: { cookie, origin: ORIGIN },
        });
        assert.equal(out.status, 204);
        assert.equal((await request('/api/me', { headers: { cookie } })).status, 401);
        const idle = cookiePair((await request(await t.server.loginLink('/'))).headers.get('set-cookie'));
        t.clock.advance(SESSION_IDLE_MS + 1);
        assert.equal((await request('/api/me', { headers: { cookie: idle } })).status, 401);
        const late = await t.server.loginLink('/');
        t.clock.advance(LOGIN_CODE_TTL_MS + 1);
        assert.equal((await request(late)).status, 401, 'expired code');
      } finally {
        await t.close();
      }
    });
  });
}
