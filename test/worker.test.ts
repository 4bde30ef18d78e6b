/**
 * The worker's claim loop on its own (SQLite, an executor the test controls): slots freed together are
 * refilled by one claim.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openServices } from '../src/app/open-services.ts';
import type { RunRequest, RunResult } from '../src/executor/executor.ts';
import { Worker } from '../src/executor/worker.ts';
import { createMetrics } from '../src/services/metrics.ts';
import * as projects from '../src/services/project-service.ts';
import * as runs from '../src/services/run-service.ts';
import type { Principal } from '../src/services/service-context.ts';
import { bootstrap } from '../src/services/workspace-service.ts';
import { noopResult } from './support/noop-result.ts';
import { until } from './support/until.ts';

/** An executor whose runs end when the test says so. */
function gatedExecutor() {
  const waiting: (() => void)[] = [];
  const gate = {
    waiting,
    open: false,
    /** Lets every run through, now and from now on (so a failed test still ends). */
    release() {
      gate.open = true;
      for (const release of waiting.splice(0)) release();
    },
    executor: {
      async run(request: RunRequest): Promise<RunResult> {
        if (!gate.open) await new Promise<void>((release) => waiting.push(release));
        return noopResult(request);
      },
    },
  };
  return gate;
}

describe('worker: claims', () => {
  let dir: string;
  let services: Awaited<ReturnType<typeof openServices>>;
  let principal: Principal;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'almanac-worker-'));
    services = await openServices(join(dir, 'almanac.sqlite'), { secretKey: () => Buffer.alloc(32) });
    await bootstrap(services.ctx);
    const row = await services.ctx.db
      .selectFrom('users')
      .select(['id', 'workspace_id'])
      .executeTakeFirstOrThrow();
    principal = { userId: row.id, workspaceId: row.workspace_id, role: 'admin', name: 'test' };
    await projects.createProject(services.ctx, principal, {
      source: '# Gated\n\n```js one\nreturn 1\n```\n',
      slug: 'gated',
    });
  });
  after(async () => {
    await services.close();
    rmSync(dir, { recursive: true, force: true });
  });

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
});
