/**
 * Issue 14 ("Hostile notebooks"): the child process is untrusted. Notebook code runs in it and can write
 * to the executor's channel (fd 3) itself, so these tests forge messages from real cells in real
 * children, as frames written with `fs.writeSync(3, …)` (`sendFrame` below), and check that the host
 * refuses them: the run ends `failed` with reason `protocol_violation`, nothing forged is stored, and
 * the host runs the next run as usual.
 *
 * Before the fix, the host trusted every message: a `log` with an out-of-range index threw a TypeError
 * in the executor's message listener and took the whole server down (finding 1); a cell could store a
 * forged result for an earlier cell, HTML included (finding 2), an output or log far over its limit
 * (finding 7), or query a workspace connection its notebook does not list (finding 14); raw bytes a
 * cell wrote to the IPC descriptor made Node's parser throw out of the server. The memory cap
 * measured the bubblewrap wrapper, not Node inside it, so a cell held 1.2 GiB against 512 MiB (finding 5).
 * A frame header announcing up to 4 GiB made Node's IPC buffer whatever followed (180 MiB of host memory
 * in 4.5 s), which is why the channel is now the host's own framing (src/executor/channel.ts).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { parseNotebook } from '../src/domain/notebook/parse-notebook.ts';
import type { RunSnapshot, TableOutput } from '../src/domain/snapshot.ts';
import { notRunCell } from '../src/domain/snapshot.ts';
import {
  encodeFrame,
  FRAME_HEADER_BYTES,
  FrameError,
  FrameReader,
  maxFrameBytesFor,
} from '../src/executor/channel.ts';
import type { RunRequest } from '../src/executor/executor.ts';
import { killTree, processTree, treeResidentMb } from '../src/executor/process-tree.ts';
import { jsonByteLength } from '../src/executor/protocol.ts';
import {
  LOG_CUT_NOTICE,
  LOG_LINE_OVERHEAD_BYTES,
  LogBudget,
  MAX_SQL_PENDING,
  MAX_SQL_REQUESTS_PER_RUN,
  utf8Bytes,
} from '../src/executor/protocol-limits.ts';
import {
  MAX_DROPPED_LOG_LINES,
  notebookConnections,
  ProtocolViolationError,
  RunProtocol,
} from '../src/executor/run-protocol.ts';
import { detectIsolation } from '../src/executor/sandbox.ts';
import { DuckDbEngine } from '../src/executor/sql/duckdb-engine.ts';
import type { SqlEngine } from '../src/executor/sql/sql-engine.ts';
import { cell, createHarness, type Harness, fence as plainFence } from './support/harness.ts';
import { REQUIRE_SERVICES } from './support/services.ts';
import { until } from './support/until.ts';

/**
 * What a cell uses to forge a message: one frame (4-byte big-endian length, `v8.serialize` payload)
 * written straight to the channel's descriptor, as any cell can. The descriptor is non-blocking, so a
 * full socket buffer answers EAGAIN, and a write may be partial: retried until all of it is written.
 */
const FRAME_WRITER =
  "const sendFrame = (message) => { const fs = process.getBuiltinModule('node:fs'); const payload = process.getBuiltinModule('node:v8').serialize(message); const frame = Buffer.alloc(4 + payload.length); frame.writeUInt32BE(payload.length, 0); payload.copy(frame, 4); for (let at = 0; at < frame.length; ) { try { at += fs.writeSync(3, frame, at); } catch (error) { if (error.code !== 'EAGAIN') throw error; } } };\n";
/** A fenced cell; a body that forges messages (`sendFrame(…)`) gets `FRAME_WRITER` first. */
const fence = (lang: string, body: string) =>
  plainFence(lang, body.includes('sendFrame(') ? FRAME_WRITER + body : body);

let h: Harness;
let warehouse: SqlEngine;
/** A workspace connection the forging notebooks do not list. */
let workspaceConnections: ReadonlyMap<string, SqlEngine>;
const runDirs = () => readdirSync(h.runRoot).filter((name) => name !== '.runtime');

before(async () => {
  h = await createHarness();
  warehouse = await DuckDbEngine.open({
    path: join(h.root, 'warehouse.duckdb'),
    allowedDirectories: [h.projectDir],
  });
  workspaceConnections = new Map([['warehouse', warehouse]]);
});
after(async () => {
  await h?.close();
  await warehouse?.close();
});

/** JS source that builds a valid-looking result for a cell (to be altered by `patch`). */
const result = (name: string, kind: string, patch = '') =>
  `{ name: ${JSON.stringify(name)}, kind: ${JSON.stringify(kind)}, status: 'succeeded', startedAt: new Date().toISOString(), durationMs: 1, output: { kind: 'value', value: 1 }, logs: [], error: null${patch ? `, ${patch}` : ''} }`;
const sql = (patch = '') =>
  `{ type: 'sql', id: 5000, cell: 'forge', connection: 'duckdb', statements: [{ text: 'select 1', params: [], line: 0 }], chainAs: null${patch ? `, ${patch}` : ''} }`;

async function expectViolation(
  text: string,
  pattern: RegExp,
  request: Partial<Omit<RunRequest, 'notebook'>> = {},
): Promise<RunSnapshot> {
  const { snapshot } = await h.run(text, { connections: workspaceConnections, ...request });
  assert.equal(snapshot.status, 'failed', `status (${snapshot.message})`);
  assert.equal(snapshot.reason, 'protocol_violation', `reason (${snapshot.message})`);
  assert.match(snapshot.message ?? '', pattern);
  assert.match(snapshot.message ?? '', /broke the executor protocol and was stopped/);
  return snapshot;
}

async function expectHealthy(): Promise<void> {
  const { snapshot } = await h.run(
    fence('sql one', 'select 41 as n') + fence('js next', 'console.log("fine");\nreturn one[0].n + 1'),
  );
  assert.equal(snapshot.status, 'succeeded', snapshot.message ?? '');
  assert.deepEqual(cell(snapshot, 'next').output, { kind: 'value', value: 42 });
  assert.deepEqual(runDirs(), [], 'no run directory is left behind');
}

describe('hostile IPC: every malformed or out-of-order message ends the run as protocol_violation', () => {
  const cases: { name: string; text: string; pattern: RegExp; request?: Partial<RunRequest> }[] = [
    {
      name: 'a message that is not an object (a string)',
      text: fence('js forge', "sendFrame('hello');\nreturn 1"),
      pattern: /a message that is a string, not an object/,
    },
    {
      name: 'a message that is not an object (an array)',
      text: fence('js forge', 'sendFrame([1, 2]);\nreturn 1'),
      pattern: /a message that is an array, not an object/,
    },
    {
      name: 'a message of an unknown type',
      text: fence('js forge', "sendFrame({ type: 'pwn' });\nreturn 1"),
      pattern: /a malformed 'pwn' message/,
    },
    {
      name: 'a known message with an unknown field',
      text: fence('js forge', "sendFrame({ type: 'done', extra: true });\nreturn 1"),
      pattern: /a malformed 'done' message/,
    },
    {
      name: 'a log line of an unknown level',
      text: fence(
        'js forge',
        "sendFrame({ type: 'log', index: 0, level: 'shout', text: 'x', at: 0 });\nreturn 1",
      ),
      pattern: /a malformed 'log' message at level/,
    },
    {
      name: 'a log line longer than a line may be',
      text: fence(
        'js forge',
        "sendFrame({ type: 'log', index: 0, level: 'log', text: 'x'.repeat(20_000), at: 0 });\nreturn 1",
      ),
      pattern: /a malformed 'log' message at text/,
    },
    {
      // Finding 1: this threw in the executor and killed the server (and again after each restart).
      name: 'a log for an out-of-range cell index',
      text: fence(
        'js forge',
        "sendFrame({ type: 'log', index: 99, level: 'log', text: 'x', at: 0 });\nreturn 1",
      ),
      pattern: /'log' for cell 99, but the current cell is cell 0 \('forge'\)/,
    },
    {
      name: 'a log for an earlier cell',
      text:
        fence('js first', 'return 1') +
        fence('js forge', "sendFrame({ type: 'log', index: 0, level: 'log', text: 'x', at: 0 });\nreturn 1"),
      pattern: /'log' for cell 0, but the current cell is cell 1 \('forge'\)/,
    },
    {
      name: 'cell_started for an out-of-range cell index',
      text: fence(
        'js forge',
        "sendFrame({ type: 'cell_started', index: 99, name: 'x', startedAt: new Date().toISOString() });\nreturn 1",
      ),
      pattern: /'cell_started' for cell 99 while cell 0 \('forge'\) is running/,
    },
    {
      name: 'cell_started for the next cell while this one runs',
      text:
        fence(
          'js forge',
          "sendFrame({ type: 'cell_started', index: 1, name: 'later', startedAt: new Date().toISOString() });\nreturn 1",
        ) + fence('js later', 'return 2'),
      pattern: /'cell_started' for cell 1 while cell 0 \('forge'\) is running/,
    },
    {
      name: 'cell_finished for an out-of-range cell index',
      text: fence(
        'js forge',
        `sendFrame({ type: 'cell_finished', index: 99, result: ${result('x', 'js')} });\nreturn 1`,
      ),
      pattern: /'cell_finished' for cell 99 while cell 0 \('forge'\) is running/,
    },
    {
      name: 'cell_finished for a later cell',
      text:
        fence(
          'js forge',
          `sendFrame({ type: 'cell_finished', index: 1, result: ${result('later', 'js')} });\nreturn 1`,
        ) + fence('js later', 'return 2'),
      pattern: /'cell_finished' for cell 1 while cell 0 \('forge'\) is running/,
    },
    {
      name: 'a duplicate cell_finished (the cell finishes itself, then the runtime does)',
      text: fence(
        'js forge',
        `sendFrame({ type: 'cell_finished', index: 0, result: ${result('forge', 'js')} });\nreturn 1`,
      ),
      pattern: /'cell_finished' for cell 0, which already finished/,
    },
    {
      name: "cell_finished with status 'skipped' for the running cell",
      text: fence(
        'js forge',
        `sendFrame({ type: 'cell_finished', index: 0, result: ${result('forge', 'js', "status: 'skipped', output: null, startedAt: null")} });\nreturn 1`,
      ),
      pattern: /status 'skipped' for cell 0, which started/,
    },
    {
      name: 'a result with an output of the wrong shape',
      text: fence(
        'js forge',
        `sendFrame({ type: 'cell_finished', index: 0, result: ${result('forge', 'js', "output: { kind: 'table', columns: 'nope', rows: [], totalRows: 0, truncated: false }")} });\nreturn 1`,
      ),
      pattern: /a malformed 'cell_finished' message at result\.output/,
    },
    {
      name: 'a result with a field the snapshot does not have',
      text: fence(
        'js forge',
        `sendFrame({ type: 'cell_finished', index: 0, result: ${result('forge', 'js', "html: '<script>alert(1)</script>'")} });\nreturn 1`,
      ),
      pattern: /a malformed 'cell_finished' message/,
    },
    {
      name: "a result under another cell's name",
      text: fence(
        'js forge',
        `sendFrame({ type: 'cell_finished', index: 0, result: ${result('other', 'js')} });\nreturn 1`,
      ),
      pattern: /the result for cell 0 is for js cell 'other', not js cell 'forge'/,
    },
    {
      name: 'a JS cell whose result is HTML',
      text: fence(
        'js forge',
        `sendFrame({ type: 'cell_finished', index: 0, result: ${result('forge', 'js', "output: { kind: 'html', html: '<img src=x onerror=alert(1)>' }")} });\nreturn 1`,
      ),
      pattern: /a js cell \('forge'\) cannot output a html/,
    },
    {
      name: 'a result holding a value that is not JSON (a Map)',
      text: fence(
        'js forge',
        `sendFrame({ type: 'cell_finished', index: 0, result: ${result('forge', 'js', "output: { kind: 'value', value: { a: new Map([[1, 2]]) } }")} });\nreturn 1`,
      ),
      pattern: /holds an object of class Map/,
    },
    {
      name: 'a table over the row limit',
      text: fence(
        'js forge',
        `sendFrame({ type: 'cell_finished', index: 0, result: ${result('forge', 'js', "output: { kind: 'table', columns: [{ name: 'n', type: 'number' }], rows: [[1], [2], [3], [4], [5]], totalRows: 5, truncated: false }")} });\nreturn 1`,
      ),
      pattern: /has 5 rows; the row limit is 2/,
      request: { limits: { rowLimit: 2 } },
    },
    {
      name: 'a table whose rows do not fit its columns',
      text: fence(
        'js forge',
        `sendFrame({ type: 'cell_finished', index: 0, result: ${result('forge', 'js', "output: { kind: 'table', columns: [{ name: 'n', type: 'number' }], rows: [[1, 2]], totalRows: 1, truncated: false }")} });\nreturn 1`,
      ),
      pattern: /does not have 1 values/,
    },
    {
      // Finding 7: 40 MiB was stored against a 16 MiB limit; here 4 MiB against 1 MiB.
      name: 'an output over the output limit',
      text: fence(
        'js forge',
        `sendFrame({ type: 'cell_finished', index: 0, result: ${result('forge', 'js', "output: { kind: 'value', value: 'x'.repeat(4 * 1048576) }")} });\nreturn 1`,
      ),
      pattern: /the output of cell 'forge' is over its limit of 1048576 bytes/,
      request: { limits: { maxOutputBytes: 1048576 } },
    },
    {
      name: 'an error message over its length limit',
      text: fence(
        'js forge',
        `sendFrame({ type: 'cell_finished', index: 0, result: ${result('forge', 'js', "status: 'failed', output: null, error: { cell: 'forge', line: 1, name: 'Error', message: 'x'.repeat(200_000) }")} });\nreturn 1`,
      ),
      pattern: /a malformed 'cell_finished' message at result\.error\.message/,
    },
    {
      // Finding 14: a JS cell used a workspace connection its notebook does not list.
      name: 'a SQL request for a connection the notebook does not list',
      text: fence('js forge', `sendFrame(${sql("connection: 'warehouse'")});\nawait new Promise(() => {})`),
      pattern: /connection 'warehouse', which the notebook does not list/,
    },
    {
      name: 'a duplicate SQL request id',
      text: fence('js forge', `sendFrame(${sql()});\nsendFrame(${sql()});\nawait new Promise(() => {})`),
      pattern: /a second SQL request with id 5000/,
    },
    {
      name: 'a SQL request for a cell that is not running',
      text: fence('js forge', `sendFrame(${sql("cell: 'other'")});\nawait new Promise(() => {})`),
      pattern: /a SQL request for cell 'other' while cell 'forge' is running/,
    },
    {
      name: "a SQL request posing as a SQL cell's own (cached, chained) query",
      text:
        fence('sql orders', 'select 1 as n') +
        fence(
          'js forge',
          `sendFrame(${sql("chainAs: 'orders', connection: 'duckdb'")});\nawait new Promise(() => {})`,
        ),
      pattern: /a SQL request as cell 'orders' that is not that SQL cell's own query/,
    },
    {
      name: 'a SQL request with too many statements',
      text: fence(
        'js forge',
        `sendFrame(${sql("statements: Array.from({ length: 1001 }, () => ({ text: 'select 1', params: [], line: 0 }))")});\nawait new Promise(() => {})`,
      ),
      pattern: /a malformed 'sql' message at statements/,
    },
    {
      name: 'done before every cell finished',
      text: fence('js forge', "sendFrame({ type: 'done' });\nreturn 1") + fence('js later', 'return 2'),
      pattern: /'done' while cell 0 \('forge'\) is running/,
    },
    {
      // Node's IPC parsed the channel before any listener saw a message, and threw out of the server here.
      name: 'raw bytes on the channel that are not a message',
      text: fence(
        'js forge',
        "import { writeSync } from 'node:fs';\nwriteSync(3, Buffer.from([0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]));\nawait new Promise(() => {})",
      ),
      pattern:
        /bytes on its channel that are not a message: a frame of 8 bytes that is not a serialized value/,
    },
    {
      name: "a second 'ready'",
      text: fence('js forge', "sendFrame({ type: 'ready' });\nreturn 1"),
      pattern: /a second 'ready'/,
    },
  ];

  for (const c of cases) {
    it(`refuses ${c.name}`, async () => {
      const snapshot = await expectViolation(c.text, c.pattern, c.request ?? {});
      const forge = snapshot.cells.find((x) => x.name === 'forge');
      if (forge && forge.status === 'failed') assert.equal(forge.error?.name, 'ProtocolViolation');
    });
  }

  it('keeps a forged result for an earlier cell out of the snapshot (stored XSS, finding 2)', async () => {
    const snapshot = await expectViolation(
      'Hello, **reader**.\n\n' +
        fence(
          'js forge',
          `sendFrame({ type: 'cell_finished', index: 0, result: ${result('prose_1', 'prose', "output: { kind: 'html', html: '<img src=x onerror=alert(1)>' }")} });\nreturn 1`,
        ),
      /'cell_finished' for cell 0 while cell 1 \('forge'\) is running/,
    );
    const prose = cell(snapshot, 'prose_1');
    assert.equal(prose.status, 'succeeded');
    assert.deepEqual(prose.output, { kind: 'html', html: '<p>Hello, <strong>reader</strong>.</p>\n' });
    assert.doesNotMatch(JSON.stringify(snapshot), /onerror/);
  });

  it("refuses a prose cell's HTML once an earlier cell tampered with the child's escaping", async () => {
    // An earlier cell can patch built-ins the child runtime uses to escape interpolated values.
    const snapshot = await expectViolation(
      fence(
        'js tamper',
        "const replace = String.prototype.replace;\nString.prototype.replace = function (pattern, fn) {\n  return typeof fn === 'function' && String(pattern).includes('uE000') ? '<img src=x onerror=alert(1)>' : replace.call(this, pattern, fn);\n};\nreturn 1",
      ) + '\nHello {{ almanac.runContext }}\n',
      /the HTML of prose cell 'prose_\d+' is not its template with escaped values/,
    );
    assert.doesNotMatch(JSON.stringify(snapshot), /onerror/);
  });

  it('runs the next run as usual after all of that', async () => {
    await expectHealthy();
  });
});

describe('hostile IPC: limits the host enforces itself', () => {
  it('keeps a forged log flood within maxLogBytes (cut with one notice), and fails a child that keeps flooding', async () => {
    // The host keeps its own log budget; lines past it are dropped, as an honest child drops them.
    const flood = (lines: number) =>
      fence(
        'js flood',
        `for (let i = 0; i < ${lines}; i++) sendFrame({ type: 'log', index: 0, level: 'log', text: 'x'.repeat(1000), at: 0 });\nreturn 1`,
      );
    const { snapshot } = await h.run(flood(300), { limits: { maxLogBytes: 4096 } });
    assert.equal(snapshot.status, 'succeeded', snapshot.message ?? '');
    const logs = cell(snapshot, 'flood').logs;
    const cost = logs.reduce((sum, l) => sum + Buffer.byteLength(l.text) + LOG_LINE_OVERHEAD_BYTES, 0);
    assert.ok(cost <= 4096, `stored log costs ${cost} bytes against 4096`);
    assert.ok(logs.length <= 4, `${logs.length} lines kept`);
    assert.ok(logs.at(-1)!.text.endsWith(LOG_CUT_NOTICE));

    const flooding = await expectViolation(
      flood(MAX_DROPPED_LOG_LINES + 200),
      /log lines after the run's log limit/,
      {
        limits: { maxLogBytes: 4096 },
      },
    );
    const kept = cell(flooding, 'flood').logs;
    assert.ok(kept.reduce((sum, l) => sum + Buffer.byteLength(l.text) + LOG_LINE_OVERHEAD_BYTES, 0) <= 4096);
  });

  it('the log budget: the host keeps exactly what an honest child sends, and never more than maxLogBytes', () => {
    // Child and host run the same LogBudget over the same lines; a mismatch would cut honest logs twice.
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5000 }),
        fc.array(fc.string({ unit: 'binary', maxLength: 12_000 }), { maxLength: 40 }),
        (max, lines) => {
          const child = new LogBudget(max);
          const sent: string[] = [];
          for (const line of lines) {
            if (child.cut) break;
            const kept = child.take(line);
            if (kept !== null) sent.push(kept);
          }
          const host = new LogBudget(max);
          assert.deepEqual(
            sent.map((line) => host.take(line)),
            sent,
          );
          const forged = new LogBudget(max);
          const stored = lines.map((line) => forged.take(line)).filter((line) => line !== null);
          for (const kept of [sent, stored]) {
            const cost = kept.reduce((sum, line) => sum + utf8Bytes(line) + LOG_LINE_OVERHEAD_BYTES, 0);
            assert.ok(cost <= max, `${cost} bytes kept against ${max}`);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('measures outputs exactly as JSON.stringify writes them, and refuses values JSON cannot hold', () => {
    // The host's output limit must agree with the child's (which measures JSON.stringify) to the byte.
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        assert.equal(jsonByteLength(value, 1e9), Buffer.byteLength(JSON.stringify(value)));
      }),
      { numRuns: 500 },
    );
    const sparse: unknown[] = [1];
    sparse[2] = undefined; // a hole at 1, undefined at 2: both null in JSON
    sparse.push({ a: undefined, b: 'é"' });
    assert.equal(jsonByteLength(sparse, 1e9), Buffer.byteLength(JSON.stringify(sparse)));
    assert.match(String(jsonByteLength({ a: 1n }, 1e9)), /a bigint, which is not JSON/);
    assert.match(String(jsonByteLength([new Date(0)], 1e9)), /class Date/);
    assert.match(String(jsonByteLength({ a: Number.NaN }, 1e9)), /a number that JSON cannot hold/);
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    assert.match(String(jsonByteLength(deep, 1e9)), /nested deeper than 64 levels/);
  });

  it('refuses an unlisted connection from almanac.query with a cell error, and serves a listed one', async () => {
    const query = fence(
      'js q',
      "const rows = await almanac.query('select 7 as n', [], { connection: 'warehouse' });\nreturn rows[0].n",
    );
    const unlisted = await h.run(query, { connections: workspaceConnections });
    assert.equal(unlisted.snapshot.status, 'failed');
    assert.equal(unlisted.snapshot.reason, 'cell_error');
    assert.match(
      cell(unlisted.snapshot, 'q').error?.message ?? '',
      /connection 'warehouse' is not listed in this notebook/,
    );

    const listed = await h.run(`---\nconnections: [warehouse]\n---\n${query}`, {
      connections: workspaceConnections,
    });
    assert.equal(listed.snapshot.status, 'succeeded', listed.snapshot.message ?? '');
    assert.deepEqual(cell(listed.snapshot, 'q').output, { kind: 'value', value: 7 });
  });

  it('serves many SQL requests at once (the child queues past the host’s limit of pending requests)', async () => {
    const { snapshot } = await h.run(
      fence(
        'js many',
        "const all = await Promise.all(Array.from({ length: 100 }, (_, i) => almanac.query('select $1::int as n', [i])));\nreturn all.reduce((s, r) => s + r[0].n, 0)",
      ),
    );
    assert.equal(snapshot.status, 'succeeded', snapshot.message ?? '');
    assert.deepEqual(cell(snapshot, 'many').output, { kind: 'value', value: 4950 });
  });

  it('still stores honest outputs of every kind, and honest huge errors cut to their limit', async () => {
    const { snapshot } = await h.run(
      fence('sql t', 'select 1 as n, 2 as m') +
        fence('js holes', 'return [1, , 3]') +
        '\nValue: {{ holes.length }} <b>{{ "<i>" }}</b>\n\n' +
        fence('js boom', "const e = new Error('m'.repeat(300_000));\ne.name = 'N'.repeat(5000);\nthrow e"),
    );
    assert.equal(snapshot.reason, 'cell_error', snapshot.message ?? '');
    assert.equal((cell(snapshot, 't').output as TableOutput).rows.length, 1);
    // Stored as JSON: a hole is null there.
    assert.deepEqual(JSON.parse(JSON.stringify(cell(snapshot, 'holes').output)), {
      kind: 'value',
      value: [1, null, 3],
    });
    const prose = snapshot.cells.find((c) => c.kind === 'prose')!;
    assert.match((prose.output as { html: string }).html, /Value: 3 .*&lt;i&gt;/);
    const boom = cell(snapshot, 'boom');
    assert.equal(boom.status, 'failed');
    assert.ok(boom.error!.message.length <= 64 * 1024);
    assert.ok(boom.error!.name.length <= 1000);
  });
});

/** A process that ended (reaped, or a zombie waiting for its parent). */
function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

describe('hostile IPC: the run protocol, message by message', () => {
  const limits = { rowLimit: 10, maxOutputBytes: 1 << 20, maxLogBytes: 1 << 20 };
  const at = () => new Date().toISOString();
  const started = async (text: string) => {
    const notebook = await parseNotebook(text);
    const protocol = new RunProtocol(notebook.cells, notebookConnections(notebook), limits);
    protocol.accept({ type: 'cell_started', index: 0, name: notebook.cells[0]!.name, startedAt: at() });
    return { protocol, notebook };
  };
  const sqlMessage = (id: number) => ({
    type: 'sql',
    id,
    cell: 'a',
    connection: 'duckdb',
    statements: [{ text: 'select 1', params: [], line: 0 }],
    chainAs: null,
  });

  it(`refuses more than ${MAX_SQL_PENDING} SQL requests waiting at once, and more than ${MAX_SQL_REQUESTS_PER_RUN} in a run`, async () => {
    const { protocol } = await started(fence('js a', 'return 1'));
    for (let id = 1; id <= MAX_SQL_PENDING; id++) protocol.accept(sqlMessage(id));
    assert.throws(() => protocol.accept(sqlMessage(MAX_SQL_PENDING + 1)), /SQL requests waiting at once/);
    for (let i = 0; i < MAX_SQL_PENDING; i++) protocol.sqlAnswered();
    for (let id = MAX_SQL_PENDING + 1; id <= MAX_SQL_REQUESTS_PER_RUN; id++) {
      protocol.accept(sqlMessage(id));
      protocol.sqlAnswered();
    }
    assert.throws(
      () => protocol.accept(sqlMessage(MAX_SQL_REQUESTS_PER_RUN + 1)),
      (error: unknown) =>
        error instanceof ProtocolViolationError && /SQL requests in one run/.test(error.message),
    );
  });

  it('accepts skipped cells only after a failure, in order, and done only once every cell ended', async () => {
    const { protocol, notebook } = await started(
      fence('js a', 'return 1') + fence('js b', 'return 2') + fence('js c', 'return 3'),
    );
    const failed = {
      ...notRunCell('a', 'js'),
      status: 'failed',
      startedAt: at(),
      error: { cell: 'a', line: 1, name: 'Error', message: 'boom' },
    };
    assert.throws(() => protocol.accept({ type: 'done' }), /'done' while cell 0/);
    protocol.accept({ type: 'cell_finished', index: 0, result: failed });
    assert.throws(
      () => protocol.accept({ type: 'cell_started', index: 1, name: 'b', startedAt: at() }),
      /after a cell failed/,
    );
    assert.throws(
      () => protocol.accept({ type: 'cell_finished', index: 2, result: notRunCell('c', 'js') }),
      /which did not start/,
    );
    protocol.accept({ type: 'cell_finished', index: 1, result: notRunCell('b', 'js') });
    assert.throws(() => protocol.accept({ type: 'done' }), /'done' after 2 of 3 cells ended/);
    protocol.accept({ type: 'cell_finished', index: 2, result: notRunCell('c', 'js') });
    assert.deepEqual(protocol.accept({ type: 'done' }), { type: 'done' });
    assert.throws(() => protocol.accept({ type: 'done' }), /'done' after 'done'/);
    assert.equal(notebook.cells.length, 3);
  });

  it('never throws anything but a ProtocolViolationError, whatever arrives', async () => {
    const { protocol } = await started(fence('js a', 'return 1'));
    const hostile: unknown[] = [
      undefined,
      null,
      0,
      'done',
      Symbol.for('x'),
      [],
      new Map(),
      Object.create(null),
      { type: { toString: () => 'done' } },
      { type: 'log', index: -1, level: 'log', text: '', at: 0 },
      { type: 'log', index: 0.5, level: 'log', text: '', at: 0 },
      { type: 'log', index: 0, level: 'log', text: '', at: Number.NaN },
      { type: 'cell_finished', index: 0, result: null },
      { type: 'sql', id: 1, cell: 'a', connection: 'duckdb', statements: [], chainAs: null },
    ];
    for (const message of hostile) {
      assert.throws(() => protocol.accept(message), ProtocolViolationError);
    }
  });
});

describe("hostile IPC: the channel's framing (the host reads and caps it itself)", () => {
  it('a frame header announcing 4 GiB ends the run as protocol_violation without the host buffering it', async () => {
    // Guards the last gap of finding 1: under Node's IPC, a 4-byte header announcing up to 4 GiB made
    // the host buffer whatever followed with no limit (180 MiB of host memory in 4.5 s, until the run's
    // timeout). The host now refuses the header before it buffers a byte of the body.
    const before = process.memoryUsage();
    let peakRss = before.rss;
    let peakBuffers = before.arrayBuffers;
    const sample = setInterval(() => {
      const now = process.memoryUsage();
      peakRss = Math.max(peakRss, now.rss);
      peakBuffers = Math.max(peakBuffers, now.arrayBuffers);
    }, 5);
    try {
      const snapshot = await expectViolation(
        fence(
          'js flood',
          "import { writeSync } from 'node:fs';\nwriteSync(3, Buffer.from([0xff, 0xff, 0xff, 0xff]));\nconst chunk = Buffer.alloc(1048576, 7);\nfor (let sent = 0; sent < 4096; ) {\n  try { writeSync(3, chunk); sent++; } catch (error) { if (error.code !== 'EAGAIN') break; }\n}\nawait new Promise(() => {});",
        ),
        /a frame announcing 4294967295 bytes, above the \d+ bytes the largest message of this run may take/,
        // Ends by status, not by this timeout (which would say timed_out).
        { limits: { timeoutMs: 120_000 } },
      );
      assert.equal(cell(snapshot, 'flood').error?.name, 'ProtocolViolation');
    } finally {
      clearInterval(sample);
    }
    const grewMb = (peakRss - before.rss) / 1048576;
    const buffersMb = (peakBuffers - before.arrayBuffers) / 1048576;
    assert.ok(grewMb < 64, `host RSS grew by ${grewMb.toFixed(1)} MiB while the child streamed`);
    assert.ok(buffersMb < 64, `host array buffers grew by ${buffersMb.toFixed(1)} MiB`);
    await expectHealthy();
  });

  it('garbage bytes on the channel end only that run', async () => {
    // Text where a frame belongs: its first 4 bytes read as a header of 1.7 GB. Under Node's IPC,
    // garbage made its parser throw out of the server (finding 1).
    await expectViolation(
      fence(
        'js garbage',
        "import { writeSync } from 'node:fs';\nwriteSync(3, 'hello, executor: this is not a frame\\n');\nawait new Promise(() => {});",
      ),
      /bytes on its channel that are not a message: a frame announcing 1751477356 bytes/,
    );
    // A header that fits, then a payload that is not v8.serialize output.
    await expectViolation(
      fence(
        'js garbage',
        "import { writeSync } from 'node:fs';\nwriteSync(3, Buffer.concat([Buffer.from([0, 0, 0, 16]), Buffer.alloc(16, 0xee)]));\nawait new Promise(() => {});",
      ),
      /a frame of 16 bytes that is not a serialized value/,
    );
    // An empty frame (a header of 0) is not a message either.
    await expectViolation(
      fence(
        'js garbage',
        "import { writeSync } from 'node:fs';\nwriteSync(3, Buffer.alloc(4));\nawait new Promise(() => {});",
      ),
      /an empty frame/,
    );
    await expectHealthy();
  });

  it('a truncated frame then exit ends the run as protocol_violation', async () => {
    // A frame begun and never finished is not silently dropped when the child exits: without the
    // check the run ended 'crashed', hiding that the channel was tampered with.
    const snapshot = await expectViolation(
      fence(
        'js cut',
        "import { writeSync } from 'node:fs';\nwriteSync(3, Buffer.concat([Buffer.from([0, 0, 1, 0]), Buffer.alloc(10, 1)]));\nprocess.exit(0);",
      ),
      /a truncated frame on its channel \(10 of the 256 bytes its header announced, then the process exited\)/,
    );
    assert.equal(cell(snapshot, 'cut').error?.name, 'ProtocolViolation');
    await expectHealthy();
  });

  it('process.send does not exist in cells (the child has no Node IPC channel)', async () => {
    const { snapshot } = await h.run(
      fence(
        'js probe',
        "return [typeof process.send, typeof process.channel, String(process.connected), String(process.env.NODE_CHANNEL_FD)].join(' ')",
      ),
    );
    assert.equal(snapshot.status, 'succeeded', snapshot.message ?? '');
    assert.deepEqual(cell(snapshot, 'probe').output, {
      kind: 'value',
      value: 'undefined undefined undefined undefined',
    });
  });

  it('a frame written whole by a cell is read like any other, and then checked by the protocol', async () => {
    // The channel does not trust a well-formed frame: the forged log for another cell is refused.
    await expectViolation(
      fence('js forge', "sendFrame({ type: 'log', index: 7, level: 'log', text: 'x', at: 0 });\nreturn 1"),
      /'log' for cell 7/,
    );
  });

  it('FrameReader: any split of a stream of frames yields the same messages; bad frames are refused before buffering', () => {
    const messages = [
      { type: 'ready' },
      { type: 'log', n: 10n, at: new Date(0), m: new Map([[1, 'a']]), bytes: new Uint8Array([1, 2, 3]) },
      { type: 'done', text: 'é'.repeat(1000) },
    ];
    const stream = Buffer.concat(messages.map((m) => encodeFrame(m)));
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: stream.length }), { maxLength: 20 }), (cuts) => {
        const reader = new FrameReader(1 << 20);
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const got: unknown[] = [];
        let from = 0;
        for (const to of [...points, stream.length]) {
          got.push(...reader.push(stream.subarray(from, to)));
          from = to;
        }
        assert.deepEqual(got, messages);
        assert.equal(reader.buffered, 0);
      }),
    );
    const capped = new FrameReader(1000);
    const big = encodeFrame('x'.repeat(2000));
    // Only the header arrived: refused at once, before any of the body.
    assert.throws(() => capped.push(big.subarray(0, FRAME_HEADER_BYTES)), FrameError);
    assert.equal(capped.buffered, 0);
    // Once failed, the stream stays refused (nothing after garbage can be trusted).
    assert.throws(() => capped.push(encodeFrame('ok')), FrameError);
    const partial = new FrameReader(1000);
    assert.deepEqual(partial.push(encodeFrame('x'.repeat(100)).subarray(0, 50)), []);
    assert.equal(partial.buffered, 50 - FRAME_HEADER_BYTES);
    assert.throws(() => new FrameReader(100).push(Buffer.from([0, 0, 0, 3, 9, 9, 9])), FrameError);
    // The cap an honest run needs covers its largest output and log, and grows with them.
    const limits = { maxOutputBytes: 16 * 1048576, maxLogBytes: 1048576 };
    assert.ok(maxFrameBytesFor(limits) >= 4.5 * limits.maxOutputBytes + 2 * limits.maxLogBytes);
    assert.ok(maxFrameBytesFor({ ...limits, maxOutputBytes: 1024 }) < 64 * 1048576);
  });

  it("an honest output near maxOutputBytes fits the run's frame cap, in its worst encoding", async () => {
    // -0 is 1 byte of JSON (2 with its comma) and 9 bytes serialized: the largest growth v8.serialize
    // has over JSON. A table of such numbers just under the output limit must still arrive whole.
    const { snapshot } = await h.run(
      fence(
        'js zeros',
        "return Array.from({ length: 1000 }, () => Object.fromEntries(Array.from({ length: 500 }, (_, i) => ['c' + i, -0])))",
      ),
      { limits: { maxOutputBytes: 1_020_000, maxLogBytes: 1024 } },
    );
    assert.equal(snapshot.status, 'succeeded', snapshot.message ?? '');
    const output = cell(snapshot, 'zeros').output as TableOutput;
    assert.equal(output.rows.length, 1000);
    assert.equal(output.rows[0]!.length, 500);
  });
});

const bwrapWorks = (() => {
  try {
    return detectIsolation({ mode: 'bwrap', hide: [] }).bwrap !== null;
  } catch {
    return false;
  }
})();

describe('hostile IPC: the memory cap holds for the whole process tree', () => {
  it('ends a cell holding 3x its cap in Buffers (off the V8 heap) as memory_limit under bubblewrap', async (t) => {
    if (!bwrapWorks) {
      if (REQUIRE_SERVICES)
        throw new Error('bubblewrap is not available, and ALMANAC_REQUIRE_SERVICES=1 requires it');
      process.stderr.write('\n!! SKIPPING the bubblewrap memory test: bubblewrap not available\n\n');
      t.skip('bubblewrap not available');
      return;
    }
    // Finding 5: under bubblewrap the watchdog read the wrapper's resident size (a few MiB), so this
    // cell held its 192 MiB until the run timed out.
    const sandboxed = await createHarness({
      isolation: (root) => detectIsolation({ mode: 'bwrap', hide: [root] }),
    });
    try {
      const { snapshot } = await sandboxed.run(
        fence(
          'js hog',
          'const keep = [];\nfor (let i = 0; i < 12; i++) keep.push(Buffer.alloc(16 * 1048576, 1));\nawait new Promise(() => {});',
        ),
        { limits: { memoryLimitMb: 64, timeoutMs: 30_000 } },
      );
      assert.equal(snapshot.status, 'failed', snapshot.message ?? '');
      assert.equal(snapshot.reason, 'memory_limit');
      assert.equal(cell(snapshot, 'hog').error?.name, 'MemoryLimit');
    } finally {
      await sandboxed.close();
    }
  });

  it('finds, measures and kills every process of a tree', async () => {
    const root = spawn('/bin/sh', ['-c', 'sleep 60 & sleep 60 & wait'], { stdio: 'ignore' });
    try {
      const tree = await until('the shell and its two children', () => {
        const pids = processTree(root.pid!);
        return pids.length === 3 ? pids : null;
      });
      assert.equal(tree[0], root.pid);
      assert.ok((treeResidentMb(root.pid) ?? 0) > 0);
      const exited = new Promise((r) => root.once('exit', r));
      killTree(root.pid);
      await exited;
      await until('every process of the tree gone', () => tree.every(gone));
    } finally {
      root.kill('SIGKILL');
    }
  });
});
