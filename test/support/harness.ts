/** A real executor on a temporary data dir: real DuckDB file, real child processes. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseNotebook } from '../../src/domain/notebook/parse-notebook.ts';
import type { RunSnapshot } from '../../src/domain/snapshot.ts';
import { Executor, type RunRequest, type RunResult } from '../../src/executor/executor.ts';
import type { SandboxIsolation } from '../../src/executor/sandbox.ts';
import { DuckDbEngine } from '../../src/executor/sql/duckdb-engine.ts';
import { PostgresEngine } from '../../src/executor/sql/postgres-engine.ts';
import type { SqlEngine } from '../../src/executor/sql/sql-engine.ts';

export interface Harness {
  root: string;
  projectDir: string;
  runRoot: string;
  executor: Executor;
  run(notebook: string, request?: Partial<Omit<RunRequest, 'notebook'>>): Promise<RunResult>;
  close(): Promise<void>;
}

export async function createHarness(
  options: {
    postgres?: Record<string, string>;
    prewarm?: boolean;
    files?: Record<string, string>;
    /** OS isolation; `root` is the data dir to hide. @default detected, hiding nothing */
    isolation?: (root: string) => SandboxIsolation;
    /** The executor's `blockPrivateNetworks` (ALMANAC_CELL_BLOCK_PRIVATE_NETWORKS). */
    blockPrivateNetworks?: boolean;
  } = {},
): Promise<Harness> {
  const root = mkdtempSync(join(tmpdir(), 'almanac-test-'));
  const projectDir = join(root, 'project');
  const runRoot = join(root, 'runs');
  mkdirSync(projectDir, { recursive: true });
  mkdirSync(runRoot, { recursive: true });
  for (const [name, content] of Object.entries(options.files ?? {})) {
    mkdirSync(join(projectDir, name, '..'), { recursive: true });
    writeFileSync(join(projectDir, name), content);
  }
  const connections = new Map<string, SqlEngine>();
  connections.set(
    'duckdb',
    await DuckDbEngine.open({ path: join(root, 'workspace.duckdb'), allowedDirectories: [projectDir] }),
  );
  for (const [id, url] of Object.entries(options.postgres ?? {})) {
    connections.set(id, new PostgresEngine({ id, connectionString: url }));
  }
  const executor = new Executor({
    connections,
    runRoot,
    prewarm: options.prewarm ?? false,
    ...(options.blockPrivateNetworks ? { blockPrivateNetworks: true } : {}),
    ...(options.isolation ? { isolation: options.isolation(root) } : {}),
  });
  return {
    root,
    projectDir,
    runRoot,
    executor,
    async run(text, request = {}) {
      const notebook = await parseNotebook(text);
      return executor.run({ projectDir, ...request, notebook });
    },
    async close() {
      await executor.close();
      for (const engine of connections.values()) await engine.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export function cell(snapshot: RunSnapshot, name: string) {
  const found = snapshot.cells.find((c) => c.name === name);
  if (!found) throw new Error(`no cell '${name}' in snapshot`);
  return found;
}

export function fence(lang: string, body: string): string {
  return `\`\`\`${lang}\n${body}\n\`\`\`\n`;
}
