import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROCESS_ROLES } from '../src/app/create-server.ts';
import { main, parseDuration } from '../src/cli/main.ts';
import { renderTable } from '../src/cli/render.ts';
import { SERVE_ROLES } from '../src/cli/server-commands.ts';

const MAIN = resolve('src/cli/main.ts');
const ROOT = resolve('.');
const DEMO = resolve('examples/sales/sales.md');
let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'almanac-cli-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function almanac(...args: string[]) {
  const result = spawnSync(process.execPath, [MAIN, ...args, '--data-dir', join(dir, 'data')], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
    timeout: 60_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * Runs the CLI in this process through `main()`, with what it writes to stdout and stderr captured:
 * for commands that fail or answer before they start anything (no child process is needed to see it).
 */
async function almanacInProcess(...args: string[]) {
  return mainCaptured([...args, '--data-dir', join(dir, 'data')]);
}

/** `main(args)` in this process, with stdout and stderr captured. */
async function mainCaptured(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const { write: stdoutWrite } = process.stdout;
  const { write: stderrWrite } = process.stderr;
  const umask = process.umask();
  // The CLI writes text; bytes are the test runner's own events (a file's tests report to the runner
  // over this process's stdout) and pass through. Capturing them lost the report of every test that
  // finished while a command ran in process: `node --test test/cli.test.ts` listed 3 of 13 tests.
  const capture =
    (into: string[], stream: NodeJS.WriteStream, original: typeof process.stdout.write) =>
    (chunk: unknown, ...rest: unknown[]): boolean =>
      typeof chunk === 'string'
        ? into.push(chunk) > 0
        : (original as (...args: unknown[]) => boolean).call(stream, chunk, ...rest);
  process.stdout.write = capture(out, process.stdout, stdoutWrite) as typeof process.stdout.write;
  process.stderr.write = capture(err, process.stderr, stderrWrite) as typeof process.stderr.write;
  try {
    const code = await main(args);
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    process.stdout.write = stdoutWrite;
    process.stderr.write = stderrWrite;
    process.umask(umask);
    process.exitCode = undefined;
  }
}

/**
 * The project modules a CLI command loads, recorded by a module hook in the command's own process.
 */
function modulesLoadedBy(args: string[], env: Record<string, string> = {}): string[] {
  const hooks = join(dir, 'record-loads.mjs');
  const record = join(dir, `loads-${args.join('-').replace(/\W+/g, '_')}.txt`);
  writeFileSync(
    hooks,
    `import { registerHooks } from 'node:module';
import { appendFileSync } from 'node:fs';
registerHooks({ load(url, context, next) { appendFileSync(process.env.RECORD_LOADS, url + '\\n'); return next(url, context); } });
`,
  );
  const result = spawnSync(process.execPath, ['--import', hooks, MAIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env, RECORD_LOADS: record },
    timeout: 60_000,
  });
  assert.equal(result.status === null ? 'killed' : 'exited', 'exited', result.stderr);
  return readFileSync(record, 'utf8')
    .split('\n')
    .filter((url) => url.startsWith(`file://${ROOT}/src/`))
    .map((url) => url.slice(`file://${ROOT}/`.length));
}

function notebook(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('almanac run', () => {
  it('runs the demo, shows progress per cell and prints tables as aligned text', () => {
    const { code, stdout, stderr } = almanac('run', DEMO, '--input', 'region=EMEA', '--rows', '3');
    assert.equal(code, 0, stderr);
    // Any duration: a loaded machine takes seconds (issue 15, bug 12: this expected `\d+ ms`).
    assert.match(stderr, /✓ orders\s+sql\s+[\d.]+ m?s\s+\d+ rows/);
    assert.match(stderr, /✓ record_snapshot\s+ts/);
    assert.match(stdout, /Monthly sales report {2}✓ succeeded/);
    assert.match(stdout, /Orders for EMEA since 2025-01-01\./);
    assert.match(stdout, /── top_products \(sql\) ─+\n {2}product\s+category\s+units\s+revenue\n {2}─+/);
    assert.match(stdout, /… 2 more rows \(5 in all\)/);
    assert.match(stdout, /not written: this is a logic run/);
  });

  it('prints the snapshot as JSON with --json', () => {
    const { code, stdout } = almanac('run', DEMO, '--json', '--context', 'api-triggered');
    assert.equal(code, 0);
    const snapshot = JSON.parse(stdout);
    assert.equal(snapshot.status, 'succeeded');
    assert.equal(snapshot.context, 'api-triggered');
    assert.equal(snapshot.format, 1);
    assert.ok(snapshot.cells.find((c: { name: string }) => c.name === 'revenue_chart').output.spec);
  });

  it('writes back only in scheduled runs', () => {
    const scheduled = almanac(
      'run',
      DEMO,
      '--json',
      '--context',
      'scheduled',
      '--scheduled-for',
      '2026-11-23T06:00:00Z',
    );
    assert.equal(scheduled.code, 0, scheduled.stderr);
    const history = JSON.parse(scheduled.stdout).cells.find((c: { name: string }) => c.name === 'history');
    assert.equal(history.output.kind, 'table');
    assert.equal(history.output.totalRows, 1);
  });

  it('exits 1 with one line naming the failing cell', () => {
    const path = notebook(
      'fails.md',
      '# Fails\n\n```js ok\nreturn 1\n```\n\n```js broken\nthrow new Error("no data for today")\n```\n',
    );
    const { code, stderr } = almanac('run', path);
    assert.equal(code, 1);
    const lines = stderr.trim().split('\n');
    assert.equal(lines.at(-1), "almanac: cell 'broken' failed (line 8): no data for today");
  });

  it('exits 2 with one line for an invalid notebook', () => {
    const path = notebook('invalid.md', '```sql a\nselect {{ nope }}\n```\n');
    const { code, stderr, stdout } = almanac('run', path);
    assert.equal(code, 2);
    assert.equal(stdout, '');
    assert.equal(stderr.trim().split('\n').length, 1);
    assert.match(stderr, /^almanac: .*invalid\.md:2: cell 'a': unknown reference 'nope'/);
  });

  it('exits 2 with one line for bad flags and inputs, naming the field', () => {
    const cases: [string[], RegExp][] = [
      [
        ['run', DEMO, '--input', 'region=Mars'],
        /^almanac: inputs\.region: must be one of All, EMEA, AMER, APAC; got "Mars"$/,
      ],
      [['run', DEMO, '--input', 'nope=1'], /^almanac: inputs\.nope: is not an input of this notebook/],
      [
        ['run', DEMO, '--input', 'since=yesterday'],
        /^almanac: inputs\.since: must be a date written as YYYY-MM-DD/,
      ],
      [
        ['run', DEMO, '--connection', 'warehouse=mysql://x'],
        /^almanac: --connection: connection 'warehouse' must be a postgres:/,
      ],
      // Flags refused before anything starts are checked in process ('a fast CLI' below).
    ];
    for (const [args, expected] of cases) {
      const { code, stderr } = almanac(...args);
      assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
      assert.equal(stderr.trim().split('\n').length, 1, stderr);
      assert.match(stderr.trim(), expected);
    }
  });

  it('exits 2 when the notebook needs a connection that is not configured', () => {
    const path = notebook('pg.md', '---\nconnections: [warehouse]\n---\n```sql a\nselect 1\n```\n');
    const { code, stderr } = almanac('run', path);
    assert.equal(code, 2);
    assert.match(
      stderr,
      /^almanac: connection 'warehouse' is not configured; .*--connection warehouse=postgres/,
    );
  });
});

describe('a fast CLI (issue 15)', () => {
  /**
   * Guards the lazy command modules: `main.ts` imported `server-commands.ts`, which imported
   * `create-server.ts` and with it the store, executor, notifier and HTTP server, so `--version`
   * took 1.3-2 s of CPU. A command that only talks to a server, or prints help, loads none of them.
   */
  it('--version and help load neither the server, the store nor the executor', () => {
    for (const args of [['--version'], ['runs', '--help'], ['schedule', 'list', '--help'], ['--help']]) {
      const loaded = modulesLoadedBy(args);
      assert.ok(loaded.includes('src/cli/program.ts'), `${args.join(' ')} ran: ${loaded.join(', ')}`);
      const heavy = loaded.filter((m) =>
        /^src\/(app|store|executor|services|http|notify|scheduler)\//.test(m),
      );
      assert.deepEqual(heavy, [], `${args.join(' ')} loaded the server's modules`);
      assert.ok(!loaded.includes('src/domain/notebook/parse-notebook.ts'), args.join(' '));
    }
  });

  it("help lists every command, and serve's roles are the server's", async () => {
    const { code, stdout } = await almanacInProcess('--help');
    assert.equal(code, 0);
    for (const command of [
      'run',
      'serve',
      'login-link',
      'publish',
      'runs',
      'projects',
      'trigger',
      'schedule',
      'notify',
    ])
      assert.match(stdout, new RegExp(`^  ${command} `, 'm'), command);
    assert.deepEqual([...SERVE_ROLES], [...PROCESS_ROLES]);
    const serve = await almanacInProcess('serve', '--help');
    assert.match(serve.stdout.replace(/\s+/g, ' '), /roles to run: web, worker, scheduler, notifier/);
  });

  it('answers usage errors in process with one line and exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /^almanac: unknown command 'frobnicate'/],
      [
        ['run', DEMO, '--context', 'cron'],
        /^almanac: option '-c, --context <context>' argument 'cron' is invalid/,
      ],
      [['run', DEMO, '--timeout', 'soon'], /^almanac: --timeout: 'soon' is not a duration/],
      [['run', join(dir, 'missing.md')], /^almanac: notebook: cannot read '.*missing\.md': ENOENT$/],
      [
        ['schedule', 'preview', '--daily', '07:00', '--hourly', '5', '--server', 'ftp://x'],
        /^almanac: --server: /,
      ],
    ];
    for (const [args, expected] of cases) {
      const { code, stderr, stdout } = await almanacInProcess(...args);
      assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
      assert.equal(stdout, '');
      assert.equal(stderr.trim().split('\n').length, 1, stderr);
      assert.match(stderr.trim(), expected);
    }
    const version = await almanacInProcess('--version');
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
  });
});

describe('CLI exit codes against a server (issue 15)', () => {
  // Server errors (a 5xx, no server at all) exit 1; what the user got wrong (a 4xx) exits 2. A server
  // that could not be reached exited 3, and a 5xx on a live-progress stream exited 2 as a usage error.
  let server: Server;
  let url: string;
  before(async () => {
    server = createHttpServer((request, response) => {
      const answer = (status: number, body: unknown) => {
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(body));
      };
      const error = (status: number, code: string, message: string) =>
        answer(status, { error: { code, message } });
      const path = request.url ?? '';
      if (path.startsWith('/api/runs?'))
        error(503, 'unavailable', 'the store is briefly unavailable (connection_failure); try again');
      else if (request.method === 'POST' && path === '/api/projects/sales/runs')
        answer(201, { id: 'run-1', status: 'queued' });
      else if (path === '/api/runs/run-1/events')
        error(500, 'internal', 'an unexpected error occurred; see the server log');
      else error(404, 'not_found', "project 'nope' was not found");
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((done) => server.close(() => done())));

  it('exits 1 on a 5xx or an unreachable server, 2 on a 4xx, with one line', async () => {
    const cases: [string[], number, RegExp][] = [
      [['runs', '--server', url], 1, /^almanac: the server failed \(503\): the store is briefly unavailable/],
      [
        ['trigger', 'sales', '--wait', '--json', '--server', url],
        1,
        /^almanac: the server failed \(500\): an unexpected error occurred/,
      ],
      [['runs', '--server', 'http://127.0.0.1:1'], 1, /^almanac: cannot reach the Almanac server at/],
      [['trigger', 'nope', '--server', url], 2, /^almanac: project 'nope' was not found$/],
    ];
    for (const [args, expected, line] of cases) {
      const { code, stderr } = await mainCaptured([...args, '--token', 'alm_test']);
      assert.equal(code, expected, `${args.join(' ')}: ${stderr}`);
      assert.equal(stderr.trim().split('\n').length, 1, stderr);
      assert.match(stderr.trim(), line);
    }
  });
});

describe('CLI helpers', () => {
  it('parses durations', () => {
    assert.equal(parseDuration('1500', 'x'), 1500);
    assert.equal(parseDuration('30s', 'x'), 30_000);
    assert.equal(parseDuration('5m', 'x'), 300_000);
    assert.equal(parseDuration('2h', 'x'), 7_200_000);
  });

  it('cuts wide tables and long values to fit', () => {
    const lines = renderTable(
      {
        kind: 'table',
        columns: [
          { name: 'id', type: 'INTEGER' },
          { name: 'text', type: 'VARCHAR' },
          { name: 'more', type: 'VARCHAR' },
        ],
        rows: [[1, 'x'.repeat(100), 'y']],
        totalRows: 1,
        truncated: false,
      },
      { width: 40, rows: 10, color: false },
    );
    assert.deepEqual(lines, [
      '  id  text',
      '  ──  ────────────────────────────',
      `   1  ${'x'.repeat(27)}…`,
      '  … 1 more columns: more',
    ]);
  });
});
