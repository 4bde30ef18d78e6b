/**
 * Starting the sandboxed child: a fresh Node process under the permission model, whose only writable
 * place is a new run directory, with a minimal environment and a V8 heap cap; inside bubblewrap where it
 * works (its own PID namespace, a filesystem view of only what it needs, no host sockets), and as an
 * unprivileged user when the server is root. A `SandboxPool` keeps the next child started ahead of
 * time, so a run does not wait for a cold start.
 *
 * Host and child talk over a `SandboxChannel`: length-prefixed frames on the child's fd 3 (channel.ts),
 * which the host reads and caps itself. The child has no Node IPC channel (`process.send` does not
 * exist in cells).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ValidationError } from '../domain/errors.ts';
import { stripTypeScriptTypesQuietly } from '../domain/notebook/compile-code-cell.ts';
import { encodeFrame, FrameError, FrameReader } from './channel.ts';
import type { HostMessage } from './protocol.ts';

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

/** A host user and group, by number. */
export interface SandboxUser {
  uid: number;
  gid: number;
}

/** `nobody`/`nogroup` on Debian and its derivatives: the user a root server's children run as. */
export const DEFAULT_SANDBOX_USER: Readonly<SandboxUser> = Object.freeze({ uid: 65534, gid: 65534 });

/**
 * OS-level isolation around the child, on top of Node's permission model:
 * - `bwrap`: bubblewrap runs the child in new PID, IPC and UTS namespaces (and a network namespace
 *   when network is cut), in a view of the filesystem built from nothing: node and its shared
 *   libraries, a few files of /etc, Almanac's packages, the project and the run directory (the only
 *   writable place), a fresh /tmp, /run, /dev and /proc, and no host socket anywhere;
 * - `user`: when the server runs as root, the child runs as this unprivileged user, as the host sees
 *   it (through `setpriv` inside bubblewrap, once the view is built, or by fork's uid/gid without it);
 * - `prlimit`: kernel limits on CPU time and file size (RLIMIT_CPU, RLIMIT_FSIZE) and no core dumps.
 */
export interface SandboxIsolation {
  bwrap: string | null;
  prlimit: string | null;
  /** Paths the child must not see at all, even where they lie inside a path it may read. */
  hide: readonly string[];
  /** The host user the child runs as; null: the server's own user (a server that is not root). */
  user: Readonly<SandboxUser> | null;
  /** setpriv, which drops to `user` inside bubblewrap; null without bubblewrap or without `user`. */
  setpriv: string | null;
}

/** Detects bubblewrap and prlimit: present, and able to start a process here (namespaces allowed). */
export function detectIsolation(options: {
  hide: readonly string[];
  /** `bwrap` requires it, `permission` does without, `auto` uses it when it works. @default auto */
  mode?: 'auto' | 'bwrap' | 'permission';
  bwrapPath?: string;
  /**
   * The unprivileged user children run as when the server runs as root; uid 0 keeps them root.
   * @default 65534:65534 (`ALMANAC_SANDBOX_UID`, `ALMANAC_SANDBOX_GID`)
   */
  user?: SandboxUser;
}): SandboxIsolation {
  const mode = options.mode ?? 'auto';
  const prlimit = ['/usr/bin/prlimit', '/bin/prlimit'].find((p) => existsSync(p)) ?? null;
  const root = process.getuid?.() === 0;
  if (options.user && options.user.uid !== process.getuid?.() && !root) {
    throw new ValidationError(
      'ALMANAC_SANDBOX_UID',
      `is ${options.user.uid}, but only a server running as root can start runs as another user; unset it, or start the server as root`,
    );
  }
  const wanted = root ? (options.user ?? DEFAULT_SANDBOX_USER) : null;
  const user = wanted && wanted.uid !== 0 ? Object.freeze({ uid: wanted.uid, gid: wanted.gid }) : null;
  const setpriv = user ? (['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p)) ?? null) : null;
  const hide = options.hide.map((p) => resolve(p)).filter((p) => p !== '/');
  let bwrap: string | null = null;
  if (mode !== 'permission') {
    const path = options.bwrapPath ?? '/usr/bin/bwrap';
    const check = existsSync(path) ? probeBwrap(path, { bwrap: path, prlimit, hide, user, setpriv }) : null;
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
  return { bwrap, prlimit, hide, user: bwrap && !setpriv ? null : user, setpriv: bwrap ? setpriv : null };
}

/**
 * One line for the server's log at start: how runs are isolated from it, and whether they are at all.
 * `isolated` is false when a cell runs as the server's own user in the server's PID namespace, where
 * it can signal the server's processes; `warn` says the line should be a warning. `reach` lists the
 * folders runs use (run root, project folders), checked for the unprivileged user without bubblewrap.
 */
export function describeIsolation(
  isolation: SandboxIsolation,
  reach: readonly string[] = [],
): { isolated: boolean; warn: boolean; line: string } {
  const as = isolation.user ? ` as uid ${isolation.user.uid}, gid ${isolation.user.gid}` : '';
  const limits = isolation.prlimit
    ? ', with CPU time and file size limits'
    : ', without CPU time or file size limits (no prlimit)';
  if (isolation.bwrap) {
    return {
      isolated: true,
      warn: false,
      line: `runs are isolated by bubblewrap${as}: own PID namespace, only the run's files visible, no host sockets${limits}`,
    };
  }
  if (isolation.user) {
    const blocked = unreachable([NODE_BINARY, join(PACKAGE_ROOT, 'node_modules'), ...reach], isolation.user);
    return {
      isolated: true,
      warn: true,
      line: `runs use Node's permission model${as}, without bubblewrap: cells cannot signal the server; only the runtime's network guard keeps them off Unix sockets and loopback, and their network cannot be cut${limits}; install bubblewrap (apt-get install bubblewrap)${blocked ? `. Runs will fail: ${blocked} (chmod o+x the folders on the way)` : ''}`,
    };
  }
  return {
    isolated: false,
    warn: true,
    line: `cells are not isolated from the server: without bubblewrap, and not running as root, a cell runs as the server's user and can signal its processes (the runtime's network guard still keeps it off Unix sockets and loopback)${limits}; install bubblewrap (apt-get install bubblewrap)`,
  };
}

/** Whether bubblewrap can start a process here; probed once per path per process (it cannot change). */
const bwrapProbes = new Map<string, ReturnType<typeof spawnSync>>();
function probeBwrap(path: string, isolation: SandboxIsolation): ReturnType<typeof spawnSync> {
  const key = `${path}\u0000${isolation.user?.uid}:${isolation.user?.gid}\u0000${isolation.setpriv}`;
  let probe = bwrapProbes.get(key);
  if (!probe) {
    // The same view a run gets (without its directories), down to the user switch and node itself.
    const args = bwrapArgs(isolation, { network: false, readable: [], runDir: null });
    probe = spawnSync(path, [...args, '--version'], { timeout: 5000 });
    bwrapProbes.set(key, probe);
  }
  return probe;
}

/** The real path of the node binary (process.execPath may be a node_modules/.bin symlink). */
const NODE_BINARY = (() => {
  try {
    return realpathSync(process.execPath);
  } catch {
    return process.execPath;
  }
})();

/** What node needs to start, whatever the run: its shared libraries and their cache, and time zones. */
const SYSTEM_PATHS = [
  '/usr/lib',
  '/usr/lib64',
  '/lib',
  '/lib64',
  '/etc/ld.so.cache',
  '/usr/share/zoneinfo',
  '/etc/localtime',
];
/** What name resolution and TLS need, only when the run has network access. */
const NETWORK_PATHS = [
  '/etc/resolv.conf',
  '/etc/hosts',
  '/etc/nsswitch.conf',
  '/etc/host.conf',
  '/etc/gai.conf',
  '/etc/ssl',
  '/etc/ca-certificates',
  '/usr/share/ca-certificates',
];

interface ViewOf {
  network: boolean;
  /** Paths the child reads (packages, the project, the built runtime): bound read-only. */
  readable: readonly string[];
  /** The run directory: bound writable, and the child's working directory. */
  runDir: string | null;
}

type Mount =
  | { op: '--ro-bind' | '--bind'; path: string }
  | { op: '--tmpfs' | '--dev' | '--proc'; path: string }
  | { op: '--symlink'; path: string; target: string };

/** Whether `path` is `dir` or lies inside it. */
function within(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`);
}

/**
 * bubblewrap's arguments, up to and including the node binary: the view is built from an empty root,
 * so whatever is not bound here (the data dir, the store, other runs, the server's sockets,
 * /var/run/postgresql, /home, /root, /etc/shadow) does not exist for the child. Mounts are made
 * parents first; a `hide` path inside a bound one is covered by an empty tmpfs before what the child
 * needs inside it is bound back.
 */
function bwrapArgs(isolation: SandboxIsolation, view: ViewOf): string[] {
  const args = ['--unshare-pid', '--unshare-ipc', '--unshare-uts', '--die-with-parent', '--new-session'];
  if (!view.network) args.push('--unshare-net');
  const system = [
    ...SYSTEM_PATHS,
    ...(view.network ? NETWORK_PATHS : []),
    NODE_BINARY,
    ...(isolation.setpriv ? [isolation.setpriv] : []),
  ];
  const mounts: Mount[] = [
    { op: '--dev', path: '/dev' },
    { op: '--proc', path: '/proc' },
    { op: '--tmpfs', path: '/tmp' },
    { op: '--tmpfs', path: '/run' },
    { op: '--symlink', path: '/var/run', target: '../run' },
  ];
  for (const path of system) {
    let real: string;
    try {
      real = realpathSync(path);
    } catch {
      continue; // not on this system
    }
    // A symlink into another bound system path stays a symlink (/lib -> usr/lib, /etc/localtime).
    const into = real !== path ? system.find((other) => other !== path && within(real, other)) : undefined;
    if (into) mounts.push({ op: '--symlink', path, target: relative(dirname(path), real) || '.' });
    else mounts.push({ op: '--ro-bind', path });
  }
  for (const path of view.readable) {
    if (path !== view.runDir && existsSync(path)) mounts.push({ op: '--ro-bind', path });
  }
  if (view.runDir) mounts.push({ op: '--bind', path: view.runDir });
  const bound = mounts.filter((m) => m.op === '--ro-bind' || m.op === '--bind');
  for (const hidden of isolation.hide) {
    if (existsSync(hidden) && bound.some((m) => within(hidden, m.path))) {
      mounts.push({ op: '--tmpfs', path: hidden });
    }
  }
  // Parents before children; at one path, the hiding tmpfs before what is bound back on top of it.
  const depth = (p: string) => (p === '/' ? 0 : p.split('/').length - 1);
  const rank = (m: Mount) => (m.op === '--tmpfs' && isolation.hide.includes(m.path) ? 0 : 1);
  mounts.sort((a, b) => depth(a.path) - depth(b.path) || rank(a) - rank(b));
  const made = new Set<string>(['/']);
  for (const mount of mounts) {
    // bubblewrap would create missing parents as 0700 (root's), which the child's user cannot cross.
    const missing: string[] = [];
    for (let parent = dirname(mount.path); !made.has(parent); parent = dirname(parent))
      missing.unshift(parent);
    for (const parent of missing) {
      args.push('--dir', parent);
      made.add(parent);
    }
    if (mount.op === '--symlink') args.push('--symlink', mount.target, mount.path);
    else if (mount.op === '--ro-bind' || mount.op === '--bind') args.push(mount.op, mount.path, mount.path);
    else args.push(mount.op, mount.path);
    made.add(mount.path);
  }
  if (view.runDir) args.push('--chdir', view.runDir);
  if (isolation.user && isolation.setpriv) {
    // bubblewrap stays root on the host to bind paths the user cannot reach, then setpriv drops to
    // the user with no capabilities and no way back (no_new_privs) before node starts.
    args.push('--cap-add', 'CAP_SETUID', '--cap-add', 'CAP_SETGID', '--');
    args.push(
      isolation.setpriv,
      `--reuid=${isolation.user.uid}`,
      `--regid=${isolation.user.gid}`,
      '--clear-groups',
      '--no-new-privs',
      '--inh-caps=-all',
      '--bounding-set=-all',
      '--',
    );
  } else {
    args.push('--');
  }
  args.push(NODE_BINARY);
  return args;
}

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
  let execPath = NODE_BINARY;
  if (isolation?.bwrap) {
    prefix.push(...bwrapArgs(isolation, { network: spec.network !== false, readable, runDir }));
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

/**
 * Without bubblewrap, a child running as another user reaches its files through the host's folders:
 * each folder on the way must let that user through, and the files must be readable by it. Returns
 * the first path it cannot reach, with why, or null.
 */
function unreachable(paths: readonly string[], user: SandboxUser, ancestors = true): string | null {
  const allows = (path: string, bits: number): boolean => {
    const stat = statSync(path);
    const shift = stat.uid === user.uid ? 6 : stat.gid === user.gid ? 3 : 0;
    return ((stat.mode >> shift) & bits) === bits;
  };
  for (const path of paths) {
    try {
      for (let dir = dirname(path); ancestors; dir = dirname(dir)) {
        if (!allows(dir, 1))
          return `${dir} (mode ${(statSync(dir).mode & 0o777).toString(8)}) is not searchable by uid ${user.uid}`;
        if (dir === '/') break;
      }
      if (!allows(path, statSync(path).isDirectory() ? 5 : 4))
        return `${path} (mode ${(statSync(path).mode & 0o777).toString(8)}) is not readable by uid ${user.uid}`;
    } catch (error) {
      return `${path}: ${(error as NodeJS.ErrnoException).code}`;
    }
  }
  return null;
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
  /** Messages to and from the child. */
  readonly channel: SandboxChannel;

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
  const user = spec.isolation?.user ?? null;
  const bwrap = Boolean(spec.isolation?.bwrap);
  if (user) {
    // The run directory is the child's, and the only place it writes.
    chownSync(runDir, user.uid, user.gid);
    chownSync(join(runDir, 'tmp'), user.uid, user.gid);
    // Without bubblewrap the child walks the host's folders to its files; with it, bubblewrap binds
    // them at folders it makes (0755), and only what is bound must be readable by the user.
    const blocked = bwrap
      ? unreachable(
          readable.filter((path) => path !== runDir),
          user,
          false,
        )
      : unreachable([NODE_BINARY, ...readable], user);
    if (blocked) {
      rmSync(runDir, { recursive: true, force: true });
      throw new ValidationError(
        'ALMANAC_SANDBOX_UID',
        bwrap
          ? `runs start as uid ${user.uid}, gid ${user.gid} (the server is root), but ${blocked}; make the project's files readable by others (chmod -R o+rX), or set ALMANAC_SANDBOX_UID/ALMANAC_SANDBOX_GID to a user who can read them`
          : `runs start as uid ${user.uid}, gid ${user.gid} (the server is root and has no bubblewrap), but ${blocked}; let that user through the folders to the data and project directories (chmod o+x), set ALMANAC_SANDBOX_UID/ALMANAC_SANDBOX_GID to a user who can read them, or install bubblewrap`,
      );
    }
  }
  const spawnedAt = performance.now();
  const wrapper = wrapperFor(spec, runDir, readable);
  // No Node IPC channel: its parser buffers whatever length cell code writes to its descriptor, and
  // throws out of the server on garbage (issue 14). fd 3 is a socketpair the host reads itself
  // (SandboxChannel); bubblewrap, setpriv and prlimit pass it on to node as they exec.
  const child = spawn(wrapper.execPath, [...wrapper.prefix, ...execArgv, entry], {
    cwd: runDir,
    // Without bubblewrap, spawn itself drops to the unprivileged user (and its supplementary groups).
    ...(user && !bwrap ? { uid: user.uid, gid: user.gid } : {}),
    // A minimal environment: no server secrets, database URLs or keys reach user code.
    env: {
      PATH: '/usr/local/bin:/usr/bin:/bin',
      LANG: 'C.UTF-8',
      TZ: 'UTC',
      HOME: runDir,
      TMPDIR: join(runDir, 'tmp'),
    },
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
  });
  const channel = new SandboxChannel(child, child.stdio[3] as Socket);
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
    channel,
    ready: new Promise<void>((resolveReady, reject) => {
      const onMessage = (message: unknown) => {
        if ((message as { type?: unknown } | null)?.type === 'ready') {
          channel.off('message', onMessage);
          resolveReady();
        }
      };
      channel.on('message', onMessage);
      channel.once('violation', (error: FrameError) =>
        reject(
          new Error(`the run process wrote what is not a message before it was ready: ${error.message}`),
        ),
      );
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
        channel.close();
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
 * Frames a child may send before its run's limits are known: only `ready`, a few bytes.
 * `SandboxChannel.maxFrameBytes` is raised to the run's own cap (`maxFrameBytesFor`) when a run takes the child.
 */
export const HANDSHAKE_FRAME_BYTES = 64 * 1024;

/**
 * The host's end of the child's channel (fd 3 in the child): writes host messages as frames, reads the
 * child's frames with a `FrameReader` capped at `maxFrameBytes`, and emits
 * - `message` (value): each message, deserialized but not validated (the child is untrusted;
 *   run-protocol.ts checks it);
 * - `violation` (FrameError): bytes that are not a frame within the cap; the channel stops reading and
 *   the child is killed (SIGKILL to the forked process; its caller kills the whole tree too);
 * - `close`: the channel closed (every process holding the child's end exited or closed it).
 */
export class SandboxChannel extends EventEmitter {
  readonly #child: ChildProcess;
  readonly #socket: Socket;
  readonly #reader = new FrameReader(HANDSHAKE_FRAME_BYTES);
  #error: FrameError | null = null;
  #closed = false;
  /** Resolves once the channel has closed and every byte before that was read. */
  readonly closed: Promise<void>;

  constructor(child: ChildProcess, socket: Socket) {
    super();
    this.#child = child;
    this.#socket = socket;
    this.closed = new Promise<void>((resolveClosed) => {
      socket.once('close', () => {
        this.#closed = true;
        resolveClosed();
        this.emit('close');
      });
    });
    // A write to a child that died (EPIPE) or a reset: the exit handling says what happened.
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
  }

  /** The largest frame accepted from the child (see `maxFrameBytesFor`). */
  get maxFrameBytes(): number {
    return this.#reader.maxFrameBytes;
  }
  set maxFrameBytes(bytes: number) {
    this.#reader.maxFrameBytes = bytes;
  }

  /** What the child wrote that was not a frame, if it did. */
  get error(): FrameError | null {
    return this.#error;
  }

  /**
   * A frame the child began and did not finish (a truncated frame, once the channel closed): the bytes
   * held, and the payload length its header announced (null if even the header is incomplete).
   */
  get unfinished(): { bytes: number; of: number | null } | null {
    const bytes = this.#reader.buffered;
    return bytes > 0 || this.#reader.expected !== null ? { bytes, of: this.#reader.expected } : null;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /** Sends a message to the child; false when the channel can no longer carry it. */
  send(message: HostMessage): boolean {
    if (this.#closed || this.#error || !this.#socket.writable) return false;
    this.#socket.write(encodeFrame(message));
    return true;
  }

  /** Stops reading and writing (the child is gone or being killed). */
  close(): void {
    this.#socket.destroy();
  }

  #onData(chunk: Buffer): void {
    if (this.#error) return;
    let messages: unknown[];
    try {
      messages = this.#reader.push(chunk);
    } catch (error) {
      this.#error = error instanceof FrameError ? error : new FrameError(String(error));
      this.#socket.destroy();
      if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
      this.emit('violation', this.#error);
      return;
    }
    for (const message of messages) {
      if (this.#error) return;
      this.emit('message', message);
    }
  }
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
      // A child that died while waiting is cleaned up here. One a run took is the run's to dispose:
      // disposing it here, as its process exits after `done`, closed the channel before the host had
      // read the last frames, and the run ended as "exited unexpectedly (exit code 0)".
      if (this.#warm.get(key) !== sandbox) return;
      this.#warm.delete(key);
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
