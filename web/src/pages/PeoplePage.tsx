/**
 * Settings › People (admins): the workspace's users with their role, status and last sign-in; invite
 * someone by email, change a role, deactivate (which revokes every session and token they have).
 */
import {
  Alert,
  Badge,
  Button,
  Group,
  Modal,
  NativeSelect,
  Stack,
  Table,
  Text,
  TextInput,
  VisuallyHidden,
} from '@mantine/core';
import { useDisclosure } from '@mantine/hooks';
import { notifications } from '@mantine/notifications';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { ROLE_LABELS, WORKSPACE_ROLES, type WorkspaceRole } from '../access.ts';
import { client, unwrap } from '../api.ts';
import { useMe } from '../me.ts';
import { EmptyState, ErrorState, LoadingRows, Page, PageTitle, Time } from '../ui.tsx';

/** The API sends times as ISO strings (its schema types them loosely, as dates). */
type Account = {
  id: string;
  name: string;
  email: string;
  role: WorkspaceRole;
  status: string;
  lastSeenAt: unknown;
};

const ROLE_OPTIONS = WORKSPACE_ROLES.map((r) => ({ value: r, label: ROLE_LABELS[r] }));
const STATUS_LABELS: Record<string, string> = {
  invited: 'Invited',
  active: 'Active',
  deactivated: 'Deactivated',
};

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function InviteDialog({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  const queryClient = useQueryClient();
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [role, setRole] = useState<WorkspaceRole>('member');
  const [touched, setTouched] = useState(false);
  const invite = useMutation({
    mutationFn: async () =>
      unwrap(
        await client.POST('/api/users/invitations', {
          body: { email: email.trim(), role, ...(name.trim() ? { name: name.trim() } : {}) },
        }),
      ),
    onSuccess: (result) => {
      notifications.show({ color: 'green', message: `Invitation sent to ${result.sentTo}` });
      setEmail('');
      setName('');
      setRole('member');
      setTouched(false);
      onClose();
      return queryClient.invalidateQueries({ queryKey: ['users'] });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    setTouched(true);
    if (!email.trim() || invite.isPending) return;
    invite.mutate();
  };
  return (
    <Modal
      closeButtonProps={{ 'aria-label': 'Close' }}
      opened={opened}
      onClose={onClose}
      title="Invite someone"
    >
      <form onSubmit={submit} noValidate>
        <Stack gap="sm">
          <TextInput
            label="Email"
            type="email"
            required
            data-autofocus
            value={email}
            error={touched && !email.trim() ? 'Enter the address to send the invitation to' : null}
            onChange={(e) => setEmail(e.currentTarget.value)}
          />
          <TextInput
            label="Name (optional)"
            description="They can choose their own when they accept"
            value={name}
            onChange={(e) => setName(e.currentTarget.value)}
          />
          <NativeSelect
            label="Role"
            description="Admins manage people; editors create projects; members open what is shared; guests only what is shared with them by name"
            value={role}
            data={ROLE_OPTIONS}
            onChange={(e) => setRole(e.currentTarget.value as WorkspaceRole)}
          />
          {invite.error ? (
            <Alert color="red" variant="light" role="alert" title="Could not invite">
              {messageOf(invite.error)}
            </Alert>
          ) : null}
          <Text size="xs" c="dimmed">
            The email carries a link that works for 7 days. Without SMTP it waits in the outbox.
          </Text>
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={invite.isPending}>
              Send invitation
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

export function PeoplePage() {
  const me = useMe();
  const queryClient = useQueryClient();
  const admin = me.data?.role === 'admin';
  const users = useQuery({
    queryKey: ['users'],
    enabled: admin,
    queryFn: async ({ signal }) => unwrap(await client.GET('/api/users', { signal })),
  });
  const [inviting, invite] = useDisclosure(false);
  const [deactivating, setDeactivating] = useState<Account | null>(null);
  const role = useMutation({
    mutationFn: async ({ user, role }: { user: Account; role: WorkspaceRole }) =>
      unwrap(
        await client.PUT('/api/users/{user}/role', { params: { path: { user: user.id } }, body: { role } }),
      ),
    onSuccess: (updated) => {
      notifications.show({ color: 'green', message: `${updated.name} is now ${ROLE_LABELS[updated.role]}` });
      return queryClient.invalidateQueries({ queryKey: ['users'] });
    },
    onError: (error) =>
      notifications.show({ color: 'red', message: `Could not change the role: ${messageOf(error)}` }),
  });
  const deactivate = useMutation({
    mutationFn: async (user: Account) =>
      unwrap(await client.POST('/api/users/{user}/deactivate', { params: { path: { user: user.id } } })),
    onSuccess: (updated) => {
      notifications.show({ color: 'green', message: `${updated.name} is deactivated` });
      setDeactivating(null);
      return queryClient.invalidateQueries({ queryKey: ['users'] });
    },
  });
  const ready = !me.isPending && (!admin || !users.isPending);
  return (
    <Page title={['People']} ready={ready} className="settings-page">
      <Group justify="space-between" align="flex-start" wrap="wrap">
        <PageTitle sub="Everyone in the workspace: invite people, change their role, deactivate them.">
          People
        </PageTitle>
        {admin ? <Button onClick={invite.open}>Invite someone</Button> : null}
      </Group>
      {me.isPending || (admin && users.isPending) ? <LoadingRows rows={4} label="Loading people" /> : null}
      {me.data && !admin ? (
        <Alert color="gray" variant="light" title="Only admins manage people">
          Ask an admin of {me.data.workspaceName} to invite someone or change a role.
        </Alert>
      ) : null}
      {me.isError ? <ErrorState what="your account" error={me.error} /> : null}
      {users.isError ? <ErrorState what="the people" error={users.error} /> : null}
      {users.data?.length === 0 ? (
        <EmptyState title="Nobody here yet">Invite someone with the button above.</EmptyState>
      ) : null}
      {users.data && users.data.length > 0 ? (
        // biome-ignore lint/a11y/noNoninteractiveTabindex: it scrolls at 390 px, so the keyboard must reach it
        <section className="table-scroll" aria-label="People" tabIndex={0}>
          <Table className="people" verticalSpacing="xs">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Email</Table.Th>
                <Table.Th>Role</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th>Last seen</Table.Th>
                <Table.Th>
                  <VisuallyHidden>Actions</VisuallyHidden>
                </Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {users.data.map((u) => (
                <Table.Tr key={u.id} data-email={u.email}>
                  <Table.Td>
                    {u.name}
                    {u.id === me.data?.userId ? (
                      <Text span size="xs" c="dimmed">
                        {' '}
                        (you)
                      </Text>
                    ) : null}
                  </Table.Td>
                  <Table.Td>{u.email}</Table.Td>
                  <Table.Td>
                    {u.status === 'deactivated' ? (
                      ROLE_LABELS[u.role]
                    ) : (
                      <NativeSelect
                        size="xs"
                        aria-label={`Role of ${u.name}`}
                        value={u.role}
                        disabled={role.isPending}
                        data={ROLE_OPTIONS}
                        onChange={(e) =>
                          role.mutate({ user: u, role: e.currentTarget.value as WorkspaceRole })
                        }
                      />
                    )}
                  </Table.Td>
                  <Table.Td>
                    <Badge variant="light" color="gray" className={`status-${u.status}`}>
                      {STATUS_LABELS[u.status] ?? u.status}
                    </Badge>
                  </Table.Td>
                  <Table.Td>
                    {typeof u.lastSeenAt === 'string' ? <Time iso={u.lastSeenAt} /> : 'Never'}
                  </Table.Td>
                  <Table.Td ta="right">
                    {u.status !== 'deactivated' && u.id !== me.data?.userId ? (
                      <Button
                        size="xs"
                        variant="subtle"
                        color="red"
                        aria-label={`Deactivate ${u.name}`}
                        onClick={() => setDeactivating(u)}
                      >
                        Deactivate
                      </Button>
                    ) : null}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </section>
      ) : null}
      <InviteDialog opened={inviting} onClose={invite.close} />
      <Modal
        closeButtonProps={{ 'aria-label': 'Close' }}
        opened={deactivating !== null}
        onClose={() => setDeactivating(null)}
        title={deactivating ? `Deactivate ${deactivating.name}?` : ''}
      >
        <Text size="sm">
          {deactivating?.name} ({deactivating?.email}) can no longer sign in, and every session and API token
          of theirs stops working at once.
        </Text>
        {deactivate.error ? (
          <Text c="red" size="sm" mt="xs" role="alert">
            Could not deactivate: {messageOf(deactivate.error)}
          </Text>
        ) : null}
        <Group justify="flex-end" mt="md">
          <Button variant="default" onClick={() => setDeactivating(null)}>
            Cancel
          </Button>
          <Button
            color="red"
            loading={deactivate.isPending}
            onClick={() => deactivating && deactivate.mutate(deactivating)}
          >
            Deactivate {deactivating?.name}
          </Button>
        </Group>
      </Modal>
    </Page>
  );
}
