/**
 * CLI commands for the workspace's plan (issue 16): `almanac plan show` and `almanac plan set <plan>`
 * (admins; a downgrade pauses the schedules the plan does not allow and lists them). Both take `--json`.
 */
import type { Command } from 'commander';
import { ValidationError } from '../domain/errors.ts';
import { isPlan, PLAN_LABELS, PLANS, type PlanView } from '../domain/plan.ts';
import { addClientOptions, type ClientFlags, client } from './server-commands.ts';

type JsonFlags = ClientFlags & { json: boolean };

interface PlanChangeJson extends PlanView {
  paused: { id: string; name: string; projectId: string; note: string }[];
}

function describePlan(view: PlanView): string {
  const l = view.limits;
  return [
    `Plan: ${PLAN_LABELS[view.plan]}`,
    `  schedules per project: ${l.schedulesPerProject ?? 'no limit'}`,
    `  custom cron cadences:  ${l.cronSchedules ? 'yes' : 'no (presets only)'}`,
    `  Slack notifications:   ${l.slack ? 'yes' : 'no'}`,
    `  SSO enforcement:       ${l.ssoEnforcement ? 'yes' : 'no'}`,
    `  audit log export:      ${l.auditExport ? 'yes' : 'no'}`,
    '',
  ].join('\n');
}

export function registerPlanCommands(program: Command): void {
  const plan = program.command('plan').description("the workspace's plan and its limits");
  addClientOptions(plan.command('show').description("show the workspace's plan and what it allows"))
    .option('--json', 'print JSON', false)
    .action(async (flags: JsonFlags) => {
      const view = await client(flags).get<PlanView>('/api/workspace/plan');
      process.stdout.write(flags.json ? `${JSON.stringify(view, null, 2)}\n` : describePlan(view));
    });
  addClientOptions(
    plan
      .command('set')
      .description(
        "set the workspace's plan (admins); a downgrade pauses what it does not allow, deleting nothing",
      )
      .argument('<plan>', PLANS.join(' | ')),
  )
    .option('--json', 'print JSON', false)
    .action(async (name: string, flags: JsonFlags) => {
      if (!isPlan(name)) {
        throw new ValidationError('plan', `must be ${PLANS.join(', ')} (got '${name}')`);
      }
      const { data } = await client(flags).request<PlanChangeJson>('PUT', '/api/workspace/plan', {
        plan: name,
      });
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
        return;
      }
      const lines = [`The workspace is on the ${PLAN_LABELS[data.plan]} plan.`];
      for (const p of data.paused) lines.push(`Paused schedule '${p.name}' (${p.id}): ${p.note}`);
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
