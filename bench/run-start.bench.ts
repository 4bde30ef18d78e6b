/**
 * End-to-end time of a trivial notebook run, split into process start and cell execution, printed
 * next to the floor: spawning a bare `node -e ""` on the same machine in the same run.
 *
 * Rows:
 * - floor: `node -e ""`, spawn to exit;
 * - floor + permission model: the same with `--permission` and the sandbox's flags;
 * - cold run: a new sandboxed child per run, started when the run is requested;
 * - warm run: the child for the next run is started while the executor is idle (the default);
 * - warm, back to back: runs with no idle time between them, so the next child may still be starting.
 *
 * Run: npm run bench [-- --runs 50]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { parseNotebook } from '../src/domain/notebook/parse-notebook.ts';
import { Executor } from '../src/executor/executor.ts';
import { DuckDbEngine } from '../src/executor/sql/duckdb-engine.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '50' } } });
const RUNS = Number(values.runs);

function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return { median: at(0.5), p95: at(0.95) };
}

function spawnOnce(args: string[]): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', () => resolve(performance.now() - t0));
  });
}

const root = mkdtempSync(join(tmpdir(), 'almanac-bench-'));
const projectDir = join(root, 'project');
mkdirSync(projectDir);
const duckdb = await DuckDbEngine.open({
  path: join(root, 'bench.duckdb'),
  allowedDirectories: [projectDir],
});
const notebook = await parseNotebook('# Trivial\n\n```js one\nreturn 1\n```\n');

type Row = { label: string; total: number[]; start?: number[]; execute?: number[] };
const rows: Row[] = [];

// Warm-up so file caches are hot for every row alike.
for (let i = 0; i < 3; i++) await spawnOnce(['-e', '']);

const floor: number[] = [];
for (let i = 0; i < RUNS; i++) floor.push(await spawnOnce(['-e', '']));
rows.push({ label: 'floor: node -e ""', total: floor });

const permissionFloor: number[] = [];
for (let i = 0; i < RUNS; i++) {
  permissionFloor.push(
    await spawnOnce(['--permission', `--allow-fs-read=${projectDir}`, `--allow-fs-write=${root}`, '-e', '']),
  );
}
rows.push({ label: 'floor: node --permission -e ""', total: permissionFloor });

async function measure(label: string, prewarm: boolean, idleMs: number): Promise<void> {
  const runRoot = join(root, `runs-${rows.length}`);
  mkdirSync(runRoot);
  const executor = new Executor({ connections: new Map([['duckdb', duckdb]]), runRoot, prewarm });
  executor.prepare(projectDir);
  await sleep(idleMs || 200);
  const row: Row = { label, total: [], start: [], execute: [] };
  for (let i = 0; i < RUNS + 2; i++) {
    const { snapshot, timings } = await executor.run({ notebook, projectDir });
    if (snapshot.status !== 'succeeded') throw new Error(`benchmark run failed: ${snapshot.message}`);
    if (i >= 2) {
      row.total.push(timings.totalMs);
      row.start!.push(timings.startMs);
      row.execute!.push(timings.executeMs);
    }
    if (idleMs) await sleep(idleMs);
  }
  await executor.close();
  rows.push(row);
}

await measure('cold run (spawn per run)', false, 0);
await measure('warm run (next child pre-spawned while idle)', true, 150);
await measure('warm, back to back (no idle time)', true, 0);

await duckdb.close();
rmSync(root, { recursive: true, force: true });

const fmt = (n: number | undefined) => (n === undefined ? '' : `${n.toFixed(1)}`);
console.log(
  `\nTrivial notebook run, ${RUNS} runs each, milliseconds (Node ${process.version}, ${process.platform}/${process.arch})\n`,
);
const header = ['', 'total median', 'total p95', 'start median', 'start p95', 'cells median', 'cells p95'];
const table = rows.map((r) => {
  const t = stats(r.total);
  const s = r.start ? stats(r.start) : undefined;
  const e = r.execute ? stats(r.execute) : undefined;
  return [r.label, fmt(t.median), fmt(t.p95), fmt(s?.median), fmt(s?.p95), fmt(e?.median), fmt(e?.p95)];
});
const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
const line = (cells: string[]) =>
  cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
console.log(line(header));
console.log(widths.map((w) => '─'.repeat(w)).join('  '));
for (const r of table) console.log(line(r));
const floorMedian = stats(floor).median;
const warmMedian = stats(rows.find((r) => r.label.startsWith('warm run'))!.total).median;
const coldMedian = stats(rows.find((r) => r.label.startsWith('cold'))!.total).median;
console.log(
  `\nwarm run median is ${(warmMedian / floorMedian).toFixed(2)}× the bare-spawn floor; cold run median is ${(coldMedian / floorMedian).toFixed(2)}×.`,
);
console.log(
  'start = request until the child is ready for cells; cells = sending the cells until the last result.',
);
