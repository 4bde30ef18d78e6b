/**
 * The workspace's plan (domain/plan.ts): every member reads it, admins set it.
 */
import { z } from 'zod';
import { PLANS } from '../../domain/plan.ts';
import * as workspaces from '../../services/workspace-service.ts';
import type { RouteDeps } from '../route-deps.ts';
import { type AnyRoute, route } from '../routes.ts';

const planSchema = z
  .object({
    plan: z.enum(PLANS).describe('professional | team | enterprise'),
    limits: z.object({
      schedulesPerProject: z.number().int().nullable().describe('null: no limit'),
      cronSchedules: z.boolean().describe('custom cron cadences (false: presets only)'),
      slack: z.boolean().describe('Slack notifications: channels and DMs'),
      ssoEnforcement: z.boolean(),
      auditExport: z.boolean(),
    }),
  })
  .meta({ id: 'WorkspacePlan' });

const SetPlanBody = z.strictObject({ plan: z.enum(PLANS).describe('professional | team | enterprise') });

const PlanChange = planSchema
  .extend({
    paused: z
      .array(z.object({ id: z.string(), name: z.string(), projectId: z.string(), note: z.string() }))
      .describe('Schedules the new plan does not allow, paused with a note (nothing is deleted)'),
  })
  .meta({ id: 'WorkspacePlanChange' });

export function planRoutes(deps: RouteDeps): AnyRoute[] {
  const { ctx } = deps;
  return [
    route({
      method: 'get',
      path: '/api/workspace/plan',
      action: 'workspace.read_plan',
      summary: "The workspace's plan and its limits",
      tag: 'workspace',
      responses: { 200: { description: 'The plan', schema: planSchema } },
      handler: async ({ c, principal }) => c.json(await workspaces.getPlan(ctx, principal)),
    }),
    route({
      method: 'put',
      path: '/api/workspace/plan',
      action: 'workspace.plan',
      summary:
        "Set the workspace's plan (admins); a downgrade pauses the schedules it does not allow, with a note",
      tag: 'workspace',
      body: SetPlanBody,
      responses: { 200: { description: 'The new plan, and what it paused', schema: PlanChange } },
      handler: async ({ c, principal, body }) => c.json(await workspaces.setPlan(ctx, principal, body.plan)),
    }),
  ];
}
