/**
 * The access policy (issue 16, "one policy enforced everywhere"): the table in domain/, every route
 * declaring an action from it, the pure functions, refusals that name what they need, the outbox read
 * per recipient, and docs/permissions.md agreeing with the table.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import {
  ACTIONS,
  allowed,
  deniedStatus,
  effectiveAccess,
  isAction,
  POLICY,
  policyMarkdown,
} from '../src/domain/access-policy.ts';
import * as projects from '../src/services/project-service.ts';
import type { Principal } from '../src/services/service-context.ts';
import { createWorkspaceWithUser, issueViewTicket } from '../src/services/workspace-service.ts';
import { migrate } from '../src/store/migrations.ts';
import * as ps from '../src/store/project-store.ts';
import { notebook, startTestServer, type TestServer, testStores } from './support/server-harness.ts';
import { storeTargets } from './support/store-targets.ts';

describe('access policy: pure functions', () => {
  const base = {
    userId: 'u',
    createdBy: 'someone-else',
    own: null,
    groups: [],
    workspaceDefault: 'none' as const,
  };

  it('takes the highest of own grant, group grants and the workspace default', () => {
    assert.equal(effectiveAccess({ ...base, role: 'member' }), null);
    assert.equal(effectiveAccess({ ...base, role: 'member', workspaceDefault: 'can_view' }), 'can_view');
    assert.equal(
      effectiveAccess({
        ...base,
        role: 'member',
        own: 'app_only',
        groups: ['can_edit'],
        workspaceDefault: 'can_view',
      }),
      'can_edit',
    );
    assert.equal(
      effectiveAccess({ ...base, role: 'member', own: 'full_access', workspaceDefault: 'can_view' }),
      'full_access',
    );
  });

  it('gives admins and the creator full access, and guests nothing from the workspace default', () => {
    assert.equal(effectiveAccess({ ...base, role: 'admin' }), 'full_access');
    assert.equal(effectiveAccess({ ...base, role: 'guest', createdBy: 'u' }), 'full_access');
    assert.equal(effectiveAccess({ ...base, role: 'guest', workspaceDefault: 'can_edit' }), null);
    assert.equal(
      effectiveAccess({ ...base, role: 'guest', own: 'app_only', workspaceDefault: 'can_edit' }),
      'app_only',
    );
  });

  it('allows by level and role, and answers 404 for no access at all', () => {
    assert.equal(allowed('project.publish', 'can_view', 'member'), false);
    assert.equal(allowed('project.publish', 'can_edit', 'member'), true);
    assert.equal(allowed('project.view_app', 'app_only', 'guest'), true);
    assert.equal(allowed('project.view_runs', 'app_only', 'member'), false);
    assert.equal(allowed('run.view', 'app_only', 'member', { ownRun: true }), true);
    assert.equal(allowed('run.view', null, 'member', { ownRun: true }), false);
    assert.equal(allowed('project.create', null, 'member'), false);
    assert.equal(allowed('project.create', null, 'editor'), true);
    assert.equal(allowed('workspace.integrations', null, 'editor'), false);
    assert.equal(deniedStatus('project.publish', null), 404);
    assert.equal(deniedStatus('project.publish', 'can_view'), 403);
    assert.equal(deniedStatus('workspace.people', null), 403);
  });

  it('docs/permissions.md carries the policy table as the domain has it', () => {
    // Regenerate with `node scripts/gen-permissions.ts`.
    const doc = readFileSync(new URL('../docs/permissions.md', import.meta.url), 'utf8');
    const table = /<!-- policy:start -->\n([\s\S]*)\n<!-- policy:end -->/.exec(doc)?.[1];
    assert.equal(
      table,
      policyMarkdown(),
      'docs/permissions.md is stale: run node scripts/gen-permissions.ts',
    );
    for (const action of ACTIONS) assert.ok(doc.includes(`\`${action}\``), action);
  });
});

describe('access policy: the server', async () => {
  const [sqlite] = await testStores();
  let t: TestServer;
  let admin: Principal;
  const tokens: Record<string, string> = {};
  const users: Record<string, Principal> = {};

  before(async () => {
    t = await startTestServer(sqlite!);
    admin = await t.server.admin();
    const source = notebook('Sales', '```js total\nreturn 1;\n```\n');
    assert.equal((await t.json('POST', '/api/projects', { source, slug: 'sales' })).status, 201);
    assert.equal((await t.json('POST', '/api/projects/sales/publish', {})).status, 201);
    await t.server.worker!.drain();
    for (const [name, role] of [
      ['viewer', 'member'],
      ['editor', 'member'],
      ['guest', 'guest'],
    ] as const) {
      const made = await createWorkspaceWithUser(t.server.ctx, {
        workspaceId: admin.workspaceId,
        name: 'w',
        email: `${name}@example.com`,
        role,
      });
      tokens[name] = made.token;
      users[name] = made.principal;
    }
    await projects.shareProject(t.server.ctx, admin, 'sales', {
      principal: `user:${users['editor']!.userId}`,
      access: 'can_edit',
    });
  });

  after(() => t?.close());

  it('every route declares an action of the policy table', () => {
    // A route without an action would reach its handler unchecked (issue 16: "a route without a
    // policy entry fails a test").
    const missing = t.server.http.routes
      .filter((r) => !isAction(r.action))
      .map((r) => `${r.method} ${r.path}`);
    assert.deepEqual(missing, []);
    const used = new Set<string>(t.server.http.routes.map((r) => r.action));
    // Asked by services rather than by a route's declaration, or with no route yet.
    for (const action of ['outbox.read_all', 'rule.add_webhook', 'workspace.metrics', 'project.delete']) {
      used.add(action);
    }
    assert.deepEqual(
      ACTIONS.filter((a) => !used.has(a)),
      [],
      'every action of the table is asked somewhere',
    );
    for (const route of t.server.http.routes) {
      if (route.auth === false)
        assert.equal(POLICY[route.action].kind, 'public', `${route.path} has no credential`);
    }
  });

  it('refuses an action the caller can see but not do with 403 naming the access it needs', async () => {
    // Before issue 16, a workspace viewer could edit the draft and publish (they got 200).
    const draft = await t.json('PUT', '/api/projects/sales/draft', { source: '# x\n' }, tokens['viewer']);
    assert.equal(draft.status, 403);
    assert.match(
      draft.body.error.message,
      /needs Can Edit on 'sales' to edit the draft \(you have Can View\)/,
    );
    const retention = await t.json(
      'PATCH',
      '/api/projects/sales/app/settings',
      { keepRuns: 1 },
      tokens['editor'],
    );
    assert.equal(retention.status, 403);
    assert.match(retention.body.error.message, /needs Full access on 'sales'/);
    const created = await t.json('POST', '/api/projects', { source: '# y\n', slug: 'y' }, tokens['viewer']);
    assert.equal(created.status, 403);
    assert.match(created.body.error.message, /only a workspace admin or editor may create projects/);
    // A guest does not see the project at all.
    assert.equal((await t.api('GET', '/api/projects/sales/app', undefined, tokens['guest'])).status, 404);
    const listed = await t.json('GET', '/api/projects', undefined, tokens['guest']);
    assert.deepEqual(listed.body, []);
  });

  it('sharing: a grant raises a guest to what it says, and taking it away hides the project again', async () => {
    const guest = `user:${users['guest']!.userId}`;
    const shared = await t.json('PUT', '/api/projects/sales/grants', {
      principal: guest,
      access: 'app_only',
    });
    assert.equal(shared.status, 200, JSON.stringify(shared.body));
    assert.ok(shared.body.grants.some((g: { principal: string; access: string }) => g.principal === guest));
    assert.equal((await t.api('GET', '/api/projects/sales/app', undefined, tokens['guest'])).status, 200);
    const runs = await t.json('GET', '/api/runs?project=sales', undefined, tokens['guest']);
    assert.equal(runs.status, 403, 'App Only does not read the run log');
    // Only Full access shares.
    const byEditor = await t.json(
      'PUT',
      '/api/projects/sales/grants',
      { principal: guest, access: 'full_access' },
      tokens['editor'],
    );
    assert.equal(byEditor.status, 403);
    assert.equal((await t.api('DELETE', `/api/projects/sales/grants/${guest}`)).status, 204);
    assert.equal((await t.api('GET', '/api/projects/sales/app', undefined, tokens['guest'])).status, 404);
  });

  it('naming a guest as a recipient grants App Only, never more', async () => {
    // Before issue 16 a recipient grant gave full edit rights, and a guest on a workspace project got none.
    const guest = users['guest']!;
    const rule = await t.json('POST', '/api/projects/sales/notification-rules', {
      trigger: { kind: 'failure' },
      destinations: [{ kind: 'user', userId: guest.userId }],
    });
    assert.equal(rule.status, 201, JSON.stringify(rule.body));
    const sharing = await t.json('GET', '/api/projects/sales/access');
    assert.deepEqual(
      sharing.body.grants.filter((g: { principal: string }) => g.principal === `user:${guest.userId}`),
      [{ principal: `user:${guest.userId}`, access: 'app_only', reason: 'notification recipient' }],
    );
    assert.equal((await t.api('GET', '/api/projects/sales/app', undefined, tokens['guest'])).status, 200);
    assert.equal((await t.api('GET', '/api/projects/sales', undefined, tokens['guest'])).status, 403);
    assert.equal((await t.api('DELETE', `/api/projects/sales/grants/user:${guest.userId}`)).status, 204);
    assert.equal((await t.api('DELETE', `/api/notification-rules/${rule.body.id}`)).status, 204);
  });

  it('a run event stream closes when its reader loses access', { timeout: 20_000 }, async () => {
    // SSE streams ask the policy on every change, not only when they open: a reader lowered to App
    // Only (who still sees the project, so reading the run alone would go on) kept getting events.
    const run = await t.json('POST', '/api/projects/sales/runs', {});
    assert.equal(run.status, 201, JSON.stringify(run.body));
    const response = await t.api('GET', `/api/runs/${run.body.id}/events`, undefined, tokens['viewer']);
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    const first = await reader.read();
    assert.match(new TextDecoder().decode(first.value), /event: run/);
    await projects.setWorkspaceAccess(t.server.ctx, admin, 'sales', 'app_only');
    try {
      await t.server.ctx.wakeups.notify('run_progress', run.body.id);
      const next = await reader.read();
      assert.equal(next.done, true, new TextDecoder().decode(next.value));
      const again = await t.api('GET', `/api/runs/${run.body.id}/events`, undefined, tokens['viewer']);
      assert.equal(again.status, 403);
    } finally {
      await projects.setWorkspaceAccess(t.server.ctx, admin, 'sales', 'can_view');
    }
    assert.equal((await t.api('POST', `/api/runs/${run.body.id}/cancel`)).status, 200);
  });

  it("a screenshot's view ticket reads the run page with the recipient's access", async () => {
    // Screenshots are rendered as their recipient: an App Only recipient's ticket opens the app, and
    // a run they were not told about is refused as it is to them.
    const guest = users['guest']!;
    await projects.shareProject(t.server.ctx, admin, 'sales', {
      principal: `user:${guest.userId}`,
      access: 'app_only',
    });
    try {
      const run = await t.json('POST', '/api/projects/sales/runs', {});
      await t.server.worker!.drain();
      const ticket = await issueViewTicket(t.server.ctx, guest.userId, run.body.id);
      assert.equal((await t.api('GET', '/api/projects/sales/app/manifest', undefined, ticket)).status, 200);
      const refused = await t.json('GET', `/api/runs/${run.body.id}`, undefined, ticket);
      assert.equal(refused.status, 403, JSON.stringify(refused.body));
      const asAdmin = await issueViewTicket(t.server.ctx, admin.userId, run.body.id);
      assert.equal((await t.api('GET', `/api/runs/${run.body.id}`, undefined, asAdmin)).status, 200);
    } finally {
      await projects.unshareProject(t.server.ctx, admin, 'sales', `user:${guest.userId}`);
    }
  });

  it('the outbox: a member reads only mail addressed to them; an admin reads all', async () => {
    const schedule = await t.json('POST', '/api/projects/sales/schedules', {
      name: 'daily',
      cadence: { kind: 'daily', time: '09:00' },
      timezone: 'UTC',
    });
    assert.equal(schedule.status, 201, JSON.stringify(schedule.body));
    const rule = await t.json('POST', '/api/projects/sales/notification-rules', {
      scheduleId: schedule.body.id,
      trigger: { kind: 'success' },
      destinations: [{ kind: 'user', userId: users['viewer']!.userId, via: 'email' }],
    });
    assert.equal(rule.status, 201, JSON.stringify(rule.body));
    const run = await t.json('POST', `/api/schedules/${schedule.body.id}/run`);
    assert.equal(run.status, 201);
    await t.server.worker!.drain();
    await t.server.notifier!.drain();
    const theirs = await t.json('GET', '/api/outbox', undefined, tokens['viewer']);
    assert.equal(theirs.body.length, 1, JSON.stringify(theirs.body));
    assert.equal((await t.api('GET', theirs.body[0].url, undefined, tokens['viewer'])).status, 200);
    const others = await t.json('GET', '/api/outbox', undefined, tokens['editor']);
    assert.deepEqual(others.body, []);
    assert.equal((await t.api('GET', theirs.body[0].url, undefined, tokens['editor'])).status, 404);
    const all = await t.json('GET', '/api/outbox');
    assert.ok(all.body.some((m: { file: string }) => m.file === theirs.body[0].file));
  });
});

for (const target of await storeTargets()) {
  describe(`access policy: migration 0012 on ${target.name}`, { skip: target.skip }, () => {
    it("turns 'viewer' into 'member', gives old grants App Only and restricted projects no workspace default", async () => {
      const store = await target.open<any>();
      try {
        const db = store.db;
        await migrate(db, store.dialect);
        // Back to the store as 0011 left it: roles admin | editor | viewer, grants without a level.
        await db.schema.alterTable('projects').dropColumn('workspace_access').execute();
        await db.schema.alterTable('project_grants').dropColumn('access').execute();
        await db.schema.alterTable('users').renameColumn('role', 'new_role').execute();
        await db.schema
          .alterTable('users')
          .addColumn('role', 'text', (c) =>
            c.notNull().defaultTo('viewer').check(sql`role in ('admin', 'editor', 'viewer')`),
          )
          .execute();
        await db.schema.alterTable('users').dropColumn('new_role').execute();
        await db
          .deleteFrom('almanac_migrations')
          .where('name', '=', '0012_roles_and_access_levels')
          .execute();
        const now = new Date('2026-03-01T09:00:00.000Z').toISOString();
        await db.insertInto('workspaces').values({ id: 'w1', name: 'Acme' }).execute();
        await db
          .insertInto('users')
          .values([
            { id: 'u1', workspace_id: 'w1', email: 'a@x', name: 'A', role: 'admin' },
            { id: 'u2', workspace_id: 'w1', email: 'v@x', name: 'V', role: 'viewer' },
          ])
          .execute();
        for (const [id, visibility] of [
          ['p1', 'workspace'],
          ['p2', 'restricted'],
        ]) {
          await db
            .insertInto('projects')
            .values({
              id,
              workspace_id: 'w1',
              slug: id,
              title: id,
              draft_source: '# x',
              draft_updated_at: now,
              created_by: 'u1',
              created_at: now,
              visibility,
            })
            .execute();
        }
        await db
          .insertInto('project_grants')
          .values({
            project_id: 'p2',
            principal: 'user:u2',
            reason: 'notification recipient',
            created_at: now,
          })
          .execute();
        assert.deepEqual(await migrate(db, store.dialect), ['0012_roles_and_access_levels']);
        const plain = (rows: object[]) => rows.map((r) => ({ ...r }));
        const roles = plain(await db.selectFrom('users').select(['id', 'role']).orderBy('id').execute());
        assert.deepEqual(roles, [
          { id: 'u1', role: 'admin' },
          { id: 'u2', role: 'member' },
        ]);
        const defaults = plain(
          await db.selectFrom('projects').select(['id', 'workspace_access']).orderBy('id').execute(),
        );
        assert.deepEqual(defaults, [
          { id: 'p1', workspace_access: 'can_view' },
          { id: 'p2', workspace_access: 'none' },
        ]);
        assert.deepEqual(plain(await db.selectFrom('project_grants').select('access').execute()), [
          { access: 'app_only' },
        ]);
        const [row] = await ps.accessRows(db, 'w1', 'u2', 'p2');
        assert.deepEqual([row?.own, row?.workspaceDefault], ['app_only', 'none']);
        await assert.rejects(
          db
            .insertInto('users')
            .values({ id: 'u3', workspace_id: 'w1', email: 'g@x', name: 'G', role: 'viewer' })
            .execute(),
          /check|CHECK/,
        );
        await db
          .insertInto('users')
          .values({ id: 'u4', workspace_id: 'w1', email: 'h@x', name: 'H', role: 'guest' })
          .execute();
      } finally {
        await store.dispose();
      }
    });
  });
}
