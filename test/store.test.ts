import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Kysely, sql } from 'kysely';
import { DEFAULT_MAX_ATTEMPTS } from '../src/domain/run.ts';
import { IllegalTransitionError, newRun } from '../src/domain/run-lifecycle.ts';
import { decryptSecret, encryptSecret } from '../src/services/secrets.ts';
import { CAPABILITIES } from '../src/store/database.ts';
import { migrate } from '../src/store/migrations.ts';
import * as ps from '../src/store/project-store.ts';
import * as rs from '../src/store/run-store.ts';
import type { Schema } from '../src/store/schema.ts';
import * as ws from '../src/store/workspace-store.ts';
import { storeTargets } from './support/store-targets.ts';

for (const target of await storeTargets()) {
  describe(`store on ${target.name}`, { skip: target.skip }, () => {
    it('migrates a fresh database, and a second run changes nothing', async () => {
      const store = await target.open<any>();
      try {
        assert.deepEqual(await migrate(store.db, store.dialect), [
          '0001_workspaces_and_users',
          '0002_server',
          '0003_schedules',
          '0004_notifications',
          '0005_workspace_settings',
          '0006_delivery_handoff',
          '0007_partial_run_indexes',
          '0008_login_codes_and_sessions',
          '0009_current_version_and_owner_rules',
          '0010_run_claim_epoch_and_cancelled_by',
          '0011_accounts',
          '0012_roles_and_access_levels',
          '0013_workspace_plan',
          '0014_audit_log',
        ]);
        assert.deepEqual(await migrate(store.db, store.dialect), []);
        // Indexes only lookups of non-null values use leave the nulls (most runs) out.
        const definitions = (
          store.dialect === 'postgres'
            ? await sql<{
                def: string;
              }>`select indexdef as def from pg_indexes where schemaname = current_schema() and tablename = 'runs'`.execute(
                store.db,
              )
            : await sql<{
                def: string;
              }>`select sql as def from sqlite_master where type = 'index' and tbl_name = 'runs' and sql is not null`.execute(
                store.db,
              )
        ).rows.map((r) => r.def.replace(/[()"]/g, '').toLowerCase());
        for (const [name, column] of [
          ['runs_retry_of', 'retry_of'],
          ['runs_retry_at', 'retry_at'],
          ['runs_schedule_created', 'schedule_id'],
        ]) {
          const def = definitions.find((d) => d.includes(`index ${name} `));
          assert.match(def ?? '', new RegExp(`where ${column} is not null$`), name);
        }
        assert.deepEqual(store.capabilities, CAPABILITIES[target.name]);
      } finally {
        await store.dispose();
      }
    });

    it('stores workspaces and users, with defaults, constraints and cascades', async () => {
      const store = await target.open<any>();
      try {
        await migrate(store.db, store.dialect);
        await store.db.insertInto('workspaces').values({ id: 'w1', name: 'Acme' }).execute();
        await store.db
          .insertInto('users')
          .values({ id: 'u1', workspace_id: 'w1', email: 'ada@example.com', name: 'Ada', role: 'admin' })
          .execute();
        const user = await store.db
          .selectFrom('users')
          .selectAll()
          .where('id', '=', 'u1')
          .executeTakeFirstOrThrow();
        assert.equal(user.email, 'ada@example.com');
        assert.ok(!Number.isNaN(new Date(user.created_at).getTime()), 'created_at defaults to now');
        await assert.rejects(
          store.db
            .insertInto('users')
            .values({ id: 'u2', workspace_id: 'w1', email: 'ada@example.com', name: 'Ada 2', role: 'member' })
            .execute(),
          /unique|UNIQUE/,
        );
        await assert.rejects(
          store.db
            .insertInto('users')
            .values({ id: 'u3', workspace_id: 'w1', email: 'x@example.com', name: 'X', role: 'owner' })
            .execute(),
          /check|CHECK/,
        );
        await store.db.deleteFrom('workspaces').where('id', '=', 'w1').execute();
        assert.equal((await store.db.selectFrom('users').selectAll().execute()).length, 0);
      } finally {
        await store.dispose();
      }
    });

    it('stores groups with members, versions with binary files, encrypted connections, runs and snapshots', async () => {
      const store = await target.open<Schema>();
      try {
        await migrate(store.db, store.dialect);
        const db = store.db;
        await ws.insertWorkspace(db, 'w1', 'Acme');
        await ws.insertUser(db, { id: 'u1', workspaceId: 'w1', email: 'a@x', name: 'A', role: 'admin' });
        await ws.insertGroup(db, { id: 'g1', workspaceId: 'w1', name: 'analysts' });
        await ws.addGroupMember(db, 'g1', 'u1');
        assert.deepEqual(await ws.listGroupMembers(db, 'g1'), ['u1']);

        const now = new Date('2026-03-01T09:00:00.123Z');
        await ps.insertProject(db, {
          id: 'p1',
          visibility: 'workspace',
          workspaceId: 'w1',
          slug: 'sales',
          title: 'Sales',
          draftSource: '# Sales',
          draftUpdatedAt: now,
          createdBy: 'u1',
          createdAt: now,
        });
        const bytes = Buffer.from([0, 1, 2, 255, 254, 10, 13]);
        const v1 = await ps.insertVersion(
          db,
          {
            id: 'v1',
            projectId: 'p1',
            contentHash: 'h1',
            source: '# Sales',
            createdBy: 'u1',
            createdAt: now,
          },
          new Map([['data/x.bin', bytes]]),
        );
        assert.equal(v1.number, 1);
        const v2 = await ps.insertVersion(
          db,
          {
            id: 'v2',
            projectId: 'p1',
            contentHash: 'h2',
            source: '# Sales 2',
            createdBy: 'u1',
            createdAt: now,
          },
          new Map(),
        );
        assert.equal(v2.number, 2);
        await assert.rejects(
          ps.insertVersion(
            db,
            { id: 'v3', projectId: 'p1', contentHash: 'h1', source: 'x', createdBy: null, createdAt: now },
            new Map(),
          ),
          /unique|UNIQUE/,
          'one version per content hash',
        );
        assert.deepEqual((await ps.listVersionFiles(db, 'v1')).get('data/x.bin'), bytes);
        assert.equal((await ps.findVersionById(db, 'v1'))!.createdAt.toISOString(), now.toISOString());

        const key = Buffer.alloc(32, 7);
        const secret = encryptSecret(key, 'postgres://user:hunter2@db/x');
        await ws.insertConnection(db, {
          id: 'c1',
          workspaceId: 'w1',
          name: 'warehouse',
          kind: 'postgres',
          secret,
          now,
        });
        const [stored] = await ws.listConnections(db, 'w1');
        assert.equal(stored!.secret.includes('hunter2'), false);
        assert.equal(decryptSecret(key, stored!.secret), 'postgres://user:hunter2@db/x');
        assert.throws(() => decryptSecret(Buffer.alloc(32, 8), stored!.secret), /ALMANAC_SECRET_KEY/);

        const run = await rs.insertRun(db, {
          id: 'r1',
          workspaceId: 'w1',
          projectId: 'p1',
          versionId: 'v2',
          trigger: 'publish',
          context: 'app',
          private: false,
          inputs: { region: 'EMEA', n: 3, on: true, none: null },
          createdBy: 'u1',
          createdAt: now,
          scheduledFor: null,
          maxAttempts: 3,
          expiresAt: null,
        });
        assert.deepEqual(run.inputs, { region: 'EMEA', n: 3, on: true, none: null });
        assert.equal(run.status, 'queued');
        assert.equal(run.private, false);
        await assert.rejects(
          db.updateTable('runs').set({ status: 'done' }).where('id', '=', 'r1').execute(),
          /check|CHECK/,
          'statuses are constrained',
        );
        const claimed = await rs.claimNextRun(db, {
          worker: 'w',
          now,
          leaseUntil: new Date(now.getTime() + 1000),
          skipLocked: store.capabilities.skipLocked,
        });
        assert.equal(claimed!.attempts, 1);
        assert.equal(claimed!.claimEpoch, 1);
        assert.equal(
          await rs.claimNextRun(db, {
            worker: 'w2',
            now,
            leaseUntil: now,
            skipLocked: store.capabilities.skipLocked,
          }),
          null,
        );
        await rs.insertCellRows(db, 'r1', [{ name: 'a', kind: 'sql' }]);
        await rs.updateCell(db, 'r1', 0, { status: 'running', startedAt: now });
        assert.equal((await rs.listCells(db, 'r1'))[0]!.status, 'running');
        const ending = (status: 'succeeded' | 'failed') => ({
          status,
          reason: null,
          errorCell: null,
          errorMessage: null,
          finishedAt: now,
        });
        assert.equal(
          await rs.finishHeldRun(db, 'r1', { worker: 'someone-else', token: 1 }, ending('succeeded')),
          false,
          'only the holder can finish a run',
        );
        // A stale claim of the same worker (an older fencing token) can neither record progress nor
        // finish the run.
        await rs.updateCell(db, 'r1', 0, { status: 'failed' }, { worker: 'w', token: 0 });
        assert.equal((await rs.listCells(db, 'r1'))[0]!.status, 'running');
        assert.deepEqual(await rs.renewLeases(db, 'w', [{ id: 'r1', token: 0 }], now), {
          held: [],
          cancelRequested: [],
        });
        assert.equal(
          await rs.finishHeldRun(db, 'r1', { worker: 'w', token: 0 }, ending('failed')),
          false,
          'a stale claim cannot finish a run',
        );
        assert.equal(await rs.finishHeldRun(db, 'r1', { worker: 'w', token: 1 }, ending('succeeded')), true);
        await rs.insertSnapshot(db, 'r1', { body: '{"a":1}', gzip: bytes, etag: '"e"' }, now);
        assert.deepEqual(await rs.findSnapshot(db, 'r1'), { body: '{"a":1}', gzip: bytes, etag: '"e"' });
        await ps.updateAppSettings(db, 'p1', { defaultRunId: 'r1', keepRuns: 5 }, now);
        const settings = await ps.getAppSettings(db, 'p1');
        assert.deepEqual(settings, {
          projectId: 'p1',
          showLastRun: true,
          defaultRunId: 'r1',
          keepRuns: 5,
          keepDays: null,
        });
        await db.deleteFrom('projects').where('id', '=', 'p1').execute();
        assert.equal(
          (await db.selectFrom('snapshots').selectAll().execute()).length,
          0,
          'cascades to runs and snapshots',
        );
      } finally {
        await store.dispose();
      }
    });

    it('migration 0010 backfills claim_epoch from attempts, so a run held across the upgrade keeps its token', async () => {
      const store = await target.open<any>();
      try {
        await migrate(store.db, store.dialect);
        const db = store.db;
        // Back to the store as 0009 left it: no claim_epoch or cancelled_by, a run held on attempt 2.
        await db.schema.alterTable('runs').dropColumn('claim_epoch').execute();
        await db.schema.alterTable('runs').dropColumn('cancelled_by').execute();
        await db
          .deleteFrom('almanac_migrations')
          .where('name', '=', '0010_run_claim_epoch_and_cancelled_by')
          .execute();
        const now = new Date('2026-03-01T09:00:00.000Z');
        await seedProject(db, now);
        await db
          .insertInto('runs')
          .values({
            id: 'r-held',
            workspace_id: 'w1',
            project_id: 'p1',
            version_id: 'v1',
            trigger: 'api',
            context: 'api-triggered',
            status: 'running',
            inputs: '{}',
            created_at: now.toISOString(),
            attempts: 2,
            max_attempts: 3,
            worker: 'w',
          })
          .execute();
        assert.deepEqual(await migrate(db, store.dialect), ['0010_run_claim_epoch_and_cancelled_by']);
        const run = (await rs.findRun(db, 'r-held'))!;
        assert.equal(run.claimEpoch, 2);
        assert.equal(run.attempts, 2);
        assert.equal(run.cancelledBy, null);
        assert.equal(
          await rs.finishHeldRun(
            db,
            'r-held',
            { worker: 'w', token: 2 },
            {
              status: 'succeeded',
              reason: null,
              errorCell: null,
              errorMessage: null,
              finishedAt: now,
            },
          ),
          true,
          'the claim made before the upgrade still holds its run',
        );
      } finally {
        await store.dispose();
      }
    });

    it('the claim epoch is the fencing token: a release gives the attempt back, the epoch keeps growing', async () => {
      const store = await target.open<Schema>();
      try {
        await migrate(store.db, store.dialect);
        const db = store.db;
        const now = new Date('2026-03-01T09:00:00.000Z');
        await seedProject(db, now);
        await rs.insertRun(
          db,
          newRun({
            id: 'r1',
            workspaceId: 'w1',
            projectId: 'p1',
            versionId: 'v1',
            trigger: 'api',
            context: 'api-triggered',
            inputs: {},
            createdBy: null,
            createdAt: now,
          }),
        );
        const claim = (worker: string, at = now) =>
          rs.claimNextRun(db, {
            worker,
            now: at,
            leaseUntil: new Date(at.getTime() + 1000),
            skipLocked: store.capabilities.skipLocked,
          });
        const first = (await claim('w'))!;
        assert.deepEqual([first.attempts, first.claimEpoch, first.maxAttempts], [1, 1, DEFAULT_MAX_ATTEMPTS]);
        assert.equal(await rs.releaseHeldRun(db, 'r1', { worker: 'w', token: 1 }), true);
        const released = (await rs.findRun(db, 'r1'))!;
        assert.deepEqual(
          [released.status, released.attempts, released.claimEpoch, released.maxAttempts],
          ['queued', 0, 1, DEFAULT_MAX_ATTEMPTS],
          'a graceful release does not use up an attempt, nor grants an extra one',
        );
        // The same worker id claims again: its old token must not pass.
        const second = (await claim('w'))!;
        assert.deepEqual([second.attempts, second.claimEpoch], [1, 2]);
        const ending = {
          status: 'succeeded' as const,
          reason: null,
          errorCell: null,
          errorMessage: null,
          finishedAt: now,
        };
        assert.equal(await rs.releaseHeldRun(db, 'r1', { worker: 'w', token: 1 }), false, 'a stale release');
        assert.equal(
          await rs.finishHeldRun(db, 'r1', { worker: 'w', token: 1 }, ending),
          false,
          'a stale finish',
        );
        assert.deepEqual((await rs.renewLeases(db, 'w', [{ id: 'r1', token: 1 }], now)).held, []);
        assert.deepEqual((await rs.renewLeases(db, 'w', [{ id: 'r1', token: 2 }], now)).held, ['r1']);

        // Lease expiry uses up attempts: requeued while attempts remain, then worker_lost.
        const later = (ms: number) => new Date(now.getTime() + ms);
        assert.deepEqual(await rs.reapExpiredLeases(db, later(5_000)), { requeued: ['r1'], lost: [] });
        const third = (await claim('w2', later(5_000)))!;
        assert.deepEqual([third.attempts, third.claimEpoch], [2, 3]);
        assert.deepEqual(await rs.reapExpiredLeases(db, later(10_000)), { requeued: ['r1'], lost: [] });
        const fourth = (await claim('w3', later(10_000)))!;
        assert.deepEqual([fourth.attempts, fourth.claimEpoch], [3, 4]);
        assert.deepEqual(await rs.reapExpiredLeases(db, later(15_000)), { requeued: [], lost: ['r1'] });
        const lost = (await rs.findRun(db, 'r1'))!;
        assert.deepEqual([lost.status, lost.reason], ['failed', 'worker_lost']);
      } finally {
        await store.dispose();
      }
    });

    it('refuses a status change the run lifecycle does not allow, and records who cancelled', async () => {
      const store = await target.open<Schema>();
      try {
        await migrate(store.db, store.dialect);
        const db = store.db;
        const now = new Date('2026-03-01T09:00:00.000Z');
        await seedProject(db, now);
        const base = {
          workspaceId: 'w1',
          projectId: 'p1',
          versionId: 'v1',
          trigger: 'api' as const,
          context: 'api-triggered' as const,
          inputs: {},
          createdBy: null,
          createdAt: now,
        };
        await assert.rejects(
          rs.insertRun(db, newRun({ ...base, status: 'running' as never })),
          (error: Error) =>
            error instanceof IllegalTransitionError && /cannot be created as 'running'/.test(error.message),
        );
        await rs.insertRun(db, newRun({ ...base, id: 'r1' }));
        await assert.rejects(
          rs.finishHeldRun(
            db,
            'r1',
            { worker: 'w', token: 0 },
            {
              status: 'skipped',
              reason: null,
              errorCell: null,
              errorMessage: null,
              finishedAt: now,
            },
          ),
          /no transition from 'running' to 'skipped'/,
        );
        assert.equal(await rs.cancelQueuedRun(db, 'r1', now, 'Ada Lovelace'), true);
        const cancelled = (await rs.findRun(db, 'r1'))!;
        assert.deepEqual(
          [cancelled.status, cancelled.reason, cancelled.cancelledBy, cancelled.errorMessage],
          ['cancelled', 'cancelled', 'Ada Lovelace', 'Cancelled by Ada Lovelace before it started'],
        );
        assert.equal(
          await rs.cancelQueuedRun(db, 'r1', now, 'Ada Lovelace'),
          false,
          'a final run stays final',
        );

        await rs.insertRun(db, newRun({ ...base, id: 'r2' }));
        const claimed = (await rs.claimNextRun(db, {
          worker: 'w',
          now,
          leaseUntil: new Date(now.getTime() + 1000),
          skipLocked: store.capabilities.skipLocked,
        }))!;
        assert.equal(await rs.requestRunningCancel(db, 'r2', 'Grace Hopper'), true);
        assert.equal(await rs.requestRunningCancel(db, 'r2', 'Ada Lovelace'), true, 'asked again');
        assert.deepEqual(await rs.renewLeases(db, 'w', [{ id: 'r2', token: claimed.claimEpoch }], now), {
          held: ['r2'],
          cancelRequested: [{ id: 'r2', by: 'Grace Hopper' }],
        });
      } finally {
        await store.dispose();
      }
    });
  });
}

/** A workspace, a user, a project and its first version: what a run row needs. */
async function seedProject(db: Kysely<any>, now: Date): Promise<void> {
  await ws.insertWorkspace(db, 'w1', 'Acme');
  await ws.insertUser(db, { id: 'u1', workspaceId: 'w1', email: 'a@x', name: 'A', role: 'admin' });
  await ps.insertProject(db, {
    id: 'p1',
    visibility: 'workspace',
    workspaceId: 'w1',
    slug: 'sales',
    title: 'Sales',
    draftSource: '# Sales',
    draftUpdatedAt: now,
    createdBy: 'u1',
    createdAt: now,
  });
  await ps.insertVersion(
    db,
    { id: 'v1', projectId: 'p1', contentHash: 'h1', source: '# Sales', createdBy: 'u1', createdAt: now },
    new Map(),
  );
}
