/**
 * The short-lived caches of the hot path of opening an app (see `HotPathCache`).
 */
import * as workspaces from '../services/workspace-service.ts';
import { RESYNC } from '../store/wakeups.ts';

/**
 * Short-lived caches for the hot path of opening an app, which every viewer hits:
 * - callers by credential hash, for `authTtlMs` (so a revoked token, or a session ended on another
 *   node, may work that much longer; a credential's own expiry is checked on every hit);
 * - each app's default-state pointer, dropped at once on an `app_state` wake-up (which PostgreSQL
 *   delivers to every node) and after `stateTtlMs` in any case.
 * Both are only caches: every node can rebuild them from the store.
 */
export class HotPathCache {
  readonly #callers = new Map<string, { caller: workspaces.Caller; until: number }>();
  readonly #states = new Map<string, { runId: string; projectId: string; until: number }>();
  readonly authTtlMs: number;
  readonly stateTtlMs: number;
  constructor(authTtlMs: number, stateTtlMs: number) {
    this.authTtlMs = authTtlMs;
    this.stateTtlMs = stateTtlMs;
  }
  async caller(
    credential: string | null,
    from: 'bearer' | 'cookie',
    load: (credential: string | null, from: 'bearer' | 'cookie') => Promise<workspaces.Caller>,
    clock: () => Date,
  ): Promise<workspaces.Caller> {
    if (!credential || this.authTtlMs <= 0) return load(credential, from);
    const key = `${from}:${workspaces.hashToken(credential)}`;
    const hit = this.#callers.get(key);
    const now = Date.now();
    if (hit && hit.until > now) {
      const { expiresAt, recheckAt } = hit.caller;
      const at = clock();
      if (!(expiresAt && expiresAt <= at) && !(recheckAt && recheckAt <= at)) return hit.caller;
    }
    const caller = await load(credential, from);
    if (this.#callers.size > 10_000) this.#callers.clear();
    this.#callers.set(key, { caller, until: now + this.authTtlMs });
    return caller;
  }
  /** Drops a credential at once (sign-out on this node). */
  forget(credential: string): void {
    const hash = workspaces.hashToken(credential);
    this.#callers.delete(`bearer:${hash}`);
    this.#callers.delete(`cookie:${hash}`);
  }
  /** Drops every cached credential of a user at once (deactivation, a new password, a role change). */
  forgetUser(userId: string): void {
    for (const [key, hit] of this.#callers) {
      if (hit.caller.principal.userId === userId) this.#callers.delete(key);
    }
  }
  state(key: string): { runId: string; projectId: string } | null {
    const hit = this.#states.get(key);
    return hit && hit.until > Date.now() ? hit : null;
  }
  setState(key: string, value: { runId: string; projectId: string }): void {
    if (this.stateTtlMs <= 0) return;
    if (this.#states.size > 10_000) this.#states.clear();
    this.#states.set(key, { ...value, until: Date.now() + this.stateTtlMs });
  }
  invalidate(projectId: string): void {
    if (projectId === RESYNC) {
      this.#states.clear();
      return;
    }
    for (const [key, value] of this.#states) if (value.projectId === projectId) this.#states.delete(key);
  }
}
