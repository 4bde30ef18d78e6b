/**
 * The run lifecycle table (src/domain/run-lifecycle.ts): every legal transition passes, every other
 * (from, to) pair is refused, and the table agrees with the run's final statuses and with newRun().
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_MAX_ATTEMPTS, FINAL_STATUSES, RUN_STATUSES, type RunStatus } from '../src/domain/run.ts';
import {
  assertExhaustive,
  assertInitial,
  assertTransition,
  canTransition,
  fromStatesOf,
  IllegalTransitionError,
  INITIAL_STATUSES,
  newRun,
  RUN_TRANSITIONS,
  terminalStatuses,
  toStatesOf,
} from '../src/domain/run-lifecycle.ts';

/** The lifecycle as docs/run-lifecycle.md draws it, written out independently of the table. */
const LEGAL: [RunStatus, RunStatus, string][] = [
  ['queued', 'running', 'claim'],
  ['queued', 'cancelled', 'cancel_queued'],
  ['running', 'succeeded', 'finish'],
  ['running', 'failed', 'finish'],
  ['running', 'timed_out', 'finish'],
  ['running', 'cancelled', 'finish'],
  ['running', 'queued', 'requeue'],
  ['running', 'queued', 'release'],
  ['running', 'failed', 'worker_lost'],
];

describe('run lifecycle', () => {
  it('allows every legal transition, by the event that makes it', () => {
    for (const [from, to, event] of LEGAL) {
      assert.equal(canTransition(from, to), true, `${from} → ${to}`);
      assert.equal(assertTransition(from, to), from, 'returns the guard for WHERE status = …');
      assert.equal(assertTransition(from, to, event as never), from, `${from} → ${to} by ${event}`);
    }
    assert.deepEqual(
      RUN_TRANSITIONS.map((t) => [t.from, t.to, t.event]),
      LEGAL,
      'the table has exactly these transitions',
    );
  });

  it('refuses every other (from, to) pair, naming both ends', () => {
    let refused = 0;
    for (const from of RUN_STATUSES) {
      for (const to of RUN_STATUSES) {
        if (LEGAL.some(([f, t]) => f === from && t === to)) continue;
        refused++;
        assert.equal(canTransition(from, to), false, `${from} → ${to}`);
        assert.throws(
          () => assertTransition(from, to),
          (error: Error) =>
            error instanceof IllegalTransitionError &&
            error.code === 'illegal_transition' &&
            error.from === from &&
            error.to === to &&
            error.message.includes(`'${from}' to '${to}'`),
        );
      }
    }
    assert.equal(refused, RUN_STATUSES.length ** 2 - 7, 'seven distinct legal pairs');
  });

  it('refuses a legal pair made by the wrong event', () => {
    assert.throws(() => assertTransition('running', 'queued', 'claim'), IllegalTransitionError);
    assert.throws(() => assertTransition('running', 'succeeded', 'worker_lost'), IllegalTransitionError);
    assert.throws(() => assertTransition('queued', 'cancelled', 'finish'), IllegalTransitionError);
  });

  it('final statuses have no way out, and a message says so', () => {
    assert.deepEqual(terminalStatuses().sort(), [...FINAL_STATUSES].sort());
    for (const status of FINAL_STATUSES) assert.deepEqual(toStatesOf(status), []);
    assert.throws(() => assertTransition('succeeded', 'queued'), /'succeeded' is final/);
    assert.throws(
      () => assertTransition('queued', 'succeeded'),
      /from 'queued' a run may go to running, cancelled/,
    );
  });

  it('every status is a start or reachable from one', () => {
    assert.deepEqual([...INITIAL_STATUSES], ['queued', 'skipped']);
    for (const status of RUN_STATUSES) {
      const reachable =
        (INITIAL_STATUSES as readonly RunStatus[]).includes(status) || fromStatesOf(status).length > 0;
      assert.ok(reachable, status);
    }
    assert.deepEqual(fromStatesOf('queued'), ['running']);
    assert.deepEqual(fromStatesOf('cancelled'), ['queued', 'running']);
    assert.deepEqual(fromStatesOf('skipped'), []);
  });

  it('a run is created queued or skipped, never in another status', () => {
    assert.equal(assertInitial('queued'), 'queued');
    assert.equal(assertInitial('skipped'), 'skipped');
    for (const status of RUN_STATUSES.filter((s) => s !== 'queued' && s !== 'skipped')) {
      assert.throws(() => assertInitial(status), /cannot be created as/);
    }
  });

  it('newRun() fills the defaults once, and an option passed as undefined keeps its default', () => {
    const at = new Date('2026-03-01T09:00:00Z');
    const run = newRun({
      workspaceId: 'w',
      projectId: 'p',
      versionId: 'v',
      trigger: 'api',
      context: 'api-triggered',
      inputs: {},
      createdBy: null,
      createdAt: at,
      maxAttempts: undefined,
      private: undefined,
    });
    assert.match(run.id, /^[0-9a-f-]{36}$/);
    assert.equal(run.maxAttempts, DEFAULT_MAX_ATTEMPTS);
    assert.equal(run.private, false);
    assert.equal(run.scheduledFor, null);
    assert.equal(run.expiresAt, null);
    assert.equal(newRun({ ...run, maxAttempts: 5 }).maxAttempts, 5);
    assert.notEqual(newRun({ ...run, id: undefined }).id, run.id);
  });

  it('assertExhaustive throws on a value its switch did not expect', () => {
    assert.throws(() => assertExhaustive('odd' as never, 'run status'), /unexpected run status: "odd"/);
  });
});
