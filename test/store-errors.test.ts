/**
 * Unique violations are recognized by code on both stores: PostgreSQL's SQLSTATE 23505 and SQLite's
 * extended result codes (2067 for a unique index, 1555 for a primary key), never by message text
 * (issue 15). Real databases: a fresh SQLite file and a fresh PostgreSQL schema per test.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConflictError, ValidationError } from '../src/domain/errors.ts';
import * as projects from '../src/services/project-service.ts';
import * as workspaces from '../src/services/workspace-service.ts';
import type { Db } from '../src/store/database.ts';
import { isUniqueViolation } from '../src/store/errors.ts';
import { migrate } from '../src/store/migrations.ts';
import * as ws from '../src/store/workspace-store.ts';
import { notebook, startTestServer, testStores } from './support/server-harness.ts';
import { storeTargets } from './support/store-targets.ts';

/** The error `write` rejects with. */
async function errorOf(write: () => Promise<unknown>): Promise<unknown> {
  try {
    await write();
  } catch (error) {
    return error;
  }
  assert.fail('the write succeeded');
}

for (const target of await storeTargets()) {
  describe(`unique violations on ${target.name}`, { skip: target.skip }, () => {
    let store: Awaited<ReturnType<typeof target.open>>;
    let db: Db;
    before(async () => {
      store = await target.open();
      db = store.db as Db;
      await migrate(db, store.dialect);
      await ws.insertWorkspace(db, 'w1', 'One');
      await ws.insertUser(db, {
        id: 'u1',
        workspaceId: 'w1',
        email: 'a@example.com',
        name: 'A',
        role: 'admin',
      });
    });
    after(() => store?.dispose());

    it('a taken primary key is one', async () => {
      assert.equal(isUniqueViolation(await errorOf(() => ws.insertWorkspace(db, 'w1', 'Again'))), true);
    });

    it('a taken unique key is one', async () => {
      const error = await errorOf(() =>
        ws.insertUser(db, { id: 'u2', workspaceId: 'w1', email: 'a@example.com', name: 'B', role: 'editor' }),
      );
      assert.equal(isUniqueViolation(error), true);
    });

    it('other constraint failures are not', async () => {
      // A user in a workspace that does not exist: a foreign key, not a unique key.
      const error = await errorOf(() =>
        ws.insertUser(db, {
          id: 'u3',
          workspaceId: 'nowhere',
          email: 'c@example.com',
          name: 'C',
          role: 'editor',
        }),
      );
      assert.equal(isUniqueViolation(error), false);
    });
  });
}

for (const store of await testStores()) {
  describe(`two requests for one name on ${store.name}`, { skip: store.skip }, () => {
    it('one wins, the other gets the error the check before the insert gives, never a raw store error', async () => {
      // Whichever way the two interleave, a name taken between the check and the insert is caught by
      // the unique key (isUniqueViolation) and reported like the check's own refusal.
      const t = await startTestServer(store);
      try {
        const admin = await t.server.admin();
        const source = notebook('Twice', '');
        const made = await Promise.allSettled([
          projects.createProject(t.server.ctx, admin, { source, slug: 'twice' }),
          projects.createProject(t.server.ctx, admin, { source, slug: 'twice' }),
        ]);
        assert.equal(made.filter((r) => r.status === 'fulfilled').length, 1);
        const lost = made.find((r) => r.status === 'rejected') as PromiseRejectedResult;
        assert.ok(lost.reason instanceof ConflictError, String(lost.reason));
        const url = 'postgres://u:p@127.0.0.1:1/db';
        const connected = await Promise.allSettled([
          workspaces.createConnection(t.server.ctx, admin, { name: 'warehouse', url }),
          workspaces.createConnection(t.server.ctx, admin, { name: 'warehouse', url }),
        ]);
        assert.equal(connected.filter((r) => r.status === 'fulfilled').length, 1);
        const refused = connected.find((r) => r.status === 'rejected') as PromiseRejectedResult;
        assert.ok(refused.reason instanceof ValidationError, String(refused.reason));
        assert.equal(refused.reason.field, 'name');
      } finally {
        await t.close();
      }
    });
  });
}

describe('isUniqueViolation', () => {
  it('reads codes, also of a wrapped cause, and never message text', () => {
    assert.equal(isUniqueViolation({ code: '23505' }), true);
    assert.equal(isUniqueViolation({ errcode: 2067 }), true);
    assert.equal(isUniqueViolation({ errcode: 1555 }), true);
    assert.equal(isUniqueViolation({ code: 'SQLITE_CONSTRAINT_UNIQUE' }), true);
    assert.equal(isUniqueViolation(new Error('wrapped', { cause: { code: '23505' } })), true);
    assert.equal(isUniqueViolation(new Error('duplicate key value violates unique constraint')), false);
    assert.equal(isUniqueViolation(new Error('UNIQUE constraint failed: t.a')), false);
    assert.equal(isUniqueViolation({ code: '23503' }), false, 'a foreign key violation');
    assert.equal(isUniqueViolation({ errcode: 787 }), false, "SQLite's foreign key code");
    assert.equal(isUniqueViolation(null), false);
  });
});
