/**
 * Issue 16, accounts: email and password sign-in, invitations, password reset, sessions and per-user
 * API tokens, on a real server (SQLite and PostgreSQL) with its fake clock. Mail goes to the outbox
 * folder (no SMTP), where these tests read the links, as a person would read their inbox.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { LIMITS, RateLimiter } from '../src/http/routes/accounts.ts';
import { SESSION_COOKIE } from '../src/http/routes.ts';
import { hashPassword, verifyPassword } from '../src/services/account-service.ts';
import { issueViewTicket } from '../src/services/workspace-service.ts';
import { fence } from './support/harness.ts';
import { notebook, startTestServer, type TestServer, testStores } from './support/server-harness.ts';
import { until } from './support/until.ts';

const ORIGIN = 'http://localhost';
const PASSWORD = 'correct horse battery';

/** The links in the outbox mail addressed to `to` (newest last). */
async function linksTo(t: TestServer, to: string): Promise<string[]> {
  const dir = t.server.config.outboxDir;
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.eml'));
  } catch {
    return [];
  }
  const links: { at: string; link: string }[] = [];
  for (const file of files.sort()) {
    const mail = await simpleParser(readFileSync(join(dir, file)));
    const recipients = [mail.to]
      .flat()
      .flatMap((a) => a?.value ?? [])
      .map((v) => v.address);
    if (!recipients.includes(to)) continue;
    for (const match of (mail.text ?? '').matchAll(/https?:\/\/\S+code=(\S+)/g)) {
      links.push({ at: file, link: decodeURIComponent(match[1]!) });
    }
  }
  return links.map((l) => l.link);
}

/** POSTs JSON as a browser on this site would (Origin set), with an optional cookie. */
async function browserPost(t: TestServer, path: string, body: unknown, cookie?: string) {
  const response = await t.server.http.app.request(path, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      origin: ORIGIN,
      ...(cookie ? { cookie } : {}),
    },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { response, status: response.status, body: text ? JSON.parse(text) : null };
}

function sessionCookie(response: Response): string {
  const header = response.headers.get('set-cookie') ?? '';
  assert.ok(header.startsWith(`${SESSION_COOKIE}=`), `a session cookie is set (got ${header})`);
  assert.match(header, /HttpOnly/i);
  assert.match(header, /SameSite=Lax/i);
  return header.split(';')[0]!;
}

async function me(t: TestServer, cookie: string): Promise<number> {
  const response = await t.server.http.app.request('/api/me', { headers: { cookie } });
  return response.status;
}

/** Invites `email` as the admin and accepts the invitation: the user's session cookie. */
async function inviteAndAccept(t: TestServer, email: string, role = 'member'): Promise<string> {
  const invited = await t.json('POST', '/api/users/invitations', { email, role });
  assert.equal(invited.status, 201, JSON.stringify(invited.body));
  const [code] = (await linksTo(t, email)).slice(-1);
  assert.ok(code, 'the invitation email carries a link');
  const accepted = await browserPost(t, '/api/auth/accept-invite', { code, name: email, password: PASSWORD });
  assert.equal(accepted.status, 201, JSON.stringify(accepted.body));
  return sessionCookie(accepted.response);
}

describe('password hashing', () => {
  it('hashes with argon2id and verifies only the same password', async () => {
    const hash = await hashPassword(PASSWORD);
    assert.match(hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    assert.equal(await verifyPassword(hash, PASSWORD), true);
    assert.equal(await verifyPassword(hash, `${PASSWORD}!`), false);
    assert.notEqual(await hashPassword(PASSWORD), hash, 'each hash has its own salt');
  });
});

describe('rate limiter', () => {
  it('allows a burst per key, then one attempt per interval, and says how long to wait', () => {
    let now = Date.parse('2026-03-01T09:00:00Z');
    const limiter = new RateLimiter(() => new Date(now));
    const rule = { burst: 2, everyMs: 10_000 };
    assert.equal(limiter.take('ip:1', rule), null);
    assert.equal(limiter.take('ip:1', rule), null);
    assert.equal(limiter.take('ip:1', rule), 10, 'the third waits 10 s');
    assert.equal(limiter.take('ip:2', rule), null, 'another key has its own bucket');
    now += 10_000;
    assert.equal(limiter.take('ip:1', rule), null);
    assert.equal(limiter.take('ip:1', rule), 10);
  });
});

for (const store of await testStores()) {
  describe(`accounts (${store.name})`, { skip: store.skip }, () => {
    let t: TestServer;
    before(async () => {
      t = await startTestServer(store);
    });
    after(() => t?.close());

    it('an invitation is sent by email, accepted once, and makes an active user with a session', async () => {
      const cookie = await inviteAndAccept(t, 'ada@example.com');
      assert.equal(await me(t, cookie), 200);
      const users = await t.json('GET', '/api/users');
      const ada = users.body.find((u: { email: string }) => u.email === 'ada@example.com');
      assert.equal(ada.status, 'active');
      assert.equal(ada.role, 'member');
      assert.ok(ada.lastSeenAt, 'accepting signs in, which counts as seen');
      // Single use: the same link again is refused.
      const [code] = (await linksTo(t, 'ada@example.com')).slice(-1);
      const again = await browserPost(t, '/api/auth/accept-invite', { code, name: 'X', password: PASSWORD });
      assert.equal(again.status, 401);
      // The same address (in another case) cannot be invited twice.
      const dup = await t.json('POST', '/api/users/invitations', { email: 'ADA@example.com' });
      assert.equal(dup.status, 409);
    });

    it('an invitation expires after 7 days', async () => {
      const invited = await t.json('POST', '/api/users/invitations', { email: 'late@example.com' });
      assert.equal(invited.status, 201);
      assert.equal(invited.body.user.status, 'invited');
      assert.ok(!JSON.stringify(invited.body).includes('almi_'), 'the code is in the email only');
      const [code] = await linksTo(t, 'late@example.com');
      t.clock.advance(7 * 86_400_000 + 1);
      const late = await browserPost(t, '/api/auth/accept-invite', {
        code,
        name: 'Late',
        password: PASSWORD,
      });
      assert.equal(late.status, 401);
      assert.match(late.body.error.message, /expired/);
    });

    it('sign-in never reveals whether an address exists, and rotates the session', async () => {
      await inviteAndAccept(t, 'grace@example.com');
      const unknown = await browserPost(t, '/api/auth/login', {
        email: 'nobody@example.com',
        password: PASSWORD,
      });
      const wrong = await browserPost(t, '/api/auth/login', {
        email: 'grace@example.com',
        password: 'wrong password!',
      });
      assert.equal(unknown.status, 401);
      assert.deepEqual(wrong.status, unknown.status);
      assert.deepEqual(wrong.body, unknown.body, 'the same error either way');
      const first = await browserPost(t, '/api/auth/login', {
        email: 'Grace@Example.com',
        password: PASSWORD,
      });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      const firstCookie = sessionCookie(first.response);
      const second = await browserPost(
        t,
        '/api/auth/login',
        { email: 'grace@example.com', password: PASSWORD },
        firstCookie,
      );
      const secondCookie = sessionCookie(second.response);
      assert.notEqual(secondCookie, firstCookie, 'a new session secret at each sign-in');
      assert.equal(await me(t, firstCookie), 401, 'the session the browser had before ends');
      assert.equal(await me(t, secondCookie), 200);
      // A sign-in from another site is refused (login CSRF).
      const foreign = await t.server.http.app.request('/api/auth/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin: 'https://evil.example' },
        body: JSON.stringify({ email: 'grace@example.com', password: PASSWORD }),
      });
      assert.equal(foreign.status, 403);
    });

    it('sign-in is rate limited per address, answering 429 with Retry-After', async () => {
      await inviteAndAccept(t, 'limit@example.com');
      const statuses: number[] = [];
      let last: Response | null = null;
      for (let i = 0; i < LIMITS.signInPerAddress.burst + 1; i++) {
        const r = await browserPost(t, '/api/auth/login', {
          email: 'limit@example.com',
          password: 'not it at all',
        });
        statuses.push(r.status);
        last = r.response;
      }
      assert.deepEqual(statuses, [...Array(LIMITS.signInPerAddress.burst).fill(401), 429]);
      assert.ok(Number(last!.headers.get('retry-after')) >= 1, 'Retry-After says how long');
      // Even the right password waits: the limit is on attempts, not on failures.
      const blocked = await browserPost(t, '/api/auth/login', {
        email: 'LIMIT@example.com',
        password: PASSWORD,
      });
      assert.equal(blocked.status, 429);
      t.clock.advance(LIMITS.signInPerAddress.everyMs);
      const later = await browserPost(t, '/api/auth/login', {
        email: 'limit@example.com',
        password: PASSWORD,
      });
      assert.equal(later.status, 200);
    });

    it('reset requests are rate limited per client IP too (behind a trusted proxy, its first X-Forwarded-For hop)', async () => {
      const proxied = await startTestServer(store, { env: { ALMANAC_TRUST_PROXY: 'true' } });
      try {
        const ask = (i: number, ip: string) =>
          proxied.server.http.app.request('/api/auth/password-reset', {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-forwarded-for': `${ip}, 10.0.0.1` },
            body: JSON.stringify({ email: `someone${i}@example.com` }),
          });
        const statuses: number[] = [];
        for (let i = 0; i <= LIMITS.resetPerIp.burst; i++)
          statuses.push((await ask(i, '203.0.113.7')).status);
        assert.deepEqual(
          statuses,
          [...Array(LIMITS.resetPerIp.burst).fill(202), 429],
          'a new address each time',
        );
        assert.equal((await ask(99, '198.51.100.2')).status, 202, 'another client has its own bucket');
      } finally {
        await proxied.close();
      }
    });

    it('password reset: always 202, a single-use code for an hour, and every old credential revoked', async () => {
      const oldCookie = await inviteAndAccept(t, 'reset@example.com');
      const token = await browserPost(t, '/api/tokens', { name: 'laptop' }, oldCookie);
      assert.equal(token.status, 201, JSON.stringify(token.body));
      const nobody = await t.json('POST', '/api/auth/password-reset', { email: 'ghost@example.com' }, null);
      const somebody = await t.json('POST', '/api/auth/password-reset', { email: 'reset@example.com' }, null);
      assert.equal(nobody.status, 202);
      assert.equal(somebody.status, 202);
      assert.deepEqual(nobody.body, somebody.body);
      const code = await until('the reset email', async () =>
        (await linksTo(t, 'reset@example.com')).find((l) => l.startsWith('almr_')),
      );
      const done = await browserPost(t, '/api/auth/password-reset/complete', {
        code,
        password: 'a brand new password',
      });
      assert.equal(done.status, 200, JSON.stringify(done.body));
      assert.equal(await me(t, sessionCookie(done.response)), 200);
      assert.equal(await me(t, oldCookie), 401, 'the old session is revoked');
      assert.equal(
        (await t.api('GET', '/api/me', undefined, token.body.token)).status,
        401,
        'the old token too',
      );
      const reused = await browserPost(t, '/api/auth/password-reset/complete', {
        code,
        password: 'another new password',
      });
      assert.equal(reused.status, 401);
      const oldPassword = await browserPost(t, '/api/auth/login', {
        email: 'reset@example.com',
        password: PASSWORD,
      });
      assert.equal(oldPassword.status, 401);
      // A code older than an hour is refused.
      await t.json('POST', '/api/auth/password-reset', { email: 'reset@example.com' }, null);
      const codes = await until('a second reset email', async () => {
        const all = (await linksTo(t, 'reset@example.com')).filter((l) => l.startsWith('almr_'));
        return all.length >= 2 ? all : null;
      });
      t.clock.advance(3_600_000 + 1);
      const expired = await browserPost(t, '/api/auth/password-reset/complete', {
        code: codes.at(-1),
        password: 'too late password',
      });
      assert.equal(expired.status, 401);
    });

    it('deactivating a user revokes their sessions and tokens, and they cannot sign in', async () => {
      const cookie = await inviteAndAccept(t, 'leaver@example.com');
      const token = await browserPost(t, '/api/tokens', { name: 'ci' }, cookie);
      assert.equal((await t.api('GET', '/api/me', undefined, token.body.token)).status, 200);
      const users = await t.json('GET', '/api/users');
      const leaver = users.body.find((u: { email: string }) => u.email === 'leaver@example.com');
      // A screenshot's view ticket issued for them (a run page of a workspace project they can see).
      await t.json('POST', '/api/projects', {
        source: notebook('Leaver', fence('sql one', 'select 1 as n')),
        slug: 'leaver',
      });
      const runId = (await t.json('POST', '/api/projects/leaver/publish', {})).body.run.id;
      const ticket = await issueViewTicket(t.server.ctx, leaver.id, runId);
      const viaTicket = () =>
        t.server.http.app.request(`/api/runs/${runId}`, {
          headers: { cookie: `${SESSION_COOKIE}=${ticket}` },
        });
      assert.equal((await viaTicket()).status, 200);
      const done = await t.json('POST', `/api/users/${leaver.id}/deactivate`);
      assert.equal(done.status, 200);
      assert.equal(done.body.status, 'deactivated');
      assert.equal(await me(t, cookie), 401);
      assert.equal((await t.api('GET', '/api/me', undefined, token.body.token)).status, 401);
      const login = await browserPost(t, '/api/auth/login', {
        email: 'leaver@example.com',
        password: PASSWORD,
      });
      assert.equal(login.status, 401);
      assert.equal((await viaTicket()).status, 401, 'their view tickets end too');
    });

    it('API tokens: created with an expiry, listed without secrets, revoked; they act with their user’s rights', async () => {
      const cookie = await inviteAndAccept(t, 'tokens@example.com');
      const expiresAt = new Date(t.clock.now().getTime() + 86_400_000).toISOString();
      const created = await browserPost(t, '/api/tokens', { name: 'nightly', expiresAt }, cookie);
      assert.equal(created.status, 201);
      const secret: string = created.body.token;
      assert.ok(secret.startsWith(created.body.prefix));
      const forever = await browserPost(t, '/api/tokens', { name: 'forever' }, cookie);
      // The token is the member's: it may not manage people.
      assert.equal((await t.api('GET', '/api/users', undefined, secret)).status, 403);
      assert.equal((await t.api('GET', '/api/me', undefined, secret)).status, 200);
      const list = await t.json('GET', '/api/tokens', undefined, secret);
      assert.equal(list.status, 200);
      assert.deepEqual(list.body.map((x: { name: string }) => x.name).sort(), ['forever', 'nightly']);
      const text = JSON.stringify(list.body);
      assert.ok(!text.includes(secret) && !text.includes(forever.body.token), 'no secret in the list');
      const nightly = list.body.find((x: { name: string }) => x.name === 'nightly');
      assert.equal(nightly.expiresAt, expiresAt);
      assert.ok(nightly.lastUsedAt, 'its use was recorded');
      // The admin cannot revoke it by id (another user's token answers 404).
      assert.equal((await t.api('DELETE', `/api/tokens/${forever.body.id}`)).status, 404);
      assert.equal((await t.api('DELETE', `/api/tokens/${forever.body.id}`, undefined, secret)).status, 204);
      assert.equal((await t.api('GET', '/api/me', undefined, forever.body.token)).status, 401);
      t.clock.advance(86_400_000);
      assert.equal((await t.api('GET', '/api/me', undefined, secret)).status, 401, 'expired');
    });

    it('changing a password needs the current one, and revokes every session and token', async () => {
      const cookie = await inviteAndAccept(t, 'change@example.com');
      const token = await browserPost(t, '/api/tokens', { name: 'script' }, cookie);
      const wrong = await browserPost(
        t,
        '/api/auth/password',
        { currentPassword: 'not my password', newPassword: 'a changed password' },
        cookie,
      );
      assert.equal(wrong.status, 400);
      assert.equal(wrong.body.error.field, 'currentPassword');
      const short = await browserPost(
        t,
        '/api/auth/password',
        { currentPassword: PASSWORD, newPassword: 'short' },
        cookie,
      );
      assert.equal(short.status, 400);
      assert.equal(short.body.error.field, 'newPassword');
      const changed = await browserPost(
        t,
        '/api/auth/password',
        { currentPassword: PASSWORD, newPassword: 'a changed password' },
        cookie,
      );
      assert.equal(changed.status, 200, JSON.stringify(changed.body));
      assert.equal(await me(t, cookie), 401, 'the old session is revoked');
      assert.equal(await me(t, sessionCookie(changed.response)), 200, 'this browser gets a fresh one');
      assert.equal((await t.api('GET', '/api/me', undefined, token.body.token)).status, 401, 'tokens too');
      const login = await browserPost(t, '/api/auth/login', {
        email: 'change@example.com',
        password: 'a changed password',
      });
      assert.equal(login.status, 200);
    });

    it('the first admin (ALMANAC_ADMIN_EMAIL, a token, no password yet) sets a password and signs in with it', async () => {
      // Regression: changing the password revoked ALMANAC_ADMIN_TOKEN's row, and the next start failed
      // inserting the configured token's hash a second time (a unique key); the token must work again.
      const env = {
        ALMANAC_ADMIN_TOKEN: 'alm_configured_admin_token_0001',
        ALMANAC_ADMIN_EMAIL: 'Owner@Example.com',
      };
      const fresh = await startTestServer(store, { env });
      try {
        const set = await fresh.json('POST', '/api/auth/password', {
          currentPassword: '',
          newPassword: PASSWORD,
        });
        assert.equal(set.status, 200, JSON.stringify(set.body));
        assert.equal((await fresh.api('GET', '/api/me')).status, 401, 'the admin token was revoked with it');
        const login = await browserPost(fresh, '/api/auth/login', {
          email: 'owner@example.com',
          password: PASSWORD,
        });
        assert.equal(login.status, 200);
        assert.equal(login.body.user.role, 'admin');
        const restarted = await startTestServer(store, {
          env,
          shared: { dataDir: fresh.dataDir, url: fresh.url },
        });
        try {
          assert.equal(
            (await restarted.api('GET', '/api/me')).status,
            200,
            'the configured token works again',
          );
        } finally {
          await restarted.close();
        }
      } finally {
        await fresh.close();
      }
    });

    it('admins change roles; the last admin keeps theirs', async () => {
      await inviteAndAccept(t, 'promote@example.com');
      const users = (await t.json('GET', '/api/users')).body as { id: string; email: string; role: string }[];
      const admin = users.find((u) => u.email === 'admin@localhost')!;
      const other = users.find((u) => u.email === 'promote@example.com')!;
      const demoteSelf = await t.json('PUT', `/api/users/${admin.id}/role`, { role: 'member' });
      assert.equal(demoteSelf.status, 409, JSON.stringify(demoteSelf.body));
      const promoted = await t.json('PUT', `/api/users/${other.id}/role`, { role: 'editor' });
      assert.equal(promoted.status, 200);
      assert.equal(promoted.body.role, 'editor');
      const bad = await t.json('PUT', `/api/users/${other.id}/role`, { role: 'owner' });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.field, 'role');
    });
  });
}
