/**
 * The worker on its own, with an executor the test controls, on both stores (issue 15, bug 12): slots
 * freed together are refilled by one claim; a stopping worker hands its runs back without using an
 * attempt; a cancel reaches the executor saying who cancelled.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openServices } from '../src/app/open-services.ts';
import type { RunCancellation, RunRequest, RunResult } from '../src/executor/executor.ts';
import { Worker } from '../src/executor/worker.ts';
import { createMetrics } from '../src/services/metrics.ts';
import * as projects from '../src/services/project-service.ts';
import * as runs from '../src/services/run-service.ts';
import type { Principal } from '../src/services/service-context.ts';
import { bootstrap } from '../src/services/workspace-service.ts';
import { noopResult } from './support/noop-result.ts';
import { testStores } from './support/server-harness.ts';
import { until } from './support/until.ts';

/** An executor whose runs end when the test says so. */
function gatedExecutor() {
  const waiting: (() => void)[] = [];
  const gate = {
    waiting,
    open: false,
    /** The requests the executor was given, in order. */
    requests: [] as RunRequest[],
    /** Lets every run through, now and from now on (so a failed test still ends). */
    release() {
      gate.open = true;
      for (const release of waiting.splice(0)) release();
    },
    executor: {
      async run(request: RunRequest): Promise<RunResult> {
        gate.requests.push(request);
        if (!gate.open) {
          await new Promise<void>((release) => {
            waiting.push(release);
            // A stopped run ends as the real executor ends it: cancelled, when its signal aborts.
            request.signal?.addEventListener('abort', () => release());
          });
        }
        const result = noopResult(request);
        if (request.signal?.aborted) {
          result.snapshot = {
            ...result.snapshot,
            status: 'cancelled',
            reason: 'cancelled',
            message: 'stopped',
          };
        }
        return result;
      },
    },
  };
  return gate;
}

for (const store of await testStores()) {
  describe(`worker on ${store.name}`, { skip: store.skip }, () => {
    let dir: string;
    let drop: () => Promise<void>;
    let services: Awaited<ReturnType<typeof openServices>>;
    let principal: Principal;
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'almanac-worker-'));
      const location = await store.location(dir);
      drop = location.drop;
      services = await openServices(location.url, { secretKey: () => Buffer.alloc(32) });
      await bootstrap(services.ctx);
      const row = await services.ctx.db
        .selectFrom('users')
        .select(['id', 'workspace_id'])
        .executeTakeFirstOrThrow();
      principal = { userId: row.id, workspaceId: row.workspace_id, role: 'admin', name: 'Ada Lovelace' };
      await projects.createProject(services.ctx, principal, {
        source: '# Gated\n\n```js one\nreturn 1\n```\n',
        slug: 'gated',
      });
    });
    after(async () => {
      await services?.close();
      await drop?.();
      rmSync(dir, { recursive: true, force: true });
    });
    /** Waits until nothing is queued or running (a test leaves the queue empty for the next). */
    const settled = () =>
      until('the queue to settle', async () =>
        (await runs.listRuns(services.ctx, principal, {})).runs.every(
          (r) => r.status !== 'queued' && r.status !== 'running',
        ),
      );

    it('refills the slots a batch of completions frees with one claim', async () => {
      const gate = gatedExecutor();
      const metrics = createMetrics(services.ctx);
      const worker = new Worker({
        ctx: services.ctx,
        executor: gate.executor,
        versionsDir: join(dir, 'versions'),
        concurrency: 4,
        metrics,
      });
      const claims = async () =>
        (await metrics.claimQuery.get()).values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
      await projects.publish(services.ctx, principal, 'gated'); // its publish run is the first of nine
      for (let i = 0; i < 8; i++) {
        await runs.enqueueRun(services.ctx, principal, 'gated', { trigger: 'api', context: 'api-triggered' });
      }
      worker.start();
      try {
        await until('four runs to start', () => gate.waiting.length === 4);
        const before = await claims();
        // The four end together, so their completions are stored in one batch and free four slots at once.
        for (const release of gate.waiting.splice(0)) release();
        await until('the next four to start', () => gate.waiting.length === 4);
        assert.equal(worker.activeRunIds.length, 4);
        assert.equal((await claims()) - before, 1, 'one claim statement for the four freed slots');
        for (const release of gate.waiting.splice(0)) release();
        await until('the last run to start', () => gate.waiting.length === 1);
        gate.waiting.pop()!();
        await until('every run to finish', async () =>
          (await runs.listRuns(services.ctx, principal, {})).runs.every((r) => r.status === 'succeeded'),
        );
      } finally {
        gate.release();
        await worker.stop(1000);
      }
    });

    // Guards issue 15 (the fencing token gets its own column): a graceful release raised max_attempts to
    // give the attempt back, because `attempts` was the fencing token and could not go back.
    it('a stopping worker hands its run back without using an attempt; the claim epoch keeps growing', async () => {
      const gate = gatedExecutor();
      const worker = new Worker({
        ctx: services.ctx,
        executor: gate.executor,
        versionsDir: join(dir, 'versions'),
      });
      const run = await runs.enqueueRun(services.ctx, principal, 'gated', {
        trigger: 'api',
        context: 'api-triggered',
      });
      try {
        await worker.tick();
        await until('the run to start', () => gate.waiting.length === 1);
        const held = (await runs.getRun(services.ctx, principal, run.id)).run;
        assert.deepEqual([held.status, held.attempts, held.claimEpoch], ['running', 1, 1]);
        await worker.stop(0); // no grace: the run is stopped and handed back
        const back = (await runs.getRun(services.ctx, principal, run.id)).run;
        assert.deepEqual(
          [back.status, back.attempts, back.claimEpoch, back.maxAttempts, back.worker],
          ['queued', 0, 1, run.maxAttempts, null],
        );
      } finally {
        gate.release();
      }
      const next = new Worker({
        ctx: services.ctx,
        executor: gate.executor,
        versionsDir: join(dir, 'versions'),
      });
      await next.drain();
      const done = (await runs.getRun(services.ctx, principal, run.id)).run;
      assert.deepEqual([done.status, done.attempts, done.claimEpoch], ['succeeded', 1, 2]);
      await next.stop(0);
      await settled();
    });

    // Guards issue 15, bug 10 at the worker: the cancel reached the executor as a bare abort, so nothing
    // downstream could say who cancelled.
    it('a cancel reaches the executor saying who cancelled', async () => {
      const gate = gatedExecutor();
      const worker = new Worker({
        ctx: services.ctx,
        executor: gate.executor,
        versionsDir: join(dir, 'versions'),
      });
      const run = await runs.enqueueRun(services.ctx, principal, 'gated', {
        trigger: 'api',
        context: 'api-triggered',
      });
      try {
        const draining = worker.drain();
        await until('the run to start', () => gate.waiting.length === 1);
        await runs.cancelRun(services.ctx, principal, run.id);
        await draining;
        const request = gate.requests.find((r) => r.runId === run.id)!;
        assert.equal(request.signal?.aborted, true);
        assert.deepEqual(request.signal?.reason as RunCancellation, {
          kind: 'cancelled',
          by: 'Ada Lovelace',
        });
        const ended = (await runs.getRun(services.ctx, principal, run.id)).run;
        assert.deepEqual([ended.status, ended.cancelledBy], ['cancelled', 'Ada Lovelace']);
      } finally {
        gate.release();
        await worker.stop(0);
      }
    });
  });
}
