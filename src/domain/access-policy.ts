/**
 * The access policy (ARCHITECTURE.md, decision 11): the one table that says who may do what. Every
 * route declares one of these actions, and the HTTP layer asks `allowed` (through the authorize
 * service) before its handler runs; SSE streams, the outbox and screenshots ask the same table.
 *
 * Terms:
 * - **Workspace role** (`WorkspaceRole`, domain/workspace.ts): admin | editor | member | guest.
 * - **Project access level**: app_only < can_view < can_edit < full_access. A user's *effective*
 *   access to a project is the highest of their own grant, their groups' grants and the project's
 *   workspace default (members and editors only: a guest sees only what is shared with them by name);
 *   admins and the project's creator have full_access.
 * - **Workspace default** of a project: none | app_only | can_view | can_edit.
 *
 * A project the caller has no access to does not exist for them (404); an action their access does not
 * reach is refused (403) with the level it needs.
 */
import type { WorkspaceRole } from './workspace.ts';

/** Project access levels, lowest first. */
export const ACCESS_LEVELS = ['app_only', 'can_view', 'can_edit', 'full_access'] as const;
export type AccessLevel = (typeof ACCESS_LEVELS)[number];

/** What a project grants every member of its workspace. */
export const WORKSPACE_DEFAULTS = ['none', 'app_only', 'can_view', 'can_edit'] as const;
export type WorkspaceDefault = (typeof WORKSPACE_DEFAULTS)[number];

/** How people read a level: "Can Edit". */
export const ACCESS_LABELS: Readonly<Record<AccessLevel, string>> = {
  app_only: 'App Only',
  can_view: 'Can View',
  can_edit: 'Can Edit',
  full_access: 'Full access',
};

export const ROLE_LABELS: Readonly<Record<WorkspaceRole, string>> = {
  admin: 'Admin',
  editor: 'Editor',
  member: 'Member',
  guest: 'Guest',
};

/**
 * What an action needs:
 * - `project`: at least this access level on the project the request names (directly, or through its
 *   schedule, run, rule or delivery). `orOwnRun`: App Only also reaches runs they started themselves.
 * - `workspace`: one of these workspace roles (no project involved).
 * - `signed_in`: any signed-in user of the workspace (what they then see is filtered to them).
 * - `public`: no credential at all.
 */
export type ActionRule =
  | { kind: 'project'; min: AccessLevel; orOwnRun?: boolean }
  | { kind: 'workspace'; roles: readonly WorkspaceRole[] }
  | { kind: 'signed_in' }
  | { kind: 'public' };

const project = (min: AccessLevel, extra: { orOwnRun?: boolean } = {}): ActionRule => ({
  kind: 'project',
  min,
  ...extra,
});
const ADMIN: ActionRule = { kind: 'workspace', roles: ['admin'] };
const SIGNED_IN: ActionRule = { kind: 'signed_in' };

/** The policy table: every action → what it needs. `docs/permissions.md` is generated from it. */
export const POLICY = {
  // Anyone, signed in or not.
  public: { kind: 'public' },
  // The caller's own things.
  'me.read': SIGNED_IN,
  'me.preferences': SIGNED_IN,
  'token.manage_own': SIGNED_IN,
  'session.manage_own': SIGNED_IN,
  'outbox.read_own': SIGNED_IN,
  'schedule.preview': SIGNED_IN,
  // Lists filtered to what the caller sees.
  'project.list': SIGNED_IN,
  'connection.list': SIGNED_IN,
  'workspace.read_settings': SIGNED_IN,
  'workspace.read_integrations': SIGNED_IN,
  'workspace.read_plan': SIGNED_IN,
  // Projects.
  'project.create': { kind: 'workspace', roles: ['admin', 'editor'] },
  'project.view_app': project('app_only'),
  'project.rerun_private': project('app_only'),
  'project.view_source': project('can_view'),
  'project.view_runs': project('can_view'),
  'run.view': project('can_view', { orOwnRun: true }),
  'run.cancel': project('can_edit', { orOwnRun: true }),
  'project.view_schedules': project('can_view'),
  'project.view_rules': project('can_view'),
  'delivery.view': project('can_view'),
  'project.run_api': project('can_edit'),
  'project.edit_draft': project('can_edit'),
  'project.publish': project('can_edit'),
  'project.rollback': project('can_edit'),
  'schedule.manage': project('can_edit'),
  'rule.manage': project('can_edit'),
  'rule.add_webhook': project('can_edit'),
  'delivery.resend': project('can_edit'),
  'project.settings': project('full_access'),
  'project.share': project('full_access'),
  'project.delete': project('full_access'),
  // The workspace.
  'workspace.settings': ADMIN,
  'workspace.integrations': ADMIN,
  'workspace.people': ADMIN,
  'workspace.login_links': ADMIN,
  'workspace.metrics': ADMIN,
  'workspace.plan': ADMIN,
  'workspace.audit': ADMIN,
  'outbox.read_all': ADMIN,
  'connection.manage': ADMIN,
} as const satisfies Record<string, ActionRule>;

export type Action = keyof typeof POLICY;
export const ACTIONS = Object.keys(POLICY) as Action[];

export function isAction(value: unknown): value is Action {
  return typeof value === 'string' && Object.hasOwn(POLICY, value);
}

export function ruleOf(action: Action): ActionRule {
  return POLICY[action];
}

export function atLeast(level: AccessLevel | null, min: AccessLevel): boolean {
  return level !== null && ACCESS_LEVELS.indexOf(level) >= ACCESS_LEVELS.indexOf(min);
}

/** The higher of two levels (null: no access). */
export function higher(a: AccessLevel | null, b: AccessLevel | null): AccessLevel | null {
  if (a === null) return b;
  if (b === null) return a;
  return ACCESS_LEVELS.indexOf(a) >= ACCESS_LEVELS.indexOf(b) ? a : b;
}

/** What decides a user's access to one project. */
export interface AccessFacts {
  role: WorkspaceRole;
  userId: string;
  /** The project's creator (an owner: full access). */
  createdBy: string | null;
  /** The user's own grant on the project, if any. */
  own: AccessLevel | null;
  /** The grants of the user's groups on the project. */
  groups: readonly AccessLevel[];
  /** What the project grants every member of its workspace. */
  workspaceDefault: WorkspaceDefault;
}

/** The user's effective access to a project, or null when they may not even see it. */
export function effectiveAccess(facts: AccessFacts): AccessLevel | null {
  if (facts.role === 'admin' || (facts.createdBy !== null && facts.createdBy === facts.userId)) {
    return 'full_access';
  }
  let level: AccessLevel | null = facts.own;
  for (const group of facts.groups) level = higher(level, group);
  // A guest sees only what is shared with them by name (or through a group).
  if (facts.role !== 'guest' && facts.workspaceDefault !== 'none') {
    level = higher(level, facts.workspaceDefault);
  }
  return level;
}

/**
 * Whether a caller with workspace `role` and `access` to the project in question (null: none, or no
 * project involved) may do `action`. A project action with no access at all is refused here; the
 * caller answers 404 for it (see `deniedStatus`).
 */
export function allowed(
  action: Action,
  access: AccessLevel | null,
  role: WorkspaceRole,
  options: { ownRun?: boolean } = {},
): boolean {
  const rule: ActionRule = POLICY[action];
  switch (rule.kind) {
    case 'public':
    case 'signed_in':
      return true;
    case 'workspace':
      return rule.roles.includes(role);
    case 'project':
      if (rule.orOwnRun && options.ownRun && access !== null) return true;
      return atLeast(access, rule.min);
    default:
      return assertNever(rule);
  }
}

/** The status a refusal answers: 404 for a project the caller cannot see at all, else 403. */
export function deniedStatus(action: Action, access: AccessLevel | null): 403 | 404 {
  return POLICY[action].kind === 'project' && access === null ? 404 : 403;
}

/** What each action does, as a refusal and docs/permissions.md say it ("… may publish a version"). */
export const ACTION_DESCRIPTIONS: Readonly<Record<Action, string>> = {
  public: 'reach the server without signing in (health, sign-out)',
  'me.read': 'read who they are',
  'me.preferences': 'set how notifications reach them',
  'token.manage_own': 'create, list and revoke their own API tokens',
  'session.manage_own': 'start a browser session from their API token',
  'outbox.read_own': 'read the outbox mail addressed to them',
  'schedule.preview': 'preview the fire times of a cadence',
  'project.list': 'list the projects they can see',
  'connection.list': "list the workspace's connections (never their credentials)",
  'workspace.read_settings': "read the workspace's settings",
  'workspace.read_integrations':
    "see which integrations are set up (never their secrets) and Slack's channels",
  'workspace.read_plan': "read the workspace's plan and its limits",
  'project.create': 'create projects',
  'project.view_app': 'open the published app',
  'project.rerun_private': 'start a private re-run of the app with their inputs',
  'project.view_source': 'read the notebook source, the draft, versions and app settings',
  'project.view_runs': 'read the run log',
  'run.view': 'read a run, its snapshot and its live progress',
  'run.cancel': 'cancel a run',
  'project.view_schedules': 'read schedules and their fire times',
  'project.view_rules': 'read notification rules',
  'delivery.view': "read a run's deliveries",
  'project.run_api': 'start API-triggered runs',
  'project.edit_draft': 'edit the draft',
  'project.publish': 'publish a version',
  'project.rollback': 'make an older version current (roll back)',
  'schedule.manage': 'create, change, pause, run, backfill and delete schedules',
  'rule.manage': 'add, change and delete notification rules',
  'rule.add_webhook': 'add Slack channel and webhook destinations',
  'delivery.resend': 'resend a delivery',
  'project.settings': "change the app's settings (last-run results, retention)",
  'project.share': 'share the project: grants, the workspace default, visibility',
  'project.delete': 'delete the project (no route yet)',
  'workspace.settings': "change the workspace's settings",
  'workspace.integrations': 'change notification integrations (SMTP, Slack, webhook keys)',
  'workspace.people': 'invite people, change roles, deactivate users, manage groups',
  'workspace.login_links': 'mint one-time login links',
  'workspace.metrics': 'read /metrics (scrapers use ALMANAC_METRICS_TOKEN instead)',
  'workspace.plan': "set the workspace's plan (a downgrade pauses what it does not allow)",
  'workspace.audit': 'read the audit log (who did what, when and from where)',
  'outbox.read_all': 'read all outbox mail of the workspace',
  'connection.manage': 'add and change connections',
};

/**
 * What a refusal says: "only a workspace admin may change notification integrations", or "needs Can
 * Edit on 'sales' to publish a version (you have Can View)".
 */
export function needsMessage(action: Action, projectName?: string, have?: AccessLevel | null): string {
  const rule: ActionRule = POLICY[action];
  const what = ACTION_DESCRIPTIONS[action];
  switch (rule.kind) {
    case 'project':
      return `needs ${ACCESS_LABELS[rule.min]} on '${projectName ?? 'the project'}' to ${what}${have ? ` (you have ${ACCESS_LABELS[have]})` : ''}`;
    case 'workspace':
      return `only a workspace ${rule.roles.join(' or ')} may ${what}`;
    case 'public':
    case 'signed_in':
      return `only a signed-in user may ${what}`;
    default:
      return assertNever(rule);
  }
}

/** Describes a rule for people (docs/permissions.md). */
export function describeRule(rule: ActionRule): string {
  switch (rule.kind) {
    case 'project':
      return `${ACCESS_LABELS[rule.min]} on the project${rule.orOwnRun ? ' (or App Only, for their own runs)' : ''}`;
    case 'workspace':
      return `workspace role ${rule.roles.map((r) => ROLE_LABELS[r]).join(' or ')}`;
    case 'signed_in':
      return 'any signed-in user (sees only their own or what they may see)';
    case 'public':
      return 'anyone';
    default:
      return assertNever(rule);
  }
}

function assertNever(value: never): never {
  throw new Error(`unexpected access rule ${JSON.stringify(value)}`);
}

/** Which project levels reach an action ('✓'), for the table in docs/permissions.md. */
function levelCells(rule: ActionRule): string[] {
  if (rule.kind !== 'project') return ACCESS_LEVELS.map(() => '');
  return ACCESS_LEVELS.map((level) =>
    atLeast(level, rule.min) ? '✓' : rule.orOwnRun && level === 'app_only' ? 'own' : '',
  );
}

/**
 * The policy table as Markdown (docs/permissions.md carries it; test/access-policy.test.ts checks the
 * two agree, and `node scripts/gen-permissions.ts` rewrites it).
 */
export function policyMarkdown(): string {
  const header = `| Action | What it lets one do | Needs | ${ACCESS_LEVELS.map((l) => ACCESS_LABELS[l]).join(' | ')} |`;
  const rule = `|---|---|---|${ACCESS_LEVELS.map(() => ':-:').join('|')}|`;
  const rows = ACTIONS.map((action) => {
    const r: ActionRule = POLICY[action];
    return `| \`${action}\` | ${ACTION_DESCRIPTIONS[action]} | ${describeRule(r)} | ${levelCells(r).join(' | ')} |`;
  });
  return [header, rule, ...rows].join('\n');
}
