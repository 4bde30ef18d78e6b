/**
 * Issue 16, the account commands against a running server: `almanac login` (the token lands in the
 * config dir, mode 0600, and later commands use it with no --token), `users invite/list/role/
 * deactivate` and `tokens create/list/revoke`, each with --json.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { startTestServer, type TestServer, testStores } from './support/server-harness.ts';

const MAIN = resolve('src/cli/main.ts');
const PASSWORD = 'a long enough password';

describe('almanac login, users and tokens against a server', () => {
  let t: TestServer;
  let config: string;
  before(async () => {
    config = mkdtempSync(join(tmpdir(), 'almanac-cli-config-'));
    t = await startTestServer((await testStores())[0]!, { listen: true, clockStart: Date.now() });
  });
  after(async () => {
    await t?.close();
    rmSync(config, { recursive: true, force: true });
  });

  /** Runs the CLI with only the config dir (and what `env` adds): no token, no server URL. */
  const almanac = (args: string[], env: Record<string, string> = {}, stdin = '') =>
    new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
      const base = { ...process.env };
      delete base['ALMANAC_TOKEN'];
      delete base['ALMANAC_URL'];
      const child = spawn(process.execPath, [MAIN, ...args], {
        env: { ...base, NO_COLOR: '1', XDG_CONFIG_HOME: config, ...env },
        cwd: config,
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code) => done({ code: code ?? 1, stdout, stderr }));
      child.stdin.end(stdin);
    });
  const asAdmin = (args: string[]) => almanac(args, { ALMANAC_URL: t.server.url!, ALMANAC_TOKEN: t.token });

  async function inviteLink(email: string): Promise<string> {
    const dir = t.server.config.outboxDir;
    for (const file of readdirSync(dir).sort().reverse()) {
      const mail = await simpleParser(readFileSync(join(dir, file)));
      if (!mail.text?.includes('invited you')) continue;
      const to = [mail.to].flat().flatMap((a) => a?.value ?? []);
      if (!to.some((a) => a.address === email)) continue;
      return decodeURIComponent(/code=(\S+)/.exec(mail.text)![1]!);
    }
    throw new Error(`no invitation for ${email} in the outbox`);
  }

  it('invites, signs in with a password, and uses the saved token with no --token', async () => {
    const invited = await asAdmin(['users', 'invite', 'cli@example.com', '--role', 'member', '--json']);
    assert.equal(invited.code, 0, invited.stderr);
    assert.equal(JSON.parse(invited.stdout).user.status, 'invited');
    const code = await inviteLink('cli@example.com');
    const accepted = await fetch(`${t.server.url}/api/auth/accept-invite`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ code, name: 'Cli User', password: PASSWORD }),
    });
    assert.equal(accepted.status, 201);

    const wrong = await almanac(
      ['login', '--server', t.server.url!, '--email', 'cli@example.com', '--password-stdin'],
      {},
      'not the password\n',
    );
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /^almanac: the email or password is not right/);
    assert.equal(wrong.stderr.trim().split('\n').length, 1, 'one line');

    const login = await almanac(
      ['login', '--server', t.server.url!, '--email', 'cli@example.com', '--password-stdin', '--json'],
      {},
      `${PASSWORD}\n`,
    );
    assert.equal(login.code, 0, login.stderr);
    const saved = JSON.parse(login.stdout);
    const file = join(config, 'almanac', 'credentials.json');
    assert.equal(saved.credentials, file);
    assert.equal(statSync(file).mode & 0o777, 0o600, 'the credentials file is private');
    const stored = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(stored.current, new URL(t.server.url!).origin);

    // No --server, --token, ALMANAC_URL nor ALMANAC_TOKEN: the saved server and token.
    const list = await almanac(['tokens', 'list', '--json']);
    assert.equal(list.code, 0, list.stderr);
    const tokens = JSON.parse(list.stdout) as { id: string; name: string; prefix: string }[];
    assert.equal(tokens.length, 1);
    assert.match(tokens[0]!.name, /^almanac CLI on /);
    assert.ok(!list.stdout.includes(stored.servers[stored.current].token), 'never the secret');

    const created = await almanac(['tokens', 'create', 'nightly', '--expires', '1d', '--json']);
    assert.equal(created.code, 0, created.stderr);
    const token = JSON.parse(created.stdout);
    assert.ok(token.token.startsWith(token.prefix));
    assert.ok(Date.parse(token.expiresAt) > Date.now());
    const revoked = await almanac(['tokens', 'revoke', token.id, '--json']);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.deepEqual(JSON.parse(revoked.stdout), { id: token.id, revoked: true });
    const text = await almanac(['tokens', 'list']);
    assert.match(text.stdout, /^ID\s+NAME\s+PREFIX\s+LAST USED\s+EXPIRES$/m);
    assert.doesNotMatch(text.stdout, /nightly/);

    // A member's token acts with the member's rights.
    const forbidden = await almanac(['users', 'list']);
    assert.equal(forbidden.code, 2);
    assert.match(forbidden.stderr, /admin/);

    // Sign out revokes the saved token and forgets it; sign in again for the next test.
    const savedToken = stored.servers[stored.current].token;
    const out = await almanac(['logout', '--json']);
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout), { server: stored.current, revoked: true, forgotten: true });
    const me = await fetch(`${t.server.url}/api/me`, { headers: { authorization: `Bearer ${savedToken}` } });
    assert.equal(me.status, 401, 'the token is revoked on the server');
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).current, null);
    const again = await almanac(
      ['login', '--server', t.server.url!, '--email', 'cli@example.com', '--password-stdin'],
      {},
      PASSWORD,
    );
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^Signed in to http:\/\/\S+ as cli@example\.com; the token is saved in /);
  });

  it('admins list users, change a role and deactivate, which ends the user’s saved token', async () => {
    const users = await asAdmin(['users', 'list', '--json']);
    assert.equal(users.code, 0, users.stderr);
    const cli = (JSON.parse(users.stdout) as { email: string; status: string }[]).find(
      (u) => u.email === 'cli@example.com',
    );
    assert.equal(cli?.status, 'active');
    const role = await asAdmin(['users', 'role', 'CLI@example.com', 'editor', '--json']);
    assert.equal(role.code, 0, role.stderr);
    assert.equal(JSON.parse(role.stdout).role, 'editor');
    const badRole = await asAdmin(['users', 'role', 'cli@example.com', 'owner']);
    assert.equal(badRole.code, 2);
    assert.match(badRole.stderr, /role/);
    const gone = await asAdmin(['users', 'deactivate', 'cli@example.com']);
    assert.equal(gone.code, 0, gone.stderr);
    assert.match(gone.stdout, /Deactivated cli@example\.com/);
    const after = await almanac(['tokens', 'list']);
    assert.equal(after.code, 2);
    assert.match(after.stderr, /not valid|deactivated/);
  });
});
