/**
 * Sandbox hardening, with Node's permission model alone and inside bubblewrap: user code cannot read
 * the server's environment, its data dir or the database file; CPU time, file size, output and log
 * size are limited; network access can be cut (bubblewrap only).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ValidationError } from '../src/domain/errors.ts';
import { bundleChildRuntime, detectIsolation, SandboxPool } from '../src/executor/sandbox.ts';
import { cell, createHarness, fence, type Harness } from './support/harness.ts';
import { hostAddress, httpUrl } from './support/host-address.ts';
import { startTestServer, testStores } from './support/server-harness.ts';
import { bubblewrapWorks } from './support/services.ts';

const bwrapWorks = bubblewrapWorks('the bubblewrap sandbox suite');

for (const mode of ['permission', 'bwrap'] as const) {
  describe(`sandbox: ${mode === 'bwrap' ? 'bubblewrap and the permission model' : 'the permission model alone'}`, {
    skip: mode === 'bwrap' && !bwrapWorks ? 'bubblewrap unavailable' : false,
  }, () => {
    let h: Harness;
    let web: Server;
    let url: string;
    before(async () => {
      h = await createHarness({ isolation: (root) => detectIsolation({ mode, hide: [root] }) });
      // A root server without bubblewrap runs cells as an unprivileged user, who must be let through
      // the folders on the way to the run and project directories (mkdtemp makes them 0700).
      chmodSync(h.root, 0o711);
      writeFileSync(join(h.root, 'almanac.sqlite'), 'the store');
      writeFileSync(join(h.root, 'secret.key'), 'the key');
      web = createServer((_req, res) => res.end('reachable'));
      // Not loopback: the cell network guard refuses it (test/support/host-address.ts).
      await new Promise<void>((r) => web.listen(0, hostAddress(), r));
      url = httpUrl(hostAddress(), (web.address() as AddressInfo).port);
    });
    after(async () => {
      await h?.close();
      await new Promise((r) => web?.close(r));
    });

    it('keeps the server environment, the data dir and the database file out of reach', async () => {
      process.env['ALMANAC_SANDBOX_TEST_SECRET'] = 'hunter2';
      try {
        const code = `import { readFileSync, readdirSync } from 'node:fs';
const attempt = (f) => { try { return 'read: ' + String(f()).slice(0, 40); } catch (e) { return e.code ?? e.message; } };
return {
  env: Object.keys(process.env).sort(),
  parentEnv: attempt(() => readFileSync('/proc/' + process.ppid + '/environ', 'utf8')),
  selfEnv: attempt(() => readFileSync('/proc/self/environ', 'utf8')),
  store: attempt(() => readFileSync(${JSON.stringify(join(h.root, 'almanac.sqlite'))}, 'utf8')),
  key: attempt(() => readFileSync(${JSON.stringify(join(h.root, 'secret.key'))}, 'utf8')),
  duckdb: attempt(() => readFileSync(${JSON.stringify(join(h.root, 'workspace.duckdb'))})),
  listing: attempt(() => readdirSync(${JSON.stringify(h.root)}).join(',')),
};`;
        const { snapshot } = await h.run(fence('js probe', code));
        assert.equal(snapshot.status, 'succeeded', snapshot.message ?? '');
        const v = (cell(snapshot, 'probe').output as { value: Record<string, unknown> }).value;
        assert.deepEqual(v['env'], ['HOME', 'LANG', 'PATH', 'TMPDIR', 'TZ']);
        for (const key of ['parentEnv', 'selfEnv', 'store', 'key', 'duckdb', 'listing']) {
          assert.ok(!String(v[key]).startsWith('read:') || key === 'listing', `${key}: ${v[key]}`);
          assert.doesNotMatch(String(v[key]), /hunter2|the store|the key/, key);
        }
        if (mode === 'bwrap') {
          // The data dir is an empty directory inside the sandbox, but for what the run needs.
          assert.match(String(v['store']), /ENOENT|ERR_ACCESS_DENIED/);
        } else {
          assert.equal(v['store'], 'ERR_ACCESS_DENIED');
        }
      } finally {
        delete process.env['ALMANAC_SANDBOX_TEST_SECRET'];
      }
    });

    it('ends a run that uses its CPU time, with reason cpu_limit', async () => {
      const { snapshot } = await h.run(fence('js spin', 'while (true) {}'), {
        limits: { cpuSeconds: 1, timeoutMs: 60_000 },
      });
      assert.equal(snapshot.status, 'failed');
      assert.equal(snapshot.reason, 'cpu_limit');
      assert.match(snapshot.message ?? '', /used its 1 s of CPU time in cell 'spin'/);
      assert.equal(cell(snapshot, 'spin').error?.name, 'CpuLimit');
    });

    it('limits file size, output size and log size', async () => {
      const { snapshot } = await h.run(
        fence(
          'js logs',
          "for (let i = 0; i < 2000; i++) console.log('line ' + i + ' ' + 'x'.repeat(50));\nreturn 1",
        ) + fence('js big', "return 'y'.repeat(300_000)"),
        { limits: { maxLogBytes: 4096, maxOutputBytes: 100_000 } },
      );
      const logs = cell(snapshot, 'logs').logs;
      assert.ok(logs.length < 100, `${logs.length} log lines kept`);
      assert.match(logs.at(-1)!.text, /log output cut: this run reached its log limit/);
      assert.equal(cell(snapshot, 'big').status, 'failed');
      assert.equal(cell(snapshot, 'big').error?.name, 'OutputLimitError');
      assert.match(
        cell(snapshot, 'big').error?.message ?? '',
        /output of cell 'big' is 0\.29 MiB, above the limit of 0\.10 MiB/,
      );

      const file = await h.run(
        fence(
          'js write',
          "import { writeFileSync } from 'node:fs';\nwriteFileSync('big.bin', Buffer.alloc(2 * 1048576));\nreturn 1",
        ),
        { limits: { maxFileBytes: 1048576 } },
      );
      assert.equal(cell(file.snapshot, 'write').status, 'failed');
      assert.match(cell(file.snapshot, 'write').error?.message ?? '', /EFBIG|file too large/i);
    });

    it(
      mode === 'bwrap'
        ? 'cuts network access when asked'
        : 'refuses to cut network access without bubblewrap',
      async () => {
        const probe = fence(
          'js net',
          `try { return await (await fetch(${JSON.stringify(url)})).text(); } catch (e) { return 'failed: ' + (e.cause?.code ?? e.message); }`,
        );
        const open = await h.run(probe);
        assert.equal((cell(open.snapshot, 'net').output as { value: unknown }).value, 'reachable');
        if (mode === 'bwrap') {
          const cut = await h.run(probe, { network: false });
          assert.match(String((cell(cut.snapshot, 'net').output as { value: unknown }).value), /^failed: /);
        } else {
          await assert.rejects(h.run(probe, { network: false }), (error: unknown) => {
            assert.ok(error instanceof ValidationError);
            assert.equal(error.field, 'network');
            assert.match(error.message, /needs bubblewrap/);
            return true;
          });
        }
      },
    );
  });
}

describe('sandbox: a whole server', () => {
  it("a cell cannot read the server's environment, data dir or store; admins can cut its network", async () => {
    const stores = await testStores();
    const t = await startTestServer(stores[0]!);
    const web = createServer((_req, res) => res.end('reachable'));
    await new Promise<void>((r) => web.listen(0, hostAddress(), r));
    const url = httpUrl(hostAddress(), (web.address() as AddressInfo).port);
    process.env['DATABASE_URL'] = t.url;
    process.env['ALMANAC_SECRET_KEY'] = 'server-secret-key';
    try {
      const probe = `import { readFileSync } from 'node:fs';
const attempt = (f) => { try { return 'read ' + String(f()).length + ' chars'; } catch (e) { return e.code ?? e.message; } };
let net;
try { net = await (await fetch(${JSON.stringify(url)})).text(); } catch (e) { net = 'failed'; }
return {
  env: Object.keys(process.env).sort().join(','),
  store: attempt(() => readFileSync(${JSON.stringify(t.url)})),
  duckdb: attempt(() => readFileSync(${JSON.stringify(join(t.dataDir, 'workspace.duckdb'))})),
  parent: attempt(() => readFileSync('/proc/' + process.ppid + '/environ', 'utf8')),
  net,
};`;
      const source = ['---', 'title: Probe', '---', '', '```js probe', probe, '```', ''].join('\n');
      assert.equal((await t.json('POST', '/api/projects', { source, slug: 'probe' })).status, 201);
      assert.equal((await t.json('POST', '/api/projects/probe/publish', {})).status, 201);
      await t.server.worker!.drain();
      const value = async (id?: string) => {
        const runId = id ?? (await t.json('GET', '/api/runs?project=probe&limit=1')).body.runs[0].id;
        const snap = await t.json('GET', `/api/runs/${runId}/snapshot`);
        return snap.body.cells[0].output.value as Record<string, string>;
      };
      const seen = await value();
      assert.equal(seen['env'], 'HOME,LANG,PATH,TMPDIR,TZ');
      for (const key of ['store', 'duckdb', 'parent'])
        assert.match(seen[key]!, /^(ERR_ACCESS_DENIED|ENOENT|EACCES)$/, key);
      assert.equal(seen['net'], 'reachable');

      // Settings: every member reads them, only admins change them; workers apply them at once.
      assert.deepEqual((await t.json('GET', '/api/workspace/settings')).body, { cellNetwork: true });
      const cut = await t.json('PUT', '/api/workspace/settings', { cellNetwork: false });
      assert.deepEqual([cut.status, cut.body], [200, { cellNetwork: false }]);
      const again = await t.json('POST', '/api/projects/probe/runs', {});
      assert.equal(again.status, 201);
      await t.server.worker!.drain();
      if (bwrapWorks) {
        assert.equal((await value(again.body.id))['net'], 'failed');
      } else {
        const run = await t.json('GET', `/api/runs/${again.body.id}`);
        assert.match(run.body.error.message, /needs bubblewrap/);
      }
    } finally {
      delete process.env['DATABASE_URL'];
      delete process.env['ALMANAC_SECRET_KEY'];
      await new Promise((r) => web.close(r));
      await t.close();
    }
  });
});

describe('sandbox: the built child runtime', () => {
  it('is one file that takes built-in modules through process.getBuiltinModule', () => {
    const code = bundleChildRuntime();
    assert.doesNotMatch(code, /^\s*import\s.*\sfrom\s/m);
    assert.match(code, /process\.getBuiltinModule\('node:util'\)/);
  });

  it('bundles named imports of modules, renamed or not, and runs them in order', () => {
    const dir = mkdtempSync(join(tmpdir(), 'almanac-bundle-'));
    try {
      writeFileSync(
        join(dir, 'lib.ts'),
        "import { sep } from 'node:path';\nexport const K: number = 2;\nexport function double(n: number): number { return n * K; }\nexport const where = sep;\n",
      );
      writeFileSync(
        join(dir, 'main.ts'),
        "import * as os from 'node:os';\nimport { double as twice, where } from './lib.ts';\nimport type { Nothing } from './types.ts';\nconsole.log(twice(21), where, typeof os.cpus);\n",
      );
      writeFileSync(join(dir, 'main.mjs'), bundleChildRuntime(join(dir, 'main.ts')));
      const out = execFileSync(process.execPath, [join(dir, 'main.mjs')], { encoding: 'utf8' });
      assert.equal(out.trim(), '42 / function');

      writeFileSync(join(dir, 'lib.ts'), 'export default function double(n) { return n * 2; }\n');
      assert.throws(
        () => bundleChildRuntime(join(dir, 'main.ts')),
        /lib\.ts:1: the child runtime's modules may import only by name and export only named/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('sandbox pool', () => {
  it('leaves a warm child a run took to that run, even when its process exits', async () => {
    // Regression (reliability suite, exactly-once scenario): the pool disposed every child it had
    // started when its process exited, also one a run had taken. Its process exits right after
    // sending `done`, so the pool closed the channel before the host had read the last frames, and
    // runs ended as "the run process exited unexpectedly (exit code 0)" on a busy host.
    const root = mkdtempSync(join(tmpdir(), 'almanac-pool-'));
    chmodSync(root, 0o711);
    const projectDir = join(root, 'project');
    const runRoot = join(root, 'runs');
    mkdirSync(projectDir, { recursive: true });
    mkdirSync(runRoot, { recursive: true });
    const pool = new SandboxPool();
    try {
      const spec = { runRoot, projectDir, memoryLimitMb: 128, isolation: detectIsolation({ hide: [] }) };
      pool.prewarm(spec);
      const { sandbox, warm } = pool.acquire(spec);
      assert.equal(warm, true);
      await sandbox.ready;
      const exited = new Promise((r) => sandbox.child.once('exit', r));
      sandbox.child.kill('SIGKILL');
      await exited;
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(existsSync(sandbox.runDir), 'the pool did not dispose a sandbox a run holds');
      await sandbox.dispose();
      assert.equal(existsSync(sandbox.runDir), false);
    } finally {
      await pool.close();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
