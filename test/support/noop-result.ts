/** The result of a run that did nothing and succeeded: for executors stubbed in tests and benchmarks. */
import type { RunSnapshot } from '../../src/domain/snapshot.ts';
import type { RunRequest, RunResult } from '../../src/executor/executor.ts';

export function noopResult(request: RunRequest): RunResult {
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
}
