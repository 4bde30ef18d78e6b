/** The versions of a project, newest first, with the current one (what schedules run) marked. */
import { Badge, Code, Table, Text } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useParams } from 'react-router';
import { client, unwrap } from '../api.ts';
import { useProjectTitle } from '../project.ts';
import { EmptyState, ErrorState, LoadingRows, Page, PageTitle, StatusBadge, Time } from '../ui.tsx';

export function VersionsPage() {
  const { project = '' } = useParams();
  const title = useProjectTitle(project);
  const versions = useQuery({
    queryKey: ['versions', project],
    queryFn: async ({ signal }) =>
      unwrap(await client.GET('/api/projects/{project}/versions', { params: { path: { project } }, signal })),
  });
  return (
    <Page title={['Versions', title]} ready={!versions.isPending}>
      <PageTitle sub="Each publish makes a version. Schedules run the current one, and the app shows it.">
        Versions
      </PageTitle>
      {versions.isPending ? <LoadingRows rows={3} label="Loading versions" /> : null}
      {versions.isError ? <ErrorState what="the versions" error={versions.error} /> : null}
      {versions.data?.length === 0 ? (
        <EmptyState title="Nothing published yet">
          Publish the notebook to make its first version: <Code>almanac publish {project}.md</Code>
        </EmptyState>
      ) : null}
      {versions.data && versions.data.length > 0 ? (
        <>
          <Table.ScrollContainer minWidth={560}>
            <Table verticalSpacing="xs" className="versions">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Version</Table.Th>
                  <Table.Th>Published</Table.Th>
                  <Table.Th>By</Table.Th>
                  <Table.Th>Publish run</Table.Th>
                  <Table.Th>Message</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {versions.data.map((v) => (
                  <Table.Tr key={v.id} aria-current={v.current ? 'true' : undefined}>
                    <Table.Td>
                      <Text span fw={600}>
                        v{v.number}
                      </Text>{' '}
                      {v.current ? (
                        <Badge color="indigo.8" variant="filled" size="sm">
                          current
                        </Badge>
                      ) : null}
                      <Text size="xs" c="dimmed" ff="monospace" title={v.contentHash}>
                        {v.contentHash.slice(0, 12)}
                      </Text>
                    </Table.Td>
                    <Table.Td>
                      <Time iso={v.createdAt} />
                    </Table.Td>
                    <Table.Td>{v.publishedBy?.name ?? '—'}</Table.Td>
                    <Table.Td>
                      {v.publishRun?.status ? <StatusBadge status={v.publishRun.status} /> : '—'}
                    </Table.Td>
                    <Table.Td>
                      {v.message ?? (
                        <Text span c="dimmed">
                          —
                        </Text>
                      )}
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
          <Text size="sm" c="dimmed" mt="md">
            To make an older version current again: <Code>almanac rollback {project} &lt;version&gt;</Code>
          </Text>
        </>
      ) : null}
    </Page>
  );
}
