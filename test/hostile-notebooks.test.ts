/**
 * Hostile notebooks (issue 14, red-team findings 3 and 6): cells that attack the server from inside
 * the sandbox, through the real Executor, with bubblewrap and with Node's permission model alone.
 *
 * Finding 3 was that bubblewrap bound the whole root read-only (`--ro-bind / /`), which does not stop
 * `connect()` on a socket file: a cell reached /var/run/postgresql/.s.PGSQL.5432 with its network cut,
 * and through it PostgreSQL as a superuser where local connections are trusted. Finding 6 was that
 * without bubblewrap a cell could `process.kill(process.ppid, 'SIGKILL')` the server.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import {
  chmodSync,
  type Dirent,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { ValidationError } from '../src/domain/errors.ts';
import { parseNotebook } from '../src/domain/notebook/parse-notebook.ts';
import { Executor, type RunResult } from '../src/executor/executor.ts';
import { describeIsolation, detectIsolation } from '../src/executor/sandbox.ts';
import { cell, createHarness, fence, type Harness } from './support/harness.ts';
import { bubblewrapWorks, POSTGRES_URL, postgresUnavailable } from './support/services.ts';
import { until } from './support/until.ts';

const NODE = realpathSync(process.execPath);
const ROOT = process.getuid?.() === 0;
const PG_SOCKETS = [
  '/var/run/postgresql/.s.PGSQL.5432',
  '/run/postgresql/.s.PGSQL.5432',
  '/tmp/.s.PGSQL.5432',
];

const bwrapWorks = bubblewrapWorks('the bubblewrap half of the hostile notebooks');

/**
 * Whether PostgreSQL here lets a local connection in as a superuser without a password (trust on
 * 127.0.0.1, as on this project's CI): the attack the network guard stops, checked from the host.
 */
const postgresSuperuser = await (async () => {
  if (await postgresUnavailable()) return false;
  const url = new URL(POSTGRES_URL);
  const client = new pg.Client({
    host: '127.0.0.1',
    port: Number(url.port || 5432),
    user: 'postgres',
    database: 'postgres',
  });
  try {
    await client.connect();
    const { rows } = await client.query('select rolsuper from pg_roles where rolname = current_user');
    return rows[0]?.rolsuper === true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
})();

/** The value a cell returned. */
function cellValue(result: RunResult, name: string): Record<string, unknown> {
  const c = cell(result.snapshot, name);
  assert.equal(c.status, 'succeeded', `${name}: ${c.error?.message ?? result.snapshot.message ?? ''}`);
  return (c.output as { value: Record<string, unknown> }).value;
}

/** A cell's attempts, each reported as `ok: …` or its error code. */
const ATTEMPT = `const attempt = async (f) => { try { return 'ok: ' + String(await f()).slice(0, 60); } catch (e) { return e.code ?? e.message; } };
const connect = (path) => new Promise((resolve) => {
  const socket = process.getBuiltinModule('node:net').connect(path);
  socket.once('connect', () => { socket.destroy(); resolve('connected'); });
  socket.once('error', (e) => resolve(e.code ?? e.message));
});`;

/** A refusal: an error code, never a success. */
function assertRefused(value: unknown, what: string): void {
  assert.ok(
    typeof value === 'string' && value !== 'connected' && !value.startsWith('ok:'),
    `${what}: ${value}`,
  );
}

for (const mode of ['permission', 'bwrap'] as const) {
  // Known before the suite starts, for its skips: whether cells of this mode run as another user.
  const modeIsolation = mode === 'bwrap' && !bwrapWorks ? null : detectIsolation({ mode, hide: [] });
  describe(`hostile notebooks: ${mode === 'bwrap' ? 'bubblewrap and the permission model' : 'the permission model alone'}`, {
    skip: mode === 'bwrap' && !bwrapWorks ? 'bubblewrap unavailable' : false,
  }, () => {
    let h: Harness;
    let hostSocket: Server;
    let hostSocketPath: string;
    let abstractSocket: Server;
    const abstractName = `\0almanac-hostile-${process.pid}`;
    /** A service of the host on loopback (both families), and one over UDP: what cells must not reach. */
    let loopback: Server;
    let loopbackHits = 0;
    let udp: DgramSocket;
    let udpPort = 0;
    let udpHits = 0;
    before(async () => {
      h = await createHarness({
        isolation: (root) => detectIsolation({ mode, hide: [root] }),
        files: { 'data.csv': 'a\n1\n' },
      });
      // A root server without bubblewrap runs cells as an unprivileged user, who must be let through
      // the folders on the way to the run and project directories (mkdtemp makes them 0700).
      chmodSync(h.root, 0o711);
      writeFileSync(join(h.root, 'almanac.sqlite'), 'the store');
      mkdirSync(join(h.runRoot, 'run-other'), { recursive: true });
      writeFileSync(join(h.runRoot, 'run-other', 'result.json'), 'another run');
      // A socket of the server's, in its data dir, as a service of the server's user would have.
      hostSocketPath = join(h.root, 'server.sock');
      hostSocket = createServer((s) => s.on('error', () => {}).end('server socket'));
      await new Promise<void>((r) => hostSocket.listen(hostSocketPath, r));
      chmodSync(hostSocketPath, 0o700);
      abstractSocket = createServer((s) => s.on('error', () => {}).end('abstract socket'));
      await new Promise<void>((r) => abstractSocket.listen(abstractName, r));
      loopback = createServer((s) => {
        loopbackHits++;
        s.destroy();
      });
      await new Promise<void>((r) => loopback.listen(0, '::', r));
      udp = createSocket('udp4').on('message', () => udpHits++);
      await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
      udpPort = udp.address().port;
    });
    after(async () => {
      await new Promise((r) => loopback?.close(r));
      udp?.close();
      await new Promise((r) => hostSocket?.close(r));
      await new Promise((r) => abstractSocket?.close(r));
      await h?.close();
    });

    it("cannot connect to PostgreSQL's Unix socket or any socket file of the host, network on or off", async () => {
      // Guards finding 3: with `--ro-bind / /`, PostgreSQL's socket answered with the network cut.
      // Besides it and the server's own, every socket file the host has where services keep them.
      // Without bubblewrap this was a `todo` (Node 24's permission model has no network permission,
      // and PostgreSQL's socket is 0777): the child runtime's network guard now refuses any path.
      const targets = [...new Set([...PG_SOCKETS, hostSocketPath, ...hostSockets()])];
      const probe = fence(
        'js sockets',
        `${ATTEMPT}
const out = {};
for (const path of ${JSON.stringify(targets)}) out[path] = await connect(path);
return out;`,
      );
      for (const network of mode === 'bwrap' ? [true, false] : [true]) {
        const seen = cellValue(await h.run(probe, { network }), 'sockets');
        for (const [path, result] of Object.entries(seen))
          assertRefused(result, `${path}, network ${network}`);
      }
    });

    it('with its network cut, cannot reach an abstract Unix socket of the host either', {
      skip: mode === 'permission' ? 'cutting the network needs bubblewrap' : false,
    }, async () => {
      // Abstract sockets belong to the network namespace, not the filesystem: no view hides them.
      const probe = fence(
        'js abstract',
        `${ATTEMPT}\nreturn { abstract: await connect(${JSON.stringify(abstractName)}) };`,
      );
      assertRefused(
        cellValue(await h.run(probe, { network: false }), 'abstract')['abstract'],
        'abstract socket',
      );
    });

    it('cannot connect to PostgreSQL over its Unix socket or loopback TCP and run COPY TO PROGRAM, with network on', {
      skip: !postgresSuperuser ? 'PostgreSQL does not trust local connections here' : false,
    }, async () => {
      // Guards finding 3 with network on (and, without bubblewrap, at all): a cell shares the host's
      // network namespace, where PostgreSQL trusts 127.0.0.1 and its socket; before the network
      // guard, \`pg\` from the cell connected as postgres and COPY ... TO PROGRAM ran a command as it.
      const marker = join(tmpdir(), `almanac-copy-to-program-${process.pid}-${mode}`);
      rmSync(marker, { force: true });
      const hosts = [
        ...PG_SOCKETS.map((p) => p.replace(/\/\.s\.PGSQL\.5432$/, '')),
        '127.0.0.1',
        'localhost',
        '::1',
        '::ffff:127.0.0.1',
        '0.0.0.0',
      ];
      const probe = fence(
        'js copy',
        `import pg from 'pg';
const out = {};
for (const host of ${JSON.stringify(hosts)}) {
  const client = new pg.Client({ host, port: 5432, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 3000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query(${JSON.stringify(`COPY (SELECT 1) TO PROGRAM 'touch ${marker}'`)});
    out[host] = 'ran COPY TO PROGRAM';
  } catch (e) {
    out[host] = e.code + ' ' + e.message;
  } finally {
    await client.end().catch(() => {});
  }
}
return out;`,
      );
      const seen = cellValue(await h.run(probe, { network: true }), 'copy');
      for (const host of hosts) {
        assert.match(String(seen[host]), /^EACCES cells may not connect to /, host);
      }
      assert.equal(existsSync(marker), false, 'COPY TO PROGRAM ran on the host');
    });

    it('cannot reach 169.254.169.254, loopback in any spelling (::ffff:127.0.0.1, ::7f00:1, 0x7f.1, 2130706433) or an abstract socket, with network on', async () => {
      // Guards finding 3 with network on: each of these reached the loopback server below (or, for
      // the link-local and abstract ones, would reach a metadata service or the host's abstract
      // sockets); \`fetch\` and \`dgram\` went the same way.
      const port = (loopback.address() as AddressInfo).port;
      const targets = [
        '127.0.0.1',
        '127.1.2.3',
        'localhost',
        '::1',
        '::ffff:127.0.0.1',
        '::ffff:7f00:1',
        '::7f00:1',
        '64:ff9b::7f00:1',
        '2002:7f00:1::',
        '0x7f.1',
        '0177.0.0.1',
        '2130706433',
        '127.1',
        '0.0.0.0',
        '::',
        '169.254.169.254',
        'fe80::1',
      ];
      const probe = fence(
        'js reach',
        `const net = process.getBuiltinModule('node:net');
const tcp = (host) => new Promise((resolve) => {
  const socket = net.connect({ host, port: ${port} });
  socket.once('connect', () => { socket.destroy(); resolve('connected'); });
  socket.once('error', (e) => resolve(e.code + ' ' + e.message));
});
const out = {};
for (const host of ${JSON.stringify(targets)}) out[host] = await tcp(host);
for (const url of ['http://127.0.0.1:${port}/', 'http://localhost:${port}/', 'http://[::ffff:127.0.0.1]:${port}/', 'http://169.254.169.254/latest/meta-data/']) {
  try { out[url] = 'fetched ' + (await (await fetch(url)).text()); } catch (e) { out[url] = (e.cause?.code ?? '') + ' ' + (e.cause?.message ?? e.message); }
}
out.abstract = await new Promise((resolve) => {
  const socket = net.connect(${JSON.stringify(abstractName)});
  socket.once('connect', () => { socket.destroy(); resolve('connected'); });
  socket.once('error', (e) => resolve(e.code + ' ' + e.message));
});
out.udp = await new Promise((resolve) => {
  const udp = process.getBuiltinModule('node:dgram').createSocket('udp4');
  udp.send('x', ${udpPort}, '127.0.0.1', (e) => { udp.close(); resolve(e ? e.code : 'sent'); });
});
return out;`,
      );
      const seen = cellValue(await h.run(probe, { network: true }), 'reach');
      for (const [target, result] of Object.entries(seen)) {
        if (target === 'udp') assert.equal(result, 'EACCES', 'udp to 127.0.0.1');
        else assert.match(String(result), /^EACCES cells may not connect to /, target);
      }
      assert.match(String(seen['169.254.169.254']), /link-local address, where cloud metadata/);
      assert.match(String(seen['0x7f.1']), /resolves to 127\.0\.0\.1, a loopback address/);
      assert.equal(loopbackHits, 0, 'the loopback server saw no connection');
      assert.equal(udpHits, 0, 'the loopback UDP socket saw no datagram');
    });

    it('cannot restore the original connect or reach a handle that connects', async () => {
      // Guards the network guard itself: a cell that put back Socket#connect, or found it again
      // through another way to load node:net, or built a libuv handle of its own
      // (\`socket._handle.constructor\`), would connect where the guard refuses.
      const port = (loopback.address() as AddressInfo).port;
      const probe = fence(
        'js restore',
        `import * as netNs from 'node:net';
import { createRequire } from 'node:module';
${ATTEMPT}
const net = process.getBuiltinModule('node:net');
const guarded = net.Socket.prototype.connect;
const tcp = (n) => new Promise((resolve) => {
  const socket = n.connect({ host: '127.0.0.1', port: ${port} });
  socket.once('connect', () => { socket.destroy(); resolve('connected'); });
  socket.once('error', (e) => resolve(e.code));
});
const out = {
  assign: await attempt(() => { net.Socket.prototype.connect = function () { return 'mine'; }; return net.Socket.prototype.connect === guarded ? 'unchanged' : 'replaced'; }),
  remove: await attempt(() => { if (!delete net.Socket.prototype.connect) throw new Error('not deleted'); return 'deleted'; }),
  define: await attempt(() => { Object.defineProperty(net.Socket.prototype, 'connect', { value: () => 'mine' }); return 'defined'; }),
  sameEverywhere: [netNs.Socket, createRequire(import.meta.url)('node:net').Socket, (await import('node:net')).default.Socket, process.getBuiltinModule('net').Socket].every((S) => S.prototype.connect === guarded) ? 'refused' : 'another connect',
  importNet: await tcp((await import('node:net')).default),
  requireNet: await tcp(createRequire(import.meta.url)('net')),
  binding: await attempt(() => process.binding('tcp_wrap')),
  linkedBinding: await attempt(() => process._linkedBinding('tcp_wrap')),
  sqliteExtension: await attempt(() => new (process.getBuiltinModule('node:sqlite').DatabaseSync)(':memory:', { allowExtension: true }).loadExtension('/nonexistent.so')),
};
// A TCP handle of the cell's own: a public address passes the guard, and a bad port stops connect
// right after it made the handle.
const socket = new net.Socket();
try { socket.connect({ host: '192.0.2.1', port: -1 }); } catch {}
const TCP = socket._handle.constructor;
socket.destroy();
const rawTcp = new TCP(0);
out.rawTcp = String(rawTcp.connect({ oncomplete() {} }, '127.0.0.1', ${port}));
out.rawTcp6 = String(rawTcp.connect6({ oncomplete() {} }, '::ffff:127.0.0.1', ${port}));
out.assignHandle = await attempt(() => { TCP.prototype.connect = () => 0; return TCP.prototype.connect() === 0 ? 'replaced' : 'unchanged'; });
const Pipe = process.stdout._handle?.constructor ?? new net.Socket({ fd: 1 })._handle.constructor;
out.rawPipe = String(new Pipe(0).connect({ oncomplete() {} }, ${JSON.stringify(abstractName)}));
return out;`,
      );
      const seen = cellValue(await h.run(probe, { network: true }), 'restore');
      // Assignments to a fixed property fail (strict mode) or change nothing; the rest is refused.
      assert.notEqual(seen['assign'], 'ok: replaced', 'assign');
      for (const key of ['remove', 'define', 'binding', 'linkedBinding', 'sqliteExtension'])
        assertRefused(seen[key], key);
      assert.equal(
        seen['binding'],
        'ERR_ACCESS_DENIED',
        'internal bindings stay behind the permission model',
      );
      assert.equal(seen['sameEverywhere'], 'refused');
      assert.equal(seen['importNet'], 'EACCES');
      assert.equal(seen['requireNet'], 'EACCES');
      const eacces = String(-13);
      assert.equal(seen['rawTcp'], eacces, 'a raw TCP handle');
      assert.equal(seen['rawTcp6'], eacces, 'a raw TCP handle, IPv6');
      assert.notEqual(seen['assignHandle'], 'ok: replaced');
      assert.equal(seen['rawPipe'], eacces, 'a raw Pipe handle');
      assert.equal(loopbackHits, 0, 'the loopback server saw no connection');
    });

    it("cannot open a socket that only the server's user may open", {
      skip:
        mode === 'permission' && !modeIsolation?.user
          ? "without bubblewrap or root, cells run as the server's user (logged at start)"
          : false,
    }, async () => {
      const probe = fence(
        'js own',
        `${ATTEMPT}\nreturn { own: await connect(${JSON.stringify(hostSocketPath)}) };`,
      );
      assertRefused(cellValue(await h.run(probe), 'own')['own'], 'the server socket');
    });

    it('sees no socket file anywhere in its view of the filesystem', {
      skip: mode === 'permission' ? 'without bubblewrap the view is the host filesystem' : false,
    }, async () => {
      // Guards finding 3 at its root: with `--ro-bind / /`, /var/run/postgresql/.s.PGSQL.5432 (and
      // every other socket file of the host) was in the view. The host walks the child's view
      // through /proc/<pid>/root, as the cell itself may not list directories.
      for (const network of [true, false]) {
        const { sockets, walked } = await whileParked(h, { network }, (pid) => ({
          sockets: socketsUnder(`/proc/${pid}/root`),
          walked: readdirSync(`/proc/${pid}/root/usr/lib`).length,
        }));
        assert.ok(walked > 0, 'the walk saw the view');
        assert.deepEqual(sockets, [], `network ${network}`);
      }
    });

    it('cannot kill the server, its parent or pid 1', {
      skip:
        mode === 'permission' && !modeIsolation?.user
          ? "without bubblewrap or root, cells run as the server's user and can signal it: logged at start as not isolated"
          : false,
    }, async () => {
      // Guards finding 6: before, process.kill(process.ppid, 'SIGKILL') ended the server (here, the test runner).
      const text = `---\ninputs:\n  server_pid: { type: number, default: 0 }\n---\n${fence(
        'js signals',
        `${ATTEMPT}
return {
  ppid: process.ppid,
  server: await attempt(() => process.kill(server_pid, 'SIGKILL')),
  parent: await attempt(() => process.kill(process.ppid, 'SIGKILL')),
  init: await attempt(() => process.kill(1, 'SIGKILL')),
  // Every process it may signal: in its own PID namespace, none. (Not tried without bubblewrap, where
  // it would reach other runs of the same unprivileged user: see docs/security.md.)
  group: ${mode === 'bwrap'} ? await attempt(() => process.kill(-1, 'SIGKILL')) : 'not tried',
};`,
      )}`;
      const result = await h.run(text, { inputs: { server_pid: process.pid } });
      const seen = cellValue(result, 'signals');
      assertRefused(seen['server'], 'server');
      if (mode === 'bwrap') {
        // Its parent and pid 1 are the sandbox's own init (bubblewrap's), never the server. Root's
        // unprivileged user may not signal it; a user namespace's init ignores what it cannot handle.
        assert.equal(seen['ppid'], 1, 'the server is not visible as the parent');
        if (ROOT) for (const key of ['parent', 'init', 'group']) assertRefused(seen[key], key);
      } else {
        for (const key of ['parent', 'init']) assertRefused(seen[key], key);
      }
      // The server (this process) is alive, and runs again.
      const again = await h.run(fence('js alive', 'return { alive: true }'));
      assert.deepEqual(cellValue(again, 'alive'), { alive: true });
    });

    it("cannot read the data dir, the store, another run's directory, /etc/shadow or /root", async () => {
      const other = join(h.runRoot, 'run-other');
      const text = fence(
        'js reads',
        `${ATTEMPT}
const { readFileSync, readdirSync } = process.getBuiltinModule('node:fs');
return {
  dataDir: await attempt(() => readdirSync(${JSON.stringify(h.root)})),
  store: await attempt(() => readFileSync(${JSON.stringify(join(h.root, 'almanac.sqlite'))}, 'utf8')),
  otherRun: await attempt(() => readdirSync(${JSON.stringify(other)})),
  otherRunFile: await attempt(() => readFileSync(${JSON.stringify(join(other, 'result.json'))}, 'utf8')),
  runRoot: await attempt(() => readdirSync(${JSON.stringify(h.runRoot)})),
  shadow: await attempt(() => readFileSync('/etc/shadow', 'utf8')),
  root: await attempt(() => readdirSync('/root')),
  home: await attempt(() => readdirSync('/home')),
  init: await attempt(() => readFileSync('/proc/1/environ', 'utf8')),
  project: await attempt(() => readFileSync(${JSON.stringify(join(h.projectDir, 'data.csv'))}, 'utf8').length),
};`,
      );
      const seen = cellValue(await h.run(text), 'reads');
      for (const key of [
        'dataDir',
        'store',
        'otherRun',
        'otherRunFile',
        'runRoot',
        'shadow',
        'root',
        'home',
        'init',
      ]) {
        assertRefused(seen[key], key);
      }
      assert.equal(seen['project'], 'ok: 4', 'the project stays readable');
    });

    it('cannot write outside its run directory', async () => {
      const targets = [
        join(h.projectDir, 'pwned'),
        join(h.runRoot, 'pwned'),
        join(h.runRoot, 'run-other', 'pwned'),
        join(h.root, 'pwned'),
        '/tmp/almanac-hostile-pwned',
      ];
      const text = fence(
        'js writes',
        `${ATTEMPT}
const { writeFileSync } = process.getBuiltinModule('node:fs');
const out = { own: await attempt(() => { writeFileSync('mine.txt', 'x'); return 'written'; }) };
for (const path of ${JSON.stringify(targets)}) out[path] = await attempt(() => writeFileSync(path, 'pwned'));
out.parent = await attempt(() => writeFileSync('../pwned-too', 'pwned'));
return out;`,
      );
      const seen = cellValue(await h.run(text), 'writes');
      assert.equal(seen['own'], 'ok: written', 'the run directory stays writable');
      for (const path of targets) {
        assertRefused(seen[path], path);
        assert.equal(existsSync(path), false, `${path} exists on the host`);
      }
      assertRefused(seen['parent'], '../pwned-too');
      assert.equal(existsSync(join(h.runRoot, 'pwned-too')), false);
    });

    it('cannot start processes or threads, load addons or reach internal bindings', async () => {
      const text = fence(
        'js escapes',
        `${ATTEMPT}
const cp = process.getBuiltinModule('node:child_process');
return {
  spawn: await attempt(() => new Promise((resolve, reject) => { const c = cp.spawn('/bin/sh', ['-c', 'id']); c.once('error', reject); c.once('spawn', () => resolve('spawned')); })),
  execSync: await attempt(() => cp.execSync('id', { encoding: 'utf8' })),
  execPath: await attempt(() => cp.spawnSync(process.execPath, ['-e', '1']).status),
  worker: await attempt(() => new (process.getBuiltinModule('node:worker_threads').Worker)('1', { eval: true })),
  binding: await attempt(() => Object.keys(process.binding('spawn_sync'))),
  addon: await attempt(() => process.dlopen({ exports: {} }, '/nonexistent.node')),
  inspector: await attempt(() => process.getBuiltinModule('node:inspector').open(0)),
};`,
      );
      const seen = cellValue(await h.run(text), 'escapes');
      for (const [key, value] of Object.entries(seen)) assertRefused(value, key);
    });

    it('runs as an unprivileged user, as the host sees it, when the server is root', {
      skip: !ROOT ? 'the server is not root: cells run as its user' : false,
    }, async () => {
      // Guards finding 6 from the host's side: bwrap's --uid applies only inside a user namespace, so
      // the check reads the inner node's /proc/<pid>/status from the host.
      const user = modeIsolation?.user;
      assert.ok(
        user,
        `a root server drops to an unprivileged user (${describeIsolation(h.executor.isolation).line})`,
      );
      const status = await whileParked(h, {}, (pid) => readFileSync(`/proc/${pid}/status`, 'utf8'));
      const ids = (key: string) =>
        /^(\w+):\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m
          .exec(status.slice(status.indexOf(`\n${key}:`) + 1))
          ?.slice(2)
          .map(Number);
      assert.deepEqual(ids('Uid'), [user.uid, user.uid, user.uid, user.uid]);
      assert.deepEqual(ids('Gid'), [user.gid, user.gid, user.gid, user.gid]);
      assert.match(status, /^CapEff:\s+0+$/m);
      assert.match(status, /^Groups:\s*(65534\s*)?$/m);
    });
  });
}

describe('hostile notebooks: a data dir inside the project folder', {
  skip: !bwrapWorks ? 'bubblewrap unavailable' : false,
}, () => {
  it('stays hidden under bubblewrap, while the project and the run directory inside it stay usable', async () => {
    // Guards `hide` in the view built from nothing: a hidden path inside a bound one (here the data
    // dir inside the project, with the run root inside the data dir) is covered by an empty tmpfs
    // before the run directory is bound back on top of it.
    const top = mkdtempSync(join(tmpdir(), 'almanac-nested-'));
    chmodSync(top, 0o755);
    const projectDir = join(top, 'project');
    const dataDir = join(projectDir, '.almanac');
    mkdirSync(join(dataDir, 'runs'), { recursive: true });
    writeFileSync(join(projectDir, 'data.csv'), 'a\n1\n');
    writeFileSync(join(dataDir, 'almanac.sqlite'), 'the store');
    const executor = new Executor({
      connections: new Map(),
      runRoot: join(dataDir, 'runs'),
      prewarm: false,
      isolation: detectIsolation({ mode: 'bwrap', hide: [dataDir] }),
    });
    try {
      const text = fence(
        'js nested',
        `${ATTEMPT}
const { readFileSync, writeFileSync } = process.getBuiltinModule('node:fs');
return {
  project: await attempt(() => readFileSync(${JSON.stringify(join(projectDir, 'data.csv'))}, 'utf8').length),
  store: await attempt(() => readFileSync(${JSON.stringify(join(dataDir, 'almanac.sqlite'))}, 'utf8')),
  own: await attempt(() => { writeFileSync('x.txt', 'x'); return readFileSync('x.txt', 'utf8'); }),
};`,
      );
      const result = await executor.run({ projectDir, notebook: await parseNotebook(text) });
      const seen = cellValue(result, 'nested');
      assert.equal(seen['project'], 'ok: 4');
      assert.equal(seen['own'], 'ok: x');
      assertRefused(seen['store'], 'the store inside the project folder');
      // And with no permission model in the way: the host looks at the child's view itself.
      const runner = {
        runRoot: join(dataDir, 'runs'),
        run: async (t: string, r: { network?: boolean }) =>
          executor.run({ projectDir, ...r, notebook: await parseNotebook(t) }),
      };
      const listing = await whileParked(runner, {}, (pid) => readdirSync(`/proc/${pid}/root${dataDir}`));
      assert.deepEqual(listing, ['runs']);
    } finally {
      await executor.close();
      rmSync(top, { recursive: true, force: true });
    }
  });
});

describe('hostile notebooks: files the unprivileged user cannot read', () => {
  it('fail the run at start with what to change, in either mode', {
    skip: !ROOT ? 'only a root server runs cells as another user' : false,
  }, async () => {
    for (const mode of bwrapWorks ? (['permission', 'bwrap'] as const) : (['permission'] as const)) {
      const h = await createHarness({ isolation: (root) => detectIsolation({ mode, hide: [root] }) });
      try {
        chmodSync(h.root, 0o711);
        chmodSync(h.projectDir, 0o700);
        await assert.rejects(h.run(fence('js x', 'return 1')), (error: unknown) => {
          assert.ok(error instanceof ValidationError, String(error));
          assert.equal(error.field, 'ALMANAC_SANDBOX_UID');
          assert.match(
            error.message,
            new RegExp(`${h.projectDir} \\(mode 700\\) is not readable by uid 65534`),
          );
          return true;
        });
        assert.deepEqual(
          readdirSync(h.runRoot).filter((name) => name.startsWith('run-')),
          [],
          mode,
        );
      } finally {
        await h.close();
      }
    }
  });
});

for (const mode of ['permission', 'bwrap'] as const) {
  describe(`hostile notebooks: the server's word at start (${mode})`, {
    skip: mode === 'bwrap' && !bwrapWorks ? 'bubblewrap unavailable' : false,
  }, () => {
    it('says once, in its log, how cells are isolated from it, and warns where they are not', async () => {
      // Guards finding 6's last part: a server that can neither drop to another user nor give cells
      // their own PID namespace said nothing, so its operator could not know cells may signal it.
      const dataDir = mkdtempSync(join(tmpdir(), 'almanac-isolation-'));
      chmodSync(dataDir, 0o711);
      const child = spawn(process.execPath, [join(import.meta.dirname, 'support', 'serve-process.ts')], {
        env: {
          PATH: process.env['PATH'] ?? '',
          ALMANAC_DATA_DIR: dataDir,
          ALMANAC_SANDBOX: mode,
          ALMANAC_PREWARM: 'false',
          ALMANAC_SECRET_KEY: 'test-secret-key',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const stderr: string[] = [];
      createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
      const exited = new Promise((r) => child.once('exit', r));
      try {
        await new Promise<string>((resolve, reject) => {
          createInterface({ input: child.stdout! }).once('line', resolve);
          child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${stderr.join('\n')}`)));
        });
      } finally {
        child.kill('SIGTERM');
        await exited;
        rmSync(dataDir, { recursive: true, force: true });
      }
      const lines = stderr.flatMap((l) => {
        try {
          return [JSON.parse(l) as { level: number; msg: string; isolated?: boolean }];
        } catch {
          return [];
        }
      });
      const said = lines.filter((l) => 'isolated' in l);
      assert.equal(said.length, 1, stderr.join('\n'));
      const [line] = said as [{ level: number; msg: string; isolated: boolean }];
      if (mode === 'bwrap') {
        assert.equal(line.level, 30);
        assert.match(line.msg, /^runs are isolated by bubblewrap.*own PID namespace/);
      } else if (ROOT) {
        assert.equal(line.level, 40);
        assert.match(
          line.msg,
          /^runs use Node's permission model as uid 65534, gid 65534, without bubblewrap/,
        );
        assert.doesNotMatch(line.msg, /Runs will fail/);
      } else {
        assert.deepEqual([line.level, line.isolated], [40, false]);
        assert.match(line.msg, /^cells are not isolated from the server/);
      }
    });
  });
}

/**
 * Runs a cell that waits, finds its node process from the host (by its run directory on its command
 * line), calls `check` with its host pid, then lets the cell finish.
 */
async function whileParked<T>(
  h: Pick<Harness, 'run' | 'runRoot'>,
  request: { network?: boolean },
  check: (pid: number) => T,
): Promise<T> {
  const text = fence(
    'js parked',
    `const { existsSync } = process.getBuiltinModule('node:fs');
while (!existsSync('go')) await new Promise((r) => setTimeout(r, 5));
return { uid: process.getuid() };`,
  );
  const running = h.run(text, request);
  let failed: unknown = null;
  running.catch((e) => {
    failed = e;
  });
  const found = await until("the run's node process", () => {
    if (failed) throw failed;
    return innerNode(h.runRoot);
  });
  let value: T;
  try {
    value = check(found.pid);
  } finally {
    writeFileSync(join(found.runDir, 'go'), '');
  }
  const result = await running;
  assert.equal(result.snapshot.status, 'succeeded', result.snapshot.message ?? '');
  return value;
}

/** The node process (not its wrappers) running a run under `runRoot`, by its --allow-fs-write. */
function innerNode(runRoot: string): { pid: number; runDir: string } | null {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (argv[0] !== NODE) continue;
    const write = argv.find((a) => a.startsWith(`--allow-fs-write=${runRoot}/`));
    const runDir = write?.slice('--allow-fs-write='.length);
    // Not one of an earlier run that is still going away (its directory already removed).
    if (runDir && existsSync(runDir)) return { pid: Number(entry), runDir };
  }
  return null;
}

let foundOnHost: string[] | null = null;
/** Socket files of the host where services keep them, found once per file. */
function hostSockets(): string[] {
  foundOnHost ??= ['/run', '/var/run', '/tmp', '/dev', '/home', '/root'].flatMap((dir) =>
    socketsUnder(dir).map((path) => dir + path),
  );
  return foundOnHost;
}

/** Every socket file under `root`, walking it like `find -type s` (not into /proc or /sys). */
function socketsUnder(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isSocket()) found.push(path.slice(root.length));
      else if (entry.isDirectory() && !(dir === root && (entry.name === 'proc' || entry.name === 'sys')))
        walk(path);
    }
  };
  walk(root);
  return found;
}

describe('ALMANAC_CELL_BLOCK_PRIVATE_NETWORKS', () => {
  it('keeps cells off private networks as well when the host asks, before any packet leaves', async () => {
    // The executor passes the setting to the child in its run message; the guard refuses the address
    // before connecting, so nothing is sent to these (private) addresses.
    const h = await createHarness({ blockPrivateNetworks: true });
    try {
      const probe = fence(
        'js reach',
        `const net = process.getBuiltinModule('node:net');
const out = {};
for (const host of ['10.255.255.1', '192.168.255.254', 'fd00::1']) {
  out[host] = await new Promise((resolve) => {
    const socket = net.connect({ host, port: 9 });
    socket.once('connect', () => { socket.destroy(); resolve('connected'); });
    socket.once('error', (e) => resolve(e.code + ' ' + e.message));
  });
}
return out;`,
      );
      const seen = cellValue(await h.run(probe, { network: true }), 'reach');
      for (const [host, result] of Object.entries(seen)) {
        assert.match(
          String(result),
          /^EACCES cells may not connect to .*ALMANAC_CELL_BLOCK_PRIVATE_NETWORKS/,
          host,
        );
      }
    } finally {
      await h.close();
    }
  });
});
