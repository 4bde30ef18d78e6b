/**
 * Notification rules and the delivery outbox (ARCHITECTURE.md, decision 6). Rules belong to a schedule,
 * or to a project (every scheduled run), or travel inline with an API-triggered run. When a run
 * finishes, `planDeliveries` decides, in the transaction that finishes the run, which rules fire and
 * writes one delivery per destination; the notifier sends them later, with retries.
 */

import { randomBytes, randomUUID } from 'node:crypto';
import { allowed, effectiveAccess } from '../domain/access-policy.ts';
import { NotFoundError, ValidationError } from '../domain/errors.ts';
import { checkLength, MAX_NOTE_LENGTH } from '../domain/limits.ts';
import type { Delivery } from '../domain/notification/delivery.ts';
import type { IntegrationsView } from '../domain/notification/integrations.ts';
import {
  type SmtpSettings,
  validateEmailAddress,
  validateSmtp,
} from '../domain/notification/integrations.ts';
import {
  type Destination,
  decide,
  isFailure,
  type NotificationRule,
  type NotificationRuleSpec,
  ownersOnFailureRule,
  validateRule,
} from '../domain/notification/rule.ts';
import { DEFAULT_PLAN, LIMIT_WORDS, PLAN_LIMITS, PlanLimitError } from '../domain/plan.ts';
import type { Run, RunStatus } from '../domain/run.ts';
import type { RunSnapshot } from '../domain/snapshot.ts';
import type { Db } from '../store/database.ts';
import type { NewDelivery } from '../store/notification-store.ts';
import * as ns from '../store/notification-store.ts';
import * as ps from '../store/project-store.ts';
import * as rs from '../store/run-store.ts';
import * as ss from '../store/schedule-store.ts';
import * as ws from '../store/workspace-store.ts';
import { recordAudit } from './audit-service.ts';
import { assertAdmin, assertCanSeeRun, assertProjectAction, assertWorkspaceMember } from './authorize.ts';
import { assertSeesProject, getProject } from './project-service.ts';
import { decryptSecret, encryptSecret } from './secrets.ts';
import type { Principal, ServiceContext } from './service-context.ts';
import { notebookOfVersion } from './version-notebooks.ts';

/** Attempts per delivery before it is marked failed. */
export const DELIVERY_ATTEMPTS = 5;

/** Checks a destination can exist before a rule names it (Slack channels: the bot can post there). */
export interface DestinationCheck {
  slackChannel?: (workspaceId: string, channel: string) => Promise<void>;
}

export interface RuleInput {
  project: string;
  scheduleId?: string | null;
  rule: unknown;
}

async function checkSpec(
  ctx: ServiceContext,
  principal: Principal,
  projectId: string,
  spec: NotificationRuleSpec,
  check: DestinationCheck,
): Promise<void> {
  // The plan first (domain/plan.ts): a refused rule must not leave auto-grants behind.
  const plan = (await ws.findWorkspacePlan(ctx.db, principal.workspaceId)) ?? DEFAULT_PLAN;
  if (!PLAN_LIMITS[plan].slack) {
    const slack = spec.destinations.some(
      (d) =>
        d.kind === 'slack_channel' ||
        ((d.kind === 'user' || d.kind === 'group') && (d.via === 'slack' || d.via === 'both')),
    );
    if (slack) throw new PlanLimitError(plan, LIMIT_WORDS.slack);
  }
  for (const [i, d] of spec.destinations.entries()) {
    const field = `rule.destinations[${i}]`;
    // Slack channels and webhooks reach outside the workspace: the policy names them apart.
    if (d.kind === 'slack_channel' || d.kind === 'webhook') {
      await assertProjectAction(ctx, principal, 'rule.add_webhook', projectId);
    }
    if (d.kind === 'user') {
      const user = await ws.findUser(ctx.db, d.userId);
      if (!user || user.workspaceId !== principal.workspaceId) {
        throw new ValidationError(`${field}.userId`, `no user '${d.userId}' in this workspace`);
      }
      await grantView(ctx.db, projectId, `user:${d.userId}`, principal, ctx.now());
    } else if (d.kind === 'group') {
      const group = await ws.findGroup(ctx.db, d.groupId);
      if (!group || group.workspaceId !== principal.workspaceId) {
        throw new ValidationError(`${field}.groupId`, `no group '${d.groupId}' in this workspace`);
      }
      await grantView(ctx.db, projectId, `group:${d.groupId}`, principal, ctx.now());
    } else if (d.kind === 'slack_channel' && check.slackChannel) {
      try {
        await check.slackChannel(principal.workspaceId, d.channel);
      } catch (error) {
        throw new ValidationError(`${field}.channel`, (error as Error).message);
      }
    }
  }
  // CSV files and conditions name cells of the published version.
  const version = await ps.currentVersion(ctx.db, projectId);
  if (!version) return;
  const notebook = await notebookOfVersion(version.id, version.source);
  const cells = new Map(notebook.cells.map((c) => [c.name, c]));
  for (const name of spec.content.csvCells) {
    const cell = cells.get(name);
    if (!cell)
      throw new ValidationError('rule.content.csvCells', `the published notebook has no cell '${name}'`);
    if (cell.kind !== 'sql' && cell.kind !== 'js' && cell.kind !== 'ts') {
      throw new ValidationError(
        'rule.content.csvCells',
        `cell '${name}' is a ${cell.kind} cell, not a table`,
      );
    }
  }
  if (spec.trigger.kind === 'condition' && !cells.has(spec.trigger.condition.cell)) {
    throw new ValidationError(
      'rule.trigger.condition.cell',
      `the published notebook has no cell '${spec.trigger.condition.cell}'`,
    );
  }
}

/** Rules sent inline with an API-triggered run: each validated as a rule, fields named `notifications[i]`. */
export async function validateInlineRules(
  ctx: ServiceContext,
  principal: Principal,
  projectId: string,
  inputs: readonly unknown[],
  check: DestinationCheck = {},
): Promise<NotificationRuleSpec[]> {
  if (inputs.length > 20) throw new ValidationError('notifications', 'at most 20 rules per run');
  const specs: NotificationRuleSpec[] = [];
  for (const [i, input] of inputs.entries()) {
    const spec = validateRule(input, `notifications[${i}]`);
    await checkSpec(ctx, principal, projectId, spec, check);
    specs.push(spec);
  }
  return specs;
}

/**
 * Naming a recipient who could not see the app grants them App Only, never more (issue 16; as Hex
 * grants "App Only" to recipients): a user whose effective access is none (a guest, or a member of a
 * project with no workspace default), or a group on a project with no workspace default.
 */
async function grantView(
  db: Db,
  projectId: string,
  principalKey: string,
  by: Principal,
  now: Date,
): Promise<void> {
  const project = await ps.findProjectById(db, projectId);
  if (!project) return;
  const [kind, id = ''] = principalKey.split(':');
  if (kind === 'user') {
    const user = await ws.findUser(db, id);
    if (!user) return;
    const [row] = await ps.accessRows(db, project.workspaceId, user.id, projectId);
    const access = row
      ? effectiveAccess({
          role: user.role,
          userId: user.id,
          createdBy: row.createdBy,
          own: row.own,
          groups: row.groups,
          workspaceDefault: row.workspaceDefault,
        })
      : null;
    if (access !== null) return;
  } else if (project.visibility !== 'restricted') {
    return;
  }
  await ps.insertGrant(db, {
    projectId,
    principal: principalKey,
    reason: 'notification recipient',
    grantedBy: by.userId,
    now,
  });
  await recordAudit({ db, now: () => now }, by, {
    action: 'grant.auto',
    target: `project:${projectId}`,
    detail: {
      project: project.slug,
      principal: principalKey,
      access: 'app_only',
      reason: 'notification recipient',
    },
  });
}

export async function createRule(
  ctx: ServiceContext,
  principal: Principal,
  input: RuleInput,
  check: DestinationCheck = {},
): Promise<NotificationRule> {
  const project = await getProject(ctx, principal, input.project);
  const scheduleId = input.scheduleId ?? null;
  if (scheduleId) {
    const schedule = await ss.findSchedule(ctx.db, scheduleId);
    if (!schedule || schedule.projectId !== project.id) throw new NotFoundError('schedule', scheduleId);
  }
  const spec = validateRule(input.rule);
  await checkSpec(ctx, principal, project.id, spec, check);
  const now = ctx.now();
  const rule: NotificationRule = {
    id: randomUUID(),
    workspaceId: project.workspaceId,
    projectId: project.id,
    scheduleId,
    spec,
    lastMeasured: null,
    createdBy: principal.userId,
    createdAt: now,
    updatedAt: now,
  };
  await ns.insertRule(ctx.db, rule);
  await recordAudit(ctx, principal, {
    action: 'rule.create',
    target: `rule:${rule.id}`,
    detail: { project: project.slug, scheduleId, name: spec.name, destinations: destinationsOf(spec) },
  });
  return rule;
}

/** A rule's destinations as the audit log names them (kinds and ids; a webhook by its host only). */
function destinationsOf(spec: NotificationRuleSpec): string[] {
  return spec.destinations.map((d) => {
    switch (d.kind) {
      case 'user':
        return `user:${d.userId}`;
      case 'group':
        return `group:${d.groupId}`;
      case 'slack_channel':
        return `slack:#${d.channel}`;
      case 'webhook':
        return `webhook:${URL.canParse(d.url) ? new URL(d.url).host : '?'}`;
      default:
        return 'unknown';
    }
  });
}

/**
 * Writes the rule every new schedule starts with: "project owners on failure" (the project's creator,
 * or the workspace's admins when it has none). Called in the transaction that creates the schedule.
 */
export async function addOwnersOnFailureRule(
  trx: Db,
  schedule: { id: string; workspaceId: string; projectId: string; createdBy: string | null },
  now: Date,
): Promise<NotificationRule | null> {
  const project = await ps.findProjectById(trx, schedule.projectId);
  const owners = project?.createdBy ? [project.createdBy] : await ws.listAdminIds(trx, schedule.workspaceId);
  if (owners.length === 0) return null;
  const rule: NotificationRule = {
    id: randomUUID(),
    workspaceId: schedule.workspaceId,
    projectId: schedule.projectId,
    scheduleId: schedule.id,
    spec: ownersOnFailureRule(owners),
    lastMeasured: null,
    createdBy: schedule.createdBy,
    createdAt: now,
    updatedAt: now,
  };
  await ns.insertRule(trx, rule);
  return rule;
}

export async function getRule(
  ctx: ServiceContext,
  principal: Principal,
  id: string,
): Promise<NotificationRule> {
  const rule = await ns.findRule(ctx.db, id);
  if (!rule) throw new NotFoundError('notification rule', id);
  assertWorkspaceMember(principal, rule.workspaceId, 'notification rule', id);
  await assertSeesProject(ctx, principal, rule.projectId, 'notification rule', id);
  return rule;
}

export async function updateRule(
  ctx: ServiceContext,
  principal: Principal,
  id: string,
  input: unknown,
  check: DestinationCheck = {},
): Promise<NotificationRule> {
  const rule = await getRule(ctx, principal, id);
  const spec = validateRule(input);
  await checkSpec(ctx, principal, rule.projectId, spec, check);
  await ns.updateRule(ctx.db, id, spec, ctx.now());
  await recordAudit(ctx, principal, {
    action: 'rule.update',
    target: `rule:${id}`,
    detail: { name: spec.name, destinations: destinationsOf(spec) },
  });
  return { ...rule, spec, updatedAt: ctx.now() };
}

export async function deleteRule(ctx: ServiceContext, principal: Principal, id: string): Promise<void> {
  const rule = await getRule(ctx, principal, id);
  await ns.deleteRule(ctx.db, id);
  await recordAudit(ctx, principal, {
    action: 'rule.delete',
    target: `rule:${id}`,
    detail: { name: rule.spec.name },
  });
}

export async function listRules(
  ctx: ServiceContext,
  principal: Principal,
  filter: { project: string; scheduleId?: string | null },
): Promise<NotificationRule[]> {
  const project = await getProject(ctx, principal, filter.project);
  return ns.listRules(ctx.db, {
    projectId: project.id,
    ...(filter.scheduleId !== undefined ? { scheduleId: filter.scheduleId } : {}),
  });
}

/** How a run's rules are found: the schedule's and the project's, or the run's inline ones. */
async function rulesForRun(trx: Db, run: Run): Promise<NotificationRule[]> {
  if (run.scheduleId) {
    // Every rule is explicit: a new schedule starts with "project owners on failure" (issue 15, bug 6),
    // which its owners may remove; there is no implicit default that lapses once a rule exists.
    return ns.rulesOfScheduleRun(trx, run.projectId, run.scheduleId);
  }
  if (!run.hasInlineRules) return [];
  return (await ns.inlineRulesOfRun(trx, run.id)).map((spec, i) => ({
    id: `inline-${i}`,
    workspaceId: run.workspaceId,
    projectId: run.projectId,
    scheduleId: null,
    spec,
    lastMeasured: null,
    createdBy: run.createdBy,
    createdAt: run.createdAt,
    updatedAt: run.createdAt,
  }));
}

interface Target {
  channel: ns.DeliveryChannel;
  destination: string;
  target: string;
  dm?: boolean;
  /** The recipient, for a person: screenshots are taken as them. */
  userId?: string;
}

async function expand(trx: Db, workspaceId: string, d: Destination): Promise<Target[]> {
  if (d.kind === 'slack_channel')
    return [{ channel: 'slack', destination: `slack:#${d.channel}`, target: d.channel }];
  if (d.kind === 'webhook') return [{ channel: 'webhook', destination: `webhook:${d.url}`, target: d.url }];
  const userIds = d.kind === 'user' ? [d.userId] : await ws.listGroupMembers(trx, d.groupId);
  const users = await ws.listRecipients(trx, workspaceId, userIds);
  const out: Target[] = [];
  for (const user of users) {
    const via = !d.via || d.via === 'preference' ? user.notifyVia : d.via;
    if (via === 'email' || via === 'both')
      out.push({ channel: 'email', destination: `email:${user.email}`, target: user.email, userId: user.id });
    if (via === 'slack' || via === 'both') {
      out.push({
        channel: 'slack',
        destination: `slack-dm:${user.email}`,
        target: user.email,
        dm: true,
        userId: user.id,
      });
    }
  }
  return out;
}

/**
 * In the transaction that finishes `run`: decides which rules fire and writes their deliveries to the
 * outbox. A failure that will be retried notifies nobody yet; its last attempt does. Returns how many
 * deliveries it added.
 */
export async function planDeliveries(
  trx: Db,
  run: Run,
  status: RunStatus,
  snapshot: RunSnapshot | null,
  now: Date,
  options: { willRetry?: boolean } = {},
): Promise<number> {
  if (run.private || status === 'skipped' || status === 'cancelled') return 0;
  if (options.willRetry && isFailure(status)) return 0;
  const rules = (await rulesForRun(trx, run)).filter((r) => r.spec.enabled);
  if (rules.length === 0) return 0;
  // Only recovery and streaks look back; they need as many earlier runs as the longest streak.
  const lookBack = Math.max(
    0,
    ...rules.map((r) =>
      r.spec.trigger.kind === 'failure_streak'
        ? r.spec.trigger.count
        : r.spec.trigger.kind === 'recovery'
          ? 1
          : 0,
    ),
  );
  // A fire time counts once: attempts that were retried are not failures of their own.
  const history = lookBack > 0 ? await ns.earlierRunStatuses(trx, run, lookBack + 1) : [];
  // Read only when a channel's screenshot has no rule author to be taken as.
  let owner: Promise<string | null> | null = null;
  const projectOwner = () =>
    (owner ??= ps.findProjectById(trx, run.projectId).then((p) => p?.createdBy ?? null));
  const deliveries: NewDelivery[] = [];
  for (const rule of rules) {
    const decision = decide(rule.spec.trigger, status, snapshot, history, rule.lastMeasured ?? undefined);
    if (decision.measured !== undefined && !rule.id.startsWith('inline-')) {
      await ns.setLastMeasured(trx, rule.id, decision.measured);
    }
    if (!decision.notify) continue;
    for (const destination of rule.spec.destinations) {
      for (const target of await expand(trx, run.workspaceId, destination)) {
        deliveries.push({
          id: randomUUID(),
          workspaceId: run.workspaceId,
          runId: run.id,
          ruleId: rule.id.startsWith('inline-') ? null : rule.id,
          ruleName: rule.spec.name,
          channel: target.channel,
          destination: target.destination,
          content: {
            subject: rule.spec.content.subject,
            body: rule.spec.content.body,
            // Pictures are of successful runs only.
            screenshot: status === 'succeeded' ? rule.spec.content.screenshot : null,
            csvCells: rule.spec.content.csvCells,
            because: decision.because,
            target: target.target,
            ...(target.dm ? { dm: true } : {}),
            // A person sees the picture as they would see the app; channels and webhooks as the rule's author.
            viewAs: target.userId ?? rule.createdBy ?? (await projectOwner()),
          },
          maxAttempts: DELIVERY_ATTEMPTS,
          createdAt: now,
        });
      }
    }
  }
  return deliveries.length ? ns.insertDeliveries(trx, deliveries) : 0;
}

export async function listRunDeliveries(
  ctx: ServiceContext,
  principal: Principal,
  runId: string,
): Promise<Delivery[]> {
  const run = await rs.findRun(ctx.db, runId);
  if (!run) throw new NotFoundError('run', runId);
  assertCanSeeRun(principal, run);
  await assertSeesProject(ctx, principal, run.projectId, 'run', runId);
  return ns.listDeliveries(ctx.db, runId);
}

/** Sends a delivery again, with a fresh set of attempts. */
export async function resendDelivery(
  ctx: ServiceContext,
  principal: Principal,
  id: string,
): Promise<Delivery> {
  const delivery = await ns.findDelivery(ctx.db, id);
  if (!delivery) throw new NotFoundError('delivery', id);
  assertWorkspaceMember(principal, delivery.workspaceId, 'delivery', id);
  const run = await rs.findRun(ctx.db, delivery.runId);
  if (!run) throw new NotFoundError('delivery', id);
  await assertSeesProject(ctx, principal, run.projectId, 'delivery', id);
  if (!(await ns.requeueDelivery(ctx.db, id, ctx.now()))) {
    throw new ValidationError(
      'delivery',
      `is still ${delivery.status}; resend it once it has been sent or has failed`,
    );
  }
  await ctx.wakeups.notify('delivery_queued', id);
  return (await ns.findDelivery(ctx.db, id))!;
}

/** A workspace's integrations, with secrets decrypted (for the notifier; never returned by the API). */
export interface Integrations {
  smtp: SmtpSettings | null;
  emailFrom: string;
  slackToken: string | null;
  webhookSecret: string;
  allowPrivateWebhooks: boolean;
}

/** What the API shows of the integrations (src/domain/notification/integrations.ts). */
export type { IntegrationsView };

const DEFAULT_FROM = 'almanac@localhost';

async function integrationsRow(ctx: ServiceContext, workspaceId: string): Promise<ns.StoredIntegrations> {
  const row = await ns.findIntegrations(ctx.db, workspaceId);
  if (row) return row;
  // The webhook signing key exists from the start, so receivers can be set up before the first run.
  await ns.insertIntegrationsIfMissing(
    ctx.db,
    workspaceId,
    encryptSecret(ctx.secretKey, randomBytes(32).toString('base64url')),
    ctx.now(),
  );
  const created = await ns.findIntegrations(ctx.db, workspaceId);
  if (!created) throw new Error(`the integrations of workspace '${workspaceId}' were not created`);
  return created;
}

export async function loadIntegrations(ctx: ServiceContext, workspaceId: string): Promise<Integrations> {
  const row = await integrationsRow(ctx, workspaceId);
  return {
    smtp: row.smtp ? (JSON.parse(decryptSecret(ctx.secretKey, row.smtp)) as SmtpSettings) : null,
    emailFrom: row.emailFrom ?? DEFAULT_FROM,
    slackToken: row.slackToken ? decryptSecret(ctx.secretKey, row.slackToken) : null,
    webhookSecret: decryptSecret(ctx.secretKey, row.webhookSecret!),
    allowPrivateWebhooks: row.allowPrivateWebhooks,
  };
}

function view(i: Integrations): IntegrationsView {
  return {
    smtp: i.smtp ? { host: i.smtp.host, port: i.smtp.port, secure: i.smtp.secure, user: i.smtp.user } : null,
    emailFrom: i.emailFrom,
    slack: i.slackToken !== null,
    allowPrivateWebhooks: i.allowPrivateWebhooks,
  };
}

export async function getIntegrations(ctx: ServiceContext, principal: Principal): Promise<IntegrationsView> {
  return view(await loadIntegrations(ctx, principal.workspaceId));
}

export interface IntegrationsPatch {
  /** null removes SMTP (messages go to the outbox folder). */
  smtp?: unknown;
  emailFrom?: unknown;
  /** null removes the Slack bot. */
  slackToken?: unknown;
  allowPrivateWebhooks?: unknown;
}

/** Lengths first, so no check below (or its error message) handles a huge value. */
function checkIntegrationLengths(patch: IntegrationsPatch): void {
  const limit = (field: string, value: unknown, max: number, why: string) => {
    if (typeof value === 'string') checkLength(field, value, max, why);
  };
  limit('emailFrom', patch.emailFrom, 320, 'the longest email address');
  limit('slackToken', patch.slackToken, 256, 'far longer than Slack tokens');
  if (patch.smtp && typeof patch.smtp === 'object') {
    const smtp = patch.smtp as Record<string, unknown>;
    limit('smtp.host', smtp['host'], 253, 'the longest DNS name');
    limit('smtp.user', smtp['user'], MAX_NOTE_LENGTH, 'MAX_NOTE_LENGTH');
    limit('smtp.password', smtp['password'], MAX_NOTE_LENGTH, 'MAX_NOTE_LENGTH');
  }
}

export async function configureIntegrations(
  ctx: ServiceContext,
  principal: Principal,
  patch: IntegrationsPatch,
  check: { slackToken?: (token: string) => Promise<void> } = {},
): Promise<IntegrationsView> {
  assertAdmin(principal, 'notification integrations');
  checkIntegrationLengths(patch);
  await integrationsRow(ctx, principal.workspaceId);
  const set: Parameters<typeof ns.updateIntegrations>[2] = {};
  if (patch.smtp !== undefined) {
    set.smtp =
      patch.smtp === null ? null : encryptSecret(ctx.secretKey, JSON.stringify(validateSmtp(patch.smtp)));
  }
  if (patch.emailFrom !== undefined) set.emailFrom = validateEmailAddress(patch.emailFrom, 'emailFrom');
  if (patch.slackToken !== undefined) {
    if (patch.slackToken !== null) {
      if (typeof patch.slackToken !== 'string' || !/^xox[a-z]-[\w-]+$/.test(patch.slackToken)) {
        throw new ValidationError('slackToken', 'must be a Slack bot token (xoxb-…)');
      }
      if (check.slackToken) {
        try {
          await check.slackToken(patch.slackToken);
        } catch (error) {
          throw new ValidationError('slackToken', `Slack did not accept it: ${(error as Error).message}`);
        }
      }
    }
    set.slackToken =
      patch.slackToken === null ? null : encryptSecret(ctx.secretKey, patch.slackToken as string);
  }
  if (patch.allowPrivateWebhooks !== undefined) {
    if (typeof patch.allowPrivateWebhooks !== 'boolean') {
      throw new ValidationError('allowPrivateWebhooks', 'must be true or false');
    }
    set.allowPrivateWebhooks = patch.allowPrivateWebhooks;
  }
  await ns.updateIntegrations(ctx.db, principal.workspaceId, set, ctx.now());
  // Which settings changed, and whether each secret is now set or removed: never the values.
  await recordAudit(ctx, principal, {
    action: 'integrations.update',
    target: `workspace:${principal.workspaceId}`,
    detail: {
      changed: Object.keys(set),
      ...(patch.smtp !== undefined ? { smtpConfigured: patch.smtp !== null } : {}),
      ...(patch.slackToken !== undefined ? { slackConfigured: patch.slackToken !== null } : {}),
      ...(patch.emailFrom !== undefined ? { emailFrom: set.emailFrom ?? null } : {}),
      ...(patch.allowPrivateWebhooks !== undefined
        ? { allowPrivateWebhooks: patch.allowPrivateWebhooks }
        : {}),
    },
  });
  return getIntegrations(ctx, principal);
}

/** The key that signs this workspace's webhook requests, for admins setting up a receiver. */
export async function webhookSigningKey(ctx: ServiceContext, principal: Principal): Promise<string> {
  assertAdmin(principal, 'webhook settings');
  return (await loadIntegrations(ctx, principal.workspaceId)).webhookSecret;
}

/** How the caller likes to hear from rules that leave it to them. */
export async function setNotifyVia(ctx: ServiceContext, principal: Principal, via: unknown): Promise<void> {
  if (via !== 'email' && via !== 'slack' && via !== 'both') {
    throw new ValidationError('notifyVia', `must be email, slack or both (got ${JSON.stringify(via)})`);
  }
  await ws.setNotifyVia(ctx.db, principal.userId, via);
}

/**
 * Of `ids` (deliveries named by outbox files), those the principal may read: an admin reads every one
 * of the workspace (`outbox.read_all`), anyone else only mail addressed to them (`outbox.read_own`).
 */
export async function ownDeliveryIds(
  ctx: ServiceContext,
  principal: Principal,
  ids: readonly string[],
): Promise<Set<string>> {
  if (allowed('outbox.read_all', null, principal.role)) {
    return ns.deliveryIdsInWorkspace(ctx.db, principal.workspaceId, ids);
  }
  return ns.deliveryIdsAddressedTo(ctx.db, principal.workspaceId, principal.userId, ids);
}
