/**
 * CPU time of CLI commands, next to a bare `node -e ""` in the same run (issue 15: a fast CLI).
 *
 * Each command runs as a real child process; its CPU time (user + system) is the growth of this
 * process's cutime + cstime in /proc/self/stat once the child is reaped, so it counts the child's
 * work whatever the machine's load, and none of this process's. Rows: `--version`, `runs --help`,
 * `schedule list` and `runs` against a server started here (on a temp data dir, no worker).
 *
 * Run: npm run bench:cli [-- --runs 20]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { resolveConfig } from '../src/app/config.ts';
import { createServer } from '../src/app/create-server.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' } } });
const RUNS = Number(values.runs);
/** The installed executable (package.json `bin`). */
const MAIN = resolve('bin/almanac.js');
const ROOT = resolve('.');
/** Clock ticks per second of /proc's times (USER_HZ, 100 on Linux). */
const TICKS = 100;

/** CPU ms of this process's reaped children so far (cutime + cstime, fields 16 and 17). */
function childrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); cutime is field 16, cstime field 17.
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / TICKS;
}

function cpuOf(args: string[], env: Record<string, string>): Promise<number> {
  const before = childrenCpuMs();
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.once('error', fail);
    child.once('close', (code) => {
      if (code !== 0) fail(new Error(`${args.join(' ')} exited ${code}: ${stderr}`));
      else done(childrenCpuMs() - before);
    });
  });
}

function p50(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

const dir = mkdtempSync(join(tmpdir(), 'almanac-cli-bench-'));
const server = await createServer(
  resolveConfig(
    { dataDir: dir, port: 0 },
    { ALMANAC_LOG_LEVEL: 'silent', ALMANAC_SECRET_KEY: 'bench', ALMANAC_PREWARM: 'false' },
  ),
  { autostart: false },
);
try {
  await server.seed(join(ROOT, 'examples', 'sales', 'sales.md'));
  const env = { ALMANAC_URL: server.url!, ALMANAC_TOKEN: server.adminToken ?? '', NO_COLOR: '1' };
  const rows: [string, string[]][] = [
    ['node -e ""', ['-e', '']],
    ['almanac --version', [MAIN, '--version']],
    ['almanac runs --help', [MAIN, 'runs', '--help']],
    ['almanac schedule list sales', [MAIN, 'schedule', 'list', 'sales']],
    ['almanac runs', [MAIN, 'runs']],
  ];
  // Warm-up: file caches, and the CLI's compile cache, are hot for every row alike.
  for (const [, args] of rows) await cpuOf(args, env);
  const samples = new Map<string, number[]>(rows.map(([label]) => [label, []]));
  // Interleaved, so a change in the machine's load falls on every row alike.
  for (let i = 0; i < RUNS; i++) {
    for (const [label, args] of rows) samples.get(label)!.push(await cpuOf(args, env));
  }
  const floor = p50(samples.get('node -e ""')!);
  console.log(`CLI CPU time (user + sys of the child), p50 of ${RUNS} runs each, 10 ms resolution\n`);
  console.log(`${'command'.padEnd(30)}  ${'CPU ms p50'.padStart(10)}  ${'× node -e ""'.padStart(12)}`);
  for (const [label] of rows) {
    const ms = p50(samples.get(label)!);
    console.log(
      `${label.padEnd(30)}  ${ms.toFixed(0).padStart(10)}  ${(ms / floor).toFixed(2).padStart(12)}`,
    );
  }
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
