/**
 * A run's process and everything under it, from /proc (Linux). The process the executor forks is a
 * wrapper when isolation is on (prlimit execs bubblewrap, which forks its own init, which forks Node),
 * so its own resident size says nothing about the cell: the memory cap is measured over the whole tree,
 * wrappers and anything the cell managed to start included (issue 14, finding 5).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Whether this kernel lists a thread's children (`/proc/<pid>/task/<tid>/children`, CONFIG_PROC_CHILDREN). */
let childrenFiles: boolean | null = null;

function hasChildrenFiles(): boolean {
  if (childrenFiles === null) {
    try {
      readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8');
      childrenFiles = true;
    } catch {
      childrenFiles = false;
    }
  }
  return childrenFiles;
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tasks) {
    try {
      for (const child of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ')) {
        if (child.trim() !== '') out.push(Number(child));
      }
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}

/** Every process's parent, by scanning /proc/<pid>/stat (where children files are missing). */
function parentTable(): Map<number, number[]> {
  const byParent = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return byParent;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name is in parentheses and may hold spaces or parentheses: read after the last one.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const parent = Number(fields[1]);
      const list = byParent.get(parent) ?? [];
      list.push(Number(entry));
      byParent.set(parent, list);
    } catch {
      // The process ended meanwhile.
    }
  }
  return byParent;
}

/** `pid` and its descendants (root first), or `[]` when `pid` is gone or /proc is unavailable. */
export function processTree(pid: number): number[] {
  try {
    readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return [];
  }
  const table = hasChildrenFiles() ? null : parentTable();
  const tree: number[] = [];
  const seen = new Set<number>();
  const queue = [pid];
  while (queue.length > 0) {
    const next = queue.shift()!;
    if (seen.has(next)) continue;
    seen.add(next);
    tree.push(next);
    queue.push(...(table ? (table.get(next) ?? []) : childrenOf(next)));
  }
  return tree;
}

/** The resident size of one process in KiB, or null when it is gone (or a zombie). */
function residentKb(pid: number): number | null {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/**
 * The resident memory of `pid` and all its descendants, in MiB (shared pages counted in each process,
 * which errs on the side of the cap); null where /proc cannot tell.
 */
export function treeResidentMb(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  let total = 0;
  let known = false;
  for (const member of processTree(pid)) {
    const kb = residentKb(member);
    if (kb !== null) {
      total += kb;
      known = true;
    }
  }
  return known ? total / 1024 : null;
}

/**
 * Sends `signal` to `pid` and every descendant, each by its own id, so nothing the cell started
 * outlives the run when a wrapper dies first.
 */
export function killTree(pid: number | undefined, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (pid === undefined) return;
  for (const member of processTree(pid)) {
    try {
      process.kill(member, signal);
    } catch {
      // Already gone.
    }
  }
}
