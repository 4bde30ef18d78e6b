/**
 * Starting the sandboxed child: a fresh Node process under the permission model, whose only writable
 * place is a new run directory, with a minimal environment and a V8 heap cap. A `SandboxPool` keeps the
 * next child started ahead of time, so a run does not wait for a cold start.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Almanac's package root (holds package.json and node_modules). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CHILD_ENTRY = join(PACKAGE_ROOT, 'src/executor/child/runtime.ts');

export interface SandboxSpec {
  /** Parent of run directories. */
  runRoot: string;
  /** The project folder: readable by the child (data files, local modules). */
  projectDir: string;
  /** V8 heap cap for the child, in MiB. */
  memoryLimitMb: number;
}

export interface Sandbox {
  readonly child: ChildProcess;
  readonly runDir: string;
  readonly spec: SandboxSpec;
  /** Resolves when the child has loaded its runtime and waits for a run. */
  readonly ready: Promise<void>;
  readonly spawnedAt: number;
  /** Output the child wrote to its real stdout/stderr (its console is captured separately). */
  stderrTail: string;
  /** Kills the child (if alive) and removes the run directory. Safe to call twice. */
  dispose(): Promise<void>;
}

export function spawnSandbox(spec: SandboxSpec): Sandbox {
  const runDir = join(spec.runRoot, `run-${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`);
  mkdirSync(join(runDir, 'tmp'), { recursive: true });
  const projectDir = resolve(spec.projectDir);
  const readable = [
    join(PACKAGE_ROOT, 'src/executor/child'),
    join(PACKAGE_ROOT, 'src/domain'),
    join(PACKAGE_ROOT, 'package.json'),
    join(PACKAGE_ROOT, 'node_modules'),
    projectDir,
    runDir,
  ];
  const execArgv = [
    '--permission',
    ...readable.map((path) => `--allow-fs-read=${path}`),
    `--allow-fs-write=${runDir}`,
    `--max-old-space-size=${spec.memoryLimitMb}`,
    '--disable-warning=ExperimentalWarning',
    '--stack-trace-limit=30',
  ];
  const spawnedAt = performance.now();
  const child = fork(CHILD_ENTRY, [], {
    cwd: runDir,
    execArgv,
    execPath: process.execPath,
    // A minimal environment: no server secrets, database URLs or keys reach user code.
    env: {
      PATH: '/usr/local/bin:/usr/bin:/bin',
      LANG: 'C.UTF-8',
      TZ: 'UTC',
      HOME: runDir,
      TMPDIR: join(runDir, 'tmp'),
    },
    serialization: 'advanced',
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let disposed: Promise<void> | null = null;
  const exited = new Promise<void>((resolveExit) => {
    if (child.exitCode !== null || child.signalCode !== null) resolveExit();
    child.once('exit', () => resolveExit());
    child.once('error', () => resolveExit());
  });
  const sandbox: Sandbox = {
    child,
    runDir,
    spec,
    spawnedAt,
    stderrTail: '',
    ready: new Promise<void>((resolveReady, reject) => {
      const onMessage = (message: { type?: string }) => {
        if (message?.type === 'ready') {
          child.off('message', onMessage);
          resolveReady();
        }
      };
      child.on('message', onMessage);
      child.once('exit', (code, signal) =>
        reject(
          new Error(
            `the run process exited before it was ready (${signal ?? `code ${code}`}): ${sandbox.stderrTail.trim()}`,
          ),
        ),
      );
      child.once('error', reject);
    }),
    dispose() {
      disposed ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await exited;
        rmSync(runDir, { recursive: true, force: true });
      })();
      return disposed;
    },
  };
  sandbox.ready.catch(() => {});
  const keepTail = (chunk: Buffer) => {
    sandbox.stderrTail = (sandbox.stderrTail + chunk.toString('utf8')).slice(-8192);
  };
  child.stdout?.on('data', keepTail);
  child.stderr?.on('data', keepTail);
  return sandbox;
}

/**
 * Keeps one started child per (project folder, memory cap), started while the executor is idle. A run
 * takes the warm child if one matches, and the pool starts its replacement when the run ends.
 */
export class SandboxPool {
  readonly #warm = new Map<string, Sandbox>();
  readonly #maxWarm: number;
  #closed = false;

  constructor(options: { maxWarm?: number } = {}) {
    this.#maxWarm = options.maxWarm ?? 4;
  }

  /** Takes a warm child for `spec`, or starts a cold one. `warm` says which. */
  acquire(spec: SandboxSpec): { sandbox: Sandbox; warm: boolean } {
    const key = keyOf(spec);
    const warm = this.#warm.get(key);
    if (warm) {
      this.#warm.delete(key);
      if (warm.child.exitCode === null && warm.child.signalCode === null)
        return { sandbox: warm, warm: true };
      void warm.dispose();
    }
    return { sandbox: spawnSandbox(spec), warm: false };
  }

  /** Starts a child for `spec` ahead of the next run, unless one is already waiting. */
  prewarm(spec: SandboxSpec): void {
    if (this.#closed) return;
    const key = keyOf(spec);
    if (this.#warm.has(key)) return;
    if (this.#warm.size >= this.#maxWarm) {
      const [oldestKey, oldest] = this.#warm.entries().next().value as [string, Sandbox];
      this.#warm.delete(oldestKey);
      void oldest.dispose();
    }
    const sandbox = spawnSandbox(spec);
    sandbox.child.once('exit', () => {
      if (this.#warm.get(key) === sandbox) this.#warm.delete(key);
      void sandbox.dispose();
    });
    this.#warm.set(key, sandbox);
  }

  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#warm.values()];
    this.#warm.clear();
    await Promise.all(all.map((s) => s.dispose()));
  }
}

function keyOf(spec: SandboxSpec): string {
  return `${resolve(spec.runRoot)}\u0000${resolve(spec.projectDir)}\u0000${spec.memoryLimitMb}`;
}
