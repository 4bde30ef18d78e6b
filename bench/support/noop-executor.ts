/** An executor that returns a succeeded, empty snapshot at once: queue and scheduler benchmarks use it so
 * process start-up does not hide what they measure. */
import type { RunSnapshot } from '../../src/domain/snapshot.ts';
import type { RunRequest, RunResult } from '../../src/executor/executor.ts';

export const noopExecutor = {
  async run(request: RunRequest): Promise<RunResult> {
    const now = new Date().toISOString();
    const snapshot: RunSnapshot = {
      format: 1,
      runId: request.runId ?? '',
      title: 'noop',
      status: 'succeeded',
      reason: null,
      message: null,
      context: request.context ?? 'logic',
      scheduledFor: null,
      inputs: {},
      startedAt: now,
      finishedAt: now,
      cells: [],
    };
    return {
      snapshot,
      timings: { startMs: 0, executeMs: 0, totalMs: 0, warm: true },
      sqlResults: [],
      cacheHits: [],
    };
  },
};
