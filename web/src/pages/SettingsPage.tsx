/**
 * The app's settings, read-only for now: who sees the project, whether the app opens on the last run,
 * and how long runs are kept. The CLI and API change them; the page says how.
 */
import { Code, Paper, Table, Text } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import type { ReactNode } from 'react';
import { useParams } from 'react-router';
import { client, unwrap } from '../api.ts';
import { useProjectTitle } from '../project.ts';
import { ErrorState, LoadingRows, Page, PageTitle, Time } from '../ui.tsx';

export function SettingsPage() {
  const { project = '' } = useParams();
  const title = useProjectTitle(project);
  const settings = useQuery({
    queryKey: ['app-settings', project],
    queryFn: async ({ signal }) =>
      unwrap(
        await client.GET('/api/projects/{project}/app/settings', { params: { path: { project } }, signal }),
      ),
  });
  const info = useQuery({
    queryKey: ['project', project],
    queryFn: async ({ signal }) =>
      unwrap(await client.GET('/api/projects/{project}', { params: { path: { project } }, signal })),
  });
  const pending = settings.isPending || info.isPending;
  const rows: [string, ReactNode][] = [];
  if (info.data) {
    rows.push(['Address', <Code key="a">{info.data.appUrl}</Code>]);
    rows.push([
      'Visibility',
      info.data.visibility === 'workspace'
        ? 'Everyone in the workspace'
        : 'Restricted: admins, its creator and people granted access',
    ]);
    rows.push(['Created', <Time key="c" iso={info.data.createdAt} />]);
  }
  if (settings.data) {
    rows.push([
      'Opens on',
      settings.data.showLastRun
        ? 'The last scheduled run or publish (cached)'
        : 'A fresh run for each visitor',
    ]);
    rows.push([
      'Keeps runs',
      [
        settings.data.keepRuns !== null ? `the last ${settings.data.keepRuns}` : null,
        settings.data.keepDays !== null ? `${settings.data.keepDays} days` : null,
      ]
        .filter(Boolean)
        .join(', ') || 'All of them',
    ]);
  }
  return (
    <Page title={['Settings', title]} ready={!pending}>
      <PageTitle sub="How this app opens, who sees it, and how long its runs are kept.">Settings</PageTitle>
      {pending ? <LoadingRows rows={4} label="Loading settings" /> : null}
      {settings.isError ? <ErrorState what="the app settings" error={settings.error} /> : null}
      {info.isError ? <ErrorState what="the project" error={info.error} /> : null}
      {rows.length > 0 ? (
        <Paper withBorder radius="md">
          <Table verticalSpacing="sm" className="settings">
            <Table.Tbody>
              {rows.map(([name, value]) => (
                <Table.Tr key={name}>
                  <Table.Th scope="row" w={160}>
                    {name}
                  </Table.Th>
                  <Table.Td>{value}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Paper>
      ) : null}
      {settings.data ? (
        <Text size="sm" c="dimmed" mt="md">
          Change them with <Code>PATCH /api/projects/{project}/app/settings</Code> (for example{' '}
          <Code>{'{"showLastRun": false}'}</Code>).
        </Text>
      ) : null}
    </Page>
  );
}
