/**
 * Issue 16, sharing from the CLI against a running server: `almanac share` names a user by email at an
 * access level, `almanac access` lists the grants and sets the workspace default, `almanac unshare`
 * takes the grant away; bad levels and a missing grantee exit 2 with one line.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer, testStores } from './support/server-harness.ts';

const MAIN = resolve('src/cli/main.ts');
const ROOT = resolve('.');

describe('almanac share, unshare and access against a server', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer((await testStores())[0]!, { listen: true, clockStart: Date.now() });
    await t.server.seed(join(ROOT, 'examples', 'sales', 'sales.md'));
  });
  after(async () => {
    await t?.close();
  });

  const almanac = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
      const child = spawn(process.execPath, [MAIN, ...args], {
        env: { ...process.env, NO_COLOR: '1', ALMANAC_URL: t.server.url!, ALMANAC_TOKEN: t.token },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code) => done({ code: code ?? 1, stdout, stderr }));
    });

  it('shares with a user by email, lists the grant, sets the workspace default, and unshares', async () => {
    const invited = await almanac(['users', 'invite', 'viewer@example.com', '--role', 'member', '--json']);
    assert.equal(invited.code, 0, invited.stderr);
    const userId = JSON.parse(invited.stdout).user.id as string;

    const shared = await almanac([
      'share',
      'sales',
      '--user',
      'Viewer@Example.com',
      '--access',
      'can_view',
      '--json',
    ]);
    assert.equal(shared.code, 0, shared.stderr);
    const grant = JSON.parse(shared.stdout).grants.find((g: any) => g.principal === `user:${userId}`);
    assert.equal(grant?.access, 'can_view');

    const set = await almanac(['access', 'sales', '--workspace', 'none', '--json']);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(JSON.parse(set.stdout).workspace, 'none');
    const listed = await almanac(['access', 'sales']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /workspace members: none/);
    assert.match(listed.stdout, new RegExp(`user:${userId}\\s+can_view`));

    const removed = await almanac(['unshare', 'sales', '--user', userId, '--json']);
    assert.equal(removed.code, 0, removed.stderr);
    const after = JSON.parse((await almanac(['access', 'sales', '--json'])).stdout);
    assert.ok(!after.grants.some((g: any) => g.principal === `user:${userId}`));
  });

  it('refuses a bad level, an unknown user and a missing grantee with one line and exit 2', async () => {
    const level = await almanac(['share', 'sales', '--user', 'x@example.com', '--access', 'owner']);
    assert.equal(level.code, 2);
    assert.match(
      level.stderr,
      /^almanac: --access: must be one of app_only, can_view, can_edit, full_access/,
    );
    assert.equal(level.stderr.trim().split('\n').length, 1);
    const unknown = await almanac(['share', 'sales', '--user', 'nobody@example.com', '--access', 'can_view']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no user 'nobody@example.com'/);
    const none = await almanac(['unshare', 'sales']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /--user/);
  });
});
