/**
 * Settings › Audit log (admins): who did what, when and from where, newest first; filtered by action or
 * area from the URL (`?action=schedule`), in keyset pages ("Show older").
 */
import { Alert, Button, Code, Group, Table, Text, TextInput } from '@mantine/core';
import { useInfiniteQuery } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { useSearchParams } from 'react-router';
import type { components } from '../api/schema.d.ts';
import { client, unwrap } from '../api.ts';

type AuditEventsPage = components['schemas']['AuditPage'];

import { useMe } from '../me.ts';
import { EmptyState, ErrorState, LoadingRows, Page, PageTitle, Time } from '../ui.tsx';

/** "project:92da2deb" for "project:92da2deb-1bc8-…": the kind and enough of the id to tell apart. */
function shortTarget(target: string | null): string {
  if (!target) return '—';
  const [kind, id] = target.split(':', 2);
  return id && id.length > 12 ? `${kind}:${id.slice(0, 8)}` : target;
}

export function AuditPage() {
  const me = useMe();
  const admin = me.data?.role === 'admin';
  const [params, setParams] = useSearchParams();
  const action = params.get('action') ?? '';
  const [draft, setDraft] = useState(action);
  const events = useInfiniteQuery({
    queryKey: ['audit', action],
    enabled: admin,
    initialPageParam: null as string | null,
    getNextPageParam: (last: AuditEventsPage) => last.next,
    queryFn: async ({ pageParam, signal }): Promise<AuditEventsPage> =>
      unwrap(
        await client.GET('/api/audit', {
          params: {
            query: { limit: 50, ...(action ? { action } : {}), ...(pageParam ? { cursor: pageParam } : {}) },
          },
          signal,
        }),
      ),
  });
  const filter = (event: FormEvent) => {
    event.preventDefault();
    const next = new URLSearchParams(params);
    if (draft.trim()) next.set('action', draft.trim());
    else next.delete('action');
    setParams(next);
  };
  const rows = events.data?.pages.flatMap((p: AuditEventsPage) => p.events) ?? [];
  return (
    <Page
      title={['Audit log']}
      ready={!me.isPending && (!admin || !events.isPending)}
      className="settings-page wide"
    >
      <PageTitle sub="Who did what, when and from where. Secrets are never recorded.">Audit log</PageTitle>
      {me.data && !admin ? (
        <Alert color="gray" variant="light" title="Only admins read the audit log">
          Ask an admin of {me.data.workspaceName}.
        </Alert>
      ) : null}
      {admin ? (
        <form onSubmit={filter}>
          <Group align="flex-end" gap="sm" mb="md">
            <TextInput
              label="Action or area"
              description="Like schedule (every schedule change) or auth.sign_in"
              value={draft}
              onChange={(e) => setDraft(e.currentTarget.value)}
            />
            <Button type="submit" variant="default">
              Filter
            </Button>
          </Group>
        </form>
      ) : null}
      {admin && events.isPending ? <LoadingRows rows={5} label="Loading the audit log" /> : null}
      {events.isError ? <ErrorState what="the audit log" error={events.error} /> : null}
      {events.isSuccess && rows.length === 0 ? (
        <EmptyState title={action ? 'No events match this filter' : 'Nothing recorded yet'}>
          {action
            ? 'Clear the filter to see every event.'
            : 'Sign-ins, sharing and schedule changes appear here.'}
        </EmptyState>
      ) : null}
      {rows.length > 0 ? (
        // biome-ignore lint/a11y/noNoninteractiveTabindex: it scrolls at 390 px, so the keyboard must reach it
        <section className="table-scroll" aria-label="Audit events" tabIndex={0}>
          <Table className="audit" verticalSpacing="xs">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>When</Table.Th>
                <Table.Th>Who</Table.Th>
                <Table.Th>Action</Table.Th>
                <Table.Th>Target</Table.Th>
                <Table.Th>From</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {rows.map((e) => (
                <Table.Tr key={e.id}>
                  <Table.Td>
                    <Time iso={e.at} />
                  </Table.Td>
                  <Table.Td>{e.actorName}</Table.Td>
                  <Table.Td>
                    <Code>{e.action}</Code>
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm" className="audit-target" title={e.target ?? undefined}>
                      {shortTarget(e.target)}
                    </Text>
                  </Table.Td>
                  <Table.Td>{e.ip ?? '—'}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </section>
      ) : null}
      {events.hasNextPage ? (
        <Button
          variant="default"
          mt="md"
          loading={events.isFetchingNextPage}
          onClick={() => events.fetchNextPage()}
        >
          Show older
        </Button>
      ) : null}
    </Page>
  );
}
