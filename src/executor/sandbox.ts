/**
 * Starting the sandboxed child: a fresh Node process under the permission model, whose only writable
 * place is a new run directory, with a minimal environment and a V8 heap cap. A `SandboxPool` keeps the
 * next child started ahead of time, so a run does not wait for a cold start.
 */
import { type ChildProcess, fork, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ValidationError } from '../domain/errors.ts';
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
  const code = bundleChildRuntime();
  const hash = createHash('sha256').update(code).digest('hex').slice(0, 16);
  const dir = join(cacheRoot, `runtime-${hash}`);
  const entry = join(dir, relative(SRC, CHILD_SOURCE).replace(/\.ts$/, '.mjs'));
  if (!existsSync(entry)) {
    const staging = `${dir}.${randomBytes(4).toString('hex')}.tmp`;
    const target = join(staging, relative(dir, entry));
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, code);
    try {
      renameSync(staging, dir);
    } catch {
      rmSync(staging, { recursive: true, force: true }); // another process built it first
    }
  }
  builtRuntimes.set(cacheRoot, entry);
  return entry;
}

const RELATIVE_IMPORT = /import\s*\{([^}]*)\}\s*from\s*'(\.{1,2}\/[^']+\.ts)';?/g;
const BUILTIN_IMPORT = /import\s*(?:\{([^}]*)\}|\*\s*as\s+([\w$]+)|([\w$]+))\s*from\s*'(node:[\w/]+)';?/g;
const EXPORTED = /^export (?:async )?(?:function\*?|const|let|class) ([A-Za-z_$][\w$]*)/gm;

/**
 * The child runtime and the modules it imports, stripped of types, as one file, with Node's built-in
 * modules taken through `process.getBuiltinModule` instead of `import`. Both are for start-up time,
 * measured (docs/performance.md): each built-in imported as an ES module and each extra file to resolve
 * and link cost a run's process about 10 ms of CPU together, a quarter of a bare `node` start.
 *
 * Each imported module becomes a function scope that returns its exports, placed before the modules
 * that import it. The child's own modules may export only named functions, classes and variables and
 * import others only by name (`import { a, b as c } from './x.ts'`); anything else fails the build.
 */
export function bundleChildRuntime(entry: string = CHILD_SOURCE): string {
  const sources = new Map<string, string>();
  const order: string[] = [];
  const visit = (file: string) => {
    if (sources.has(file)) return;
    const stripped = stripTypeScriptTypesQuietly(readFileSync(file, 'utf8'));
    sources.set(file, stripped);
    for (const match of stripped.matchAll(/(?:from|import)\s*'(\.{1,2}\/[^']+\.ts)'/g)) {
      visit(resolve(dirname(file), match[1]!));
    }
    order.push(file); // after its imports
  };
  visit(entry);
  const scopeOf = (file: string) => `__${relative(SRC, file).replace(/\W/g, '_')}`;
  const parts = order.map((file) => {
    const code = sources
      .get(file)!
      .replace(BUILTIN_IMPORT, (_, names?: string, star?: string, name?: string, id?: string) =>
        names !== undefined
          ? `const {${names.replace(/\s+as\s+/g, ': ')}} = process.getBuiltinModule('${id}');`
          : `const ${star ?? name} = process.getBuiltinModule('${id}');`,
      )
      .replace(
        RELATIVE_IMPORT,
        (_, names: string, spec: string) =>
          `const {${names.replace(/\s+as\s+/g, ': ')}} = ${scopeOf(resolve(dirname(file), spec))};`,
      );
    // The entry exports nothing; the others export only what a scope can return.
    const unsupported =
      /^\s*(?:import\b(?!\s*\()|export\b(?!\s+(?:async\s+)?(?:function|const|let|class)\b))/m.exec(code) ??
      (file === entry ? /^\s*export\b/m.exec(code) : null);
    if (unsupported) {
      const line = code.slice(0, unsupported.index + unsupported[0].search(/\S/)).split('\n').length;
      throw new Error(
        `${relative(PACKAGE_ROOT, file)}:${line}: the child runtime's modules may import only by name and export only named functions, classes and variables (the runtime itself nothing)`,
      );
    }
    if (file === entry) return code;
    const exported = [...code.matchAll(EXPORTED)].map((m) => m[1]);
    return `const ${scopeOf(file)} = (() => {\n${code.replace(/^export /gm, '')}\nreturn { ${exported.join(', ')} };\n})();\n`;
  });
  return parts.join('\n');
}

export interface SandboxSpec {
  /** Parent of run directories. */
  runRoot: string;
  /** The project folder: readable by the child (data files, local modules). */
  projectDir: string;
  /** V8 heap cap for the child, in MiB. */
  memoryLimitMb: number;
  /** RLIMIT_CPU of the child, when prlimit is available. */
  cpuSeconds?: number;
  /** RLIMIT_FSIZE of the child, when prlimit is available. */
  maxFileBytes?: number;
  isolation?: SandboxIsolation;
  /** Network access for the child; false needs bubblewrap. @default true */
  network?: boolean;
}

/**
 * OS-level isolation around the child, on top of Node's permission model:
 * - `bwrap`: bubblewrap runs the child in new PID, IPC and UTS namespaces (and a network namespace
 *   when network is cut), with a read-only view of the root, only the run directory writable, and the
 *   `hide` paths (the data dir: the store, keys, other runs) replaced by empty directories;
 * - `prlimit`: kernel limits on CPU time and file size (RLIMIT_CPU, RLIMIT_FSIZE) and no core dumps.
 */
export interface SandboxIsolation {
  bwrap: string | null;
  prlimit: string | null;
  /** Paths the child must not see at all (with bubblewrap). */
  hide: readonly string[];
}

/** Detects bubblewrap and prlimit: present, and able to start a process here (namespaces allowed). */
export function detectIsolation(options: {
  hide: readonly string[];
  /** `bwrap` requires it, `permission` does without, `auto` uses it when it works. @default auto */
  mode?: 'auto' | 'bwrap' | 'permission';
  bwrapPath?: string;
}): SandboxIsolation {
  const mode = options.mode ?? 'auto';
  const prlimit = ['/usr/bin/prlimit', '/bin/prlimit'].find((p) => existsSync(p)) ?? null;
  let bwrap: string | null = null;
  if (mode !== 'permission') {
    const path = options.bwrapPath ?? '/usr/bin/bwrap';
    const check = existsSync(path) ? probeBwrap(path) : null;
    if (check?.status === 0) bwrap = path;
    else if (mode === 'bwrap') {
      throw new ValidationError(
        'ALMANAC_SANDBOX',
        existsSync(path)
          ? `is 'bwrap' but bubblewrap cannot start a process here (${check?.stderr?.toString().trim() || check?.error?.message || `exit ${check?.status}`}); allow user namespaces, or set ALMANAC_SANDBOX=auto`
          : `is 'bwrap' but ${path} does not exist; install bubblewrap (apt-get install bubblewrap) or set ALMANAC_SANDBOX=auto`,
      );
    }
  }
  return { bwrap, prlimit, hide: options.hide.map((p) => resolve(p)).filter((p) => p !== '/') };
}

/** Whether bubblewrap can start a process here; probed once per path per process (it cannot change). */
const bwrapProbes = new Map<string, ReturnType<typeof spawnSync>>();
function probeBwrap(path: string): ReturnType<typeof spawnSync> {
  let probe = bwrapProbes.get(path);
  if (!probe) {
    probe = spawnSync(path, [...BWRAP_BASE, '--unshare-net', '--', '/bin/true'], { timeout: 5000 });
    bwrapProbes.set(path, probe);
  }
  return probe;
}

const BWRAP_BASE = [
  '--ro-bind',
  '/',
  '/',
  '--dev',
  '/dev',
  '--proc',
  '/proc',
  '--unshare-pid',
  '--unshare-ipc',
  '--unshare-uts',
  '--die-with-parent',
  '--new-session',
];

/**
 * The signal that ended the child, seen through the wrappers: bubblewrap reports its child's death by
 * signal N as exit code 128 + N.
 */
export function exitSignalOf(code: number | null, signal: NodeJS.Signals | null): string | null {
  if (signal) return signal;
  const byCode: Record<number, string> = {
    137: 'SIGKILL',
    152: 'SIGXCPU',
    153: 'SIGXFSZ',
    139: 'SIGSEGV',
    134: 'SIGABRT',
  };
  return code !== null ? (byCode[code] ?? null) : null;
}

/** The command that starts the child: node, inside bubblewrap and under prlimit where available. */
function wrapperFor(
  spec: SandboxSpec,
  runDir: string,
  readable: readonly string[],
): { execPath: string; prefix: string[] } {
  const isolation = spec.isolation;
  const prefix: string[] = [];
  let execPath = process.execPath;
  if (isolation?.bwrap) {
    const args = [...BWRAP_BASE];
    if (spec.network === false) args.push('--unshare-net');
    for (const hidden of isolation.hide) {
      if (existsSync(hidden)) args.push('--tmpfs', hidden);
    }
    // What the child needs, back on top of the hidden paths: read-only, except the run directory.
    for (const path of readable) {
      if (path !== runDir && existsSync(path)) args.push('--ro-bind', path, path);
    }
    args.push('--bind', runDir, runDir, '--', process.execPath);
    prefix.push(...args);
    execPath = isolation.bwrap;
  }
  if (isolation?.prlimit) {
    const cpu = spec.cpuSeconds ?? 300;
    const limits = [`--cpu=${cpu}:${cpu + 5}`, '--core=0'];
    if (spec.maxFileBytes) limits.push(`--fsize=${spec.maxFileBytes}`);
    prefix.unshift(...limits, '--', execPath);
    execPath = isolation.prlimit;
  }
  return { execPath, prefix };
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
  ];
  const spawnedAt = performance.now();
  const wrapper = wrapperFor(spec, runDir, readable);
  const child = fork(entry, [], {
    cwd: runDir,
    // fork() runs `execPath ...execArgv entry`: with a wrapper, the wrapper's arguments end with node.
    execArgv: [...wrapper.prefix, ...execArgv],
    execPath: wrapper.execPath,
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
        // Off the event loop: removing a run's files can take milliseconds the other runs need.
        await rm(runDir, { recursive: true, force: true });
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
  return [
    resolve(spec.runRoot),
    resolve(spec.projectDir),
    spec.memoryLimitMb,
    spec.cpuSeconds,
    spec.maxFileBytes,
    spec.network !== false,
  ].join('\u0000');
}
