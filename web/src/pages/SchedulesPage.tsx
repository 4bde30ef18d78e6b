/**
 * The scheduled runs of a project: each schedule's cadence in its own timezone, its next run and
 * whether it is paused. (Creating and editing schedules comes with the schedule dialog; until then the
 * CLI does it, and the empty state says how.)
 */
import { Badge, Code, Table, Text } from '@mantine/core';
import { useParams } from 'react-router';
import type { Cadence } from '../api.ts';
import { useProjectTitle, useSchedules } from '../project.ts';
import { EmptyState, ErrorState, LoadingRows, Page, PageTitle, Time } from '../ui.tsx';

const DAYS: Record<string, string> = {
  sun: 'Sun',
  mon: 'Mon',
  tue: 'Tue',
  wed: 'Wed',
  thu: 'Thu',
  fri: 'Fri',
  sat: 'Sat',
};

/** "Daily at 08:00", "Weekly on Mon, Thu at 09:30", "Cron 0 8 * * 1-5". */
export function describeCadence(cadence: Cadence): string {
  switch (cadence.kind) {
    case 'hourly':
      return `Hourly at minute ${cadence.minute}`;
    case 'daily':
      return `Daily at ${cadence.time}`;
    case 'weekly':
      return `Weekly on ${cadence.days.map((d) => DAYS[d] ?? d).join(', ')} at ${cadence.time}`;
    case 'monthly':
      return `Monthly on day ${cadence.day} at ${cadence.time}`;
    case 'cron':
      return `Cron ${cadence.expression}`;
  }
}

/** The next fire time in the schedule's own timezone (UI.md: a schedule is described in its zone). */
function inZone(iso: string, timeZone: string): string {
  try {
    return new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short', timeZone }).format(
      new Date(iso),
    );
  } catch {
    return iso;
  }
}

export function SchedulesPage() {
  const { project = '' } = useParams();
  const title = useProjectTitle(project);
  const schedules = useSchedules(project);
  return (
    <Page title={['Scheduled runs', title]} ready={!schedules.isPending}>
      <PageTitle sub="Scheduled runs refresh the app's default state and send its notifications.">
        Scheduled runs
      </PageTitle>
      {schedules.isPending ? <LoadingRows rows={3} label="Loading schedules" /> : null}
      {schedules.isError ? <ErrorState what="the schedules" error={schedules.error} /> : null}
      {schedules.data?.length === 0 ? (
        <EmptyState title="No schedules yet">
          Add one to refresh the app on a cadence:{' '}
          <Code>almanac schedule create {project} --daily 08:00 --timezone Europe/Berlin</Code>
        </EmptyState>
      ) : null}
      {schedules.data && schedules.data.length > 0 ? (
        <Table.ScrollContainer minWidth={560}>
          <Table verticalSpacing="sm" className="schedules">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Schedule</Table.Th>
                <Table.Th>Cadence</Table.Th>
                <Table.Th>Next run</Table.Th>
                <Table.Th>State</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {schedules.data.map((s) => (
                <Table.Tr key={s.id} data-schedule={s.id}>
                  <Table.Td>
                    <Text fw={500}>{s.name}</Text>
                    {s.description ? (
                      <Text size="xs" c="dimmed">
                        {s.description}
                      </Text>
                    ) : null}
                  </Table.Td>
                  <Table.Td>
                    {describeCadence(s.cadence)}
                    <Text size="xs" c="dimmed">
                      {s.timezone}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    {s.nextFireAt ? (
                      <>
                        <Time iso={s.nextFireAt} />
                        <Text size="xs" c="dimmed">
                          {inZone(s.nextFireAt, s.timezone)} {s.timezone}
                        </Text>
                      </>
                    ) : (
                      <Text span c="dimmed">
                        —
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td>
                    {s.enabled && !s.pausedUntil ? (
                      <Badge color="green" variant="light" className="state status-succeeded">
                        active
                      </Badge>
                    ) : (
                      <>
                        <Badge color="gray" variant="light" className="state status-cancelled">
                          paused
                        </Badge>
                        {s.pauseNote ? (
                          <Text size="xs" c="dimmed">
                            {s.pauseNote}
                          </Text>
                        ) : null}
                      </>
                    )}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      ) : null}
    </Page>
  );
}
