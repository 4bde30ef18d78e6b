/**
 * Queries for notifications: rules, workspace integrations, and the delivery outbox. Deliveries follow
 * the run queue's pattern (ARCHITECTURE.md, decision 3): a notifier claims due rows with a lease
 * (`FOR UPDATE SKIP LOCKED` on PostgreSQL), and every transition is one guarded UPDATE. A unique key on
 * (run, destination) means a run reaches each destination once, even if rules repeat it or the finishing
 * transaction is retried.
 */
import type { Selectable } from 'kysely';
import type {
  Delivery,
  DeliveryChannel,
  DeliveryContent,
  DeliveryStatus,
} from '../domain/notification/delivery.ts';
import type { NotificationRule, NotificationRuleSpec } from '../domain/notification/rule.ts';
import type { RunStatus } from '../domain/run.ts';
import type { Db } from './database.ts';
import type { DeliveriesTable, NotificationRulesTable, WorkspaceIntegrationsTable } from './schema.ts';
import { iso, toDate } from './schema.ts';

// The glossary's Notification rule and Delivery are defined once, in domain/; re-exported here for
// the store's importers.
export type {
  Delivery,
  DeliveryChannel,
  DeliveryContent,
  DeliveryStatus,
} from '../domain/notification/delivery.ts';
export type { NotificationRule } from '../domain/notification/rule.ts';

function toRule(row: Selectable<NotificationRulesTable>): NotificationRule {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    projectId: row.project_id,
    scheduleId: row.schedule_id,
    spec: JSON.parse(row.spec) as NotificationRuleSpec,
    lastMeasured:
      row.last_measured === null ? null : (JSON.parse(row.last_measured) as number | string | boolean),
    createdBy: row.created_by,
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
  };
}

export async function insertRule(db: Db, rule: NotificationRule): Promise<void> {
  await db
    .insertInto('notification_rules')
    .values({
      id: rule.id,
      workspace_id: rule.workspaceId,
      project_id: rule.projectId,
      schedule_id: rule.scheduleId,
      name: rule.spec.name,
      spec: JSON.stringify(rule.spec),
      last_measured: null,
      created_by: rule.createdBy,
      created_at: iso(rule.createdAt),
      updated_at: iso(rule.updatedAt),
    })
    .execute();
}

export async function updateRule(db: Db, id: string, spec: NotificationRuleSpec, now: Date): Promise<void> {
  await db
    .updateTable('notification_rules')
    .set({ name: spec.name, spec: JSON.stringify(spec), updated_at: iso(now) })
    .where('id', '=', id)
    .execute();
}

export async function deleteRule(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('notification_rules').where('id', '=', id).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

export async function findRule(db: Db, id: string): Promise<NotificationRule | null> {
  const row = await db.selectFrom('notification_rules').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toRule(row) : null;
}

/** Rules of a schedule, or (scheduleId null) of a project, oldest first. */
export async function listRules(
  db: Db,
  filter: { projectId: string; scheduleId?: string | null },
): Promise<NotificationRule[]> {
  let query = db
    .selectFrom('notification_rules')
    .selectAll()
    .where('project_id', '=', filter.projectId)
    .orderBy('created_at')
    .orderBy('id');
  if (filter.scheduleId !== undefined) {
    query =
      filter.scheduleId === null
        ? query.where('schedule_id', 'is', null)
        : query.where('schedule_id', '=', filter.scheduleId);
  }
  return (await query.execute()).map(toRule);
}

/** The rules a scheduled run of `scheduleId` answers to: the schedule's own and the project's. */
export async function rulesOfScheduleRun(
  db: Db,
  projectId: string,
  scheduleId: string,
): Promise<NotificationRule[]> {
  const rows = await db
    .selectFrom('notification_rules')
    .selectAll()
    .where('project_id', '=', projectId)
    .where((eb) => eb.or([eb('schedule_id', '=', scheduleId), eb('schedule_id', 'is', null)]))
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  return rows.map(toRule);
}

export async function setLastMeasured(
  db: Db,
  ruleId: string,
  value: number | string | boolean,
): Promise<void> {
  await db
    .updateTable('notification_rules')
    .set({ last_measured: JSON.stringify(value) })
    .where('id', '=', ruleId)
    .execute();
}

function toDelivery(row: Selectable<DeliveriesTable>): Delivery {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    runId: row.run_id,
    ruleId: row.rule_id,
    ruleName: row.rule_name,
    channel: row.channel as DeliveryChannel,
    destination: row.destination,
    content: JSON.parse(row.content) as DeliveryContent,
    status: row.status as DeliveryStatus,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    nextAttemptAt: toDate(row.next_attempt_at),
    worker: row.worker,
    leaseExpiresAt: toDate(row.lease_expires_at),
    error: row.error,
    note: row.note,
    createdAt: toDate(row.created_at),
    sentAt: toDate(row.sent_at),
  };
}

export type NewDelivery = Pick<
  Delivery,
  | 'id'
  | 'workspaceId'
  | 'runId'
  | 'ruleId'
  | 'ruleName'
  | 'channel'
  | 'destination'
  | 'content'
  | 'maxAttempts'
> & { createdAt: Date };

/** Adds deliveries to the outbox; a (run, destination) pair already there is left as it is. */
export async function insertDeliveries(db: Db, deliveries: readonly NewDelivery[]): Promise<number> {
  let inserted = 0;
  for (let i = 0; i < deliveries.length; i += 200) {
    const chunk = deliveries.slice(i, i + 200);
    const rows = await db
      .insertInto('deliveries')
      .values(
        chunk.map((d) => ({
          id: d.id,
          workspace_id: d.workspaceId,
          run_id: d.runId,
          rule_id: d.ruleId,
          rule_name: d.ruleName,
          channel: d.channel,
          destination: d.destination,
          content: JSON.stringify(d.content),
          status: 'pending',
          max_attempts: d.maxAttempts,
          next_attempt_at: iso(d.createdAt),
          created_at: iso(d.createdAt),
        })),
      )
      .onConflict((oc) => oc.columns(['run_id', 'destination']).doNothing())
      .returning('id')
      .execute();
    inserted += rows.length;
  }
  return inserted;
}

export interface DeliveryClaim {
  worker: string;
  now: Date;
  leaseUntil: Date;
  limit: number;
  skipLocked: boolean;
}

/** Claims due deliveries: pending ones whose time has come, and sending ones whose lease expired. */
export async function claimDeliveries(db: Db, claim: DeliveryClaim): Promise<Delivery[]> {
  const now = iso(claim.now);
  // A notifier that died after handing a message to its channel may have delivered it: such a delivery
  // ends as failed (visible, with resend) rather than risk sending it twice. At most once per
  // (run, destination); the window between the hand-off mark and the send is documented.
  await db
    .updateTable('deliveries')
    .set({
      status: 'failed',
      lease_expires_at: null,
      error:
        'the notifier stopped while handing this message to its channel, so it may or may not have arrived; resend it if it did not',
    })
    .where('status', '=', 'sending')
    .where('lease_expires_at', '<', now)
    .where('handed_off_at', 'is not', null)
    .execute();
  const rows = await db
    .with('picked', (qb) => {
      let candidate = qb
        .selectFrom('deliveries')
        .select('id')
        .where((eb) =>
          eb.or([
            eb.and([eb('status', '=', 'pending'), eb('next_attempt_at', '<=', now)]),
            eb.and([
              eb('status', '=', 'sending'),
              eb('lease_expires_at', '<', now),
              eb('handed_off_at', 'is', null),
            ]),
          ]),
        )
        .orderBy('next_attempt_at')
        .limit(claim.limit);
      if (claim.skipLocked) candidate = candidate.forUpdate().skipLocked();
      return candidate;
    })
    .updateTable('deliveries')
    .from('picked')
    .set((eb) => ({
      status: 'sending',
      worker: claim.worker,
      lease_expires_at: iso(claim.leaseUntil),
      attempts: eb('deliveries.attempts', '+', 1),
    }))
    .whereRef('deliveries.id', '=', 'picked.id')
    .where((eb) =>
      eb.or([
        eb('deliveries.status', '=', 'pending'),
        eb.and([
          eb('deliveries.status', '=', 'sending'),
          eb('deliveries.lease_expires_at', '<', now),
          eb('deliveries.handed_off_at', 'is', null),
        ]),
      ]),
    )
    .returningAll()
    .execute();
  return rows.map(toDelivery);
}

/** Ends a claimed delivery, if this notifier still holds it. */
export async function finishDelivery(
  db: Db,
  id: string,
  worker: string,
  outcome:
    | { status: 'sent'; at: Date; note: string | null }
    | { status: 'failed'; error: string; note: string | null }
    | { status: 'pending'; error: string; retryAt: Date; note: string | null },
): Promise<boolean> {
  const result = await db
    .updateTable('deliveries')
    .set({
      status: outcome.status,
      lease_expires_at: null,
      handed_off_at: null,
      note: outcome.note,
      ...(outcome.status === 'sent' ? { sent_at: iso(outcome.at), error: null } : { error: outcome.error }),
      ...(outcome.status === 'pending' ? { next_attempt_at: iso(outcome.retryAt) } : {}),
    })
    .where('id', '=', id)
    .where('status', '=', 'sending')
    .where('worker', '=', worker)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/**
 * Marks a claimed delivery as being handed to its channel, just before the send. False when this
 * notifier no longer holds it (its lease expired and another took it): then it must not send.
 */
export async function markHandedOff(db: Db, id: string, worker: string, at: Date): Promise<boolean> {
  const result = await db
    .updateTable('deliveries')
    .set({ handed_off_at: iso(at) })
    .where('id', '=', id)
    .where('status', '=', 'sending')
    .where('worker', '=', worker)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/** Sends a finished delivery again ("resend"): back to pending, with a fresh set of attempts. */
export async function requeueDelivery(db: Db, id: string, now: Date): Promise<boolean> {
  const result = await db
    .updateTable('deliveries')
    .set({
      status: 'pending',
      attempts: 0,
      next_attempt_at: iso(now),
      error: null,
      worker: null,
      handed_off_at: null,
    })
    .where('id', '=', id)
    .where('status', 'in', ['sent', 'failed'])
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

export async function findDelivery(db: Db, id: string): Promise<Delivery | null> {
  const row = await db.selectFrom('deliveries').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toDelivery(row) : null;
}

export async function listDeliveries(db: Db, runId: string): Promise<Delivery[]> {
  const rows = await db
    .selectFrom('deliveries')
    .selectAll()
    .where('run_id', '=', runId)
    .orderBy('created_at')
    .orderBy('destination')
    .execute();
  return rows.map(toDelivery);
}

/** When the earliest pending delivery is due, for the notifier's sleep. */
export async function nextDeliveryAt(db: Db): Promise<Date | null> {
  const row = await db
    .selectFrom('deliveries')
    .select((eb) => eb.fn.min('next_attempt_at').as('at'))
    .where('status', '=', 'pending')
    .executeTakeFirst();
  return row?.at ? toDate(row.at) : null;
}

/** Of `ids`, those of deliveries in `workspaceId` (at most the first 1,000 are looked up). */
export async function deliveryIdsInWorkspace(
  db: Db,
  workspaceId: string,
  ids: readonly string[],
): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await db
    .selectFrom('deliveries')
    .select('id')
    .where('workspace_id', '=', workspaceId)
    .where('id', 'in', ids.slice(0, 1000))
    .execute();
  return new Set(rows.map((r) => r.id));
}

/** Whether one of a run's deliveries went to the user `userId` (email or Slack DM to their address). */
export async function runAddressedTo(db: Db, runId: string, userId: string): Promise<boolean> {
  const user = await db.selectFrom('users').select('email').where('id', '=', userId).executeTakeFirst();
  if (!user) return false;
  const rows = await db.selectFrom('deliveries').select('destination').where('run_id', '=', runId).execute();
  const email = user.email.toLowerCase();
  return rows.some(
    (r) => (/^(?:email|slack-dm):(.*)$/.exec(r.destination)?.[1] ?? '').toLowerCase() === email,
  );
}

/** Of `ids`, the deliveries of the workspace addressed to the user `userId` (email or Slack DM to their address). */
export async function deliveryIdsAddressedTo(
  db: Db,
  workspaceId: string,
  userId: string,
  ids: readonly string[],
): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const user = await db.selectFrom('users').select('email').where('id', '=', userId).executeTakeFirst();
  if (!user) return new Set();
  const rows = await db
    .selectFrom('deliveries')
    .select(['id', 'destination'])
    .where('workspace_id', '=', workspaceId)
    .where('id', 'in', ids.slice(0, 1000))
    .execute();
  const email = user.email.toLowerCase();
  return new Set(
    rows
      .filter((r) => {
        const [, address = ''] = /^(?:email|slack-dm):(.*)$/.exec(r.destination) ?? [];
        return address.toLowerCase() === email;
      })
      .map((r) => r.id),
  );
}

/** The rules sent inline with an API-triggered run (kept on the run), or [] when it has none. */
export async function inlineRulesOfRun(db: Db, runId: string): Promise<NotificationRuleSpec[]> {
  const row = await db.selectFrom('runs').select('notify').where('id', '=', runId).executeTakeFirst();
  return row?.notify ? (JSON.parse(row.notify) as NotificationRuleSpec[]) : [];
}

/**
 * Statuses of earlier finished runs of the same schedule (or, with `scheduleId` null, of the same
 * project), newest first, for rules that look back (recovery, failure streaks). Private runs and
 * attempts that were retried do not count: a fire time counts once.
 */
export async function earlierRunStatuses(
  db: Db,
  run: { id: string; projectId: string; scheduleId: string | null },
  limit: number,
): Promise<RunStatus[]> {
  let query = db
    .selectFrom('runs')
    .select('status')
    .where('id', '!=', run.id)
    .where('status', 'in', ['succeeded', 'failed', 'timed_out'])
    .where('private', '=', 0)
    .where('retry_at', 'is', null)
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('runs as retry').select('retry.id').whereRef('retry.retry_of', '=', 'runs.id'))),
    )
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit);
  query = run.scheduleId
    ? query.where('schedule_id', '=', run.scheduleId)
    : query.where('project_id', '=', run.projectId);
  return (await query.execute()).map((r) => r.status as RunStatus);
}

/** A workspace's integrations as stored: secrets still encrypted (services decrypt them). */
export interface StoredIntegrations {
  workspaceId: string;
  /** Encrypted JSON SmtpSettings; null: messages go to the outbox folder. */
  smtp: string | null;
  emailFrom: string | null;
  /** Encrypted Slack bot token. */
  slackToken: string | null;
  /** Encrypted key that signs webhook requests. */
  webhookSecret: string | null;
  allowPrivateWebhooks: boolean;
}

function toIntegrations(row: Selectable<WorkspaceIntegrationsTable>): StoredIntegrations {
  return {
    workspaceId: row.workspace_id,
    smtp: row.smtp,
    emailFrom: row.email_from,
    slackToken: row.slack_token,
    webhookSecret: row.webhook_secret,
    allowPrivateWebhooks: row.allow_private_webhooks === 1,
  };
}

export async function findIntegrations(db: Db, workspaceId: string): Promise<StoredIntegrations | null> {
  const row = await db
    .selectFrom('workspace_integrations')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .executeTakeFirst();
  return row ? toIntegrations(row) : null;
}

/** Creates a workspace's integrations row with its webhook key, unless another caller just did. */
export async function insertIntegrationsIfMissing(
  db: Db,
  workspaceId: string,
  webhookSecret: string,
  now: Date,
): Promise<void> {
  await db
    .insertInto('workspace_integrations')
    .values({ workspace_id: workspaceId, webhook_secret: webhookSecret, updated_at: iso(now) })
    .onConflict((oc) => oc.column('workspace_id').doNothing())
    .execute();
}

/** Changes the given fields (secrets already encrypted); fields left out keep their value. */
export async function updateIntegrations(
  db: Db,
  workspaceId: string,
  patch: Partial<Pick<StoredIntegrations, 'smtp' | 'emailFrom' | 'slackToken' | 'allowPrivateWebhooks'>>,
  now: Date,
): Promise<void> {
  await db
    .updateTable('workspace_integrations')
    .set({
      updated_at: iso(now),
      ...(patch.smtp !== undefined ? { smtp: patch.smtp } : {}),
      ...(patch.emailFrom !== undefined ? { email_from: patch.emailFrom } : {}),
      ...(patch.slackToken !== undefined ? { slack_token: patch.slackToken } : {}),
      ...(patch.allowPrivateWebhooks !== undefined
        ? { allow_private_webhooks: patch.allowPrivateWebhooks ? 1 : 0 }
        : {}),
    })
    .where('workspace_id', '=', workspaceId)
    .execute();
}
