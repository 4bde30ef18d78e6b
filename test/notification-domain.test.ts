/**
 * Notification rules, pure parts: validation messages, every trigger kind over run sequences (streaks,
 * recovery, conditions with changed-only), templates and CSV attachments.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  buildMessage,
  type MessageFacts,
  renderTemplate,
  tableCsv,
} from '../src/domain/notification/message.ts';
import { decide, type NotifyTrigger, validateRule } from '../src/domain/notification/rule.ts';
import type { RunStatus } from '../src/domain/run.ts';
import type { RunSnapshot, TableOutput } from '../src/domain/snapshot.ts';

const table: TableOutput = {
  kind: 'table',
  columns: [
    { name: 'region', type: 'VARCHAR' },
    { name: 'note', type: 'VARCHAR' },
  ],
  rows: [
    ['EMEA', 'a, "quoted" note'],
    ['APAC', null],
  ],
  totalRows: 2,
  truncated: false,
};

function snapshot(total: number): RunSnapshot {
  const cell = (name: string, output: RunSnapshot['cells'][number]['output']) => ({
    name,
    kind: 'js' as const,
    status: 'succeeded' as const,
    startedAt: null,
    durationMs: 1,
    output,
    logs: [],
    error: null,
  });
  return {
    format: 1,
    runId: 'r1',
    title: 'Sales',
    status: 'succeeded',
    reason: null,
    message: null,
    context: 'scheduled',
    scheduledFor: null,
    inputs: { region: 'EMEA' },
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:00:01.000Z',
    cells: [cell('total', { kind: 'value', value: total }), cell('top', table)],
  };
}

/** Replays a sequence of run outcomes through a trigger and returns which runs notified. */
function replay(trigger: NotifyTrigger, statuses: RunStatus[]): number[] {
  const notified: number[] = [];
  const history: RunStatus[] = [];
  statuses.forEach((status, i) => {
    if (decide(trigger, status, null, history).notify) notified.push(i);
    history.unshift(status);
  });
  return notified;
}

describe('notification rule validation', () => {
  it('names the field and the rule', () => {
    assert.throws(() => validateRule({ destinations: [] }), /rule\.destinations: has no recipients/);
    assert.throws(
      () =>
        validateRule({
          trigger: { kind: 'sometimes' },
          destinations: [{ kind: 'webhook', url: 'https://x' }],
        }),
      /rule\.trigger\.kind: must be one of success, failure, all, recovery, failure_streak, condition/,
    );
    assert.throws(
      () =>
        validateRule({
          trigger: { kind: 'failure_streak', count: 0 },
          destinations: [{ kind: 'webhook', url: 'https://x' }],
        }),
      /rule\.trigger\.count: must be a whole number/,
    );
    assert.throws(
      () => validateRule({ destinations: [{ kind: 'webhook', url: 'ftp://x' }] }),
      /rule\.destinations\[0\]\.url: must be an http or https URL/,
    );
    assert.throws(
      () => validateRule({ destinations: [{ kind: 'slack_channel', channel: '#no spaces' }] }),
      /rule\.destinations\[0\]\.channel: 'no spaces' is not a Slack channel/,
    );
    assert.throws(
      () =>
        validateRule({
          trigger: {
            kind: 'condition',
            condition: { cell: 'top', measure: 'row_count', op: 'gt', value: 'x' },
          },
          destinations: [{ kind: 'webhook', url: 'https://x' }],
        }),
      /condition\.value: must be a number to compare a row count with/,
    );
    assert.throws(
      () =>
        validateRule({
          destinations: [{ kind: 'webhook', url: 'https://x' }],
          content: { screenshot: 'gif' },
        }),
      /rule\.content\.screenshot: must be png, pdf or null/,
    );
  });

  it('fills defaults: failure trigger, preference delivery, no screenshot', () => {
    const rule = validateRule({
      destinations: [
        { kind: 'user', userId: 'u1' },
        { kind: 'slack_channel', channel: '#ops' },
      ],
    });
    assert.deepEqual(rule.trigger, { kind: 'failure' });
    assert.deepEqual(rule.destinations, [
      { kind: 'user', userId: 'u1', via: 'preference' },
      { kind: 'slack_channel', channel: 'ops' },
    ]);
    assert.equal(rule.content.screenshot, null);
    assert.equal(rule.enabled, true);
  });
});

describe('notification triggers over run sequences', () => {
  const seq: RunStatus[] = [
    'succeeded',
    'failed',
    'failed',
    'timed_out',
    'failed',
    'succeeded',
    'succeeded',
    'failed',
    'succeeded',
  ];

  it('success, failure and all', () => {
    assert.deepEqual(replay({ kind: 'success' }, seq), [0, 5, 6, 8]);
    assert.deepEqual(replay({ kind: 'failure' }, seq), [1, 2, 3, 4, 7]);
    assert.deepEqual(replay({ kind: 'all' }, seq), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(replay({ kind: 'all' }, ['cancelled', 'succeeded']), [1], 'a cancel notifies nobody');
  });

  it('recovery: the first success after failures', () => {
    assert.deepEqual(replay({ kind: 'recovery' }, seq), [5, 8]);
  });

  it('failure_streak: once at N in a row, then once at recovery', () => {
    assert.deepEqual(replay({ kind: 'failure_streak', count: 3 }, seq), [3, 5]);
    assert.deepEqual(replay({ kind: 'failure_streak', count: 1 }, seq), [1, 5, 7, 8]);
    assert.deepEqual(replay({ kind: 'failure_streak', count: 5 }, seq), [], 'a streak of 4 never reaches 5');
  });

  it('condition on a value and on a row count, with changed-only', () => {
    const over = (v: number) =>
      decide(
        {
          kind: 'condition',
          condition: { cell: 'total', measure: 'value', op: 'gt', value: 100, changedOnly: true },
        },
        'succeeded',
        snapshot(v),
        [],
        150,
      );
    assert.equal(over(150).notify, false, 'unchanged since the last success');
    assert.match(over(150).because, /has not changed/);
    assert.equal(over(151).notify, true);
    assert.equal(over(151).measured, 151);
    assert.equal(over(99).notify, false);
    const rows = decide(
      {
        kind: 'condition',
        condition: { cell: 'top', measure: 'row_count', op: 'eq', value: 2, changedOnly: false },
      },
      'succeeded',
      snapshot(1),
      [],
    );
    assert.equal(rows.notify, true);
    const wrong = decide(
      {
        kind: 'condition',
        condition: { cell: 'total', measure: 'row_count', op: 'eq', value: 2, changedOnly: false },
      },
      'succeeded',
      snapshot(1),
      [],
    );
    assert.deepEqual([wrong.notify, wrong.because], [false, "cell 'total' is not a table"]);
    assert.equal(
      decide(
        {
          kind: 'condition',
          condition: { cell: 'total', measure: 'value', op: 'gt', value: 0, changedOnly: false },
        },
        'failed',
        null,
        [],
      ).notify,
      false,
      'conditions only apply to successful runs',
    );
  });
});

describe('notification messages', () => {
  const facts: MessageFacts = {
    appTitle: 'Sales',
    appSlug: 'sales',
    runUrl: 'http://localhost:3100/apps/sales/runs/r1',
    runId: 'r1',
    status: 'failed',
    trigger: 'schedule',
    scheduleName: 'nightly',
    scheduledFor: new Date('2026-01-01T00:00:00Z'),
    finishedAt: new Date('2026-01-01T00:00:01Z'),
    errorCell: 'top',
    errorMessage: 'Binder Error: column x not found',
    snapshot: snapshot(42),
  };

  it('renders templates over run fields and cell values; unknown paths are empty', () => {
    const lookup = (p: string) => ({ 'cells.total': 42, 'run.status': 'failed' })[p];
    assert.equal(
      renderTemplate('{{ run.status }}: total {{cells.total}}{{nope}}', lookup),
      'failed: total 42',
    );
    const message = buildMessage(
      facts,
      {
        subject: '{{app.title}} {{run.status}} ({{cells.total}}, {{inputs.region}})',
        body: null,
        screenshot: null,
        csvCells: ['top', 'total'],
      },
      'the run failed',
    );
    assert.equal(message.subject, 'Sales failed (42, EMEA)');
    assert.match(message.text, /Failing cell: top\nError: Binder Error: column x not found/);
    assert.match(
      message.text,
      /^The run of Sales \(scheduled for 2026-01-01T00:00:00.000Z\) failed\.\n/,
      'no reason that repeats the status',
    );
    const streak = buildMessage(
      facts,
      { subject: null, body: null, screenshot: null, csvCells: [] },
      '3 failure(s) in a row (the rule notifies at 3)',
    );
    assert.match(streak.text, /failed: 3 failure\(s\) in a row \(the rule notifies at 3\)\./);
    assert.match(message.text, /http:\/\/localhost:3100\/apps\/sales\/runs\/r1/);
    assert.deepEqual(
      message.attachments.map((a) => a.filename),
      ['top.csv'],
      'only table cells become CSV files',
    );
  });

  it('writes RFC 4180 CSV', () => {
    assert.equal(tableCsv(table), 'region,note\r\nEMEA,"a, ""quoted"" note"\r\nAPAC,\r\n');
    // CSV injection: text a spreadsheet would run as a formula is quoted with a leading ', numbers are not.
    const formulas: TableOutput = {
      kind: 'table',
      columns: [
        { name: 'note', type: 'VARCHAR' },
        { name: 'delta', type: 'BIGINT' },
      ],
      rows: [
        ['=HYPERLINK("http://evil.example","x")', '-5'],
        ['@SUM(1)', -2],
        ['-2+3', '7'],
      ],
      totalRows: 3,
      truncated: false,
    };
    assert.equal(
      tableCsv(formulas),
      `note,delta\r\n"'=HYPERLINK(""http://evil.example"",""x"")",-5\r\n'@SUM(1),-2\r\n'-2+3,7\r\n`,
    );
  });
});
