/**
 * The notification API: rules (per project or schedule), a run's deliveries with resend, the workspace's
 * integrations (SMTP, Slack, webhooks), Slack channels and the caller's delivery preference. Rule
 * bodies are checked by the domain validator, whose errors name the field. (The email outbox folder is
 * `outbox.ts`.)
 */
import { z } from 'zod';
import { NotFoundError } from '../../domain/errors.ts';
import type { Delivery } from '../../domain/notification/delivery.ts';
import type { NotificationRule } from '../../domain/notification/rule.ts';
import * as notifications from '../../services/notification-service.ts';
import type { ServiceContext } from '../../services/service-context.ts';
import { type AnyRoute, route } from '../routes.ts';
import * as S from '../schemas.ts';

/** What the routes need from the notifier side (app/ wires the real ones). */
export interface NotificationHttpDeps {
  ctx: ServiceContext;
  slack: {
    authTest(token: string): Promise<unknown>;
    listChannels(
      token: string,
      fresh?: boolean,
    ): Promise<{ id: string; name: string; isPrivate: boolean; isMember: boolean }[]>;
    checkChannel(token: string, channel: string): Promise<{ name: string; isMember: boolean }>;
  } | null;
}

function ruleJson(rule: NotificationRule): z.output<typeof S.Rule> {
  return {
    id: rule.id,
    projectId: rule.projectId,
    scheduleId: rule.scheduleId,
    name: rule.spec.name,
    trigger: rule.spec.trigger,
    destinations: rule.spec.destinations,
    content: rule.spec.content,
    enabled: rule.spec.enabled,
    createdAt: rule.createdAt.toISOString(),
    updatedAt: rule.updatedAt.toISOString(),
  };
}

export function deliveryJson(d: Delivery): z.output<typeof S.Delivery> {
  return {
    id: d.id,
    runId: d.runId,
    rule: d.ruleName,
    channel: d.channel,
    destination: d.destination,
    status: d.status,
    attempts: d.attempts,
    maxAttempts: d.maxAttempts,
    nextAttemptAt: d.status === 'pending' ? d.nextAttemptAt.toISOString() : null,
    error: d.error,
    note: d.note,
    because: d.content.because,
    createdAt: d.createdAt.toISOString(),
    sentAt: d.sentAt?.toISOString() ?? null,
  };
}

export function notificationRoutes(deps: NotificationHttpDeps): AnyRoute[] {
  const { ctx, slack } = deps;
  const checks = {
    slackChannel: async (workspaceId: string, channel: string) => {
      const { slackToken } = await notifications.loadIntegrations(ctx, workspaceId);
      if (!slack || !slackToken)
        throw new Error('Slack is not set up: an admin adds a bot token under integrations first');
      const found = await slack.checkChannel(slackToken, channel);
      // A public channel the bot is not in is listed, but posting there fails on every run (issue 15,
      // bug 8): refused here, as a private one is. (Joining it for the user would need the
      // channels:join scope and post where nobody asked the bot in.)
      if (!found.isMember) {
        throw new Error(
          `invite the Almanac bot to #${found.name} (/invite @almanac in the channel), then try again`,
        );
      }
    },
  };
  const ruleInput = (body: z.infer<typeof S.RuleBody>) => {
    const { scheduleId: _, ...rule } = body;
    return rule;
  };
  return [
    route({
      method: 'get',
      path: '/api/projects/:project/notification-rules',
      action: 'project.view_rules',
      summary: "A project's notification rules (of every schedule, and project-wide)",
      tag: 'notifications',
      params: z.object({ project: z.string() }),
      query: z.object({ schedule: z.string().optional().describe('Only this schedule') }),
      responses: { 200: { description: 'The rules', schema: z.array(S.Rule) } },
      handler: async ({ c, principal, params, query }) =>
        c.json(
          (
            await notifications.listRules(ctx, principal, {
              project: params.project,
              ...(query.schedule ? { scheduleId: query.schedule } : {}),
            })
          ).map(ruleJson),
        ),
    }),
    route({
      method: 'post',
      path: '/api/projects/:project/notification-rules',
      action: 'rule.manage',
      summary: 'Add a notification rule to a project or one of its schedules',
      tag: 'notifications',
      params: z.object({ project: z.string() }),
      body: S.RuleBody,
      bodyName: 'rule',
      responses: { 201: { description: 'The rule', schema: S.Rule } },
      handler: async ({ c, principal, params, body }) =>
        c.json(
          ruleJson(
            await notifications.createRule(
              ctx,
              principal,
              { project: params.project, scheduleId: body.scheduleId ?? null, rule: ruleInput(body) },
              checks,
            ),
          ),
          201,
        ),
    }),
    route({
      method: 'put',
      path: '/api/notification-rules/:rule',
      action: 'rule.manage',
      summary: 'Replace a notification rule',
      tag: 'notifications',
      params: z.object({ rule: z.string() }),
      body: S.RuleBody,
      bodyName: 'rule',
      responses: { 200: { description: 'The rule', schema: S.Rule } },
      handler: async ({ c, principal, params, body }) =>
        c.json(
          ruleJson(await notifications.updateRule(ctx, principal, params.rule, ruleInput(body), checks)),
        ),
    }),
    route({
      method: 'delete',
      path: '/api/notification-rules/:rule',
      action: 'rule.manage',
      summary: 'Delete a notification rule',
      tag: 'notifications',
      params: z.object({ rule: z.string() }),
      responses: { 204: { description: 'Deleted' } },
      handler: async ({ c, principal, params }) => {
        await notifications.deleteRule(ctx, principal, params.rule);
        return c.body(null, 204);
      },
    }),
    route({
      method: 'get',
      path: '/api/runs/:run/deliveries',
      action: 'delivery.view',
      summary: "A run's notifications: status, attempts and error per destination",
      tag: 'notifications',
      params: z.object({ run: z.string() }),
      responses: { 200: { description: 'The deliveries', schema: z.array(S.Delivery) } },
      handler: async ({ c, principal, params }) =>
        c.json((await notifications.listRunDeliveries(ctx, principal, params.run)).map(deliveryJson)),
    }),
    route({
      method: 'post',
      path: '/api/deliveries/:delivery/resend',
      action: 'delivery.resend',
      summary: 'Send a delivery again (after it was sent or failed), with fresh attempts',
      tag: 'notifications',
      params: z.object({ delivery: z.string() }),
      responses: { 200: { description: 'The delivery, pending again', schema: S.Delivery } },
      handler: async ({ c, principal, params }) =>
        c.json(deliveryJson(await notifications.resendDelivery(ctx, principal, params.delivery))),
    }),
    route({
      method: 'get',
      path: '/api/integrations',
      action: 'workspace.read_integrations',
      summary: "The workspace's notification integrations (never their secrets)",
      tag: 'notifications',
      responses: { 200: { description: 'The integrations', schema: S.Integrations } },
      handler: async ({ c, principal }) => c.json(await notifications.getIntegrations(ctx, principal)),
    }),
    route({
      method: 'put',
      path: '/api/integrations',
      action: 'workspace.integrations',
      summary: 'Set SMTP, the sender address, the Slack bot token or the private-webhook switch (admins)',
      tag: 'notifications',
      body: S.IntegrationsBody,
      responses: { 200: { description: 'The integrations', schema: S.Integrations } },
      handler: async ({ c, principal, body }) =>
        c.json(
          await notifications.configureIntegrations(ctx, principal, body, {
            ...(slack ? { slackToken: async (token: string) => void (await slack.authTest(token)) } : {}),
          }),
        ),
    }),
    route({
      method: 'get',
      path: '/api/integrations/webhook-key',
      action: 'workspace.integrations',
      summary: 'The key that signs webhook requests, to verify them (admins)',
      tag: 'notifications',
      responses: {
        200: { description: 'The key', schema: z.object({ key: z.string(), header: z.string() }) },
      },
      handler: async ({ c, principal }) =>
        c.json({ key: await notifications.webhookSigningKey(ctx, principal), header: 'Almanac-Signature' }),
    }),
    route({
      method: 'get',
      path: '/api/integrations/slack/channels',
      action: 'workspace.read_integrations',
      summary: 'Slack channels the bot can see, and whether it is in them',
      tag: 'notifications',
      responses: {
        200: {
          description: 'The channels',
          schema: z.array(
            z.object({ id: z.string(), name: z.string(), isPrivate: z.boolean(), isMember: z.boolean() }),
          ),
        },
      },
      handler: async ({ c, principal }) => {
        const { slackToken } = await notifications.loadIntegrations(ctx, principal.workspaceId);
        if (!slack || !slackToken) {
          throw new NotFoundError(
            'Slack integration',
            'none: an admin sets a bot token with PUT /api/integrations',
          );
        }
        return c.json(await slack.listChannels(slackToken, true));
      },
    }),
    route({
      method: 'put',
      path: '/api/me/notify-via',
      action: 'me.preferences',
      summary: 'How rules that leave it to you reach you: email, slack or both',
      tag: 'notifications',
      body: z.object({ via: z.string() }).strict(),
      responses: { 204: { description: 'Saved' } },
      handler: async ({ c, principal, body }) => {
        await notifications.setNotifyVia(ctx, principal, body.via);
        return c.body(null, 204);
      },
    }),
  ];
}
