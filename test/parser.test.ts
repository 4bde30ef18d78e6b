import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NotebookError } from '../src/domain/errors.ts';
import { parseNotebook } from '../src/domain/notebook/parse-notebook.ts';
import { compileSqlTemplate } from '../src/domain/notebook/sql-template.ts';

async function problemsOf(text: string) {
  try {
    await parseNotebook(text);
  } catch (error) {
    assert.ok(error instanceof NotebookError, `expected NotebookError, got ${error}`);
    return error.problems;
  }
  assert.fail('expected the notebook to be rejected');
}

const NOTEBOOK = `---
title: Sales
inputs:
  region:
    type: select
    options: [EMEA, AMER]
  since:
    type: date
    default: "2024-01-01"
  limit:
    type: number
    default: 10
  verbose:
    type: checkbox
  note:
    type: text
    default: hi
connections: [warehouse]
app:
  show_last_run: false
---

Intro for {{ region }}.

\`\`\`sql orders connection=duckdb cache=schedule
select * from t where region = {{ region }} and day >= {{ since }} limit {{ limit }}
\`\`\`

\`\`\`ts summary
const n: number = orders.length;
return { n };
\`\`\`

\`\`\`chart c
{ "data": { "name": "orders" }, "mark": "bar", "encoding": { "x": { "field": "a", "type": "nominal" } } }
\`\`\`

\`\`\`bash
echo "plain code blocks stay prose"
\`\`\`
`;

describe('notebook parser', () => {
  it('reads frontmatter, cells and prose in order', async () => {
    const nb = await parseNotebook(NOTEBOOK);
    assert.equal(nb.title, 'Sales');
    assert.deepEqual(
      nb.inputs.map((i) => [i.name, i.type, i.default]),
      [
        ['region', 'select', 'EMEA'],
        ['since', 'date', '2024-01-01'],
        ['limit', 'number', 10],
        ['verbose', 'checkbox', false],
        ['note', 'text', 'hi'],
      ],
    );
    assert.deepEqual(nb.connections, ['warehouse']);
    assert.equal(nb.app.showLastRun, false);
    assert.deepEqual(
      nb.cells.map((c) => [c.kind, c.name]),
      [
        ['prose', 'prose_1'],
        ['sql', 'orders'],
        ['ts', 'summary'],
        ['chart', 'c'],
        ['prose', 'prose_2'],
      ],
    );
    const sql = nb.cells[1]!;
    assert.equal(sql.kind, 'sql');
    if (sql.kind === 'sql') {
      assert.equal(sql.connection, 'duckdb');
      assert.equal(sql.cache, 'schedule');
      assert.equal(sql.line, 25);
      assert.deepEqual(sql.statements, [
        {
          text: 'select * from t where region = $1 and day >= $2 limit $3',
          params: ['region', 'since', 'limit'],
          line: 26,
        },
      ]);
    }
    const ts = nb.cells[2]!;
    if (ts.kind === 'ts') {
      assert.deepEqual(ts.scope, ['orders']);
      assert.ok(!ts.module.includes(': number'), 'types are stripped');
    }
    const prose = nb.cells[4]!;
    if (prose.kind === 'prose') assert.match(prose.html, /<code class="language-bash">/);
  });

  it('uses the first listed connection as the default for SQL cells', async () => {
    const nb = await parseNotebook('---\nconnections: [warehouse]\n---\n```sql a\nselect 1\n```\n');
    const first = nb.cells[0]!;
    assert.equal(first.kind === 'sql' && first.connection, 'warehouse');
  });

  it('reports duplicate cell names with both lines', async () => {
    const problems = await problemsOf('```sql a\nselect 1\n```\n\n```js a\nreturn 1\n```\n');
    assert.deepEqual(problems, [
      {
        line: 5,
        cell: 'a',
        message: "duplicate cell name 'a' (first defined at line 1); rename one of them",
      },
    ]);
  });

  it('reports a cell named like an input', async () => {
    const problems = await problemsOf('---\ninputs:\n  a: { type: text }\n---\n```js a\nreturn 1\n```\n');
    assert.match(problems[0]!.message, /already used by an input/);
    assert.equal(problems[0]!.line, 5);
  });

  it('reports unknown references in SQL, prose and charts, with a suggestion', async () => {
    const text = [
      '---',
      'inputs:',
      '  region: { type: text }',
      '---',
      'Hello {{ regoin }}',
      '',
      '```sql a',
      'select {{ regin }}',
      '```',
      '',
      '```chart c',
      '{ "data": { "name": "nope" }, "mark": "bar" }',
      '```',
    ].join('\n');
    const problems = await problemsOf(text);
    assert.deepEqual(
      problems.map((p) => [p.line, p.cell, p.message]),
      [
        [
          5,
          'prose_1',
          "unknown reference 'regoin' (did you mean 'region'?): use an input or an earlier cell's name",
        ],
        [
          8,
          'a',
          "unknown reference 'regin' (did you mean 'region'?): use an input or an earlier cell's name",
        ],
        [11, 'c', "unknown reference 'nope': use an input or an earlier cell's name"],
      ],
    );
  });

  it('reports a reference to a later cell', async () => {
    const problems = await problemsOf('```js a\nreturn b + 1\n```\n\n```js b\nreturn 1\n```\n');
    assert.equal(problems[0]!.line, 2);
    assert.equal(problems[0]!.cell, 'a');
    assert.match(problems[0]!.message, /refers to 'b', which is defined later \(line 5\)/);
  });

  it('reports bad info strings', async () => {
    const problems = await problemsOf(
      '```sql\nselect 1\n```\n\n```sql 1bad\nselect 1\n```\n\n```sql ok colour=red\nselect 1\n```\n\n```sql conn connection=nowhere\nselect 1\n```\n',
    );
    assert.deepEqual(
      problems.map((p) => [p.line, p.message.split(':')[0]]),
      [
        [1, 'a sql cell needs a name after the language, for example ```sql orders'],
        [5, "'1bad' is not a valid cell name"],
        [9, "unknown attribute 'colour=red' in the info string; sql cells accept connection=…, cache=…"],
        [13, "unknown connection 'nowhere'"],
      ],
    );
  });

  it('reports invalid YAML with its line', async () => {
    const problems = await problemsOf('---\ntitle: ok\ninputs: [unclosed\n---\n\ntext\n');
    assert.equal(problems.length, 1);
    assert.match(problems[0]!.message, /^invalid YAML in the frontmatter/);
    assert.ok(problems[0]!.line >= 3 && problems[0]!.line <= 4, `line ${problems[0]!.line}`);
  });

  it('reports frontmatter fields that break the schema, naming the field', async () => {
    const problems = await problemsOf(
      '---\ninputs:\n  region:\n    type: select\n    options: [A, B]\n    default: C\n  n:\n    type: nummber\n  d:\n    type: date\n    default: "2024-02-30"\n---\n',
    );
    const messages = problems.map((p) => `${p.line} ${p.message}`);
    assert.ok(
      messages.some((m) => /^8 frontmatter inputs\.n\.type: type must be one of select, text/.test(m)),
      messages.join('\n'),
    );
    assert.ok(
      messages.some((m) => /^11 frontmatter inputs\.d\.default: is not a calendar date/.test(m)),
      messages.join('\n'),
    );
  });

  it('reports a select default that is not an option', async () => {
    const problems = await problemsOf(
      '---\ninputs:\n  r:\n    type: select\n    options: [A, B]\n    default: C\n---\n',
    );
    assert.match(problems[0]!.message, /inputs\.r\.default: 'C' is not one of the options \(A, B\)/);
  });

  it('reports invalid JSON in a chart and an invalid Vega-Lite mark', async () => {
    const problems = await problemsOf(
      '```js t\nreturn [{a: 1}]\n```\n\n```chart c\n{ "data": { "name": "t" }, "mark": \n```\n\n```chart d\n{ "data": { "name": "t" }, "mark": "barr" }\n```\n',
    );
    assert.equal(problems.length, 2);
    assert.equal(problems[0]!.cell, 'c');
    assert.match(problems[0]!.message, /^invalid JSON\/YAML in the chart spec/);
    assert.equal(problems[1]!.cell, 'd');
    assert.match(problems[1]!.message, /unknown mark 'barr'/);
  });

  it('reports JS syntax errors and TypeScript-only syntax with notebook lines', async () => {
    const problems = await problemsOf(
      'intro\n\n```js a\nconst x = ;\n```\n\n```ts b\nenum Color { Red }\nreturn 1\n```\n',
    );
    assert.deepEqual(
      problems.map((p) => [p.line, p.cell]),
      [
        [4, 'a'],
        [8, 'b'],
      ],
    );
    assert.match(problems[0]!.message, /^syntax error: Unexpected token/);
    assert.match(problems[1]!.message, /^TypeScript: .*enum/i);
  });

  it('reports an unclosed fence and interpolation inside a SQL string', async () => {
    const problems = await problemsOf(
      "```sql a\nselect * from t where name like '%{{ q }}%'\n```\n\n```js b\nreturn 1\n",
    );
    assert.ok(problems.some((p) => p.cell === 'a' && /inside a string literal/.test(p.message)));
    assert.ok(problems.some((p) => p.cell === 'b' && /never closed/.test(p.message)));
  });

  it('collects every problem into one error whose message names the first', async () => {
    try {
      await parseNotebook('```sql a\nselect 1\n```\n```sql a\nselect 2\n```\n```sql a\nselect 3\n```\n', {
        file: 'x.md',
      });
      assert.fail('expected an error');
    } catch (error) {
      assert.ok(error instanceof NotebookError);
      assert.equal(error.problems.length, 2);
      assert.equal(
        error.message,
        "x.md:4: cell 'a': duplicate cell name 'a' (first defined at line 1); rename one of them (and 1 more problem(s))",
      );
    }
  });
});

describe('SQL templates', () => {
  it('binds interpolations as numbered parameters and reuses repeated expressions', () => {
    const { statements, problems } = compileSqlTemplate('select {{ a }}, {{ b }}, {{ a }}', 1);
    assert.deepEqual(problems, []);
    assert.deepEqual(statements, [{ text: 'select $1, $2, $1', params: ['a', 'b'], line: 1 }]);
  });

  it("treats a quoted '{{ x }}' as the parameter itself", () => {
    const { statements } = compileSqlTemplate("select * from t where region = '{{ region }}'", 1);
    assert.equal(statements[0]!.text, 'select * from t where region = $1');
  });

  it('leaves braces in comments, identifiers and dollar quotes alone and splits statements on top-level ;', () => {
    const source = [
      'create table t (a int); -- {{ not bound }}; still a comment',
      "insert into t select {{ x }} where 'a;b' <> $$c;{{d}}$$;",
      'select "odd;{{name}}" from t /* ; {{ y }} */',
    ].join('\n');
    const { statements, problems } = compileSqlTemplate(source, 10);
    assert.deepEqual(problems, []);
    assert.deepEqual(
      statements.map((s) => [s.line, s.text, s.params]),
      [
        [10, 'create table t (a int)', []],
        [
          11,
          "-- {{ not bound }}; still a comment\ninsert into t select $1 where 'a;b' <> $$c;{{d}}$$",
          ['x'],
        ],
        [12, 'select "odd;{{name}}" from t /* ; {{ y }} */', []],
      ],
    );
  });

  it('keeps statement numbering per statement', () => {
    const { statements } = compileSqlTemplate('insert into t values ({{ a }});\nselect {{ b }}', 1);
    assert.deepEqual(
      statements.map((s) => [s.text, s.params]),
      [
        ['insert into t values ($1)', ['a']],
        ['select $1', ['b']],
      ],
    );
  });
});
