/**
 * Starting the sandboxed child: a fresh Node process under the permission model, whose only writable
 * place is a new run directory, with a minimal environment and a V8 heap cap. A `SandboxPool` keeps the
 * next child started ahead of time, so a run does not wait for a cold start.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stripTypeScriptTypesQuietly } from '../domain/notebook/compile-code-cell.ts';

/** Almanac's package root (holds package.json and node_modules). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CHILD_SOURCE = join(PACKAGE_ROOT, 'src/executor/child/runtime.ts');
const SRC = join(PACKAGE_ROOT, 'src');

const builtRuntimes = new Map<string, string>();

/**
 * The child's entry point as plain JavaScript. Node can run the `.ts` sources directly, but its type
 * stripper costs about 50 ms at every process start; stripping the child runtime once here, into a
 * cache keyed by the sources' hash, keeps a cold start close to a bare `node` start.
 * Returns the path of the built entry (`<cacheRoot>/<hash>/executor/child/runtime.mjs`).
 */
export function buildChildRuntime(cacheRoot: string): string {
  const cached = builtRuntimes.get(cacheRoot);
  if (cached && existsSync(cached)) return cached;
  const files = new Map<string, string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    const stripped = stripTypeScriptTypesQuietly(readFileSync(file, 'utf8'));
    files.set(file, stripped);
    for (const match of stripped.matchAll(/(?:from|import)\s*'(\.{1,2}\/[^']+)\.ts'/g)) {
      visit(resolve(dirname(file), `${match[1]}.ts`));
    }
  };
  visit(CHILD_SOURCE);
  const hash = createHash('sha256');
  for (const [file, code] of [...files].sort()) hash.update(file).update(code);
  const dir = join(cacheRoot, `runtime-${hash.digest('hex').slice(0, 16)}`);
  const entry = join(dir, relative(SRC, CHILD_SOURCE).replace(/\.ts$/, '.mjs'));
  if (!existsSync(entry)) {
    const staging = `${dir}.${randomBytes(4).toString('hex')}.tmp`;
    for (const [file, code] of files) {
      const target = join(staging, relative(SRC, file).replace(/\.ts$/, '.mjs'));
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, code.replace(/((?:from|import)\s*'\.{1,2}\/[^']+)\.ts'/g, "$1.mjs'"));
    }
    try {
      renameSync(staging, dir);
    } catch {
      rmSync(staging, { recursive: true, force: true }); // another process built it first
    }
  }
  builtRuntimes.set(cacheRoot, entry);
  return entry;
}

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
  const runtimeRoot = join(spec.runRoot, '.runtime');
  const entry = buildChildRuntime(runtimeRoot);
  const readable = [
    dirname(dirname(dirname(entry))),
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
  const child = fork(entry, [], {
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
