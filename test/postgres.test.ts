import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TableOutput } from '../src/domain/snapshot.ts';
import { cell, createHarness, fence, type Harness } from './support/harness.ts';
import { freshPostgresDatabase, postgresUnavailable } from './support/services.ts';

const unavailable = await postgresUnavailable();

describe('executor: SQL on PostgreSQL', { skip: unavailable ?? false }, () => {
  let h: Harness;
  let schema: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  before(async () => {
    schema = await freshPostgresDatabase();
    h = await createHarness({
      postgres: { warehouse: schema.url, down: 'postgres://postgres@127.0.0.1:1/none' },
    });
  });
  after(async () => {
    await h?.close();
    await schema?.drop();
  });

  const header = '---\nconnections: [warehouse]\ninputs:\n  region: { type: text, default: EMEA }\n---\n';

  it('runs statements with bound parameters and converts types exactly', async () => {
    const text =
      header +
      fence(
        'setup',
        "create table sales (id bigint, region text, amount numeric(20,2), day date, at timestamptz, tags text[], meta jsonb);\ninsert into sales values (9007199254740993, 'EMEA', 12345678901234567.89, '2024-02-29', '2024-01-01 12:00:00+02', '{a,b}', '{\"k\": 1}'), (2, 'AMER', 1.50, '2024-03-01', '2024-03-01 00:00:00Z', '{}', null)",
      ).replace('```setup', '```sql setup') +
      fence('sql rows', 'select * from sales where region = {{ region }} order by id') +
      fence(
        'js check',
        'const r = rows[0];\nreturn { id: r.id, idType: typeof r.id, amount: r.amount, day: r.day.toISOString(), at: r.at.toISOString(), tags: r.tags, meta: r.meta }',
      );
    const { snapshot } = await h.run(text);
    assert.equal(snapshot.status, 'succeeded', snapshot.message ?? '');
    const setup = cell(snapshot, 'setup').output as TableOutput;
    assert.equal(setup.rowsChanged, 2);
    const rows = cell(snapshot, 'rows').output as TableOutput;
    assert.deepEqual(
      rows.columns.map((c) => `${c.name}:${c.type}`),
      [
        'id:bigint',
        'region:text',
        'amount:numeric',
        'day:date',
        'at:timestamp with time zone',
        'tags:text[]',
        'meta:jsonb',
      ],
    );
    assert.deepEqual(rows.rows, [
      [
        '9007199254740993',
        'EMEA',
        '12345678901234567.89',
        '2024-02-29',
        '2024-01-01 10:00:00+00',
        '{a,b}',
        { k: 1 },
      ],
    ]);
    assert.deepEqual(cell(snapshot, 'check').output, {
      kind: 'value',
      value: {
        id: { $type: 'bigint', value: '9007199254740993' },
        idType: 'bigint',
        amount: '12345678901234567.89',
        day: '2024-02-29T00:00:00.000Z',
        at: '2024-01-01T10:00:00.000Z',
        tags: ['a', 'b'],
        meta: { k: 1 },
      },
    });
  });

  it('keeps an injection attempt a literal', async () => {
    const attack = "EMEA'; drop table sales; --";
    const text =
      header +
      fence(
        'sql probe',
        'select {{ region }}::text as echoed, count(*) as n from sales where region = {{ region }}',
      ) +
      fence('sql still', 'select count(*) as n from sales');
    const { snapshot } = await h.run(text, { inputs: { region: attack } });
    assert.equal(snapshot.status, 'succeeded', snapshot.message ?? '');
    assert.deepEqual((cell(snapshot, 'probe').output as TableOutput).rows, [[attack, '0']]);
    assert.deepEqual((cell(snapshot, 'still').output as TableOutput).rows, [['2']]);
  });

  it('lets code query the connection with almanac.query', async () => {
    const text =
      header +
      fence(
        'js q',
        "const rows = await almanac.query('select $1::int + 1 as n', [41], { connection: 'warehouse' });\nreturn rows[0].n",
      );
    const { snapshot } = await h.run(text);
    assert.deepEqual(cell(snapshot, 'q').output, { kind: 'value', value: 42 });
  });

  it('reports a PostgreSQL error with its line', async () => {
    const { snapshot } = await h.run(
      header + fence('sql bad', 'select 1;\nselect\n  id,\n  nope\nfrom sales'),
    );
    const bad = cell(snapshot, 'bad');
    assert.equal(bad.status, 'failed');
    assert.match(bad.error!.message, /column "nope" does not exist/);
    assert.equal(bad.error!.line, 10);
  });

  it('fails the cell with a clear message when the connection refuses', async () => {
    const { snapshot } = await h.run('---\nconnections: [down]\n---\n' + fence('sql a', 'select 1'));
    assert.equal(snapshot.status, 'failed');
    assert.match(
      cell(snapshot, 'a').error!.message,
      /cannot connect to connection 'down': .*ECONNREFUSED.*check that the server is running/,
    );
  });
});
