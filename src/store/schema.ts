/**
 * The tables as Kysely sees them. Both databases store the same shapes, with three conventions that
 * keep one query working on both:
 * - instants are written as ISO 8601 strings with milliseconds (`YYYY-MM-DDTHH:MM:SS.sssZ`) and read
 *   back as a `Date` (PostgreSQL) or that string (SQLite); `toDate` normalizes;
 * - flags are integers 0/1;
 * - JSON is text, and binary payloads are `bytea`/`blob` (read back as a Buffer or a Uint8Array).
 */
import type { Generated } from 'kysely';

export type Instant = Date | string;
/** What a column of instants accepts on insert and update. */
export type InstantIn = string;

/** The audit log (domain/audit.ts; migration 0014): append-only. */
export interface AuditEventsTable {
  id: string;
  workspace_id: string;
  at: InstantIn | Instant;
  actor_id: string | null;
  actor_name: string;
  action: string;
  target: string | null;
  /** JSON object, never a secret. */
  detail: string;
  ip: string | null;
}

export interface WorkspacesTable {
  id: string;
  name: string;
  created_at: Generated<Instant>;
  /** 1: cells may reach the network; 0: they run without it. */
  cell_network: Generated<number>;
  /** professional | team | enterprise (domain/plan.ts; migration 0013). */
  plan: Generated<string>;
}

export interface UsersTable {
  id: string;
  workspace_id: string;
  email: string;
  name: string;
  /** The workspace role (domain/workspace.ts); migration 0012 replaced the column. */
  role: 'admin' | 'editor' | 'member' | 'guest';
  created_at: Generated<Instant>;
  /** email | slack | both: how notifications reach this user when a rule leaves it to them. */
  notify_via: Generated<string>;
  /** invited | active | deactivated (migration 0011). Only active users sign in or use tokens. */
  status: Generated<string>;
  /** An argon2id hash in PHC form (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`); null: no password yet. */
  password_hash: Generated<string | null>;
  /** The last time the user signed in or used a session or token (at most once a minute). */
  last_seen_at: Generated<Instant | null>;
}

export interface GroupsTable {
  id: string;
  workspace_id: string;
  name: string;
  created_at: Generated<Instant>;
}

export interface GroupMembersTable {
  group_id: string;
  user_id: string;
}

export interface ApiTokensTable {
  id: string;
  user_id: string;
  name: string;
  /** SHA-256 of the token, hex. The token itself is never stored. */
  token_hash: string;
  created_at: InstantIn | Instant;
  last_used_at: InstantIn | Instant | null;
  revoked_at: InstantIn | Instant | null;
  /** When the token stops working by itself; null: never (migration 0011). */
  expires_at: Generated<InstantIn | Instant | null>;
  /** The token's first characters, to recognize it in a list (the secret is never shown again). */
  prefix: Generated<string | null>;
}

/** A single-use code sent by email: an invitation (7 days) or a password reset (1 hour). */
export interface AccountCodesTable {
  /** SHA-256 of the code, hex. */
  code_hash: string;
  kind: 'invite' | 'reset';
  user_id: string;
  created_by: string | null;
  created_at: InstantIn | Instant;
  expires_at: InstantIn | Instant;
  used_at: InstantIn | Instant | null;
}

/** A one-time code that signs a browser in (`GET /login?code=…`); used once, within minutes. */
export interface LoginCodesTable {
  /** SHA-256 of the code, hex. */
  code_hash: string;
  user_id: string;
  created_at: InstantIn | Instant;
  expires_at: InstantIn | Instant;
  used_at: InstantIn | Instant | null;
}

/** A browser session of a user: the cookie holds a random secret, this row its SHA-256. */
export interface SessionsTable {
  id: string;
  user_id: string;
  secret_hash: string;
  created_at: InstantIn | Instant;
  last_seen_at: InstantIn | Instant;
  /** Pushed forward on use (at most once a minute); never past `expires_at`. */
  idle_expires_at: InstantIn | Instant;
  /** The absolute end, whatever the use. */
  expires_at: InstantIn | Instant;
  revoked_at: InstantIn | Instant | null;
}

export interface ProjectsTable {
  id: string;
  workspace_id: string;
  /** URL name, unique in the workspace. */
  slug: string;
  title: string;
  /** The editable draft of the notebook (the project's logic). */
  draft_source: string;
  draft_updated_at: InstantIn | Instant;
  created_by: string | null;
  created_at: InstantIn | Instant;
  /** workspace | restricted */
  visibility: Generated<string>;
  /**
   * The current version (glossary): the one schedules run, apps show and publish carries files from.
   * Null until the first publish. A rollback points it at an older version (migration 0009).
   */
  current_version_id: Generated<string | null>;
  /** What every member gets: none | app_only | can_view | can_edit (migration 0012). */
  workspace_access: Generated<string>;
}

export interface VersionsTable {
  id: string;
  project_id: string;
  /** 1, 2, 3… per project. */
  number: number;
  /** SHA-256 over the notebook source and its files. */
  content_hash: string;
  source: string;
  created_by: string | null;
  created_at: InstantIn | Instant;
  /** What the publisher said about it, if anything (migration 0009). */
  message: Generated<string | null>;
}

export interface VersionFilesTable {
  version_id: string;
  /** Relative to the notebook's folder, with `/` separators. */
  path: string;
  content: Uint8Array;
}

export interface ConnectionsTable {
  id: string;
  workspace_id: string;
  name: string;
  kind: 'postgres';
  /** The connection URL, encrypted with the configured key (AES-256-GCM). */
  secret: string;
  created_at: InstantIn | Instant;
}

export interface RunsTable {
  id: string;
  workspace_id: string;
  project_id: string;
  /** Null only for a skipped fire time of a project with no published version. */
  version_id: string | null;
  trigger: string;
  context: string;
  status: string;
  private: Generated<number>;
  /** JSON object of supplied input values. */
  inputs: string;
  created_by: string | null;
  created_at: InstantIn | Instant;
  scheduled_for: InstantIn | Instant | null;
  started_at: InstantIn | Instant | null;
  finished_at: InstantIn | Instant | null;
  /** Attempts so far: a claim adds one, a graceful release gives it back. */
  attempts: Generated<number>;
  max_attempts: Generated<number>;
  /** The fencing token: every claim increments it, nothing decrements it (migration 0010). */
  claim_epoch: Generated<number>;
  /** Who cancelled the run, as a person reads it (a user's name, or a schedule's overlap policy). */
  cancelled_by: Generated<string | null>;
  /** The worker that holds (or last held) the run. */
  worker: string | null;
  lease_expires_at: InstantIn | Instant | null;
  cancel_requested: Generated<number>;
  reason: string | null;
  error_cell: string | null;
  error_message: string | null;
  /** Private runs are deleted after this instant. */
  expires_at: InstantIn | Instant | null;
  schedule_id: Generated<string | null>;
  /** The schedule's deterministic offset applied to this fire time. */
  jitter_ms: Generated<number | null>;
  /** Wall-clock limit for this run (a schedule's timeout policy), over the server default. */
  timeout_ms: Generated<number | null>;
  /** The run this one retries. */
  retry_of: Generated<string | null>;
  retry_number: Generated<number>;
  /** When this failed run's retry is due (set while a retry is pending). */
  retry_at: Generated<InstantIn | Instant | null>;
  /** Not claimable until this run has ended (overlap policy buffer_one, coalesced catch-up). */
  after_run_id: Generated<string | null>;
  /** Notification rules sent inline with an API-triggered run, as a JSON list of NotificationRuleSpec. */
  notify: Generated<string | null>;
}

export interface WorkspaceIntegrationsTable {
  workspace_id: string;
  /** Encrypted JSON SmtpSettings. */
  smtp: string | null;
  email_from: string | null;
  /** Encrypted Slack bot token. */
  slack_token: string | null;
  /** Encrypted key that signs webhook requests. */
  webhook_secret: string | null;
  allow_private_webhooks: Generated<number>;
  updated_at: InstantIn | Instant;
}

export interface NotificationRulesTable {
  id: string;
  workspace_id: string;
  project_id: string;
  schedule_id: string | null;
  name: string;
  /** NotificationRuleSpec as JSON. */
  spec: string;
  /** JSON of what the condition measured on the last successful run. */
  last_measured: string | null;
  created_by: string | null;
  created_at: InstantIn | Instant;
  updated_at: InstantIn | Instant;
}

export interface DeliveriesTable {
  id: string;
  workspace_id: string;
  run_id: string;
  rule_id: string | null;
  rule_name: string;
  channel: string;
  destination: string;
  /** JSON DeliveryContent. */
  content: string;
  status: string;
  attempts: Generated<number>;
  max_attempts: number;
  next_attempt_at: InstantIn | Instant;
  worker: string | null;
  lease_expires_at: InstantIn | Instant | null;
  error: string | null;
  note: string | null;
  created_at: InstantIn | Instant;
  sent_at: InstantIn | Instant | null;
  /** When the message was handed to its channel; null until then, and again after each attempt. */
  handed_off_at: InstantIn | Instant | null;
}

export interface ProjectGrantsTable {
  project_id: string;
  /** `user:<id>` or `group:<id>` */
  principal: string;
  reason: string;
  granted_by: string | null;
  created_at: InstantIn | Instant;
  /** app_only | can_view | can_edit | full_access (migration 0012). */
  access: Generated<string>;
}

export interface SchedulesTable {
  id: string;
  workspace_id: string;
  project_id: string;
  name: string;
  /** The Cadence as JSON. */
  cadence: string;
  timezone: string;
  /** JSON object of input values for the schedule's runs. */
  inputs: string;
  /** SchedulePolicies as JSON. */
  policies: string;
  enabled: Generated<number>;
  /** A paused schedule resumes by itself at this instant. */
  paused_until: InstantIn | Instant | null;
  pause_note: string | null;
  /** The next nominal fire time. */
  next_fire_at: InstantIn | Instant | null;
  /** next_fire_at plus the schedule's jitter: when the scheduler creates the run. */
  next_due_at: InstantIn | Instant | null;
  created_by: string | null;
  created_at: InstantIn | Instant;
  updated_at: InstantIn | Instant;
}

export interface RunCellsTable {
  run_id: string;
  idx: number;
  name: string;
  kind: string;
  /** queued | running | succeeded | failed | skipped */
  status: string;
  started_at: InstantIn | Instant | null;
  duration_ms: number | null;
  /** The CellResult as JSON, once the cell finished. */
  result: string | null;
}

export interface SnapshotsTable {
  run_id: string;
  /** The RunSnapshot as JSON. */
  body: string;
  /** The same JSON, gzip-compressed once, served as is. */
  gzip: Uint8Array;
  etag: string;
  created_at: InstantIn | Instant;
}

export interface AppSettingsTable {
  project_id: string;
  show_last_run: Generated<number>;
  /** The run whose snapshot is the app's default state. */
  default_run_id: string | null;
  keep_runs: number | null;
  keep_days: number | null;
  updated_at: InstantIn | Instant;
}

export interface SqlCacheTable {
  project_id: string;
  /** Hash of the connection, statements and bound values. */
  key: string;
  cell: string;
  run_id: string;
  /** The query result, serialized with v8 (keeps BigInt, Date). */
  payload: Uint8Array;
  created_at: InstantIn | Instant;
}

export interface Schema {
  workspaces: WorkspacesTable;
  audit_events: AuditEventsTable;
  users: UsersTable;
  groups: GroupsTable;
  group_members: GroupMembersTable;
  api_tokens: ApiTokensTable;
  account_codes: AccountCodesTable;
  login_codes: LoginCodesTable;
  sessions: SessionsTable;
  projects: ProjectsTable;
  versions: VersionsTable;
  version_files: VersionFilesTable;
  connections: ConnectionsTable;
  runs: RunsTable;
  workspace_integrations: WorkspaceIntegrationsTable;
  notification_rules: NotificationRulesTable;
  deliveries: DeliveriesTable;
  project_grants: ProjectGrantsTable;
  run_cells: RunCellsTable;
  snapshots: SnapshotsTable;
  app_settings: AppSettingsTable;
  sql_cache: SqlCacheTable;
  schedules: SchedulesTable;
}

export function toDate(value: Instant): Date;
export function toDate(value: Instant | null): Date | null;
export function toDate(value: Instant | null): Date | null {
  if (value === null) return null;
  return value instanceof Date ? value : new Date(value);
}

export function iso(date: Date): InstantIn {
  return date.toISOString();
}

export function toBuffer(value: Uint8Array): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}
