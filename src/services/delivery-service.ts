/**
 * The delivery outbox's use cases for the notifier (ARCHITECTURE.md, decisions 3 and 6), as the run
 * service's are for the worker: claim due deliveries with a lease, read what a message says, mark the
 * hand-off to a channel, and record each attempt's outcome. Every transition is one guarded UPDATE in
 * the store, so a notifier that lost its lease changes nothing.
 *
 * Rules and planning (which deliveries a finished run gets) stay in notification-service.ts; this module
 * is only the sending side.
 */
import type { Delivery } from '../domain/notification/delivery.ts';
import { DEFAULT_PLAN, PLAN_LIMITS, type Plan, slackSkippedReason } from '../domain/plan.ts';
import type { Run } from '../domain/run.ts';
import type { RunSnapshot } from '../domain/snapshot.ts';
import * as ns from '../store/notification-store.ts';
import * as ps from '../store/project-store.ts';
import * as rs from '../store/run-store.ts';
import * as ss from '../store/schedule-store.ts';
import * as ws from '../store/workspace-store.ts';
import { type Integrations, loadIntegrations } from './notification-service.ts';
import type { ServiceContext } from './service-context.ts';
import { issueViewTicket } from './workspace-service.ts';

export type { Delivery, DeliveryChannel, DeliveryContent } from '../domain/notification/delivery.ts';
export type { Integrations } from './notification-service.ts';

/** What a notifier asks for when it claims. */
export interface ClaimRequest {
  /** The notifier's id: the holder of the leases it takes. */
  notifier: string;
  /** At most this many deliveries. */
  limit: number;
  /** How long the lease on each lasts. */
  leaseMs: number;
}

/**
 * Claims due deliveries: pending ones whose time has come, and sending ones whose lease expired before
 * they were handed off. Each claim counts as an attempt. (A delivery whose notifier died after the
 * hand-off ends as failed instead, since it may have arrived: at most once per destination.)
 */
export async function claimDueDeliveries(ctx: ServiceContext, request: ClaimRequest): Promise<Delivery[]> {
  const now = ctx.now();
  const claimed = await ns.claimDeliveries(ctx.db, {
    worker: request.notifier,
    now,
    leaseUntil: new Date(now.getTime() + request.leaseMs),
    limit: request.limit,
    skipLocked: ctx.capabilities.skipLocked,
  });
  // A workspace whose plan has no Slack (after a downgrade: its rules still name Slack) gets its Slack
  // deliveries skipped here, each ending with the reason recorded; nothing is sent.
  const plans = new Map<string, Plan>();
  const out: Delivery[] = [];
  for (const delivery of claimed) {
    if (delivery.channel === 'slack') {
      let plan = plans.get(delivery.workspaceId);
      if (!plan) {
        plan = (await ws.findWorkspacePlan(ctx.db, delivery.workspaceId)) ?? DEFAULT_PLAN;
        plans.set(delivery.workspaceId, plan);
      }
      if (!PLAN_LIMITS[plan].slack) {
        const reason = slackSkippedReason(plan);
        await ns.finishDelivery(ctx.db, delivery.id, request.notifier, {
          status: 'failed',
          error: reason,
          note: reason,
        });
        continue;
      }
    }
    out.push(delivery);
  }
  return out;
}

/** When the earliest pending delivery is due (the notifier sleeps until then), or null. */
export function nextDeliveryDue(ctx: ServiceContext): Promise<Date | null> {
  return ns.nextDeliveryAt(ctx.db);
}

/**
 * Marks a claimed delivery as being handed to its channel, just before the send. False when `notifier`
 * no longer holds it (its lease expired and another took it): then it must not send.
 */
export function markHandedOff(ctx: ServiceContext, delivery: Delivery, notifier: string): Promise<boolean> {
  return ns.markHandedOff(ctx.db, delivery.id, notifier, ctx.now());
}

/** How an attempt ended: sent, failed for good, or to be tried again at `retryAt`. */
export type DeliveryOutcome = Parameters<typeof ns.finishDelivery>[3];

/** Records an attempt's outcome, if `notifier` still holds the delivery. False when it did not. */
export function finishDelivery(
  ctx: ServiceContext,
  delivery: Delivery,
  notifier: string,
  outcome: DeliveryOutcome,
): Promise<boolean> {
  return ns.finishDelivery(ctx.db, delivery.id, notifier, outcome);
}

/** What every delivery of a run says about it. */
export interface RunFacts {
  run: Run;
  project: { slug: string; title: string };
  scheduleName: string | null;
  snapshot: RunSnapshot | null;
}

/** The run a delivery tells of, with its project, schedule and snapshot; null once the run is gone. */
export async function runFacts(ctx: ServiceContext, runId: string): Promise<RunFacts | null> {
  const run = await rs.findRun(ctx.db, runId);
  if (!run) return null;
  const [project, schedule, stored] = await Promise.all([
    ps.findProjectById(ctx.db, run.projectId),
    run.scheduleId ? ss.findSchedule(ctx.db, run.scheduleId) : null,
    rs.findSnapshot(ctx.db, run.id),
  ]);
  if (!project) return null;
  return {
    run,
    project: { slug: project.slug, title: project.title },
    scheduleName: schedule?.name ?? null,
    snapshot: stored ? (JSON.parse(stored.body) as RunSnapshot) : null,
  };
}

/** The workspace's channels (SMTP, Slack, webhook key), with secrets decrypted for sending. */
export function integrationsFor(ctx: ServiceContext, delivery: Delivery): Promise<Integrations> {
  return loadIntegrations(ctx, delivery.workspaceId);
}

/** A short-lived ticket to render the delivery's run page as `viewAs` sees it (for its screenshot). */
export function screenshotTicket(ctx: ServiceContext, delivery: Delivery, viewAs: string): Promise<string> {
  return issueViewTicket(ctx, viewAs, delivery.runId);
}
