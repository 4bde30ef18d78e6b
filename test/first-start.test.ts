/**
 * Regression (issue 15, bug 2: "a failed first start locks the user out"): `serve` on a port another
 * process holds created the first admin, then failed on EADDRINUSE before printing or saving its token,
 * and every later start found the admin already there. The port is now bound before the store is
 * touched, so a failed start leaves no admin behind and the next start prints one.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { resolveConfig } from '../src/app/config.ts';
import { createServer } from '../src/app/create-server.ts';
import { openServices } from '../src/app/open-services.ts';

describe('first start', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'almanac-first-start-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  it('a start that cannot bind its port creates no admin, so the next start prints a token', async () => {
    const holder = createNetServer();
    await new Promise<void>((ready) => holder.listen(0, '127.0.0.1', ready));
    const port = (holder.address() as { port: number }).port;
    const config = resolveConfig({ dataDir, port, host: '127.0.0.1' });
    await assert.rejects(
      createServer(config, { autostart: false }),
      /cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE/,
    );
    const services = await openServices(config.databaseUrl, { secretKey: () => Buffer.alloc(32) });
    const users = await services.ctx.db.selectFrom('users').select('id').execute();
    await services.close();
    assert.equal(users.length, 0, 'no admin was created by the failed start');
    await new Promise<void>((done) => holder.close(() => done()));

    const server = await createServer(config, { autostart: false });
    try {
      assert.match(server.adminToken ?? '', /^alm_/);
      assert.ok(server.url);
    } finally {
      await server.stop();
    }
  });
});
