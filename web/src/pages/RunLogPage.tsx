/**
 * The run log of a project: every run with its status, trigger and time, newest first, filtered by
 * status and trigger (the filters live in the URL, so a filtered log can be linked), in keyset pages.
 */
import { Anchor, Button, Group, NativeSelect, Table, Text } from '@mantine/core';
import { useInfiniteQuery } from '@tanstack/react-query';
import { Link, useParams, useSearchParams } from 'react-router';
import { client, type Run, unwrap } from '../api.ts';
import { useProjectTitle, useSchedules } from '../project.ts';
import { EmptyState, ErrorState, LoadingRows, Page, PageTitle, StatusBadge, Time } from '../ui.tsx';

const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'skipped'];
const TRIGGERS = ['schedule', 'manual', 'api', 'publish', 'backfill'];

function took(run: Run): string {
  if (!run.startedAt || !run.finishedAt) return '—';
  const ms = Date.parse(run.finishedAt) - Date.parse(run.startedAt);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function RunLogPage() {
  const { project = '' } = useParams();
  const title = useProjectTitle(project);
  const [params, setParams] = useSearchParams();
  const status = params.get('status') ?? '';
  const trigger = params.get('trigger') ?? '';
  const runs = useInfiniteQuery({
    queryKey: ['runs', project, 'log', { status, trigger }],
    initialPageParam: null as string | null,
    queryFn: async ({ pageParam, signal }) =>
      unwrap(
        await client.GET('/api/runs', {
          params: {
            query: {
              project,
              limit: 50,
              ...(status ? { status } : {}),
              ...(trigger ? { trigger } : {}),
              ...(pageParam ? { cursor: pageParam } : {}),
            },
          },
          signal,
        }),
      ),
    getNextPageParam: (last) => last.nextCursor,
  });
  const setFilter = (name: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(name, value);
    else next.delete(name);
    setParams(next, { replace: true });
  };
  // Which schedule a scheduled run came from, by name (issue 15, bug 5).
  const schedules = useSchedules(project);
  const scheduleName = new Map((schedules.data ?? []).map((s) => [s.id, s.name]));
  const list = runs.data?.pages.flatMap((p) => p.runs) ?? [];
  const base = `/apps/${encodeURIComponent(project)}`;
  return (
    <Page title={['Run log', title]} ready={!runs.isPending}>
      <PageTitle sub="Every run of this app: scheduled, on demand, by API and at publish.">Run log</PageTitle>
      <Group gap="sm" mb="md" align="end">
        <NativeSelect
          label="Status"
          value={status}
          data={[
            { value: '', label: 'Any status' },
            ...STATUSES.map((s) => ({ value: s, label: s.replace('_', ' ') })),
          ]}
          onChange={(e) => setFilter('status', e.currentTarget.value)}
        />
        <NativeSelect
          label="Trigger"
          value={trigger}
          data={[{ value: '', label: 'Any trigger' }, ...TRIGGERS.map((t) => ({ value: t, label: t }))]}
          onChange={(e) => setFilter('trigger', e.currentTarget.value)}
        />
      </Group>
      {runs.isPending ? <LoadingRows rows={5} label="Loading runs" /> : null}
      {runs.isError ? <ErrorState what="the run log" error={runs.error} /> : null}
      {runs.data && list.length === 0 ? (
        <EmptyState title={status || trigger ? 'No runs match these filters' : 'No runs yet'}>
          {status || trigger
            ? 'Clear a filter to see more runs.'
            : 'Re-run the app from its App tab, or add a schedule under Scheduled runs.'}
        </EmptyState>
      ) : null}
      {list.length > 0 ? (
        <Table.ScrollContainer minWidth={380}>
          <Table verticalSpacing="xs" highlightOnHover className="run-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Status</Table.Th>
                <Table.Th>Run</Table.Th>
                <Table.Th>Trigger</Table.Th>
                <Table.Th>Started</Table.Th>
                <Table.Th>Took</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {list.map((r) => (
                <Table.Tr key={r.id} data-run={r.id}>
                  <Table.Td>
                    <StatusBadge status={r.status} />
                  </Table.Td>
                  <Table.Td>
                    <Anchor component={Link} to={`${base}/runs/${r.id}`} ff="monospace" size="sm">
                      {r.id.slice(0, 8)}
                    </Anchor>
                    {r.error ? (
                      <Text size="xs" c="red" lineClamp={2} maw={360}>
                        {r.error.message}
                      </Text>
                    ) : null}
                  </Table.Td>
                  <Table.Td>
                    {r.trigger}
                    {r.private ? ' (yours)' : ''}
                    {r.scheduleId && scheduleName.has(r.scheduleId) ? (
                      <Text size="xs" c="dimmed">
                        {scheduleName.get(r.scheduleId)}
                      </Text>
                    ) : null}
                  </Table.Td>
                  <Table.Td>
                    <Time iso={r.createdAt} />
                  </Table.Td>
                  <Table.Td>{took(r)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      ) : null}
      {runs.hasNextPage ? (
        <Button
          variant="default"
          mt="md"
          onClick={() => void runs.fetchNextPage()}
          loading={runs.isFetchingNextPage}
        >
          Older runs
        </Button>
      ) : null}
    </Page>
  );
}
