import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CAPABILITIES } from '../src/store/database.ts';
import { migrate } from '../src/store/migrations.ts';
import { storeTargets } from './support/store-targets.ts';

for (const target of await storeTargets()) {
  describe(`store on ${target.name}`, { skip: target.skip }, () => {
    it('migrates a fresh database, and a second run changes nothing', async () => {
      const store = await target.open<any>();
      try {
        assert.deepEqual(await migrate(store.db, store.dialect), [
          '0001_workspaces_and_users',
          '0002_server',
        ]);
        assert.deepEqual(await migrate(store.db, store.dialect), []);
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
            .values({ id: 'u2', workspace_id: 'w1', email: 'ada@example.com', name: 'Ada 2', role: 'viewer' })
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
  });
}
