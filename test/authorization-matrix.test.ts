/**
 * The authorization matrix (issue 16): every operation of the served OpenAPI document × every kind of
 * principal, each answered with the EXACT status the access policy (domain/access-policy.ts) predicts,
 * checked against the running server (in-process `app.request`, one SQLite server).
 *
 * Principals: anonymous; a guest (nothing shared with them); a member (the workspace default of the
 * fixture project, App Only); App Only, Can View (through a group), Can Edit and Full access (by name);
 * the admin; and an admin of another workspace, to whom every id of this one answers 404.
 *
 * What a principal is denied is predicted by the policy alone: 401 without a credential, 404 for a
 * project they cannot see (or another workspace's), 403 for an action their access does not reach.
 * What they are allowed answers the route's success status, except where the fixture makes the
 * allowed answer something else (`ALLOWED_STATUS`, each with its reason). A public route without a
 * fixture must answer every principal as it answers anonymous. Other routes this test has no fixture
 * for (added later) are still checked for every denial; their allowed answer must then be neither
 * 401, 403, 404 nor a 5xx, and the test prints which were checked so.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type AccessLevel,
  type Action,
  allowed,
  effectiveAccess,
  isAction,
  POLICY,
  type WorkspaceDefault,
} from '../src/domain/access-policy.ts';
import type { WorkspaceRole } from '../src/domain/workspace.ts';
import * as projects from '../src/services/project-service.ts';
import type { Principal } from '../src/services/service-context.ts';
import { createWorkspaceWithUser } from '../src/services/workspace-service.ts';
import * as ws from '../src/store/workspace-store.ts';
import { notebook, startTestServer, type TestServer, testStores } from './support/server-harness.ts';

const SOURCE = notebook(
  'Sales',
  '```js total\nreturn 42;\n```\n\n```js region\nreturn almanac.scheduled ? "s" : "a";\n```\n',
);

const WORKSPACE_DEFAULT: WorkspaceDefault = 'app_only';

/** Path parameters this test fills with things of the fixture. */
const KNOWN_PARAMS = [
  'project',
  'schedule',
  'rule',
  'run',
  'delivery',
  'version',
  'file',
  'index',
  'user',
  'grantee',
];

interface MatrixPrincipal {
  name: string;
  token: string | null;
  role: WorkspaceRole | null;
  userId: string | null;
  /** Their own grant, their groups' grants (on the fixture project). */
  own: AccessLevel | null;
  groups: AccessLevel[];
  /** A user of another workspace: every id of this one is a 404 to them. */
  otherWorkspace?: boolean;
}

/** Minimal valid bodies, per `method path` of the OpenAPI document. */
function bodies(fixture: Fixture, nth: number): Record<string, unknown> {
  const webhook = { destinations: [{ kind: 'webhook', url: 'https://example.com/hook' }] };
  return {
    'post /api/tokens': { name: `matrix ${nth}` },
    'post /api/auth/login-codes': {},
    'post /api/projects': { source: SOURCE, slug: `made-${nth}` },
    'put /api/projects/{project}/visibility': { visibility: 'workspace' },
    'put /api/projects/{project}/draft': { source: SOURCE },
    'post /api/projects/{project}/publish': {},
    'patch /api/projects/{project}/app/settings': {},
    'post /api/projects/{project}/runs': { private: true },
    'post /api/projects/{project}/runs/batch': { runs: [{}] },
    'post /api/projects/{project}/schedules': {
      name: `s${nth}`,
      cadence: { kind: 'daily', time: '09:00' },
      timezone: 'UTC',
    },
    'post /api/schedules/preview': { cadence: { kind: 'daily', time: '09:00' }, timezone: 'UTC' },
    'patch /api/schedules/{schedule}': {},
    'post /api/schedules/{schedule}/pause': {},
    'post /api/schedules/{schedule}/backfill': { from: '2026-02-26T00:00:00Z', to: '2026-02-27T00:00:00Z' },
    'put /api/workspace/settings': {},
    'put /api/workspace/plan': { plan: 'team' },
    'post /api/connections': { name: `wh${nth}`, url: 'postgres://u:p@db.example:5432/w' },
    'post /api/projects/{project}/notification-rules': webhook,
    'put /api/notification-rules/{rule}': webhook,
    'put /api/integrations': {},
    'put /api/me/notify-via': { via: 'email' },
    'put /api/users/{user}/role': { role: 'member' },
    'post /api/users/invitations': { email: `invited-${nth}@example.com`, role: 'member' },
    'put /api/projects/{project}/access': { workspace: fixture.workspaceDefault },
    'put /api/projects/{project}/grants': { principal: `user:${fixture.spareUser}`, access: 'app_only' },
  };
}

/**
 * Where the fixture makes an allowed caller's answer other than the route's first success status
 * (lists answer their success status, so they are not here).
 */
const ALLOWED_STATUS: Record<string, { status: number; why: string }> = {
  'get /api/integrations/slack/channels': { status: 404, why: 'no Slack bot token is set up' },
  'get /api/outbox/{file}': { status: 404, why: 'no such message (reading mail is in access-policy.test)' },
  'get /api/outbox/{file}/message': { status: 404, why: 'no such message' },
  'get /api/outbox/{file}/attachments/{index}': { status: 404, why: 'no such message' },
  'post /api/projects/{project}/publish': { status: 200, why: 'the draft is already published' },
  'post /api/deliveries/{delivery}/resend': { status: 200, why: 'the notifier sends it again before each' },
  'delete /api/tokens/{token}': { status: 404, why: 'no such token of theirs' },
};

interface Fixture {
  slug: string;
  runId: string;
  scheduleId: string;
  ruleId: string;
  deliveryId: string;
  version: number;
  spareUser: string;
  workspaceDefault: WorkspaceDefault;
}

describe('authorization matrix', async () => {
  const [sqlite] = await testStores();
  let t: TestServer;
  let admin: Principal;
  let fixture: Fixture;
  const principals: MatrixPrincipal[] = [];

  before(async () => {
    t = await startTestServer(sqlite!);
    admin = await t.server.admin();
    const created = await t.json('POST', '/api/projects', { source: SOURCE, slug: 'sales' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const published = await t.json('POST', '/api/projects/sales/publish', {});
    assert.equal(published.status, 201, JSON.stringify(published.body));
    await t.server.worker!.drain();
    const schedule = await t.json('POST', '/api/projects/sales/schedules', {
      name: 'daily',
      cadence: { kind: 'daily', time: '09:00' },
      timezone: 'UTC',
    });
    assert.equal(schedule.status, 201, JSON.stringify(schedule.body));
    const rule = await t.json('POST', '/api/projects/sales/notification-rules', {
      scheduleId: schedule.body.id,
      name: 'to the admin',
      trigger: { kind: 'success' },
      destinations: [{ kind: 'user', userId: admin.userId, via: 'email' }],
    });
    assert.equal(rule.status, 201, JSON.stringify(rule.body));
    const fired = await t.json('POST', `/api/schedules/${schedule.body.id}/run`);
    assert.equal(fired.status, 201, JSON.stringify(fired.body));
    await t.server.worker!.drain();
    await t.server.notifier!.drain();
    const deliveries = await t.json('GET', `/api/runs/${fired.body.id}/deliveries`);
    assert.ok(deliveries.body.length >= 1, JSON.stringify(deliveries.body));
    await projects.setWorkspaceAccess(t.server.ctx, admin, 'sales', WORKSPACE_DEFAULT);

    const user = async (name: string, role: WorkspaceRole, workspaceId = admin.workspaceId) => {
      const made = await createWorkspaceWithUser(t.server.ctx, {
        workspaceId,
        name: workspaceId,
        email: `${name}@example.com`,
        role,
      });
      return made;
    };
    const spare = await user('spare', 'member');
    fixture = {
      slug: 'sales',
      runId: published.body.run.id,
      scheduleId: schedule.body.id,
      ruleId: rule.body.id,
      deliveryId: deliveries.body[0].id,
      version: published.body.version.number,
      spareUser: spare.principal.userId,
      workspaceDefault: WORKSPACE_DEFAULT,
    };
    const add = async (
      name: string,
      role: WorkspaceRole,
      grant: AccessLevel | null,
      via: 'user' | 'group' = 'user',
    ) => {
      const made = await user(name, role);
      if (grant && via === 'user') {
        await projects.shareProject(t.server.ctx, admin, 'sales', {
          principal: `user:${made.principal.userId}`,
          access: grant,
        });
      }
      if (grant && via === 'group') {
        const groupId = `group-${name}`;
        await ws.insertGroup(t.server.ctx.db, { id: groupId, workspaceId: admin.workspaceId, name });
        await ws.addGroupMember(t.server.ctx.db, groupId, made.principal.userId);
        await projects.shareProject(t.server.ctx, admin, 'sales', {
          principal: `group:${groupId}`,
          access: grant,
        });
      }
      principals.push({
        name,
        token: made.token,
        role,
        userId: made.principal.userId,
        own: via === 'user' ? grant : null,
        groups: via === 'group' && grant ? [grant] : [],
      });
    };
    principals.push({ name: 'anonymous', token: null, role: null, userId: null, own: null, groups: [] });
    await add('guest', 'guest', null);
    await add('member', 'member', null);
    await add('app-only', 'guest', 'app_only');
    await add('can-view', 'member', 'can_view', 'group');
    await add('can-edit', 'member', 'can_edit');
    await add('full-access', 'editor', 'full_access');
    principals.push({
      name: 'admin',
      token: t.token,
      role: 'admin',
      userId: admin.userId,
      own: null,
      groups: [],
    });
    const other = await user('other-admin', 'admin', 'elsewhere');
    principals.push({
      name: 'other-workspace admin',
      token: other.token,
      role: 'admin',
      userId: other.principal.userId,
      own: null,
      groups: [],
      otherWorkspace: true,
    });
  });

  after(() => t?.close());

  /** The access a principal has to the fixture project (null: none). */
  function accessOf(p: MatrixPrincipal): AccessLevel | null {
    if (p.otherWorkspace || p.role === null) return null;
    return effectiveAccess({
      role: p.role,
      userId: p.userId!,
      createdBy: admin.userId,
      own: p.own,
      groups: p.groups,
      workspaceDefault: fixture.workspaceDefault,
    });
  }

  /** What the policy says this principal gets: the status, or 'allowed'. */
  function predicted(
    action: Action,
    p: MatrixPrincipal,
    namesProject: boolean,
    path: string,
  ): number | 'allowed' {
    const rule = POLICY[action];
    if (rule.kind === 'public') return 'allowed';
    if (p.role === null) return 401;
    // Another workspace's admin may do workspace actions, but in their own workspace: every id of
    // this one (a project, a schedule, a user…) is a 404 to them.
    if (p.otherWorkspace && /\{/.test(path))
      return allowed(action, null, p.role) || rule.kind === 'project' ? 404 : 403;
    if (rule.kind === 'project' && namesProject) {
      const access = accessOf(p);
      if (access === null) return 404;
      return allowed(action, access, p.role) ? 'allowed' : 403;
    }
    return allowed(action, null, p.role) ? 'allowed' : 403;
  }

  it('answers every operation × principal as the policy says', async () => {
    const document = (await t.json('GET', '/api/openapi.json')).body;
    const operations: {
      method: string;
      path: string;
      action: Action;
      success: number;
      hasBody: boolean;
    }[] = [];
    for (const [path, methods] of Object.entries<Record<string, any>>(document.paths)) {
      for (const [method, operation] of Object.entries<any>(methods)) {
        const action = operation['x-almanac-action'];
        assert.ok(isAction(action), `${method} ${path} declares no policy action (got ${action})`);
        const success = Object.keys(operation.responses)
          .map(Number)
          .filter((s) => s >= 200 && s < 300)
          .sort((a, b) => a - b)[0];
        operations.push({
          method,
          path,
          action,
          success: success ?? 200,
          hasBody: Boolean(operation.requestBody),
        });
      }
    }
    const failures: string[] = [];
    let checked = 0;
    let loose = 0;
    const looseKeys = new Set<string>();
    let nth = 0;
    for (const op of operations) {
      const key = `${op.method} ${op.path}`;
      // An allowed answer is predicted exactly where this test knows a valid request for the route.
      const params = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
      const known =
        ALLOWED_STATUS[key] !== undefined ||
        key in bodies(fixture, 0) ||
        (!op.hasBody && params.every((name) => KNOWN_PARAMS.includes(name)));
      // A public route's answer does not depend on who asks: every principal gets anonymous's status.
      let publicStatus: number | null = null;
      for (const p of principals) {
        nth++;
        const url = await urlFor(op.path, op.method);
        const namesProject =
          /\{(project|schedule|run|rule|delivery)\}/.test(op.path) || op.path === '/api/runs';
        const body =
          bodies(fixture, nth)[key] ?? (op.method === 'get' || op.method === 'delete' ? undefined : {});
        if (key === 'post /api/deliveries/{delivery}/resend') await t.server.notifier!.drain();
        // Run now makes the run of the current minute; each call gets a minute of its own.
        if (key === 'post /api/schedules/{schedule}/run') t.clock.advance(60_000);
        const response = await t.api(op.method.toUpperCase(), url, body, p.token);
        const text = await readSome(response);
        const expectation = predicted(op.action, p, namesProject, op.path);
        checked++;
        if (expectation === 'allowed') {
          const exact = ALLOWED_STATUS[key]?.status ?? (known ? op.success : null);
          if (exact === null && POLICY[op.action].kind === 'public') {
            publicStatus ??= response.status;
            if (response.status !== publicStatus || response.status >= 500) {
              failures.push(
                `${key} as ${p.name}: public, expected ${publicStatus} as for anonymous, got ${response.status} ${text}`,
              );
            }
          } else if (exact === null) {
            loose++;
            looseKeys.add(key);
            if ([401, 403, 404].includes(response.status) || response.status >= 500) {
              failures.push(`${key} as ${p.name}: allowed by ${op.action}, got ${response.status} ${text}`);
            }
          } else if (response.status !== exact) {
            failures.push(
              `${key} as ${p.name}: expected ${exact} (${op.action}), got ${response.status} ${text}`,
            );
          }
        } else if (response.status !== expectation) {
          failures.push(
            `${key} as ${p.name}: expected ${expectation} (${op.action}), got ${response.status} ${text}`,
          );
        }
      }
    }
    console.log(
      `authorization matrix: ${operations.length} operations × ${principals.length} principals = ${checked} requests (${loose} allowed answers checked loosely: routes without a fixture here: ${[...looseKeys].join(', ')})`,
    );
    assert.deepEqual(failures, []);
  });

  /** A fresh thing for operations that use it up (deletes, cancels), else the fixture's. */
  async function urlFor(path: string, method: string): Promise<string> {
    let scheduleId = fixture.scheduleId;
    let ruleId = fixture.ruleId;
    let runId = fixture.runId;
    if (method === 'delete' && path === '/api/schedules/{schedule}') {
      const made = await t.json('POST', '/api/projects/sales/schedules', {
        name: `gone-${Math.random()}`,
        cadence: { kind: 'daily', time: '09:00' },
        timezone: 'UTC',
      });
      scheduleId = made.body.id;
    }
    if (method === 'delete' && path === '/api/notification-rules/{rule}') {
      const made = await t.json('POST', '/api/projects/sales/notification-rules', {
        destinations: [{ kind: 'webhook', url: 'https://example.com/gone' }],
      });
      ruleId = made.body.id;
    }
    let userId = fixture.spareUser;
    if (path === '/api/users/{user}/deactivate') {
      const made = await createWorkspaceWithUser(t.server.ctx, {
        workspaceId: admin.workspaceId,
        name: 'w',
        email: `leaving-${Math.random()}@example.com`,
        role: 'member',
      });
      userId = made.principal.userId;
    }
    if (method === 'delete' && path === '/api/projects/{project}/grants/{grantee}') {
      await projects.shareProject(t.server.ctx, admin, 'sales', {
        principal: `user:${fixture.spareUser}`,
        access: 'app_only',
      });
    }
    if (path === '/api/runs/{run}/cancel') {
      const made = await t.json('POST', '/api/projects/sales/runs', {});
      runId = made.body.id;
    }
    const values: Record<string, string> = {
      project: fixture.slug,
      schedule: scheduleId,
      rule: ruleId,
      run: runId,
      delivery: fixture.deliveryId,
      version: String(fixture.version),
      file: '20260301T090000000Z-00000000-0000-4000-8000-000000000000.eml',
      index: '0',
      user: userId,
      grantee: `user:${fixture.spareUser}`,
    };
    const url = path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(values[name] ?? 'x'));
    return path === '/api/runs' ? `${url}?project=${fixture.slug}` : url;
  }
});

/** The start of a response's body (an event stream is cancelled after its first chunk). */
async function readSome(response: Response): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const { value } = await reader.read();
  await reader.cancel();
  return new TextDecoder().decode(value ?? new Uint8Array()).slice(0, 200);
}
