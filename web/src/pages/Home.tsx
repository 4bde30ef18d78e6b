/** Home: the workspace's projects, with their last run and next scheduled run. */
import { Anchor, Code, Table, Text } from '@mantine/core';
import { Link } from 'react-router';
import type { Project } from '../api.ts';
import { useRuns, useSchedules } from '../project.ts';
import { useProjects } from '../Shell.tsx';
import { EmptyState, ErrorState, LoadingRows, Page, PageTitle, StatusBadge, Time } from '../ui.tsx';

function LastRun({ project }: { project: string }) {
  const runs = useRuns(project, { limit: 1 });
  const last = runs.data?.runs[0];
  if (runs.isPending)
    return (
      <Text span c="dimmed">
        …
      </Text>
    );
  if (!last)
    return (
      <Text span c="dimmed">
        No runs yet
      </Text>
    );
  return (
    <>
      <StatusBadge status={last.status} /> <Time iso={last.createdAt} />
    </>
  );
}

function NextRun({ project }: { project: string }) {
  const schedules = useSchedules(project);
  if (schedules.isPending)
    return (
      <Text span c="dimmed">
        …
      </Text>
    );
  const next = (schedules.data ?? [])
    .map((s) => s.nextFireAt)
    .filter((at): at is string => !!at)
    .sort()[0];
  if (!next)
    return (
      <Text span c="dimmed">
        Not scheduled
      </Text>
    );
  return <Time iso={next} />;
}

function ProjectRow({ project }: { project: Project }) {
  return (
    <Table.Tr>
      <Table.Td>
        <Anchor component={Link} to={`/apps/${encodeURIComponent(project.slug)}`} fw={500}>
          {project.title}
        </Anchor>
        <Text size="xs" c="dimmed">
          {project.currentVersion ? `version ${project.currentVersion}` : 'not published'}
        </Text>
      </Table.Td>
      <Table.Td>
        <LastRun project={project.slug} />
      </Table.Td>
      <Table.Td>
        <NextRun project={project.slug} />
      </Table.Td>
    </Table.Tr>
  );
}

export function Home() {
  const projects = useProjects();
  return (
    <Page title={['Projects']} ready={!projects.isPending}>
      <PageTitle sub="Apps of this workspace: open one to see its latest results.">Projects</PageTitle>
      {projects.isPending ? <LoadingRows rows={3} label="Loading projects" /> : null}
      {projects.isError ? <ErrorState what="the projects" error={projects.error} /> : null}
      {projects.data?.length === 0 ? (
        <EmptyState title="No projects yet">
          Publish a notebook to make its app: <Code>almanac publish my-notebook.md</Code>
        </EmptyState>
      ) : null}
      {projects.data && projects.data.length > 0 ? (
        <Table.ScrollContainer minWidth={480}>
          <Table highlightOnHover verticalSpacing="sm" className="projects">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Title</Table.Th>
                <Table.Th>Last run</Table.Th>
                <Table.Th>Next run</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {projects.data.map((p) => (
                <ProjectRow key={p.id} project={p} />
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      ) : null}
    </Page>
  );
}
