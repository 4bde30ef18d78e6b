/**
 * Issue 14 ("Hostile notebooks and hostile pages"), red-team findings 12-14: size limits and strict
 * validation at every boundary. One test per class of attack; each says what it guards and how it
 * failed before. Real parts only: a real SQLite store, the HTTP app through `app.request`, the CLI as
 * a process, real sockets for the webhook guard.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { openServices } from '../src/app/open-services.ts';
import { NotebookError, TooLargeError, ValidationError } from '../src/domain/errors.ts';
import {
  INPUT_SUMMARY_CHARS,
  MAX_FILE_NAME_BYTES,
  MAX_INPUT_VALUE_CHARS,
  MAX_NAME_LENGTH,
} from '../src/domain/limits.ts';
import { resolveInputs } from '../src/domain/notebook/inputs.ts';
import { parseNotebook } from '../src/domain/notebook/parse-notebook.ts';
import { materializeVersion } from '../src/executor/version-workdir.ts';
import { DeliveryError } from '../src/notify/delivery-error.ts';
import { isPrivateAddress, postWebhook } from '../src/notify/webhook.ts';
import * as projects from '../src/services/project-service.ts';
import * as workspaces from '../src/services/workspace-service.ts';
import { fence } from './support/harness.ts';
import { notebook, startTestServer, type TestServer, testStores } from './support/server-harness.ts';

const MAIN = resolve('src/cli/main.ts');
const sqlite = (await testStores())[0]!;
const b64 = (text: string) => Buffer.from(text).toString('base64');

/** A notebook with a text input `q` that a SQL cell reads. */
const TEXT_INPUT = notebook(
  'Search',
  fence('sql hits', 'select length({{ q }}) as n'),
  "inputs:\n  q:\n    type: text\n    default: ''\n",
);

describe('boundaries: limits and strict validation (issue 14)', () => {
  let t: TestServer;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'almanac-boundaries-'));
    // Passable like any project folder, for runs that start as an unprivileged user (as root).
    chmodSync(dir, 0o755);
    mkdirSync(join(dir, 'web', 'assets'), { recursive: true });
    writeFileSync(join(dir, 'web', 'index.html'), '<!doctype html><title>Almanac</title>');
    writeFileSync(join(dir, 'web', 'assets', 'app.js'), 'export {};');
    t = await startTestServer(sqlite, { webDir: join(dir, 'web') });
    assert.equal((await t.json('POST', '/api/projects', { source: TEXT_INPUT, slug: 'search' })).status, 201);
    assert.equal((await t.json('POST', '/api/projects/search/publish', {})).status, 201);
  });
  after(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The CLI as a process, asynchronously (a server may answer from this process). */
  const almanac = (args: string[], env: Record<string, string> = {}) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
      execFile(
        process.execPath,
        [MAIN, ...args],
        { env: { ...process.env, NO_COLOR: '1', ...env }, cwd: dir, timeout: 60_000 },
        (error, stdout, stderr) =>
          done({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });

  it('a 60 MB input is refused with 413 naming the limit', async () => {
    // Guards finding 12: a 60 MB input value was accepted (201), and every run-log page was then 73 MB.
    const huge = 'x'.repeat(60 * 1024 * 1024);
    const whole = await t.json('POST', '/api/projects/search/runs', { inputs: { q: huge } });
    assert.equal(whole.status, 413, JSON.stringify(whole.body).slice(0, 300));
    // Under any request-body limit, the field limit itself answers, naming the input and the limit.
    const over = await t.json('POST', '/api/projects/search/runs', {
      inputs: { q: 'x'.repeat(MAX_INPUT_VALUE_CHARS + 1) },
    });
    assert.equal(over.status, 413);
    assert.equal(over.body.error.field, 'inputs.q');
    assert.match(over.body.error.message, /at most 10,000 \(MAX_INPUT_VALUE_CHARS\)/);
    const schedule = await t.json('POST', '/api/projects/search/schedules', {
      name: 'big',
      cadence: { kind: 'daily', time: '09:00' },
      timezone: 'UTC',
      inputs: { q: 'x'.repeat(MAX_INPUT_VALUE_CHARS + 1) },
    });
    assert.equal(schedule.status, 413);
    assert.equal(schedule.body.error.field, 'inputs.q');
    // Every other way in (the CLI, schedules, the executor) goes through the same domain check.
    assert.throws(
      () =>
        resolveInputs([{ name: 'q', type: 'text', label: 'Q', default: '' }], {
          q: huge,
        }),
      (error: unknown) =>
        error instanceof TooLargeError && error.status === 413 && error.field === 'inputs.q',
    );
    // A whole notebook over its limit is a 413 (from the request-body limit or the notebook's own),
    // and the service names `source` and the limit whatever the way in.
    const bigSource = `# Big\n\n${'word '.repeat(250_000)}`;
    const bigNotebook = await t.json('POST', '/api/projects', { source: bigSource, slug: 'big' });
    assert.equal(bigNotebook.status, 413);
    const principal = await workspaces.authenticate(t.server.ctx, t.token);
    await assert.rejects(
      projects.createProject(t.server.ctx, principal, { source: bigSource }),
      (error: unknown) =>
        error instanceof TooLargeError &&
        error.field === 'source' &&
        /at most 1,048,576 are accepted \(MAX_NOTEBOOK_BYTES\)/.test(error.message),
    );
    // The whole value is accepted at the limit.
    const at = await t.json('POST', '/api/projects/search/runs', {
      inputs: { q: 'y'.repeat(MAX_INPUT_VALUE_CHARS) },
    });
    assert.equal(at.status, 201);
  });

  it('run lists carry short input summaries', async () => {
    // Guards finding 12: the run log returned every input whole on every page.
    const long = 'z'.repeat(5000);
    const run = await t.json('POST', '/api/projects/search/runs', { inputs: { q: long } });
    assert.equal(run.status, 201);
    const page = await t.json('GET', '/api/runs?project=search&limit=200');
    assert.equal(page.status, 200);
    const listed = page.body.runs.find((r: { id: string }) => r.id === run.body.id);
    assert.equal(listed.inputs.q, `${'z'.repeat(INPUT_SUMMARY_CHARS)}… (5,000 characters)`);
    const single = await t.json('GET', `/api/runs/${run.body.id}`);
    assert.equal(single.body.inputs.q, long);
  });

  it('publish refuses file names it cannot store (NUL, too long, file and folder, ..)', async () => {
    // Guards finding 13: each of these gave 201, and then a run that crashed showing server paths.
    const cases: [string, Record<string, string>, RegExp][] = [
      ['NUL', { 'data\u0000.csv': b64('a') }, /control character/],
      ['newline', { 'a\nb.csv': b64('a') }, /control character/],
      ['too long', { [`${'n'.repeat(MAX_FILE_NAME_BYTES + 1)}.csv`]: b64('a') }, /MAX_FILE_NAME_BYTES/],
      ['path too long', { [`${'d/'.repeat(2100)}x`]: b64('a') }, /MAX_FILE_PATH_BYTES/],
      ['file and folder', { a: b64('1'), 'a/b': b64('2') }, /is a file, and 'a\/b' needs a folder/],
      ['dot-dot', { '../escape.csv': b64('a') }, /relative path inside/],
      ['absolute', { '/etc/passwd': b64('a') }, /absolute/],
      ['backslash', { 'a\\b.csv': b64('a') }, /backslash/],
      ['normalization', { 'caf\u00e9.csv': b64('1'), 'cafe\u0301.csv': b64('2') }, /normalized/],
    ];
    for (const [what, files, message] of cases) {
      const response = await t.json('POST', '/api/projects/search/publish', { files });
      assert.equal(response.status, 400, `${what}: ${JSON.stringify(response.body).slice(0, 300)}`);
      assert.match(response.body.error.field, /^files\./, what);
      assert.match(response.body.error.message, message, what);
      assert.ok(!response.body.error.message.includes(t.dataDir), `${what} shows no server path`);
    }
    const fine = await t.json('POST', '/api/projects/search/publish', {
      files: { 'data/regions.csv': b64('region\nEMEA\n'), 'caf\u00e9.csv': b64('1') },
    });
    assert.equal(fine.status, 201, JSON.stringify(fine.body));
  });

  it('errors never show server paths', async () => {
    // Guards finding 13: a version holding a name the filesystem cannot store (stored before names
    // were checked) failed its run with "ENAMETOOLONG: …/data/versions/<hash>.tmp-…/…", the data dir.
    const versionsDir = join(t.dataDir, 'versions');
    const legacy = new Map([
      ['a', Buffer.from('1')],
      ['a/b', Buffer.from('2')],
    ]);
    await assert.rejects(
      materializeVersion(versionsDir, 'f'.repeat(64), async () => legacy),
      (error: Error) => {
        assert.match(
          error.message,
          /project file 'a(\/b)?' cannot be stored on the worker: (ENOTDIR|EEXIST)/,
        );
        assert.ok(!error.message.includes(t.dataDir), error.message);
        assert.ok(!error.message.includes(tmpdir()), error.message);
        return true;
      },
    );
    // The same through a real run: a stored version whose file names were written by an older server.
    const created = await t.json('POST', '/api/projects', {
      source: notebook('Legacy', fence('sql one', 'select 1 as n')),
      slug: 'legacy',
    });
    assert.equal(created.status, 201);
    const published = await t.json('POST', '/api/projects/legacy/publish', {
      files: { 'x.csv': b64('1') },
    });
    assert.equal(published.status, 201);
    const ctx = t.server.ctx;
    await sql`update version_files set path = ${'n'.repeat(300)} where version_id = ${published.body.version.id}`.execute(
      ctx.db,
    );
    await t.server.worker!.drain();
    const run = await t.json('GET', `/api/runs/${published.body.run.id}`);
    assert.equal(run.body.status, 'failed');
    assert.match(run.body.error.message, /project file 'n{40}…n{20}' cannot be stored on the worker/);
    assert.ok(!run.body.error.message.includes(t.dataDir), run.body.error.message);
  });

  it('self-referencing cell', async () => {
    // Guards finding 14: `select * from {{ this_cell }}` and a JS cell reading its own name passed.
    for (const [kind, body, line] of [
      // SQL problems are located at their statement's first line.
      ['sql', 'select *\nfrom {{ orders }}', 4],
      ['js', 'const n = 1;\norders.length + n', 5],
    ] as const) {
      const text = `# T\n\n\`\`\`${kind} orders\n${body}\n\`\`\`\n`;
      await assert.rejects(parseNotebook(text), (error: NotebookError) => {
        assert.ok(error instanceof NotebookError);
        assert.deepEqual(
          error.problems.map((p) => [p.line, p.cell]),
          [[line, 'orders']],
          `${kind}: ${error.message}`,
        );
        assert.match(error.problems[0]!.message, /refers to itself/);
        return true;
      });
    }
    // A JS cell that declares a local of its own name does not refer to itself.
    await parseNotebook('# T\n\n```js orders\nconst orders = [1];\norders\n```\n');
  });

  it('unclosed {{', async () => {
    // Guards finding 14: an unclosed `{{` in prose was rendered as text with no problem reported.
    await assert.rejects(
      parseNotebook('# T\n\nTotal: {{ 1 + 1 }}.\n\nRegion: {{ region\n\nMore prose.\n'),
      (error: NotebookError) => {
        assert.deepEqual(
          error.problems.map((p) => [p.line, p.cell]),
          [[5, 'prose_1']],
        );
        assert.match(error.problems[0]!.message, /'\{\{' is not closed with '\}\}'/);
        return true;
      },
    );
  });

  it('unknown body fields are refused on every body route', async () => {
    // Guards finding 14: bodies ignored unknown fields (`{"context": "logic"}` on POST /runs gave 201,
    // in context api-triggered). Every route of the OpenAPI document that takes a body is tried with a
    // valid body plus an unknown field; a new route without a valid body here fails this test.
    const valid: Record<string, unknown> = {
      'post /api/tokens': { name: 'ci' },
      'post /api/auth/login-codes': {},
      'post /api/projects': { source: TEXT_INPUT },
      'put /api/projects/{project}/visibility': { visibility: 'workspace' },
      'put /api/projects/{project}/draft': { source: TEXT_INPUT },
      'post /api/projects/{project}/publish': {},
      'patch /api/projects/{project}/app/settings': {},
      'post /api/projects/{project}/runs': {},
      'post /api/projects/{project}/runs/batch': { runs: [{}] },
      'post /api/projects/{project}/schedules': {
        name: 'n',
        cadence: { kind: 'daily', time: '09:00' },
        timezone: 'UTC',
      },
      'post /api/schedules/preview': { cadence: { kind: 'daily', time: '09:00' }, timezone: 'UTC' },
      'patch /api/schedules/{schedule}': {},
      'post /api/schedules/{schedule}/pause': {},
      'post /api/schedules/{schedule}/backfill': {
        from: '2026-01-01T00:00:00Z',
        to: '2026-01-02T00:00:00Z',
      },
      'put /api/workspace/settings': {},
      'put /api/workspace/plan': { plan: 'team' },
      'post /api/connections': { name: 'wh', url: 'postgres://u:p@db.example:5432/w' },
      'post /api/projects/{project}/notification-rules': {
        destinations: [{ kind: 'webhook', url: 'https://example.com/h' }],
      },
      'put /api/notification-rules/{rule}': {
        destinations: [{ kind: 'webhook', url: 'https://example.com/h' }],
      },
      'put /api/integrations': {},
      'put /api/me/notify-via': { via: 'email' },
      'put /api/projects/{project}/access': { workspace: 'can_view' },
      'put /api/projects/{project}/grants': { principal: 'user:x', access: 'app_only' },
      'post /api/auth/login': { email: 'a@example.com', password: 'p' },
      'post /api/auth/token': { email: 'a@example.com', password: 'p', name: 'n' },
      'post /api/auth/accept-invite': { code: 'c', name: 'n', password: 'p' },
      'post /api/auth/password-reset': { email: 'a@example.com' },
      'post /api/auth/password-reset/complete': { code: 'c', password: 'p' },
      'post /api/auth/password': { currentPassword: '', newPassword: 'p' },
      'post /api/users/invitations': { email: 'a@example.com' },
      'put /api/users/{user}/role': { role: 'member' },
    };
    const document = (await t.json('GET', '/api/openapi.json')).body;
    let tried = 0;
    for (const [path, operations] of Object.entries<Record<string, { requestBody?: unknown }>>(
      document.paths,
    )) {
      for (const [method, operation] of Object.entries(operations)) {
        if (!operation.requestBody) continue;
        const key = `${method} ${path}`;
        assert.ok(key in valid, `${key} takes a body: add a valid body for it to this test`);
        const url = path.replace(/\{(\w+)\}/g, (_, name: string) => (name === 'project' ? 'search' : 'x'));
        const response = await t.json(method.toUpperCase(), url, {
          ...(valid[key] as object),
          context: 'logic',
        });
        assert.equal(response.status, 400, `${key}: ${JSON.stringify(response.body)}`);
        assert.match(`${response.body.error.field} ${response.body.error.message}`, /\bcontext\b/, key);
        tried++;
      }
    }
    assert.ok(tried >= 20, `only ${tried} body routes`);
    // Objects nested in bodies too: a rule's trigger, destinations and content, a schedule's cadence.
    const nested: [string, string, unknown, RegExp][] = [
      [
        'POST',
        '/api/projects/search/notification-rules',
        { trigger: { kind: 'failure', cont: 2 }, destinations: [{ kind: 'webhook', url: 'https://e.com' }] },
        /rule\.trigger\.cont/,
      ],
      [
        'POST',
        '/api/projects/search/notification-rules',
        { destinations: [{ kind: 'webhook', url: 'https://e.com', secret: 'x' }] },
        /destinations\[0\]\.secret/,
      ],
      [
        'POST',
        '/api/projects/search/schedules',
        { name: 'n', cadence: { kind: 'daily', time: '09:00', tz: 'UTC' }, timezone: 'UTC' },
        /tz/,
      ],
      ['GET', '/api/runs?project=search&stauts=failed', undefined, /stauts/],
    ];
    for (const [method, url, body, field] of nested) {
      const response = await t.json(method, url, body);
      assert.equal(response.status, 400, `${url}: ${JSON.stringify(response.body)}`);
      assert.match(`${response.body.error.field} ${response.body.error.message}`, field);
    }
  });

  it('schedule name length', async () => {
    // Guards finding 14: a 100,000-character schedule name was accepted.
    const body = (name: string) => ({ name, cadence: { kind: 'daily', time: '09:00' }, timezone: 'UTC' });
    const long = await t.json('POST', '/api/projects/search/schedules', body('s'.repeat(100_000)));
    assert.equal(long.status, 400);
    assert.equal(long.body.error.field, 'name');
    assert.match(long.body.error.message, /at most 200 characters \(MAX_NAME_LENGTH\)/);
    const ok = await t.json('POST', '/api/projects/search/schedules', body('s'.repeat(MAX_NAME_LENGTH)));
    assert.equal(ok.status, 201);
    const renamed = await t.json('PATCH', `/api/schedules/${ok.body.id}`, { name: 'r'.repeat(201) });
    assert.equal(renamed.status, 400);
    assert.equal(renamed.body.error.field, 'name');
    const note = await t.json('POST', `/api/schedules/${ok.body.id}/pause`, { note: 'n'.repeat(5000) });
    assert.equal(note.status, 400);
    assert.equal(note.body.error.field, 'note');
    const rule = await t.json('POST', '/api/projects/search/notification-rules', {
      name: 'r'.repeat(201),
      destinations: [{ kind: 'webhook', url: 'https://example.com/h' }],
    });
    assert.equal(rule.status, 400);
    assert.equal(rule.body.error.field, 'rule.name');
    const token = await t.json('POST', '/api/tokens', { name: 't'.repeat(201) });
    assert.equal(token.status, 400);
    assert.equal(token.body.error.field, 'name');
  });

  it('connection URL port', async () => {
    // Guards finding 14: `postgres://u:p@host:abc/db` was accepted; it failed only when a run connected.
    for (const url of [
      'postgres://u:p@db.example:abc/w',
      'postgres://u:p@db.example:0/w',
      'postgres://u:p@db.example:70000/w',
      'postgres:///w',
      'mysql://u:p@db.example:3306/w',
      'postgres://',
    ]) {
      const response = await t.json('POST', '/api/connections', { name: 'wh', url });
      assert.equal(response.status, 400, `${url}: ${JSON.stringify(response.body)}`);
      assert.equal(response.body.error.field, 'url', url);
      assert.ok(!response.body.error.message.includes(':p@'), 'the URL (and its password) is not echoed');
    }
    const ok = await t.json('POST', '/api/connections', {
      name: 'wh',
      url: 'postgres://u:p@db.example:5432/w',
    });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
  });

  it('malformed percent-encoding is never a 500', async () => {
    // Guards finding 14: `/assets/%E0%A4%A` threw URIError in the static file handler: a 500.
    for (const path of [
      '/assets/%E0%A4%A',
      '/apps/%E0%A4%A',
      '/%',
      '/api/projects/%E0%A4%A',
      '/api/projects/%ZZ/versions',
      '/api/runs/%E0%A4%A',
      '/api/runs/%',
      '/api/schedules/%C0%AF',
      '/api/runs?project=%E0%A4%A',
      '/api/projects/search/versions/%E0',
    ]) {
      const response = await t.api('GET', path);
      assert.ok(response.status < 500, `${path}: ${response.status} ${await response.text()}`);
      assert.ok([200, 400, 404].includes(response.status), `${path}: ${response.status}`);
    }
    assert.equal((await t.api('GET', '/assets/%E0%A4%A')).status, 404);
  });

  it('YAML alias bomb is a notebook problem, and the CLI prints one line', async () => {
    // Guards finding 14: a "billion laughs" frontmatter threw ReferenceError out of the parser: a 500
    // from the API and a stack trace from the CLI.
    const laughs = [
      'a: &a [x, x, x, x, x, x, x, x, x]',
      'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]',
      'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]',
      'd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]',
      'e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]',
    ].join('\n');
    const frontmatterBomb = `---\ntitle: Bomb\n${laughs}\n---\n\n# Bomb\n`;
    await assert.rejects(parseNotebook(frontmatterBomb), (error: NotebookError) => {
      assert.ok(error instanceof NotebookError);
      assert.match(error.problems[0]!.message, /YAML aliases .* too many times \(at most 100/);
      return true;
    });
    const chartBomb = `# Chart\n\n\`\`\`chart c\n${laughs}\nmark: bar\n\`\`\`\n`;
    await assert.rejects(parseNotebook(chartBomb), (error: NotebookError) => {
      assert.equal(error.problems[0]!.cell, 'c');
      assert.match(error.problems[0]!.message, /the chart spec uses YAML aliases/);
      return true;
    });
    const api = await t.json('POST', '/api/projects', { source: frontmatterBomb, slug: 'bomb' });
    assert.equal(api.status, 422);
    assert.equal(api.body.error.code, 'notebook_invalid');
    writeFileSync(join(dir, 'bomb.md'), frontmatterBomb);
    const cli = await almanac(['run', 'bomb.md', '--data-dir', join(dir, 'cli-data')]);
    assert.equal(cli.code, 2, cli.stderr);
    assert.equal(cli.stderr.trimEnd().split('\n').length, 1, cli.stderr);
    assert.match(cli.stderr, /^almanac: bomb\.md:2: .*YAML aliases/);
    assert.doesNotMatch(cli.stderr, /\n\s+at /);
  });

  it('webhook guard refuses loopback in every IPv6 spelling', async () => {
    // Guards finding 14: the guard matched `::ffff:a.b.c.d` only as text, so `::ffff:7f00:1`,
    // `::7f00:1`, NAT64 `64:ff9b::7f00:1` and 6to4 `2002:7f00:1::` reached 127.0.0.1's services.
    const receiver = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((done) => receiver.listen(0, '127.0.0.1', done));
    const port = (receiver.address() as AddressInfo).port;
    try {
      const table: [string, boolean][] = [
        [`http://[::7f00:1]:${port}/`, true],
        [`http://[::ffff:127.0.0.1]:${port}/`, true],
        [`http://[::ffff:7f00:1]:${port}/`, true],
        [`http://[::]:${port}/`, true],
        [`http://[::1]:${port}/`, true],
        [`http://0.0.0.0:${port}/`, true],
        [`http://0177.0.0.1:${port}/`, true],
        [`http://2130706433:${port}/`, true],
        [`http://127.1:${port}/`, true],
        [`http://0x7f.1:${port}/`, true],
        [`http://[64:ff9b::7f00:1]:${port}/`, true],
        [`http://[64:ff9b::10.0.0.1]:${port}/`, true],
        [`http://[2002:7f00:1::]:${port}/`, true],
        [`http://[2002:c0a8:101::1]:${port}/`, true],
        [`http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]:${port}/`, true],
        [`http://[fe80::1]:${port}/`, true],
        [`http://[fd00::1]:${port}/`, true],
        [`http://169.254.169.254:${port}/`, true],
        // Resolved at connection time: `localhost` is a name, refused for the address it resolves to.
        [`http://localhost:${port}/`, true],
      ];
      for (const [url, refused] of table) {
        const attempt = postWebhook({ url, body: {}, key: 'k', allowPrivate: false, now: new Date() });
        if (refused) {
          await assert.rejects(attempt, (error: DeliveryError) => {
            assert.ok(error instanceof DeliveryError, `${url}: ${error}`);
            assert.match(error.message, /private address/, url);
            assert.equal(error.retryable, false);
            return true;
          });
        }
      }
      // The public addresses those forms can carry stay allowed, so the guard is not a blanket refusal.
      for (const address of [
        '8.8.8.8',
        '::ffff:8.8.8.8',
        '64:ff9b::808:808',
        '2002:808:808::1',
        '2606:4700::1111',
      ])
        assert.equal(isPrivateAddress(address), false, address);
      // And the receiver is really there: with private webhooks allowed the same request arrives.
      const allowed = await postWebhook({
        url: `http://localhost:${port}/`,
        body: {},
        key: 'k',
        allowPrivate: true,
        now: new Date(),
      });
      assert.equal(allowed.status, 200);
    } finally {
      receiver.close();
    }
  });

  it('data dir 0700 and files 0600', async () => {
    // Guards finding 14: the store and DuckDB files were created 0644 in a 0755 data dir, readable by
    // every local user.
    const dataDir = join(dir, 'private-data');
    writeFileSync(
      join(dir, 'one.md'),
      notebook('One', fence('sql one', 'create table t as select 1 as n;\nselect * from t')),
    );
    const result = spawnSync(process.execPath, [MAIN, 'run', 'one.md', '--data-dir', dataDir], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
      timeout: 60_000,
    });
    assert.equal(result.status, 0, result.stderr);
    // As root, runs start as an unprivileged user who must pass through the data dir to its run and
    // version folders: 0711 (never listable); otherwise 0700 and every file and folder in it private.
    const root = process.getuid?.() === 0;
    assert.equal(statSync(dataDir).mode & 0o777, root ? 0o711 : 0o700);
    assert.equal(statSync(join(dataDir, 'workspace.duckdb')).mode & 0o777, 0o600);
    if (!root) {
      for (const entry of readdirSync(dataDir, { recursive: true, withFileTypes: true })) {
        const path = join(entry.parentPath, entry.name);
        assert.equal(statSync(path).mode & 0o777, entry.isDirectory() ? 0o700 : 0o600, path);
      }
    }
    // The SQLite store and its WAL and shared-memory files, opened by any code (not only the CLI).
    const storeDir = mkdtempSync(join(dir, 'store-'));
    const store = join(storeDir, 'almanac.sqlite');
    const opened = await openServices(store, { secretKey: () => Buffer.alloc(32) });
    try {
      for (const suffix of ['', '-wal', '-shm']) {
        assert.equal(statSync(store + suffix).mode & 0o777, 0o600, `almanac.sqlite${suffix}`);
      }
    } finally {
      await opened.close();
    }
  });

  it('trigger --version triggers that version', async () => {
    // Guards finding 14: the global --version flag shadowed the subcommand's, so
    // `almanac trigger p --version 1` printed the CLI's version and triggered nothing.
    const listening = await startTestServer(sqlite, { listen: true });
    try {
      const source = (title: string) => notebook(title, fence('sql one', 'select 1 as n'));
      await listening.json('POST', '/api/projects', { source: source('V'), slug: 'v' });
      const v1 = (await listening.json('POST', '/api/projects/v/publish', {})).body.version;
      await listening.json('PUT', '/api/projects/v/draft', { source: source('V two') });
      const v2 = (await listening.json('POST', '/api/projects/v/publish', {})).body.version;
      assert.equal(v2.number, 2);
      const env = { ALMANAC_URL: listening.server.url!, ALMANAC_TOKEN: listening.token };
      const triggered = await almanac(['trigger', 'v', '--version', '1', '--json'], env);
      assert.equal(triggered.code, 0, triggered.stderr);
      const run = JSON.parse(triggered.stdout);
      assert.equal(run.versionId, v1.id);
      const version = await almanac(['--version'], env);
      assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
    } finally {
      await listening.close();
    }
  });
});

describe('boundaries: domain checks', () => {
  it('a ValidationError for a length is a 400, a TooLargeError a 413', () => {
    assert.equal(new ValidationError('name', 'too long').status, 400);
    assert.equal(new TooLargeError('inputs.q', 1, 'too big').status, 413);
  });
});
