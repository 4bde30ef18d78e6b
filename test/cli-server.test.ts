/**
 * The CLI against a running server, as a laptop would use it: publish, trigger (with --wait), runs;
 * and its one-line errors with exit 2 (bad input), 1 (the run failed, or no server).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fence } from './support/harness.ts';
import { startTestServer, type TestServer, testStores } from './support/server-harness.ts';

const MAIN = resolve('src/cli/main.ts');
const DEMO = resolve('examples/sales/sales.md');

describe('almanac publish, trigger and runs against a server', () => {
  let t: TestServer;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'almanac-cli-server-'));
    t = await startTestServer((await testStores())[0]!, {
      listen: true,
      autostart: true,
      clockStart: Date.now(),
    });
  });
  after(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs the CLI in a child process (asynchronously: the server answers from this process). */
  const almanac = (args: string[], env: Record<string, string> = {}, entry: string[] = [MAIN]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
      execFile(
        process.execPath,
        [...entry, ...args],
        {
          env: { ...process.env, NO_COLOR: '1', ALMANAC_URL: t.server.url!, ALMANAC_TOKEN: t.token, ...env },
          cwd: dir,
          timeout: 60_000,
        },
        (error, stdout, stderr) =>
          done({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });

  it('publishes a notebook with its files, once per content, and waits for the publish run', async () => {
    const first = await almanac(['publish', DEMO, '--wait']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^sales: published v1; publish run [0-9a-f-]+ queued$/m);
    assert.match(first.stderr, /✓ orders \(sql\)/);
    assert.match(first.stdout, /publish run succeeded in \d+\.\d+ s/);
    const again = await almanac(['publish', DEMO]);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /v1 already has this content/);
  });

  it('lists versions with the current one and rolls back (issue 15, bug 3)', async () => {
    const listed = await almanac(['versions', 'sales']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^\* v1 {2}\S+ {2}[0-9a-f]{12} {2}by \S+ {2}publish run succeeded$/m);
    const json = JSON.parse((await almanac(['versions', 'sales', '--json'])).stdout);
    assert.deepEqual(
      json.map((v: { number: number; current: boolean }) => [v.number, v.current]),
      [[1, true]],
    );
    const same = await almanac(['rollback', 'sales', 'v1']);
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stdout, /sales: v1 is already current; nothing changed/);
    const rolled = JSON.parse((await almanac(['rollback', 'sales', '1', '--json'])).stdout);
    assert.equal(rolled.madeCurrent, false);
    const missing = await almanac(['rollback', 'sales', '9']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /version '9'/);
  });

  it('triggers an API run with inputs and follows it to the end', async () => {
    const run = await almanac(['trigger', 'sales', '--input', 'region=APAC', '--wait']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /✓ top_products \(sql\)/);
    assert.match(run.stdout, /^run [0-9a-f-]+ succeeded in/m);
    const json = await almanac(['trigger', 'sales', '--json']);
    const queued = JSON.parse(json.stdout);
    assert.equal(queued.context, 'api-triggered');
    assert.equal(queued.trigger, 'api');
  });

  it('queues one run per line of an inputs file in bulk, and names a bad line or entry', async () => {
    const file = join(dir, 'regions.jsonl');
    writeFileSync(file, '{"region":"EMEA"}\n\n{"region":"AMER"}\n{}\n');
    const queued = await almanac(['trigger', 'sales', '--inputs-file', file, '--json']);
    assert.equal(queued.code, 0, queued.stderr);
    const runs = JSON.parse(queued.stdout);
    assert.equal(runs.length, 3);
    assert.deepEqual(
      runs.slice(0, 2).map((r: { inputs: { region: string } }) => r.inputs.region),
      ['EMEA', 'AMER'],
    );
    writeFileSync(file, '{"region":"EMEA"}\nnot json\n');
    const badLine = await almanac(['trigger', 'sales', '--inputs-file', file]);
    assert.equal(badLine.code, 2);
    assert.match(badLine.stderr.trim(), /^almanac: --inputs-file: line 2 is not JSON/);
    writeFileSync(file, '{"region":"EMEA"}\n{"region":"Mars"}\n');
    const badEntry = await almanac(['trigger', 'sales', '--inputs-file', file]);
    assert.equal(badEntry.code, 2);
    assert.match(badEntry.stderr.trim(), /^almanac: runs\[1\]\.inputs\.region: must be one of/);
  });

  it('lists the run log, filtered', async () => {
    const runs = await almanac(['runs', 'sales', '--trigger', 'api']);
    assert.equal(runs.code, 0, runs.stderr);
    assert.match(runs.stdout, /^RUN\s+STATUS\s+TRIGGER\s+CONTEXT/);
    assert.doesNotMatch(runs.stdout, /publish/);
    assert.match(runs.stdout, /api\s+api-triggered/);
  });

  it('exits 1 naming the failing cell when the run fails', async () => {
    const folder = join(dir, 'broken');
    mkdirSync(folder);
    const file = join(folder, 'broken.md');
    writeFileSync(file, `# Broken\n\n${fence('js boom', "throw new Error('no data for this month')")}`);
    const published = await almanac(['publish', file, '--wait']);
    assert.equal(published.code, 1);
    assert.match(
      published.stderr.trim().split('\n').at(-1)!,
      /^almanac: cell 'boom' failed \(line \d+\): no data for this month$/,
    );
    const triggered = await almanac(['trigger', 'broken', '--wait']);
    assert.equal(triggered.code, 1);
  });

  it('creates a daily schedule, previews it with DST marks, and shows its health', async () => {
    const created = await almanac([
      'schedule',
      'create',
      'sales',
      '--name',
      'morning',
      '--daily',
      '07:00',
      '--tz',
      'Europe/Berlin',
      '-i',
      'region=EMEA',
      '--retries',
      '2',
      '--jitter',
      '10s',
    ]);
    assert.equal(created.code, 0, created.stderr);
    const id = /^schedule ([0-9a-f-]+) 'morning': daily at 07:00 Europe\/Berlin; next fire \S+Z$/m.exec(
      created.stdout,
    )?.[1];
    assert.ok(id, created.stdout);
    const preview = await almanac([
      'schedule',
      'preview',
      id,
      '--from',
      '2026-03-27T00:00:00Z',
      '--count',
      '3',
    ]);
    assert.equal(preview.code, 0, preview.stderr);
    assert.match(preview.stdout, /2026-03-28 07:00:00 \+01:00 {3}2026-03-28T06:00:00\.000Z/);
    assert.match(preview.stdout, /2026-03-29 07:00:00 \+02:00 {3}2026-03-29T05:00:00\.000Z/);
    const gap = await almanac([
      'schedule',
      'preview',
      '--daily',
      '02:30',
      '--tz',
      'America/New_York',
      '--from',
      '2026-03-07T12:00:00Z',
      '--count',
      '1',
    ]);
    assert.match(
      gap.stdout,
      /2026-03-08 03:00:00 -04:00 {3}2026-03-08T07:00:00\.000Z {2}moved: the local time does not exist \(DST gap\)/,
    );
    const show = await almanac(['schedule', 'show', id]);
    assert.match(show.stdout, /^state: +enabled$/m);
    assert.match(show.stdout, /^overdue: +no$/m);
    const list = await almanac(['schedule', 'list', 'sales']);
    assert.match(list.stdout, new RegExp(`^${id}  morning  daily at 07:00 Europe/Berlin  next `, 'm'));
    const paused = await almanac([
      'schedule',
      'pause',
      id,
      '--until',
      '2099-01-01T00:00:00Z',
      '--note',
      'holiday',
    ]);
    assert.match(paused.stdout, /paused 'morning' until 2099-01-01T00:00:00.000Z/);
    const bad = await almanac(['schedule', 'create', 'sales', '--name', 'bad', '--cron', '61 * * * *']);
    assert.equal(bad.code, 2);
    assert.equal(
      bad.stderr.trim(),
      "almanac: cadence.expression: cron '61 * * * *': minute must be 0-59, not 61",
    );
    const zone = await almanac([
      'schedule',
      'create',
      'sales',
      '--name',
      'bad',
      '--daily',
      '09:00',
      '--tz',
      'Mars/Base',
    ]);
    assert.equal(zone.code, 2);
    assert.match(zone.stderr.trim(), /^almanac: timezone: 'Mars\/Base' is not an IANA zone/);
    const two = await almanac([
      'schedule',
      'create',
      'sales',
      '--name',
      'x',
      '--daily',
      '09:00',
      '--hourly',
      '5',
    ]);
    assert.equal(two.code, 2);
    assert.match(two.stderr, /give exactly one of --hourly/);
  });

  it("adds a notification rule, and lists a run's deliveries and the outbox", async () => {
    const added = await almanac([
      'notify',
      'add',
      'sales',
      '--name',
      'me on api runs',
      '--on',
      'condition',
      '--when',
      'rows(top_products) >= 1',
      '--user',
      'me',
      '--via',
      'email',
      '--csv',
      'top_products',
    ]);
    assert.equal(added.code, 0, added.stderr);
    assert.match(
      added.stdout,
      /^rule [0-9a-f-]+ 'me on api runs': when top_products gte 1 → user \S+ \(email\)$/m,
    );
    const rules = await almanac(['notify', 'rules', 'sales']);
    assert.match(rules.stdout, /me on api runs {2}every schedule {2}when top_products gte 1/);
    const streak = await almanac(['notify', 'add', 'sales', '--on', 'failure_streak', '--user', 'me']);
    assert.equal(streak.code, 2);
    assert.match(
      streak.stderr.trim(),
      /^almanac: rule\.trigger\.count: must be a whole number of failures in a row, 1-1000$/,
    );
    const none = await almanac(['notify', 'add', 'sales']);
    assert.equal(none.code, 2);
    assert.match(none.stderr.trim(), /^almanac: rule\.destinations: has no recipients/);

    // Project rules apply to scheduled runs; "run now" on a schedule uses them.
    const created = await almanac(['schedule', 'create', 'sales', '--name', 'notified', '--daily', '06:00']);
    const scheduleId = /^schedule ([0-9a-f-]+)/.exec(created.stdout)![1]!;
    const now = await almanac(['schedule', 'run-now', scheduleId]);
    assert.equal(now.code, 0, now.stderr);
    const runId = /^run ([0-9a-f-]+) queued$/m.exec(now.stdout)?.[1];
    assert.ok(runId, now.stdout + now.stderr);
    let listed = '';
    for (let i = 0; i < 50 && !/ sent /.test(listed); i++) {
      listed = (await almanac(['notify', 'deliveries', runId])).stdout;
      if (!/ sent /.test(listed)) await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(listed, /^[0-9a-f-]+ {2}sent {5}1\/5 {4}email:admin@localhost$/m);
    const outbox = await almanac(['notify', 'outbox']);
    assert.match(outbox.stdout, /\/api\/outbox\/\S+\.eml/);
  });

  it('lists projects with their current version, last run and next fire', async () => {
    const text = await almanac(['projects']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^PROJECT\s+VERSION\s+LAST RUN \(UTC\)\s+NEXT FIRE \(UTC\)\s+TITLE$/m);
    assert.match(
      text.stdout,
      /^sales\s+v1\s+(succeeded|failed|queued|running) \(\w+, [\d-]+ [\d:]+\)\s+[\d-]+ [\d:]+\s+Monthly sales report$/m,
    );
    const json = await almanac(['projects', '--json']);
    assert.equal(json.code, 0, json.stderr);
    const projects = JSON.parse(json.stdout) as {
      slug: string;
      currentVersion: number;
      lastRun: { id: string; status: string } | null;
      nextFireAt: string | null;
    }[];
    const sales = projects.find((p) => p.slug === 'sales')!;
    assert.equal(sales.currentVersion, 1);
    const newest = JSON.parse((await almanac(['runs', 'sales', '--limit', '1', '--json'])).stdout).runs[0];
    assert.equal(sales.lastRun?.id, newest.id);
    const schedules = JSON.parse((await almanac(['schedule', 'list', 'sales', '--json'])).stdout) as {
      enabled: boolean;
      nextFireAt: string | null;
    }[];
    const earliest = schedules
      .filter((x) => x.enabled && x.nextFireAt)
      .map((x) => x.nextFireAt!)
      .sort()[0];
    assert.equal(sales.nextFireAt, earliest ?? null);
  });

  it('prints JSON with --json on every command that prints data', async () => {
    const json = async (args: string[]) => {
      const result = await almanac([...args, '--json']);
      assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
      return JSON.parse(result.stdout);
    };
    const folder = join(dir, 'json');
    mkdirSync(folder);
    const file = join(folder, 'json-demo.md');
    writeFileSync(file, `# JSON\n\n${fence('js one', 'return 1')}`);
    const published = await json(['publish', file, '--wait']);
    assert.equal(published.project, 'json-demo');
    assert.equal(published.version.number, 1);
    assert.equal(published.run.status, 'succeeded');
    const created = await json(['schedule', 'create', 'json-demo', '--name', 'nightly', '--daily', '03:00']);
    assert.equal(created.name, 'nightly');
    const list = await json(['schedule', 'list', 'json-demo']);
    assert.deepEqual(
      list.map((x: { id: string }) => x.id),
      [created.id],
    );
    const shown = await json(['schedule', 'show', created.id]);
    assert.equal(shown.id, created.id);
    assert.ok('health' in shown);
    const preview = await json(['schedule', 'preview', created.id, '--count', '2']);
    assert.equal(preview.length, 2);
    assert.match(preview[0].at, /T03:00:00\.000Z$/);
    const cadence = await json(['schedule', 'preview', '--hourly', '5', '--count', '1']);
    assert.match(cadence[0].at, /:05:00\.000Z$/);
    const rule = await json(['notify', 'add', 'json-demo', '--on', 'success', '--user', 'me']);
    assert.equal(rule.trigger.kind, 'success');
    const rules = await json(['notify', 'rules', 'json-demo']);
    assert.ok(rules.some((r: { id: string }) => r.id === rule.id));
    assert.ok(Array.isArray(await json(['notify', 'deliveries', published.run.id])));
    assert.ok(Array.isArray(await json(['notify', 'outbox'])));
    assert.equal(typeof (await json(['notify', 'integrations'])), 'object');
    assert.deepEqual(await json(['notify', 'remove', rule.id]), { id: rule.id, deleted: true });
    const projects = await json(['projects']);
    assert.ok(projects.some((p: { slug: string }) => p.slug === 'json-demo'));
  });

  /**
   * Guards a closed pipe (issue 15): `almanac runs | head -1` ended with an unhandled EPIPE 'error'
   * event, exit 1 and a stack trace on stderr. The reader here closes its end before the command
   * writes anything, so every write meets a closed pipe.
   */
  it('ends quietly with exit 0 when the reader closes the pipe', async () => {
    const result = await new Promise<{ code: number | null; stderr: string }>((done) => {
      const child = spawn(process.execPath, [MAIN, 'runs', '--limit', '200'], {
        env: { ...process.env, NO_COLOR: '1', ALMANAC_URL: t.server.url!, ALMANAC_TOKEN: t.token },
        cwd: dir,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.destroy();
      let stderr = '';
      child.stderr.on('data', (chunk) => {
        stderr += chunk;
      });
      child.on('close', (code) => done({ code, stderr }));
    });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
  });

  it('client commands load neither the server, the store nor the executor', async () => {
    const hooks = join(dir, 'record-loads.mjs');
    writeFileSync(
      hooks,
      `import { registerHooks } from 'node:module';
import { appendFileSync } from 'node:fs';
registerHooks({ load(url, context, next) { appendFileSync(process.env.RECORD_LOADS, url + '\\n'); return next(url, context); } });
`,
    );
    const root = resolve('.');
    for (const args of [['runs'], ['schedule', 'list', 'sales'], ['projects']]) {
      const record = join(dir, `loads-${args.join('-')}.txt`);
      const result = await almanac(['--import', hooks, MAIN, ...args], { RECORD_LOADS: record }, []);
      assert.equal(result.code, 0, result.stderr);
      const loaded = readFileSync(record, 'utf8')
        .split('\n')
        .filter((url) => url.startsWith(`file://${root}/src/`))
        .map((url) => url.slice(`file://${root}/`.length));
      assert.ok(loaded.includes('src/cli/server-commands.ts'), loaded.join(', '));
      const heavy = loaded.filter((m) =>
        /^src\/(app|store|executor|services|http|notify|scheduler)\//.test(m),
      );
      assert.deepEqual(heavy, [], `${args.join(' ')} loaded the server's modules`);
    }
  });

  it('answers bad input, a missing token and an unreachable server with one line', async () => {
    const badConfig = join(dir, 'bad.json');
    writeFileSync(badConfig, JSON.stringify({ ALMANAC_PROT: 3100 }));
    const cases: [string[], Record<string, string>, number, RegExp][] = [
      [
        ['trigger', 'sales', '-i', 'region=Mars'],
        {},
        2,
        /^almanac: inputs\.region: must be one of All, EMEA, AMER, APAC; got "Mars"$/,
      ],
      [['trigger', 'nope'], {}, 2, /^almanac: project 'nope' was not found$/],
      [['trigger', 'sales', '-i', 'region'], {}, 2, /^almanac: --input: expected key=value, got 'region'$/],
      [['runs', '--status', 'done'], {}, 2, /^almanac: status: must be one of queued/],
      [
        ['runs'],
        { ALMANAC_TOKEN: 'alm_wrong-wrong-wrong-wrong' },
        2,
        /^almanac: the API token is not valid or was revoked$/,
      ],
      [['runs'], { ALMANAC_TOKEN: '' }, 2, /^almanac: --token: no API token/],
      [['runs', '--server', 'ftp://x'], {}, 2, /^almanac: --server: 'ftp:\/\/x' is not an http/],
      [
        ['runs'],
        { ALMANAC_URL: 'http://127.0.0.1:65000' },
        1,
        /^almanac: cannot reach the Almanac server at http:\/\/127\.0\.0\.1:65000 \(ECONNREFUSED\)/,
      ],
      [['publish', join(dir, 'missing.md')], {}, 2, /^almanac: notebook: cannot read/],
      [
        ['serve', '--port', String(new URL(t.server.url!).port)],
        {},
        2,
        /^almanac: --port: cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE/,
      ],
      [
        ['serve', '--role', 'worker,cook'],
        {},
        2,
        /^almanac: --role: unknown role 'cook'; roles are web, worker, scheduler, notifier$/,
      ],
      [
        ['serve', '--role', 'worker'],
        { DATABASE_URL: '' },
        2,
        /^almanac: --role: running only worker needs PostgreSQL \(DATABASE_URL=postgres:\/\/…\)/,
      ],
      [
        ['serve', '--config', badConfig],
        {},
        2,
        /^almanac: ALMANAC_PROT: is not a setting \(in .*bad\.json\); did you mean ALMANAC_PORT\?$/,
      ],
      [
        ['serve', '--config', join(dir, 'none.json')],
        {},
        2,
        /^almanac: --config: cannot read '.*none\.json' \(ENOENT\)$/,
      ],
      [
        ['serve', '--role', 'worker', '--data-dir', join(dir, 'refused')],
        { DATABASE_URL: 'postgres://x@127.0.0.1:1/none', ALMANAC_SECRET_KEY: 'k' },
        2,
        /^almanac: DATABASE_URL: cannot connect to PostgreSQL at 127\.0\.0\.1:1\/none \(ECONNREFUSED\); start it or fix the URL$/,
      ],
      [
        ['serve', '--role', 'worker'],
        { ALMANAC_SANDBOX: 'jail', DATABASE_URL: 'postgres://x@127.0.0.1:1/none' },
        2,
        /^almanac: ALMANAC_SANDBOX: must be auto, bwrap or permission, got 'jail'$/,
      ],
    ];
    for (const [args, env, code, line] of cases) {
      const result = await almanac(args, env);
      assert.equal(result.code, code, `${args.join(' ')}: ${result.stderr}`);
      const lines = result.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `${args.join(' ')}: one line, got ${result.stderr}`);
      assert.match(lines[0]!, line, args.join(' '));
    }
  });
});
