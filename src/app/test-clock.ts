/**
 * The injectable clock of the reliability suite: with `ALMANAC_TEST_CLOCK=<file>`, a process's "now"
 * is the instant written in that file (ISO 8601 or epoch milliseconds), shared by every process of a
 * test, so a test moves time for all of them at once without sleeping. Every `now()` reads the file,
 * and it is also polled every 20 ms: when it changes, the process's loops are poked so they act on the
 * new time at once.
 *
 * Never set it in production: time stands still between writes.
 */
import { readFileSync } from 'node:fs';
import { ValidationError } from '../domain/errors.ts';

export class FileClock {
  readonly #path: string;
  #now: number;
  #timer: NodeJS.Timeout;
  readonly #listeners = new Set<() => void>();

  constructor(path: string) {
    this.#path = path;
    const first = this.#read();
    if (first === null) {
      throw new ValidationError(
        'ALMANAC_TEST_CLOCK',
        `'${path}' must hold an ISO 8601 instant or epoch milliseconds`,
      );
    }
    this.#now = first;
    this.#timer = setInterval(() => this.#refresh(), 20);
    this.#timer.unref();
  }

  /** Reads the file; when the instant moved, remembers it and pokes the listeners. */
  #refresh(): void {
    const next = this.#read();
    if (next !== null && next !== this.#now) {
      this.#now = next;
      for (const listener of this.#listeners) queueMicrotask(listener);
    }
  }

  #read(): number | null {
    try {
      const text = readFileSync(this.#path, 'utf8').trim();
      const value = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
      return Number.isNaN(value) ? null : value;
    } catch {
      return null;
    }
  }

  /**
   * The file's instant, read afresh: a process must never act on a time another process has already
   * left behind (a worker claiming with the old "now" would write a lease that is already expired for
   * the others, and their housekeeping would requeue the run).
   */
  now = (): Date => {
    this.#refresh();
    return new Date(this.#now);
  };

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    clearInterval(this.#timer);
    this.#listeners.clear();
  }
}
