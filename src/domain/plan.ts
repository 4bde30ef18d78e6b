/**
 * Plans (glossary "Workspace": it holds a plan). A workspace's plan limits what it may use, and this is
 * the one table of those limits: services ask it when a schedule or a rule is created or changed, when
 * a plan is set (a downgrade pauses what the new plan does not allow), and when a Slack delivery is
 * about to be sent. A self-hosted install starts on Team.
 *
 * A downgrade loses nothing: what goes over the limits is paused or skipped with a note naming the
 * plan, never deleted, and resumes after an upgrade.
 *
 * No zod here: the CLI's `plan` commands load this module, and must start fast (cli/program.ts).
 */
import { ForbiddenError } from './errors.ts';

export const PLANS = ['professional', 'team', 'enterprise'] as const;
export type Plan = (typeof PLANS)[number];

/** A self-hosted install's plan until an admin sets another. */
export const DEFAULT_PLAN: Plan = 'team';

/** What a plan allows. */
export interface PlanLimits {
  /** How many schedules a project may have; null: no limit. */
  schedulesPerProject: number | null;
  /** Custom cron cadences (false: the hourly, daily, weekly and monthly presets only). */
  cronSchedules: boolean;
  /** Slack notifications: channel destinations and DMs. */
  slack: boolean;
  /** Admins may require single sign-on (a flag: SSO itself is not built yet). */
  ssoEnforcement: boolean;
  /** The audit log may be exported. */
  auditExport: boolean;
}

/** The limits of each plan: the one place they are written down. */
export const PLAN_LIMITS: Readonly<Record<Plan, Readonly<PlanLimits>>> = {
  professional: {
    schedulesPerProject: 1,
    cronSchedules: false,
    slack: false,
    ssoEnforcement: false,
    auditExport: false,
  },
  team: {
    schedulesPerProject: null,
    cronSchedules: true,
    slack: true,
    ssoEnforcement: false,
    auditExport: false,
  },
  enterprise: {
    schedulesPerProject: null,
    cronSchedules: true,
    slack: true,
    ssoEnforcement: true,
    auditExport: true,
  },
};

/** How people read a plan's name: "Professional". */
export const PLAN_LABELS: Readonly<Record<Plan, string>> = {
  professional: 'Professional',
  team: 'Team',
  enterprise: 'Enterprise',
};

export function isPlan(value: unknown): value is Plan {
  return typeof value === 'string' && (PLANS as readonly string[]).includes(value);
}

/** A plan as the API shows it (the route's schema, http/routes/plan.ts, says the same). */
export interface PlanView {
  plan: Plan;
  limits: PlanLimits;
}

export function planView(plan: Plan): PlanView {
  return { plan, limits: { ...PLAN_LIMITS[plan] } };
}

/** A refusal (403) that names the plan and the limit, and what to do. */
export class PlanLimitError extends ForbiddenError {
  readonly plan: Plan;

  constructor(plan: Plan, limit: string) {
    super(`the ${PLAN_LABELS[plan]} plan ${limit}; upgrade to Team for more`);
    this.plan = plan;
  }
}

/** What the plan's limit says, as a refusal or a pause note reads it. */
export const LIMIT_WORDS = {
  schedules: (n: number) => `allows ${n} schedule${n === 1 ? '' : 's'} per project`,
  cron: 'allows preset cadences only (hourly, daily, weekly, monthly), not custom cron',
  slack: 'has no Slack notifications (channels or DMs)',
} as const;

/** The note a schedule paused by a downgrade carries. */
export function downgradePauseNote(plan: Plan, why: 'schedules' | 'cron'): string {
  const limit =
    why === 'cron' ? LIMIT_WORDS.cron : LIMIT_WORDS.schedules(PLAN_LIMITS[plan].schedulesPerProject ?? 0);
  return `paused when the workspace moved to the ${PLAN_LABELS[plan]} plan, which ${limit}; resume it after an upgrade`;
}

/** Why a Slack delivery was skipped. */
export function slackSkippedReason(plan: Plan): string {
  return `skipped: the ${PLAN_LABELS[plan]} plan ${LIMIT_WORDS.slack}; upgrade to Team to send it`;
}
