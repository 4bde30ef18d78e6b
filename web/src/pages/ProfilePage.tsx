/**
 * Settings › Profile: who you are, how notifications reach you, your password and your API tokens
 * (create with a name and optional expiry, the secret shown once; list; revoke).
 */
import {
  Alert,
  Badge,
  Button,
  Code,
  CopyButton,
  Group,
  Modal,
  NativeSelect,
  Paper,
  PasswordInput,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
  VisuallyHidden,
} from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, type ReactNode, useState } from 'react';
import { ROLE_LABELS } from '../access.ts';
import { client, expectOk, unwrap } from '../api.ts';
import { useMe } from '../me.ts';
import { EmptyState, ErrorState, LoadingRows, Page, PageTitle, Time } from '../ui.tsx';

const MIN_PASSWORD = 10;

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function Section({ title, sub, children }: { title: string; sub?: ReactNode; children: ReactNode }) {
  return (
    <Paper withBorder radius="md" p="lg" component="section" aria-label={title}>
      <Title order={2} size="h4">
        {title}
      </Title>
      {sub ? (
        <Text size="sm" c="dimmed" mb="sm" component="div">
          {sub}
        </Text>
      ) : null}
      {children}
    </Paper>
  );
}

function NotifyVia() {
  const me = useMe();
  const queryClient = useQueryClient();
  const [chosen, setVia] = useState<string | null>(null);
  // The saved preference until the user picks another.
  const via = chosen ?? me.data?.notifyVia ?? 'email';
  const save = useMutation({
    mutationFn: async () => {
      const result = await client.PUT('/api/me/notify-via', { body: { via } });
      expectOk(result);
    },
    onSuccess: () => {
      notifications.show({ color: 'green', message: 'Notification preference saved' });
      void queryClient.invalidateQueries({ queryKey: ['me'] });
    },
  });
  return (
    <Section
      title="Notifications"
      sub="How rules that leave it to you reach you. Slack needs the workspace's Slack integration."
    >
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (!save.isPending) save.mutate();
        }}
      >
        <Group align="flex-end" gap="sm" wrap="wrap">
          <NativeSelect
            label="Send my notifications by"
            value={via}
            onChange={(e) => setVia(e.currentTarget.value)}
            data={[
              { value: 'email', label: 'Email' },
              { value: 'slack', label: 'Slack' },
              { value: 'both', label: 'Email and Slack' },
            ]}
          />
          <Button type="submit" variant="default" loading={save.isPending}>
            Save
          </Button>
        </Group>
        {save.error ? (
          <Text c="red" size="sm" mt="xs" role="alert">
            Could not save: {messageOf(save.error)}
          </Text>
        ) : null}
      </form>
    </Section>
  );
}

function ChangePassword() {
  const queryClient = useQueryClient();
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [confirm, setConfirm] = useState('');
  const [touched, setTouched] = useState(false);
  const change = useMutation({
    mutationFn: async () =>
      unwrap(
        await client.POST('/api/auth/password', { body: { currentPassword: current, newPassword: next } }),
      ),
    onSuccess: () => {
      setCurrent('');
      setNext('');
      setConfirm('');
      setTouched(false);
      void queryClient.invalidateQueries({ queryKey: ['tokens'] });
      notifications.show({
        color: 'green',
        message: 'Password changed. Your other sessions and your API tokens stopped working.',
      });
    },
  });
  const shortError = touched && next.length < MIN_PASSWORD ? `Use at least ${MIN_PASSWORD} characters` : null;
  const mismatch = touched && confirm !== next ? 'The two passwords differ' : null;
  const submit = (event: FormEvent) => {
    event.preventDefault();
    setTouched(true);
    if (next.length < MIN_PASSWORD || confirm !== next || change.isPending) return;
    change.mutate();
  };
  return (
    <Section
      title="Password"
      sub="Changing it signs out your other browsers and revokes every API token of yours."
    >
      <form onSubmit={submit} noValidate>
        <Stack gap="sm" maw={420}>
          <PasswordInput
            label="Current password"
            description="Leave empty if you never had one (the first admin)"
            autoComplete="current-password"
            value={current}
            onChange={(e) => setCurrent(e.currentTarget.value)}
          />
          <PasswordInput
            label="New password"
            description={`At least ${MIN_PASSWORD} characters`}
            autoComplete="new-password"
            required
            value={next}
            error={shortError}
            onChange={(e) => setNext(e.currentTarget.value)}
          />
          <PasswordInput
            label="Repeat the new password"
            autoComplete="new-password"
            required
            value={confirm}
            error={mismatch}
            onChange={(e) => setConfirm(e.currentTarget.value)}
          />
          {change.error ? (
            <Alert color="red" variant="light" role="alert" title="Could not change the password">
              {messageOf(change.error)}
            </Alert>
          ) : null}
          <Group>
            <Button type="submit" loading={change.isPending}>
              Change password
            </Button>
          </Group>
        </Stack>
      </form>
    </Section>
  );
}

type Token = {
  id: string;
  name: string;
  prefix: string | null;
  createdAt: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
};

function Tokens() {
  const queryClient = useQueryClient();
  const tokens = useQuery({
    queryKey: ['tokens'],
    queryFn: async ({ signal }) => unwrap(await client.GET('/api/tokens', { signal })),
  });
  const [name, setName] = useState('');
  const [expires, setExpires] = useState('');
  const [touched, setTouched] = useState(false);
  const [secret, setSecret] = useState<{ name: string; token: string } | null>(null);
  const [revoking, setRevoking] = useState<Token | null>(null);
  const create = useMutation({
    mutationFn: async () =>
      unwrap(
        await client.POST('/api/tokens', {
          body: {
            name: name.trim(),
            // The end of the chosen day, in the browser's timezone.
            ...(expires ? { expiresAt: new Date(`${expires}T23:59:59`).toISOString() } : {}),
          },
        }),
      ),
    onSuccess: (created) => {
      setSecret({ name: created.name, token: created.token });
      setName('');
      setExpires('');
      setTouched(false);
      void queryClient.invalidateQueries({ queryKey: ['tokens'] });
    },
  });
  const revoke = useMutation({
    mutationFn: async (id: string) => {
      const result = await client.DELETE('/api/tokens/{token}', { params: { path: { token: id } } });
      expectOk(result);
    },
    onSuccess: () => {
      notifications.show({ color: 'green', message: `Token “${revoking?.name}” revoked` });
      setRevoking(null);
      return queryClient.invalidateQueries({ queryKey: ['tokens'] });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    setTouched(true);
    if (!name.trim() || create.isPending) return;
    create.mutate();
  };
  const today = new Date().toISOString().slice(0, 10);
  return (
    <Section
      title="API tokens"
      sub={
        <>
          For programs and the CLI (<Code>almanac login</Code> makes one for you). A token acts with your
          rights.
        </>
      }
    >
      <form onSubmit={submit} noValidate>
        <Group align="flex-start" gap="sm" wrap="wrap">
          <TextInput
            label="Token name"
            placeholder="laptop CLI"
            required
            value={name}
            error={touched && !name.trim() ? 'Name what the token is for' : null}
            onChange={(e) => setName(e.currentTarget.value)}
            style={{ flex: '1 1 200px' }}
          />
          <TextInput
            label="Expires on (optional)"
            type="date"
            min={today}
            value={expires}
            onChange={(e) => setExpires(e.currentTarget.value)}
          />
          <Button type="submit" mt={25} loading={create.isPending}>
            Create token
          </Button>
        </Group>
        {create.error ? (
          <Text c="red" size="sm" mt="xs" role="alert">
            Could not create the token: {messageOf(create.error)}
          </Text>
        ) : null}
      </form>
      {secret ? (
        <Alert
          color="green"
          variant="light"
          mt="md"
          title={`Token “${secret.name}” created`}
          className="new-token"
        >
          <Text size="sm">Copy it now: it is shown once and never again.</Text>
          <Group gap="xs" mt="xs" wrap="nowrap" align="center">
            <Code className="token-secret" data-testid="token-secret">
              {secret.token}
            </Code>
            <CopyButton value={secret.token}>
              {({ copied, copy }) => (
                <Button size="xs" variant="default" onClick={copy}>
                  {copied ? 'Copied' : 'Copy'}
                </Button>
              )}
            </CopyButton>
          </Group>
          <Button size="xs" variant="subtle" mt="xs" onClick={() => setSecret(null)}>
            I have saved it
          </Button>
        </Alert>
      ) : null}
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: it scrolls at 390 px, so the keyboard must reach it */}
      <section className="table-scroll" aria-label="Your API tokens" tabIndex={0}>
        {tokens.isPending ? <LoadingRows rows={2} label="Loading your tokens" /> : null}
        {tokens.isError ? <ErrorState what="your API tokens" error={tokens.error} /> : null}
        {tokens.data?.length === 0 ? (
          <EmptyState title="No API tokens yet">
            Create one above, or run <Code>almanac login</Code> on your machine.
          </EmptyState>
        ) : null}
        {tokens.data && tokens.data.length > 0 ? (
          <Table className="tokens" mt="md" verticalSpacing="xs">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Starts with</Table.Th>
                <Table.Th>Created</Table.Th>
                <Table.Th>Last used</Table.Th>
                <Table.Th>Expires</Table.Th>
                <Table.Th>
                  <VisuallyHidden>Actions</VisuallyHidden>
                </Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {tokens.data.map((t) => (
                <Table.Tr key={t.id}>
                  <Table.Td>{t.name}</Table.Td>
                  <Table.Td>{t.prefix ? <Code>{t.prefix}…</Code> : '—'}</Table.Td>
                  <Table.Td>
                    <Time iso={t.createdAt} />
                  </Table.Td>
                  <Table.Td>{t.lastUsedAt ? <Time iso={t.lastUsedAt} /> : 'Never'}</Table.Td>
                  <Table.Td>{t.expiresAt ? <Time iso={t.expiresAt} absolute /> : 'Never'}</Table.Td>
                  <Table.Td ta="right">
                    <Button
                      size="xs"
                      variant="subtle"
                      color="red"
                      aria-label={`Revoke ${t.name}`}
                      onClick={() => setRevoking(t)}
                    >
                      Revoke
                    </Button>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        ) : null}
      </section>
      <Modal
        closeButtonProps={{ 'aria-label': 'Close' }}
        opened={revoking !== null}
        onClose={() => setRevoking(null)}
        title={revoking ? `Revoke the token “${revoking.name}”?` : ''}
      >
        <Text size="sm">Programs that use it stop working at once. This cannot be undone.</Text>
        {revoke.error ? (
          <Text c="red" size="sm" mt="xs" role="alert">
            Could not revoke it: {messageOf(revoke.error)}
          </Text>
        ) : null}
        <Group justify="flex-end" mt="md">
          <Button variant="default" onClick={() => setRevoking(null)}>
            Keep it
          </Button>
          <Button
            color="red"
            loading={revoke.isPending}
            onClick={() => revoking && revoke.mutate(revoking.id)}
          >
            Revoke {revoking?.name}
          </Button>
        </Group>
      </Modal>
    </Section>
  );
}

export function ProfilePage() {
  const me = useMe();
  return (
    <Page title={['Profile']} ready={!me.isPending} className="settings-page">
      <PageTitle sub="Your password, how notifications reach you, and your API tokens.">Profile</PageTitle>
      {me.isPending ? <LoadingRows rows={3} label="Loading your profile" /> : null}
      {me.isError ? <ErrorState what="your profile" error={me.error} /> : null}
      {me.data ? (
        <Stack gap="lg">
          <Section title="You">
            <Group gap="sm">
              <Text fw={600}>{me.data.name}</Text>
              <Badge variant="light" color="gray">
                {ROLE_LABELS[me.data.role]}
              </Badge>
              <Text size="sm" c="dimmed">
                in {me.data.workspaceName}
              </Text>
            </Group>
          </Section>
          <NotifyVia />
          <ChangePassword />
          <Tokens />
        </Stack>
      ) : null}
    </Page>
  );
}
