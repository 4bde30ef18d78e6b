/**
 * What every service needs, built once by the composition root: the store, its capabilities, the
 * wake-up channel, the clock and the key for secrets. Services run their use cases in transactions.
 */
import type { WorkspaceRole } from '../domain/workspace.ts';
import type { Capabilities, Db, Dialect } from '../store/database.ts';
import type { Wakeups } from '../store/wakeups.ts';

export interface ServiceContext {
  /** The store, handed to `store/` functions (never queried here: queries live in `store/`). */
  db: Db;
  dialect: Dialect;
  capabilities: Capabilities;
  wakeups: Wakeups;
  /** The current instant. Tests pass a fake clock (STYLE.md, habit 6). */
  now: () => Date;
  /** 32-byte key for secrets at rest. */
  secretKey: Buffer;
  /** How long the audit log keeps events. @default 365 (`ALMANAC_AUDIT_RETENTION_DAYS`) */
  auditRetentionDays?: number;
}

/**
 * Who is calling: the user behind an API token. Authorization lives in `authorize.ts`, so the check is
 * in one place when roles arrive.
 */
export interface Principal {
  userId: string;
  workspaceId: string;
  /** The user's role in the workspace (not a process role: those are `ProcessRole`, app/create-server.ts). */
  role: WorkspaceRole;
  name: string;
  /** The client's address, set by the HTTP layer per request (the audit log records it). */
  ip?: string | undefined;
}
