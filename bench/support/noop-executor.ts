/** An executor that returns a succeeded, empty snapshot at once: queue and scheduler benchmarks use it so
 * process start-up does not hide what they measure. */
import type { RunRequest, RunResult } from '../../src/executor/executor.ts';
import { noopResult } from '../../test/support/noop-result.ts';

export const noopExecutor = {
  async run(request: RunRequest): Promise<RunResult> {
    return noopResult(request);
  },
};
