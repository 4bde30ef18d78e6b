/**
 * One migration set for both databases, run automatically on start. Types that differ (timestamps) come
 * from `types(dialect)`. Migrations are append-only: never edit one that has shipped.
 */
import { randomUUID } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import type { Migration } from 'kysely/migration';
import { ownersOnFailureRule } from '../domain/notification/rule.ts';
import { type Dialect, lockForTransaction } from './database.ts';

function types(dialect: Dialect) {
  return {
    /** Binary payloads (compressed snapshots, files, cached results). */
    blob: dialect === 'postgres' ? ('bytea' as const) : ('blob' as const),
    /** Instants: timestamptz on PostgreSQL, ISO 8601 text on SQLite. */
    timestamp: dialect === 'postgres' ? ('timestamptz' as const) : ('text' as const),
    now: dialect === 'postgres' ? sql`now()` : sql`(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))`,
  };
}

function migrations(dialect: Dialect): Record<string, Migration> {
  const t = types(dialect);
  return {
    '0001_workspaces_and_users': {
      async up(db: Kysely<any>) {
        await db.schema
          .createTable('workspaces')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('created_at', t.timestamp, (c) => c.notNull().defaultTo(t.now))
          .execute();
        await db.schema
          .createTable('users')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('workspace_id', 'text', (c) =>
            c.notNull().references('workspaces.id').onDelete('cascade'),
          )
          .addColumn('email', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('role', 'text', (c) => c.notNull().check(sql`role in ('admin', 'editor', 'viewer')`))
          .addColumn('created_at', t.timestamp, (c) => c.notNull().defaultTo(t.now))
          .addUniqueConstraint('users_workspace_email', ['workspace_id', 'email'])
          .execute();
      },
    },
    '0002_server': {
      async up(db: Kysely<any>) {
        const flag = (c: any) => c.notNull().defaultTo(0);
        await db.schema
          .createTable('groups')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('workspace_id', 'text', (c) =>
            c.notNull().references('workspaces.id').onDelete('cascade'),
          )
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('created_at', t.timestamp, (c) => c.notNull().defaultTo(t.now))
          .addUniqueConstraint('groups_workspace_name', ['workspace_id', 'name'])
          .execute();
        await db.schema
          .createTable('group_members')
          .addColumn('group_id', 'text', (c) => c.notNull().references('groups.id').onDelete('cascade'))
          .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
          .addPrimaryKeyConstraint('group_members_pk', ['group_id', 'user_id'])
          .execute();
        await db.schema
          .createTable('api_tokens')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('token_hash', 'text', (c) => c.notNull().unique())
          .addColumn('created_at', t.timestamp, (c) => c.notNull())
          .addColumn('last_used_at', t.timestamp)
          .addColumn('revoked_at', t.timestamp)
          .execute();
        await db.schema
          .createTable('projects')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('workspace_id', 'text', (c) =>
            c.notNull().references('workspaces.id').onDelete('cascade'),
          )
          .addColumn('slug', 'text', (c) => c.notNull())
          .addColumn('title', 'text', (c) => c.notNull())
          .addColumn('draft_source', 'text', (c) => c.notNull())
          .addColumn('draft_updated_at', t.timestamp, (c) => c.notNull())
          .addColumn('created_by', 'text', (c) => c.references('users.id').onDelete('set null'))
          .addColumn('created_at', t.timestamp, (c) => c.notNull())
          .addUniqueConstraint('projects_workspace_slug', ['workspace_id', 'slug'])
          .execute();
        await db.schema
          .createTable('versions')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('project_id', 'text', (c) => c.notNull().references('projects.id').onDelete('cascade'))
          .addColumn('number', 'integer', (c) => c.notNull())
          .addColumn('content_hash', 'text', (c) => c.notNull())
          .addColumn('source', 'text', (c) => c.notNull())
          .addColumn('created_by', 'text', (c) => c.references('users.id').onDelete('set null'))
          .addColumn('created_at', t.timestamp, (c) => c.notNull())
          .addUniqueConstraint('versions_project_hash', ['project_id', 'content_hash'])
          .addUniqueConstraint('versions_project_number', ['project_id', 'number'])
          .execute();
        await db.schema
          .createTable('version_files')
          .addColumn('version_id', 'text', (c) => c.references('versions.id').onDelete('cascade'))
          .addColumn('path', 'text', (c) => c.notNull())
          .addColumn('content', t.blob, (c) => c.notNull())
          .addPrimaryKeyConstraint('version_files_pk', ['version_id', 'path'])
          .execute();
        await db.schema
          .createTable('connections')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('workspace_id', 'text', (c) =>
            c.notNull().references('workspaces.id').onDelete('cascade'),
          )
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('postgres')`))
          .addColumn('secret', 'text', (c) => c.notNull())
          .addColumn('created_at', t.timestamp, (c) => c.notNull())
          .addUniqueConstraint('connections_workspace_name', ['workspace_id', 'name'])
          .execute();
        await db.schema
          .createTable('runs')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('workspace_id', 'text', (c) =>
            c.notNull().references('workspaces.id').onDelete('cascade'),
          )
          .addColumn('project_id', 'text', (c) => c.notNull().references('projects.id').onDelete('cascade'))
          .addColumn('version_id', 'text', (c) => c.references('versions.id').onDelete('cascade'))
          .addColumn('trigger', 'text', (c) =>
            c.notNull().check(sql`trigger in ('manual', 'api', 'publish', 'schedule', 'backfill')`),
          )
          .addColumn('context', 'text', (c) =>
            c.notNull().check(sql`context in ('logic', 'app', 'scheduled', 'api-triggered')`),
          )
          .addColumn('status', 'text', (c) =>
            c
              .notNull()
              .check(
                sql`status in ('queued', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'skipped')`,
              ),
          )
          .addColumn('private', 'integer', flag)
          .addColumn('inputs', 'text', (c) => c.notNull())
          .addColumn('created_by', 'text', (c) => c.references('users.id').onDelete('set null'))
          .addColumn('created_at', t.timestamp, (c) => c.notNull())
          .addColumn('scheduled_for', t.timestamp)
          .addColumn('started_at', t.timestamp)
          .addColumn('finished_at', t.timestamp)
          .addColumn('attempts', 'integer', flag)
          .addColumn('max_attempts', 'integer', (c) => c.notNull().defaultTo(3))
          .addColumn('worker', 'text')
          .addColumn('lease_expires_at', t.timestamp)
          .addColumn('cancel_requested', 'integer', flag)
          .addColumn('reason', 'text')
          .addColumn('error_cell', 'text')
          .addColumn('error_message', 'text')
          .addColumn('expires_at', t.timestamp)
          .execute();
        await db.schema.createIndex('runs_queue').on('runs').columns(['status', 'created_at']).execute();
        await db.schema
          .createIndex('runs_project_created')
          .on('runs')
          .columns(['project_id', 'created_at', 'id'])
          .execute();
        await db.schema
          .createTable('run_cells')
          .addColumn('run_id', 'text', (c) => c.notNull().references('runs.id').onDelete('cascade'))
          .addColumn('idx', 'integer', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('started_at', t.timestamp)
          .addColumn('duration_ms', 'integer')
          .addColumn('result', 'text')
          .addPrimaryKeyConstraint('run_cells_pk', ['run_id', 'idx'])
          .execute();
        await db.schema
          .createTable('snapshots')
          .addColumn('run_id', 'text', (c) => c.primaryKey().references('runs.id').onDelete('cascade'))
          .addColumn('body', 'text', (c) => c.notNull())
          .addColumn('gzip', t.blob, (c) => c.notNull())
          .addColumn('etag', 'text', (c) => c.notNull())
          .addColumn('created_at', t.timestamp, (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('app_settings')
          .addColumn('project_id', 'text', (c) =>
            c.primaryKey().references('projects.id').onDelete('cascade'),
          )
          .addColumn('show_last_run', 'integer', (c) => c.notNull().defaultTo(1))
          .addColumn('default_run_id', 'text', (c) => c.references('runs.id').onDelete('set null'))
          .addColumn('keep_runs', 'integer')
          .addColumn('keep_days', 'integer')
          .addColumn('updated_at', t.timestamp, (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('sql_cache')
          .addColumn('project_id', 'text', (c) => c.notNull().references('projects.id').onDelete('cascade'))
          .addColumn('key', 'text', (c) => c.notNull())
          .addColumn('cell', 'text', (c) => c.notNull())
          .addColumn('run_id', 'text', (c) => c.notNull())
          .addColumn('payload', t.blob, (c) => c.notNull())
          .addColumn('created_at', t.timestamp, (c) => c.notNull())
          .addPrimaryKeyConstraint('sql_cache_pk', ['project_id', 'key'])
          .execute();
      },
    },
    '0003_schedules': {
      async up(db: Kysely<any>) {
        await db.schema
          .createTable('schedules')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('workspace_id', 'text', (c) =>
            c.notNull().references('workspaces.id').onDelete('cascade'),
          )
          .addColumn('project_id', 'text', (c) => c.notNull().references('projects.id').onDelete('cascade'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('cadence', 'text', (c) => c.notNull())
          .addColumn('timezone', 'text', (c) => c.notNull())
          .addColumn('inputs', 'text', (c) => c.notNull())
          .addColumn('policies', 'text', (c) => c.notNull())
          .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
          .addColumn('paused_until', t.timestamp)
          .addColumn('pause_note', 'text')
          .addColumn('next_fire_at', t.timestamp)
          .addColumn('next_due_at', t.timestamp)
          .addColumn('created_by', 'text', (c) => c.references('users.id').onDelete('set null'))
          .addColumn('created_at', t.timestamp, (c) => c.notNull())
          .addColumn('updated_at', t.timestamp, (c) => c.notNull())
          .addUniqueConstraint('schedules_project_name', ['project_id', 'name'])
          .execute();
        await db.schema
          .createIndex('schedules_due')
          .on('schedules')
          .columns(['enabled', 'next_due_at'])
          .execute();
        await db.schema.createIndex('schedules_paused').on('schedules').columns(['paused_until']).execute();
        await db.schema
          .alterTable('runs')
          .addColumn('schedule_id', 'text', (c) => c.references('schedules.id').onDelete('set null'))
          .execute();
        await db.schema.alterTable('runs').addColumn('jitter_ms', 'integer').execute();
        await db.schema.alterTable('runs').addColumn('timeout_ms', 'integer').execute();
        await db.schema.alterTable('runs').addColumn('retry_of', 'text').execute();
        await db.schema
          .alterTable('runs')
          .addColumn('retry_number', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        await db.schema.alterTable('runs').addColumn('retry_at', t.timestamp).execute();
        await db.schema.alterTable('runs').addColumn('after_run_id', 'text').execute();
        // Each fire time of a schedule happens once, whichever scheduler gets there first.
        await db.schema
          .createIndex('runs_schedule_fire')
          .unique()
          .on('runs')
          .columns(['schedule_id', 'scheduled_for'])
          .where(sql.ref('retry_of'), 'is', null)
          .where(sql.ref('trigger'), 'in', ['schedule', 'backfill'])
          .execute();
        await db.schema.createIndex('runs_retry_of').unique().on('runs').column('retry_of').execute();
        await db.schema.createIndex('runs_retry_at').on('runs').column('retry_at').execute();
        await db.schema
          .createIndex('runs_schedule_created')
          .on('runs')
          .columns(['schedule_id', 'created_at'])
          .execute();
      },
    },
    '0004_notifications': {
      async up(db: Kysely<any>) {
        // How each user likes to hear: email (the default), a Slack DM, or both.
        await db.schema
          .alterTable('users')
          .addColumn('notify_via', 'text', (c) =>
            c.notNull().defaultTo('email').check(sql`notify_via in ('email', 'slack', 'both')`),
          )
          .execute();
        // Integrations, one row per workspace; secrets encrypted (AES-GCM, services/secrets.ts).
        await db.schema
          .createTable('workspace_integrations')
          .addColumn('workspace_id', 'text', (c) =>
            c.primaryKey().references('workspaces.id').onDelete('cascade'),
          )
          .addColumn('smtp', 'text')
          .addColumn('email_from', 'text')
          .addColumn('slack_token', 'text')
          .addColumn('webhook_secret', 'text')
          .addColumn('allow_private_webhooks', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('updated_at', t.timestamp, (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('notification_rules')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('workspace_id', 'text', (c) =>
            c.notNull().references('workspaces.id').onDelete('cascade'),
          )
          .addColumn('project_id', 'text', (c) => c.notNull().references('projects.id').onDelete('cascade'))
          .addColumn('schedule_id', 'text', (c) => c.references('schedules.id').onDelete('cascade'))
          .addColumn('name', 'text', (c) => c.notNull())
          /** NotificationRuleSpec as JSON. */
          .addColumn('spec', 'text', (c) => c.notNull())
          /** What the rule's condition measured on the last successful run (JSON), for changed-only. */
          .addColumn('last_measured', 'text')
          .addColumn('created_by', 'text', (c) => c.references('users.id').onDelete('set null'))
          .addColumn('created_at', t.timestamp, (c) => c.notNull())
          .addColumn('updated_at', t.timestamp, (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('notification_rules_schedule')
          .on('notification_rules')
          .column('schedule_id')
          .execute();
        // Rules sent inline with an API-triggered run (as in Hex's RunProject notifications[]).
        await db.schema.alterTable('runs').addColumn('notify', 'text').execute();
        // The outbox: one row per run and destination, created in the transaction that finishes the run.
        await db.schema
          .createTable('deliveries')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('workspace_id', 'text', (c) =>
            c.notNull().references('workspaces.id').onDelete('cascade'),
          )
          .addColumn('run_id', 'text', (c) => c.notNull().references('runs.id').onDelete('cascade'))
          .addColumn('rule_id', 'text')
          .addColumn('rule_name', 'text', (c) => c.notNull())
          /** email | slack | webhook */
          .addColumn('channel', 'text', (c) => c.notNull())
          /** `email:ada@example.com`, `slack:#ops`, `slack-dm:ada@example.com`, `webhook:https://…` */
          .addColumn('destination', 'text', (c) => c.notNull())
          /** The rule's content and the trigger's reason, as JSON. */
          .addColumn('content', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) =>
            c.notNull().check(sql`status in ('pending', 'sending', 'sent', 'failed')`),
          )
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('max_attempts', 'integer', (c) => c.notNull())
          .addColumn('next_attempt_at', t.timestamp, (c) => c.notNull())
          .addColumn('worker', 'text')
          .addColumn('lease_expires_at', t.timestamp)
          .addColumn('error', 'text')
          /** A note shown with a delivery that went out without its screenshot. */
          .addColumn('note', 'text')
          .addColumn('created_at', t.timestamp, (c) => c.notNull())
          .addColumn('sent_at', t.timestamp)
          // The same run never notifies the same destination twice, whichever rules name it.
          .addUniqueConstraint('deliveries_run_destination', ['run_id', 'destination'])
          .execute();
        await db.schema
          .createIndex('deliveries_due')
          .on('deliveries')
          .columns(['status', 'next_attempt_at'])
          .execute();
        // Who may see a project: everyone in the workspace, or (restricted) admins, its creator and grantees.
        await db.schema
          .alterTable('projects')
          .addColumn('visibility', 'text', (c) =>
            c.notNull().defaultTo('workspace').check(sql`visibility in ('workspace', 'restricted')`),
          )
          .execute();
        // View access granted to recipients who could not see the app (Hex's auto-granted App Only);
        // `principal` is `user:<id>` or `group:<id>`.
        await db.schema
          .createTable('project_grants')
          .addColumn('project_id', 'text', (c) => c.notNull().references('projects.id').onDelete('cascade'))
          .addColumn('principal', 'text', (c) => c.notNull())
          .addColumn('reason', 'text', (c) => c.notNull())
          .addColumn('granted_by', 'text')
          .addColumn('created_at', t.timestamp, (c) => c.notNull())
          .addPrimaryKeyConstraint('project_grants_pk', ['project_id', 'principal'])
          .execute();
      },
    },
    '0005_workspace_settings': {
      async up(db: Kysely<any>) {
        // May cells reach the network? 0 runs them in a network namespace (bubblewrap).
        await db.schema
          .alterTable('workspaces')
          .addColumn('cell_network', 'integer', (c) => c.notNull().defaultTo(1))
          .execute();
      },
    },
    '0006_delivery_handoff': {
      async up(db: Kysely<any>) {
        // When the notifier began handing the message to its channel (the network send). A claim whose
        // notifier died after this point may have been delivered, so it is never sent again on its own.
        await db.schema.alterTable('deliveries').addColumn('handed_off_at', t.timestamp).execute();
      },
    },
    '0007_partial_run_indexes': {
      async up(db: Kysely<any>) {
        // Most runs have no schedule, are no retry and wait for no retry, and a run's row is written
        // three times (queued, running, final), each time into every index whose predicate it meets. These
        // three indexes only serve lookups of non-null values (`= x`, `<= now`, `min(…) … is not null`),
        // so they leave nulls out: half the index writes of an API-triggered run (docs/decisions.md).
        for (const [name, column, unique] of [
          ['runs_retry_of', 'retry_of', true],
          ['runs_retry_at', 'retry_at', false],
        ] as const) {
          await db.schema.dropIndex(name).execute();
          let index = db.schema.createIndex(name).on('runs').column(column);
          if (unique) index = index.unique();
          await index.where(sql.ref(column), 'is not', null).execute();
        }
        await db.schema.dropIndex('runs_schedule_created').execute();
        await db.schema
          .createIndex('runs_schedule_created')
          .on('runs')
          .columns(['schedule_id', 'created_at'])
          .where(sql.ref('schedule_id'), 'is not', null)
          .execute();
      },
    },
    '0008_login_codes_and_sessions': {
      // Browser sign-in without a long-lived token in a URL (docs/security.md): a one-time login code
      // is exchanged for a server-side session. Both store only a SHA-256 of the secret.
      async up(db: Kysely<any>) {
        await db.schema
          .createTable('login_codes')
          .addColumn('code_hash', 'text', (c) => c.primaryKey())
          .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
          .addColumn('created_at', t.timestamp, (c) => c.notNull())
          .addColumn('expires_at', t.timestamp, (c) => c.notNull())
          .addColumn('used_at', t.timestamp)
          .execute();
        await db.schema
          .createTable('sessions')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
          .addColumn('secret_hash', 'text', (c) => c.notNull().unique())
          .addColumn('created_at', t.timestamp, (c) => c.notNull())
          .addColumn('last_seen_at', t.timestamp, (c) => c.notNull())
          .addColumn('idle_expires_at', t.timestamp, (c) => c.notNull())
          .addColumn('expires_at', t.timestamp, (c) => c.notNull())
          .addColumn('revoked_at', t.timestamp)
          .execute();
        await db.schema.createIndex('sessions_user').on('sessions').column('user_id').execute();
      },
    },
    '0009_current_version_and_owner_rules': {
      async up(db: Kysely<any>) {
        // Issue 15, bug 3: "current" was "newest by number", so a rollback was impossible. The project
        // now points at its current version; existing projects point at their newest one.
        await db.schema.alterTable('projects').addColumn('current_version_id', 'text').execute();
        await sql`update projects set current_version_id = (
            select v.id from versions v where v.project_id = projects.id order by v.number desc limit 1
          )`.execute(db);
        await db.schema.alterTable('versions').addColumn('message', 'text').execute();
        // Issue 15, bug 6: the implicit "project owners on failure" default becomes an explicit rule.
        // Schedules that relied on it (no rule of their own nor of their project applied to their runs)
        // get it written down, so nothing changes for them; the others keep exactly the rules they have.
        const bare = (
          await sql<{ id: string; project_id: string; workspace_id: string; created_by: string | null }>`
            select s.id, s.project_id, s.workspace_id, p.created_by
            from schedules s join projects p on p.id = s.project_id
            where not exists (
              select 1 from notification_rules r
              where r.project_id = s.project_id and (r.schedule_id = s.id or r.schedule_id is null)
            )`.execute(db)
        ).rows;
        const now = new Date().toISOString();
        const admins = new Map<string, string[]>();
        for (const schedule of bare) {
          let owners = schedule.created_by ? [schedule.created_by] : admins.get(schedule.workspace_id);
          if (!owners) {
            owners = (
              await sql<{
                id: string;
              }>`select id from users where workspace_id = ${schedule.workspace_id} and role = 'admin' order by id`.execute(
                db,
              )
            ).rows.map((u) => u.id);
            admins.set(schedule.workspace_id, owners);
          }
          if (owners.length === 0) continue;
          const spec = ownersOnFailureRule(owners);
          await sql`insert into notification_rules
              (id, workspace_id, project_id, schedule_id, name, spec, last_measured, created_by, created_at, updated_at)
            values (${randomUUID()}, ${schedule.workspace_id}, ${schedule.project_id}, ${schedule.id},
              ${spec.name}, ${JSON.stringify(spec)}, null, null, ${now}, ${now})`.execute(db);
        }
      },
    },
    '0010_run_claim_epoch_and_cancelled_by': {
      async up(db: Kysely<any>) {
        // Issue 15: the fencing token gets its own column. `attempts` was the token and never went back;
        // a run held now keeps its token (the backfill), and from here on `attempts` counts attempts only.
        await db.schema
          .alterTable('runs')
          .addColumn('claim_epoch', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        await sql`update runs set claim_epoch = attempts`.execute(db);
        // Issue 15, bug 10: who cancelled a run, as a person reads it ("Ada", "schedule 'x' (overlap policy)").
        await db.schema.alterTable('runs').addColumn('cancelled_by', 'text').execute();
      },
    },
    '0012_roles_and_access_levels': {
      async up(db: Kysely<any>) {
        // Issue 16: workspace roles are admin | editor | member | guest ('viewer' becomes 'member'). The
        // old column's CHECK cannot be widened in SQLite, so the column is replaced: renamed, a new one
        // added with the new CHECK, filled, and the old one (with its CHECK) dropped. Rows that point at
        // users are untouched (no table is rebuilt, so no cascade runs).
        await db.schema.alterTable('users').renameColumn('role', 'legacy_role').execute();
        await db.schema
          .alterTable('users')
          .addColumn('role', 'text', (c) =>
            c.notNull().defaultTo('member').check(sql`role in ('admin', 'editor', 'member', 'guest')`),
          )
          .execute();
        await sql`update users set role = case legacy_role when 'viewer' then 'member' else legacy_role end`.execute(
          db,
        );
        await db.schema.alterTable('users').dropColumn('legacy_role').execute();
        // Project access levels: a grant carries one (grants so far were recipients' App Only), and a
        // project has a workspace default (none for restricted projects; Can View for the others).
        await db.schema
          .alterTable('project_grants')
          .addColumn('access', 'text', (c) =>
            c
              .notNull()
              .defaultTo('app_only')
              .check(sql`access in ('app_only', 'can_view', 'can_edit', 'full_access')`),
          )
          .execute();
        await db.schema
          .alterTable('projects')
          .addColumn('workspace_access', 'text', (c) =>
            c
              .notNull()
              .defaultTo('can_view')
              .check(sql`workspace_access in ('none', 'app_only', 'can_view', 'can_edit')`),
          )
          .execute();
        await sql`update projects set workspace_access = 'none' where visibility = 'restricted'`.execute(db);
      },
    },
    '0011_accounts': {
      // Issue 16, accounts: users sign in with an email and a password (an argon2id hash), are invited
      // and reset their password by single-use codes sent by email, and carry a status. Emails are
      // unique per workspace whatever their case. API tokens get an optional expiry and a shown prefix.
      async up(db: Kysely<any>) {
        await db.schema
          .alterTable('users')
          .addColumn('status', 'text', (c) => c.notNull().defaultTo('active'))
          .execute();
        await db.schema.alterTable('users').addColumn('password_hash', 'text').execute();
        await db.schema.alterTable('users').addColumn('last_seen_at', t.timestamp).execute();
        await sql`create unique index users_workspace_email_ci on users (workspace_id, lower(email))`.execute(
          db,
        );
        await db.schema.alterTable('api_tokens').addColumn('expires_at', t.timestamp).execute();
        await db.schema.alterTable('api_tokens').addColumn('prefix', 'text').execute();
        await db.schema.createIndex('api_tokens_user').on('api_tokens').column('user_id').execute();
        await db.schema
          .createTable('account_codes')
          .addColumn('code_hash', 'text', (c) => c.primaryKey())
          .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('invite', 'reset')`))
          .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
          .addColumn('created_by', 'text', (c) => c.references('users.id').onDelete('set null'))
          .addColumn('created_at', t.timestamp, (c) => c.notNull())
          .addColumn('expires_at', t.timestamp, (c) => c.notNull())
          .addColumn('used_at', t.timestamp)
          .execute();
        await db.schema.createIndex('account_codes_user').on('account_codes').column('user_id').execute();
      },
    },
    '0014_audit_log': {
      // Issue 16, the audit log: append-only; housekeeping deletes what is older than the retention.
      // No foreign keys: an event outlives the user, token or schedule it names.
      async up(db: Kysely<any>) {
        await db.schema
          .createTable('audit_events')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('at', t.timestamp, (c) => c.notNull())
          .addColumn('actor_id', 'text')
          .addColumn('actor_name', 'text', (c) => c.notNull())
          .addColumn('action', 'text', (c) => c.notNull())
          .addColumn('target', 'text')
          .addColumn('detail', 'text', (c) => c.notNull())
          .addColumn('ip', 'text')
          .execute();
        await db.schema
          .createIndex('audit_events_workspace_at')
          .on('audit_events')
          .columns(['workspace_id', 'at', 'id'])
          .execute();
        await db.schema.createIndex('audit_events_at').on('audit_events').column('at').execute();
      },
    },
    '0013_workspace_plan': {
      // Issue 16, plans: a workspace's plan (domain/plan.ts) limits what it may use; self-hosted is Team.
      async up(db: Kysely<any>) {
        await db.schema
          .alterTable('workspaces')
          .addColumn('plan', 'text', (c) =>
            c.notNull().defaultTo('team').check(sql`plan in ('professional', 'team', 'enterprise')`),
          )
          .execute();
      },
    },
  };
}

/**
 * Brings the schema up to date, one migration per transaction, recording each in `almanac_migrations`.
 * Safe to call from several processes at once: on PostgreSQL each transaction first takes an advisory
 * lock named after the schema, so one process applies a migration and the others then skip it.
 *
 * We do not use Kysely's Migrator: its "does the migration table exist" check introspects every schema
 * in the database, which both finds another schema's table and fails when another schema is dropped
 * while it looks (seen in tests, where each test has its own schema).
 */
export async function migrate(db: Kysely<any>, dialect: Dialect): Promise<string[]> {
  // Under the same lock: two processes' concurrent `create table if not exists` race on PostgreSQL's
  // catalog ("duplicate key value violates unique constraint pg_type_typname_nsp_index", seen when
  // the reliability suite starts three processes on an empty store).
  await db.transaction().execute(async (trx) => {
    await lockForTransaction(trx, dialect, 'migrate');
    await sql`create table if not exists almanac_migrations (name text primary key, applied_at text not null)`.execute(
      trx,
    );
  });
  await adoptKyselyHistory(db, dialect);
  const applied: string[] = [];
  for (const [name, migration] of Object.entries(migrations(dialect)).sort(([a], [b]) =>
    a.localeCompare(b),
  )) {
    await db.transaction().execute(async (trx) => {
      await lockForTransaction(trx, dialect, 'migrate');
      const done = await trx
        .selectFrom('almanac_migrations')
        .select('name')
        .where('name', '=', name)
        .executeTakeFirst();
      if (done) return;
      await migration.up(trx);
      await trx
        .insertInto('almanac_migrations')
        .values({ name, applied_at: new Date().toISOString() })
        .execute();
      applied.push(name);
    });
  }
  return applied;
}

/** Migrations this build knows that the store has not applied (readiness: empty when current). */
export async function pendingMigrations(db: Kysely<any>, dialect: Dialect): Promise<string[]> {
  const applied = new Set(
    (await sql<{ name: string }>`select name from almanac_migrations`.execute(db)).rows.map((r) => r.name),
  );
  return Object.keys(migrations(dialect))
    .filter((name) => !applied.has(name))
    .sort();
}

/** Stores migrated by an earlier build recorded their history in Kysely's `kysely_migration` table. */
async function adoptKyselyHistory(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const exists =
    dialect === 'postgres'
      ? (await sql<{ t: string | null }>`select to_regclass('kysely_migration')::text as t`.execute(db))
          .rows[0]?.t
      : (
          await sql<{
            name: string;
          }>`select name from sqlite_master where type = 'table' and name = 'kysely_migration'`.execute(db)
        ).rows[0]?.name;
  if (!exists) return;
  const rows = (await sql<{ name: string }>`select name from kysely_migration`.execute(db)).rows;
  for (const row of rows) {
    await sql`insert into almanac_migrations (name, applied_at) values (${row.name}, ${new Date().toISOString()}) on conflict do nothing`.execute(
      db,
    );
  }
  await sql`drop table kysely_migration`.execute(db);
  await sql`drop table if exists kysely_migration_lock`.execute(db);
}
