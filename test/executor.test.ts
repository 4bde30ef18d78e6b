import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ValidationError } from '../src/domain/errors.ts';
import type { TableOutput } from '../src/domain/snapshot.ts';
import type { RunCancellation, RunEvent } from '../src/executor/executor.ts';
import { cell, createHarness, fence, type Harness } from './support/harness.ts';

let h: Harness;
/** Run directories under the run root (the built child runtime lives there too, in `.runtime`). */
const runDirs = () => readdirSync(h.runRoot).filter((name) => name !== '.runtime');
before(async () => {
  h = await createHarness({
    files: {
      'data/orders.csv': 'id,region,amount\n1,EMEA,10.50\n2,AMER,20.25\n3,EMEA,5.00\n',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: this is TypeScript source for a project file
      'lib/format.ts': 'export function euros(n: number): string { return `€${n.toFixed(2)}`; }\n',
      'lib/deep.js':
        "export function deep(n) { if (n === 0) throw new Error('deep failure'); return deep(n - 1); }\n",
    },
  });
});
after(() => h.close());

describe('executor: cell kinds', () => {
  it('runs SQL on DuckDB, reads project files by relative path, and chains results by name', async () => {
    const { snapshot } = await h.run(
      fence('sql orders', "select * from read_csv('data/orders.csv') order by id") +
        fence(
          'sql by_region',
          'select region, sum(amount) as total from orders group by region order by region',
        ),
    );
    assert.equal(snapshot.status, 'succeeded', snapshot.message ?? '');
    const orders = cell(snapshot, 'orders').output as TableOutput;
    assert.equal(orders.kind, 'table');
    assert.deepEqual(
      orders.columns.map((c) => c.name),
      ['id', 'region', 'amount'],
    );
    assert.equal(orders.totalRows, 3);
    const byRegion = cell(snapshot, 'by_region').output as TableOutput;
    assert.deepEqual(byRegion.rows, [
      ['AMER', 20.25],
      ['EMEA', 15.5],
    ]);
  });

  it('reads Parquet from the project folder', async () => {
    const { snapshot } = await h.run(
      fence(
        'sql to_parquet',
        "copy (select * from read_csv('data/orders.csv')) to 'data/orders.parquet' (format parquet)",
      ) + fence('sql back', "select count(*) as n, sum(amount) as total from 'data/orders.parquet'"),
    );
    assert.equal(snapshot.status, 'succeeded', snapshot.message ?? '');
    assert.deepEqual((cell(snapshot, 'back').output as TableOutput).rows, [['3', 35.75]]);
  });

  it('runs JS and TS cells that read earlier results and inputs, with imports and exports', async () => {
    const text =
      '---\ninputs:\n  factor: { type: number, default: 3 }\n---\n' +
      fence('sql base', 'select 2 as n') +
      fence(
        'js doubled',
        "import { strict } from 'node:assert';\nstrict.ok(true);\nreturn base[0].n * factor;",
      ) +
      fence(
        'ts typed',
        "import { euros } from './lib/format.ts';\nconst x: number = doubled + 1;\nexport const label: string = euros(x);\nexport const raw = x;",
      ) +
      fence('js last_expression', 'const y = typed.raw;\ny * 10') +
      fence('js only_default', 'export default "d";') +
      fence('js packages', "import YAML from 'yaml';\nYAML.stringify({ a: 1 }).trim()");
    const { snapshot } = await h.run(text);
    assert.equal(snapshot.status, 'succeeded', snapshot.message ?? '');
    assert.deepEqual(cell(snapshot, 'doubled').output, { kind: 'value', value: 6 });
    assert.deepEqual(cell(snapshot, 'typed').output, { kind: 'value', value: { label: '€7.00', raw: 7 } });
    assert.deepEqual(cell(snapshot, 'last_expression').output, { kind: 'value', value: 70 });
    assert.deepEqual(cell(snapshot, 'only_default').output, { kind: 'value', value: 'd' });
    assert.deepEqual(cell(snapshot, 'packages').output, { kind: 'value', value: 'a: 1' });
  });

  it('shows an array of objects from code as a table with inferred column types', async () => {
    const { snapshot } = await h.run(
      fence(
        'js rows',
        "return [{ name: 'a', n: 1, big: 2n ** 64n, at: new Date(0), ok: true }, { name: 'b', n: 2.5 }]",
      ),
    );
    assert.deepEqual(cell(snapshot, 'rows').output, {
      kind: 'table',
      columns: [
        { name: 'name', type: 'string' },
        { name: 'n', type: 'number' },
        { name: 'big', type: 'bigint' },
        { name: 'at', type: 'date' },
        { name: 'ok', type: 'boolean' },
      ],
      rows: [
        ['a', 1, '18446744073709551616', '1970-01-01T00:00:00.000Z', true],
        ['b', 2.5, null, null, null],
      ],
      totalRows: 2,
      truncated: false,
    });
  });

  it('renders prose with interpolation and HTML-escapes the values', async () => {
    const text =
      '---\ninputs:\n  who: { type: text, default: "<script>alert(1)</script>" }\n---\n' +
      fence('js n', 'return 41 + 1') +
      '\n## Hello {{ who }}\n\nThe answer is **{{ n }}** and the run context is {{ almanac.runContext }}.\n';
    const { snapshot } = await h.run(text);
    const html = (cell(snapshot, 'prose_1').output as { html: string }).html;
    assert.equal(
      html,
      '<h2>Hello &lt;script&gt;alert(1)&lt;/script&gt;</h2>\n<p>The answer is <strong>42</strong> and the run context is logic.</p>\n',
    );
  });

  it('produces a chart with its spec and the data it names', async () => {
    const text =
      fence('sql points', 'select * from (values (1, 10), (2, 20)) t(x, y)') +
      fence(
        'chart plot',
        '{ "data": { "name": "points" }, "mark": "line", "encoding": { "x": { "field": "x", "type": "quantitative" } } }',
      );
    const { snapshot } = await h.run(text);
    const output = cell(snapshot, 'plot').output;
    assert.equal(output?.kind, 'chart');
    if (output?.kind === 'chart') {
      assert.equal(output.spec['mark'], 'line');
      assert.deepEqual(output.datasets, {
        points: [
          { x: 1, y: 10 },
          { x: 2, y: 20 },
        ],
      });
    }
  });

  it('captures console output per cell', async () => {
    const { snapshot } = await h.run(
      fence(
        'js talk',
        "console.log('hello', { a: 1 });\nconsole.error('oops');\nprocess.stdout.write('raw\\n');\nreturn 1",
      ),
    );
    assert.deepEqual(
      cell(snapshot, 'talk').logs.map((l) => [l.level, l.text]),
      [
        ['log', 'hello { a: 1 }'],
        ['error', 'oops'],
        ['stdout', 'raw'],
      ],
    );
  });

  it('streams events cell by cell, in order', async () => {
    const events: RunEvent[] = [];
    await h.run(fence('js a', "console.log('x'); return 1") + fence('js b', 'return a + 1'), {
      onEvent: (e) => events.push(e),
    });
    assert.deepEqual(
      events.map((e) =>
        e.type === 'cell_started' || e.type === 'cell_finished' || e.type === 'log'
          ? `${e.type}:${e.index}`
          : e.type,
      ),
      [
        'run_started',
        'cell_started:0',
        'log:0',
        'cell_finished:0',
        'cell_started:1',
        'cell_finished:1',
        'run_finished',
      ],
    );
  });

  it('caps table rows at the row limit and keeps the total count', async () => {
    const { snapshot } = await h.run(fence('sql many', 'select * from range(2500) t(i)'), {
      limits: { rowLimit: 100 },
    });
    const table = cell(snapshot, 'many').output as TableOutput;
    assert.equal(table.rows.length, 100);
    assert.equal(table.totalRows, 2500);
    assert.equal(table.truncated, true);
  });
});

describe('executor: exact values', () => {
  it('keeps BigInt, decimals, dates and timestamps exact in the snapshot and usable in code', async () => {
    const text =
      fence(
        'sql v',
        "select 9007199254740993::BIGINT as big, 42::BIGINT as small, 12345678901234567.89::DECIMAL(20,2) as dec_big, 1234.50::DECIMAL(10,2) as dec, DATE '2024-02-29' as day, TIMESTAMP '2024-01-01 12:00:00.123456' as ts, (2::HUGEINT ** 100)::HUGEINT as huge",
      ) +
      fence(
        'js check',
        'const r = v[0];\nreturn { bigType: typeof r.big, big: r.big, smallType: typeof r.small, decBig: r.dec_big, dec: r.dec, day: r.day, isDate: r.day instanceof Date, next: r.big + 1n };',
      );
    const { snapshot } = await h.run(text);
    assert.equal(snapshot.status, 'succeeded', snapshot.message ?? '');
    const table = cell(snapshot, 'v').output as TableOutput;
    assert.deepEqual(
      table.columns.map((c) => c.type),
      ['BIGINT', 'BIGINT', 'DECIMAL(20,2)', 'DECIMAL(10,2)', 'DATE', 'TIMESTAMP', 'HUGEINT'],
    );
    assert.deepEqual(table.rows[0], [
      '9007199254740993',
      '42',
      '12345678901234567.89',
      '1234.50',
      '2024-02-29',
      '2024-01-01 12:00:00.123456',
      '1267650600228229401496703205376',
    ]);
    assert.deepEqual(cell(snapshot, 'check').output, {
      kind: 'value',
      value: {
        bigType: 'bigint',
        big: { $type: 'bigint', value: '9007199254740993' },
        smallType: 'number',
        decBig: '12345678901234567.89',
        dec: 1234.5,
        day: { $type: 'date', value: '2024-02-29T00:00:00.000Z' },
        isDate: true,
        next: { $type: 'bigint', value: '9007199254740994' },
      },
    });
  });

  it('encodes values JSON cannot hold', async () => {
    const { snapshot } = await h.run(
      fence(
        'js odd',
        "return { u: undefined, nan: NaN, m: new Map([['k', 1n]]), s: new Set([1]), f: function named() {}, e: new TypeError('bad') }",
      ),
    );
    assert.deepEqual(cell(snapshot, 'odd').output, {
      kind: 'value',
      value: {
        u: { $type: 'undefined' },
        nan: { $type: 'number', value: 'NaN' },
        m: { $type: 'map', entries: [['k', { $type: 'bigint', value: '1' }]] },
        s: { $type: 'set', values: [1] },
        f: { $type: 'function', name: 'named' },
        e: { $type: 'error', name: 'TypeError', message: 'bad' },
      },
    });
  });
});

describe('executor: parameters', () => {
  it('binds inputs as parameters, so an injection attempt stays a literal', async () => {
    const text =
      '---\ninputs:\n  region: { type: text, default: EMEA }\n---\n' +
      fence(
        'sql setup',
        "create table if not exists victims (name text); insert into victims values ('still here')",
      ) +
      fence(
        'sql probe',
        'select {{ region }} as echoed, count(*) as n from victims where name = {{ region }}',
      ) +
      fence('sql after', 'select count(*) as n from victims');
    const attack = "x'); drop table victims; --";
    const { snapshot } = await h.run(text, { inputs: { region: attack } });
    assert.equal(snapshot.status, 'succeeded', snapshot.message ?? '');
    assert.deepEqual((cell(snapshot, 'probe').output as TableOutput).rows, [[attack, '0']]);
    assert.deepEqual((cell(snapshot, 'after').output as TableOutput).rows[0], ['1']);
  });

  it('binds values in almanac.sql tagged templates', async () => {
    const attack = "'; drop table nothing; --";
    const { snapshot } = await h.run(
      fence(
        'js q',
        `const rows = await almanac.sql\`select \${${JSON.stringify(attack)}} as v\`;\nreturn rows[0].v`,
      ),
    );
    assert.deepEqual(cell(snapshot, 'q').output, { kind: 'value', value: attack });
  });

  it('rejects an unknown input and a bad input value before running', async () => {
    const text =
      '---\ninputs:\n  n: { type: number, default: 1, max: 10 }\n---\n' + fence('js a', 'return n');
    await assert.rejects(
      h.run(text, { inputs: { m: 1 } }),
      (e: unknown) => e instanceof ValidationError && e.field === 'inputs.m',
    );
    await assert.rejects(
      h.run(text, { inputs: { n: 'ten' } }),
      (e: unknown) => e instanceof ValidationError && /inputs\.n: must be a number/.test(e.message),
    );
    await assert.rejects(h.run(text, { inputs: { n: '11' } }), /inputs\.n: must be at most 10/);
  });
});

describe('executor: run context', () => {
  const text =
    fence(
      'js info',
      'return { scheduled: almanac.scheduled, ctx: almanac.runContext, id: almanac.runId, at: almanac.scheduledFor, inputs: almanac.inputs }',
    ) +
    fence('sql in_sql', 'select {{ almanac.runContext }} as ctx, {{ almanac.scheduled }} as scheduled') +
    '\nContext {{ almanac.runContext }}, scheduled {{ almanac.scheduled }}\n';

  for (const context of ['logic', 'app', 'scheduled', 'api-triggered'] as const) {
    it(`exposes almanac.* in code, SQL and prose for context ${context}`, async () => {
      const scheduledFor = context === 'scheduled' ? new Date('2026-03-29T01:30:00Z') : null;
      const { snapshot } = await h.run(text, { context, runId: `run-${context}`, scheduledFor });
      assert.equal(snapshot.status, 'succeeded', snapshot.message ?? '');
      assert.deepEqual(cell(snapshot, 'info').output, {
        kind: 'value',
        value: {
          scheduled: context === 'scheduled',
          ctx: context,
          id: `run-${context}`,
          at: scheduledFor ? { $type: 'date', value: '2026-03-29T01:30:00.000Z' } : null,
          inputs: {},
        },
      });
      assert.deepEqual((cell(snapshot, 'in_sql').output as TableOutput).rows, [
        [context, context === 'scheduled'],
      ]);
      assert.match(
        (cell(snapshot, 'prose_1').output as { html: string }).html,
        new RegExp(`Context ${context}, scheduled ${context === 'scheduled'}`),
      );
      assert.equal(snapshot.context, context);
    });
  }
});

describe('executor: failures', () => {
  it('fails the run at a throwing cell, names it with its notebook line, and skips the rest', async () => {
    const text =
      'intro\n\n' +
      fence('js ok', 'return 1') +
      '\n' +
      fence('js broken', 'const a = 1;\nnull.boom;\nreturn a') +
      fence('js later', 'return 2');
    const { snapshot } = await h.run(text);
    assert.equal(snapshot.status, 'failed');
    assert.equal(snapshot.reason, 'cell_error');
    assert.equal(cell(snapshot, 'ok').status, 'succeeded');
    const broken = cell(snapshot, 'broken');
    assert.equal(broken.status, 'failed');
    assert.equal(broken.error?.name, 'TypeError');
    assert.equal(broken.error?.line, 9);
    assert.equal(cell(snapshot, 'later').status, 'skipped');
    assert.equal(
      snapshot.message,
      "cell 'broken' failed (line 9): TypeError: Cannot read properties of null (reading 'boom')",
    );
  });

  it('finds the cell line of an error thrown 20 calls deep in a project module (30-frame stacks)', async () => {
    const text = fence(
      'js deep_call',
      "import { deep } from './lib/deep.js';\nconst n = 20;\nreturn deep(n);",
    );
    const { snapshot } = await h.run(text);
    const failed = cell(snapshot, 'deep_call');
    assert.equal(failed.error?.message, 'deep failure');
    // The cell's own frame is the 22nd: found only with more than the default 10 frames.
    assert.equal(failed.error?.line, 4);
    assert.equal(failed.error?.stack?.split('\n').filter((l) => l.includes('deep.js')).length, 21);
  });

  it('reports a SQL error with the database message and the line inside the cell', async () => {
    const text = fence('sql bad', 'select 1;\nselect *\nfrom missing_table');
    const { snapshot } = await h.run(text);
    const bad = cell(snapshot, 'bad');
    assert.equal(bad.error?.name, 'Catalog Error');
    assert.match(bad.error!.message, /missing_table does not exist/);
    assert.equal(bad.error?.line, 4);
  });

  it('refuses a notebook whose SQL uses a connection that is not configured', async () => {
    await assert.rejects(
      h.run('---\nconnections: [warehouse]\n---\n' + fence('sql a', 'select 1')),
      /connection 'warehouse' is not configured/,
    );
  });
});

describe('executor: sandbox', () => {
  it('lets a cell write only inside its run directory, and removes that directory after the run', async () => {
    const outside = join(h.root, 'escaped.txt');
    const text = fence(
      'js files',
      `import { writeFileSync, readFileSync, existsSync } from 'node:fs';
writeFileSync('scratch.txt', 'from this run');
let outsideError = null;
try { writeFileSync(${JSON.stringify(outside)}, 'x'); } catch (e) { outsideError = e.code; }
let projectWrite = null;
try { writeFileSync(${JSON.stringify(join(h.projectDir, 'x.txt'))}, 'x'); } catch (e) { projectWrite = e.code; }
let secretRead = null;
try { readFileSync(${JSON.stringify(join(h.root, 'workspace.duckdb'))}); } catch (e) { secretRead = e.code; }
return { cwd: process.cwd(), sawPrevious: existsSync('previous.txt'), wrote: readFileSync('scratch.txt', 'utf8'), outsideError, projectWrite, secretRead, envKeys: Object.keys(process.env).sort() };`,
    );
    const first = await h.run(
      text.replace("'scratch.txt'", "'previous.txt'").replace("'scratch.txt'", "'previous.txt'"),
    );
    assert.equal(first.snapshot.status, 'succeeded', first.snapshot.message ?? '');
    const second = await h.run(text);
    const value = (cell(second.snapshot, 'files').output as { value: Record<string, unknown> }).value;
    assert.equal(value['wrote'], 'from this run');
    assert.equal(value['sawPrevious'], false, 'a file from the previous run must not exist');
    assert.equal(value['outsideError'], 'ERR_ACCESS_DENIED');
    assert.equal(value['projectWrite'], 'ERR_ACCESS_DENIED');
    assert.equal(value['secretRead'], 'ERR_ACCESS_DENIED');
    assert.deepEqual(value['envKeys'], ['HOME', 'LANG', 'PATH', 'TMPDIR', 'TZ']);
    assert.ok(String(value['cwd']).startsWith(h.runRoot));
    assert.equal(existsSync(outside), false);
    assert.equal(existsSync(String(value['cwd'])), false, 'the run directory is removed');
    assert.deepEqual(runDirs(), [], 'no run directory is left behind');
  });

  it('keeps SQL on the embedded database inside the project folder', async () => {
    const { snapshot } = await h.run(fence('sql leak', "select * from read_csv('/etc/passwd')"));
    assert.equal(snapshot.status, 'failed');
    assert.match(cell(snapshot, 'leak').error!.message, /Cannot access file "\/etc\/passwd"/);
  });
});

describe('executor: limits', () => {
  it('kills a run that passes its wall-clock timeout and ends it timed_out', async () => {
    const started = Date.now();
    const { snapshot } = await h.run(
      fence('js fast', 'return 1') + fence('js spin', 'while (true) {}') + fence('js never', 'return 2'),
      {
        limits: { timeoutMs: 1500 },
      },
    );
    assert.equal(snapshot.status, 'timed_out');
    assert.equal(snapshot.reason, 'timeout');
    assert.equal(snapshot.message, "the run timed out after 1.5 s in cell 'spin'");
    assert.equal(cell(snapshot, 'fast').status, 'succeeded');
    assert.equal(cell(snapshot, 'spin').status, 'failed');
    assert.equal(cell(snapshot, 'spin').error?.name, 'Timeout');
    assert.equal(cell(snapshot, 'never').status, 'skipped');
    assert.ok(Date.now() - started < 15_000);
    assert.deepEqual(runDirs(), []);
  });

  it('kills a run that passes its memory cap and ends it failed with reason memory_limit', async () => {
    const { snapshot } = await h.run(
      fence('js hog', 'const keep = [];\nwhile (true) keep.push(new Array(1_000_000).fill(Math.random()));'),
      { limits: { memoryLimitMb: 64, timeoutMs: 60_000 } },
    );
    assert.equal(snapshot.status, 'failed');
    assert.equal(snapshot.reason, 'memory_limit');
    assert.equal(snapshot.message, "the run exceeded its memory limit of 64 MiB in cell 'hog'");
    assert.equal(cell(snapshot, 'hog').error?.name, 'MemoryLimit');
  });

  it('cancels a running run when its signal aborts', async () => {
    const controller = new AbortController();
    const running = h.run(fence('js wait', 'await new Promise(() => {})'), {
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'cell_started') controller.abort();
      },
    });
    const { snapshot } = await running;
    assert.equal(snapshot.status, 'cancelled');
    assert.equal(snapshot.reason, 'cancelled');
    assert.equal(snapshot.message, 'Cancelled');
    assert.equal(cell(snapshot, 'wait').status, 'cancelled');
  });

  // Guards issue 15, bug 10: the cell a cancel stopped read "Crash: the run was cancelled (line 34)".
  it('a cancel names who cancelled, on the run and on the cell it stopped, and is no crash', async () => {
    const controller = new AbortController();
    const cancellation: RunCancellation = { kind: 'cancelled', by: 'Ada Lovelace' };
    const { snapshot } = await h.run(
      fence('js wait', 'await new Promise(() => {})') + fence('js after', 'return 2'),
      {
        signal: controller.signal,
        onEvent: (e) => {
          if (e.type === 'cell_started') controller.abort(cancellation);
        },
      },
    );
    assert.equal(snapshot.status, 'cancelled');
    assert.equal(snapshot.message, 'Cancelled by Ada Lovelace');
    const stopped = cell(snapshot, 'wait');
    assert.equal(stopped.status, 'cancelled');
    assert.equal(stopped.error?.name, 'Cancelled');
    assert.equal(stopped.error?.message, 'Cancelled by Ada Lovelace');
    assert.equal(cell(snapshot, 'after').status, 'skipped');
    assert.doesNotMatch(JSON.stringify(snapshot), /Crash/);
  });

  it('rejects limits that make no sense, naming the field', async () => {
    await assert.rejects(
      h.run(fence('js a', 'return 1'), { limits: { timeoutMs: 5 } }),
      /timeout: must be a whole number of milliseconds >= 100/,
    );
    await assert.rejects(
      h.run(fence('js a', 'return 1'), { limits: { memoryLimitMb: 1 } }),
      /memoryLimitMb: must be a whole number of MiB >= 32/,
    );
  });
});
