/** Setup shared by the reliability scenarios. */
import assert from 'node:assert/strict';
import type { Cluster } from './support/cluster.ts';
import { notebook } from './support/cluster.ts';

export const MINUTE = 60_000;

/** Creates a project on `via`, publishes it, waits for its publish run, and adds `count` schedules. */
export async function scheduledProject(
  cluster: Cluster,
  via: string,
  options: { slug: string; count: number; cron?: string; cells?: string; policies?: Record<string, unknown> },
): Promise<string[]> {
  const created = await cluster.api(via, 'POST', '/api/projects', {
    source: notebook(options.slug, options.cells),
    slug: options.slug,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const published = await cluster.api(via, 'POST', `/api/projects/${options.slug}/publish`, {});
  assert.equal(published.status, 201, JSON.stringify(published.body));
  await cluster.until('the publish run', async () => {
    const rows = await cluster.query<{ n: string }>(
      "select count(*)::text as n from runs where trigger = 'publish' and status = 'succeeded'",
    );
    return Number(rows[0]!.n) >= 1;
  });
  const ids: string[] = [];
  for (let i = 0; i < options.count; i++) {
    const res = await cluster.api(via, 'POST', `/api/projects/${options.slug}/schedules`, {
      name: `s${i}`,
      cadence: { kind: 'cron', expression: options.cron ?? '* * * * *' },
      timezone: 'UTC',
      ...(options.policies ? { policies: options.policies } : {}),
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    ids.push(res.body.id);
  }
  return ids;
}

/** Runs of scheduled fire times that reached a final state, for `fireTime`. */
export async function finishedAt(cluster: Cluster, fireTime: number): Promise<number> {
  const rows = await cluster.query<{ n: string }>(
    "select count(*)::text as n from runs where scheduled_for = $1 and status in ('succeeded', 'failed', 'timed_out', 'cancelled') and trigger = 'schedule'",
    [new Date(fireTime).toISOString()],
  );
  return Number(rows[0]!.n);
}

/** Invariants: one entry per (schedule, fire time), and nothing left queued or running. */
export async function duplicates(cluster: Cluster): Promise<number> {
  const rows = await cluster.query<{ n: string }>(
    'select count(*)::text as n from (select schedule_id, scheduled_for from runs where schedule_id is not null group by 1, 2 having count(*) > 1) d',
  );
  return Number(rows[0]!.n);
}
