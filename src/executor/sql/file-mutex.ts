/**
 * One holder at a time per database file, within this process. DuckDB locks its file with fcntl, and
 * fcntl locks belong to the process: a second `DuckDBInstance.create(samePath)` in the same process
 * succeeds, and two instances writing one file corrupt it. Every per-run DuckDB instance on a file
 * therefore holds this mutex from before it opens until after it has closed.
 */
import { readdirSync, readlinkSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';

interface Waiter {
  grant: () => void;
}

interface FileLock {
  held: boolean;
  waiters: Waiter[];
}

const locks = new Map<string, FileLock>();

/** The key two spellings of one file share (symlinked folders, relative paths). */
export function fileKey(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

/**
 * Waits for the file's turn and returns the function that gives it back (safe to call twice). An
 * aborted `signal` leaves the queue and rejects with the signal's reason, so a run waiting for the
 * file still stops on its timeout or cancel.
 */
export function acquireFile(key: string, signal: AbortSignal): Promise<() => void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  let lock = locks.get(key);
  if (!lock) {
    lock = { held: false, waiters: [] };
    locks.set(key, lock);
  }
  const held = lock;
  const releaser = () => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = held.waiters.shift();
      if (next) next.grant();
      else {
        held.held = false;
        locks.delete(key);
      }
    };
  };
  if (!held.held) {
    held.held = true;
    return Promise.resolve(releaser());
  }
  return new Promise((resolveLock, rejectLock) => {
    const onAbort = () => {
      const index = held.waiters.indexOf(waiter);
      if (index >= 0) held.waiters.splice(index, 1);
      rejectLock(signal.reason);
    };
    const waiter: Waiter = {
      grant: () => {
        signal.removeEventListener('abort', onAbort);
        resolveLock(releaser());
      },
    };
    held.waiters.push(waiter);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** How many sessions wait for the file (for tests and diagnostics). */
export function waitingFor(key: string): number {
  return locks.get(key)?.waiters.length ?? 0;
}

/**
 * Whether this process still has the file (or its WAL) open, on Linux; false where /proc is missing.
 * A last check before opening a file another instance used: if anything kept that instance alive, a
 * second one would corrupt the file.
 */
export function openInThisProcess(key: string): boolean {
  let fds: string[];
  try {
    fds = readdirSync('/proc/self/fd');
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target === key || target === `${key}.wal`) return true;
    } catch {
      // Closed meanwhile.
    }
  }
  return false;
}
