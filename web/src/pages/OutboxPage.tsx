/**
 * The email outbox: messages Almanac wrote to the outbox folder because no SMTP server is configured,
 * newest first, each shown with its text, its screenshot and its other attachments.
 */
import { Anchor, Code, Group, Paper, Stack, Text, Title } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { Link, useParams } from 'react-router';
import { client, unwrap } from '../api.ts';
import { EmptyState, ErrorState, LoadingRows, Page, PageTitle, Time } from '../ui.tsx';

export function OutboxPage() {
  const { file = null } = useParams();
  const entries = useQuery({
    queryKey: ['outbox'],
    queryFn: async ({ signal }) => unwrap(await client.GET('/api/outbox', { signal })),
  });
  const message = useQuery({
    queryKey: ['outbox', file],
    queryFn: async ({ signal }) =>
      unwrap(await client.GET('/api/outbox/{file}/message', { params: { path: { file: file! } }, signal })),
    enabled: !!file,
  });
  const ready = !entries.isPending && (!file || !message.isPending);
  return (
    <Page title={[message.data?.subject, 'Outbox']} ready={ready}>
      <PageTitle
        sub={
          <>
            Email goes here while no SMTP server is configured (<Code>PUT /api/integrations</Code> or{' '}
            <Code>almanac notify integrations --smtp host:port</Code>).
          </>
        }
      >
        Outbox
      </PageTitle>
      {entries.isError ? <ErrorState what="the outbox" error={entries.error} /> : null}
      {message.isError ? <ErrorState what="the message" error={message.error} /> : null}
      <div className="outbox">
        <nav aria-label="Messages">
          {entries.isPending ? <LoadingRows rows={3} label="Loading messages" /> : null}
          {entries.data?.length === 0 ? (
            <EmptyState title="The outbox is empty">
              Messages appear here when a notification rule emails someone while no SMTP server is set.
            </EmptyState>
          ) : null}
          <ul className="outbox-list">
            {entries.data?.map((e) => (
              <li key={e.file} className={e.file === file ? 'selected' : ''}>
                <Anchor
                  component={Link}
                  to={`/outbox/${encodeURIComponent(e.file)}`}
                  aria-current={e.file === file ? 'page' : undefined}
                >
                  <Time iso={e.createdAt} />
                </Anchor>{' '}
                <span className="meta">{Math.round(e.size / 1024)} KiB</span>
              </li>
            ))}
          </ul>
        </nav>
        {message.data ? (
          <Paper withBorder p="md" radius="md" component="article" className="mail">
            <Title order={2} size="h4">
              {message.data.subject}
            </Title>
            <Text size="sm" c="dimmed">
              From {message.data.from} to {message.data.to}
              {message.data.date ? ` · ${message.data.date}` : ''}
            </Text>
            <pre className="mail-text">{message.data.text}</pre>
            <Stack gap="xs">
              {message.data.attachments.map((a) =>
                a.contentType.startsWith('image/') ? (
                  <figure key={a.url}>
                    <img src={a.url} alt={a.filename} className="mail-image" />
                    <figcaption>{a.filename}</figcaption>
                  </figure>
                ) : (
                  <Group key={a.url} gap="xs">
                    <Anchor href={a.url}>{a.filename}</Anchor>
                    <Text span size="xs" c="dimmed">
                      ({a.contentType}, {a.size} B)
                    </Text>
                  </Group>
                ),
              )}
            </Stack>
          </Paper>
        ) : !file && entries.data && entries.data.length > 0 ? (
          <Text c="dimmed" size="sm">
            Pick a message to read it.
          </Text>
        ) : null}
      </div>
    </Page>
  );
}
