/**
 * The Share dialog of a project (Full access only): what every member of the workspace gets by
 * default, and the users' and groups' own grants, with add, change and remove (issue 16).
 */
import {
  Alert,
  Button,
  Group,
  Modal,
  NativeSelect,
  Select,
  Stack,
  Table,
  Text,
  VisuallyHidden,
} from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import {
  ACCESS_LABELS,
  ACCESS_LEVELS,
  type AccessLevel,
  ROLE_LABELS,
  WORKSPACE_DEFAULTS,
  type WorkspaceDefault,
} from './access.ts';
import { client, expectOk, unwrap } from './api.ts';
import { EmptyState, ErrorState, LoadingRows } from './ui.tsx';

const DEFAULT_LABELS: Readonly<Record<WorkspaceDefault, string>> = {
  none: 'No access (only people shared with below)',
  app_only: ACCESS_LABELS.app_only,
  can_view: ACCESS_LABELS.can_view,
  can_edit: ACCESS_LABELS.can_edit,
};

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function ShareDialog({
  project,
  title,
  opened,
  onClose,
}: {
  project: string;
  title: string;
  opened: boolean;
  onClose: () => void;
}) {
  const queryClient = useQueryClient();
  const path = { project };
  const access = useQuery({
    queryKey: ['project-access', project],
    enabled: opened,
    queryFn: async ({ signal }) =>
      unwrap(await client.GET('/api/projects/{project}/access', { params: { path }, signal })),
  });
  // Only admins may list people; for anyone else a grant shows its id and users are added by id.
  const users = useQuery({
    queryKey: ['users'],
    enabled: opened,
    retry: false,
    queryFn: async ({ signal }) => unwrap(await client.GET('/api/users', { signal })),
  });
  const set = (data: unknown) => queryClient.setQueryData(['project-access', project], data);
  const setDefault = useMutation({
    mutationFn: async (workspace: WorkspaceDefault) =>
      unwrap(await client.PUT('/api/projects/{project}/access', { params: { path }, body: { workspace } })),
    onSuccess: set,
  });
  const grant = useMutation({
    mutationFn: async (body: { principal: string; access: AccessLevel }) =>
      unwrap(await client.PUT('/api/projects/{project}/grants', { params: { path }, body })),
    onSuccess: (data) => {
      set(data);
      setAdding(null);
    },
  });
  const remove = useMutation({
    mutationFn: async (grantee: string) => {
      const result = await client.DELETE('/api/projects/{project}/grants/{grantee}', {
        params: { path: { project, grantee } },
      });
      expectOk(result);
    },
    onSuccess: () => {
      setConfirming(null);
      return queryClient.invalidateQueries({ queryKey: ['project-access', project] });
    },
  });
  const [adding, setAdding] = useState<string | null>(null);
  const [addLevel, setAddLevel] = useState<AccessLevel>('can_view');
  const [confirming, setConfirming] = useState<string | null>(null);

  const nameOf = (principal: string): string => {
    const [kind, id] = principal.split(':', 2) as [string, string | undefined];
    if (kind === 'user') {
      const user = users.data?.find((u) => u.id === id);
      if (user) return `${user.name} (${user.email})`;
      return `User ${id ?? principal}`;
    }
    if (kind === 'group') return `Group ${id ?? principal}`;
    return principal;
  };
  const granted = new Set(access.data?.grants.map((g) => g.principal));
  const candidates = (users.data ?? [])
    .filter((u) => u.status !== 'deactivated' && !granted.has(`user:${u.id}`))
    .map((u) => ({ value: `user:${u.id}`, label: `${u.name} (${u.email}) · ${ROLE_LABELS[u.role]}` }));
  const add = (event: FormEvent) => {
    event.preventDefault();
    if (adding && !grant.isPending) grant.mutate({ principal: adding, access: addLevel });
  };
  const busy = setDefault.isPending || grant.isPending || remove.isPending;
  const failure = setDefault.error ?? grant.error ?? remove.error;

  return (
    <Modal
      closeButtonProps={{ 'aria-label': 'Close' }}
      opened={opened}
      onClose={onClose}
      title={`Share ${title}`}
      size="lg"
      className="share-dialog"
    >
      {access.isPending ? <LoadingRows rows={3} label="Loading the sharing" /> : null}
      {access.isError ? <ErrorState what="the sharing" error={access.error} /> : null}
      {access.data ? (
        <Stack gap="lg">
          <NativeSelect
            label="Everyone in the workspace"
            description="What every member gets without a grant of their own (guests excepted)"
            value={access.data.workspace}
            disabled={setDefault.isPending}
            data={WORKSPACE_DEFAULTS.map((d) => ({ value: d, label: DEFAULT_LABELS[d] }))}
            onChange={(e) => setDefault.mutate(e.currentTarget.value as WorkspaceDefault)}
          />
          <Stack gap="xs">
            <Text fw={600} component="h3" size="md" m={0}>
              People and groups
            </Text>
            {access.data.grants.length === 0 ? (
              <EmptyState title="Shared with nobody in particular yet">
                Add a person below; they get the level you pick, even when the workspace default is lower.
              </EmptyState>
            ) : (
              <Table className="grants" verticalSpacing="xs">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Who</Table.Th>
                    <Table.Th>Access</Table.Th>
                    <Table.Th>
                      <VisuallyHidden>Actions</VisuallyHidden>
                    </Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {access.data.grants.map((g) => {
                    const who = nameOf(g.principal);
                    return (
                      <Table.Tr key={g.principal} data-principal={g.principal}>
                        <Table.Td>
                          <Text size="sm">{who}</Text>
                          {g.reason !== 'shared' ? (
                            <Text size="xs" c="dimmed">
                              {g.reason === 'notification recipient'
                                ? 'Added as a notification recipient'
                                : g.reason}
                            </Text>
                          ) : null}
                        </Table.Td>
                        <Table.Td>
                          <NativeSelect
                            aria-label={`Access for ${who}`}
                            size="xs"
                            value={g.access}
                            disabled={busy}
                            data={ACCESS_LEVELS.map((l) => ({ value: l, label: ACCESS_LABELS[l] }))}
                            onChange={(e) =>
                              grant.mutate({
                                principal: g.principal,
                                access: e.currentTarget.value as AccessLevel,
                              })
                            }
                          />
                        </Table.Td>
                        <Table.Td ta="right">
                          {confirming === g.principal ? (
                            <Group gap={4} justify="flex-end" wrap="nowrap">
                              <Button
                                size="xs"
                                color="red"
                                loading={remove.isPending}
                                onClick={() => remove.mutate(g.principal)}
                              >
                                Remove {who.split(' (')[0]}
                              </Button>
                              <Button size="xs" variant="default" onClick={() => setConfirming(null)}>
                                Keep
                              </Button>
                            </Group>
                          ) : (
                            <Button
                              size="xs"
                              variant="subtle"
                              color="red"
                              disabled={busy}
                              aria-label={`Remove access for ${who}`}
                              onClick={() => setConfirming(g.principal)}
                            >
                              Remove
                            </Button>
                          )}
                        </Table.Td>
                      </Table.Tr>
                    );
                  })}
                </Table.Tbody>
              </Table>
            )}
          </Stack>
          <form onSubmit={add}>
            <Stack gap="xs">
              <Text fw={600} component="h3" size="md" m={0}>
                Add a person
              </Text>
              {users.isError ? (
                <Text size="sm" c="dimmed">
                  Only admins can list the workspace's people here; ask one to share, or use{' '}
                  <code>almanac share {project} --user &lt;id&gt;</code>.
                </Text>
              ) : (
                <Group align="flex-end" gap="xs" wrap="wrap">
                  <Select
                    label="Person"
                    placeholder={users.isPending ? 'Loading people…' : 'Search by name or email'}
                    searchable
                    nothingFoundMessage="Nobody by that name without access already"
                    data={candidates}
                    value={adding}
                    onChange={setAdding}
                    style={{ flex: '1 1 220px' }}
                    comboboxProps={{ withinPortal: true }}
                  />
                  <NativeSelect
                    label="Access"
                    value={addLevel}
                    data={ACCESS_LEVELS.map((l) => ({ value: l, label: ACCESS_LABELS[l] }))}
                    onChange={(e) => setAddLevel(e.currentTarget.value as AccessLevel)}
                  />
                  <Button type="submit" disabled={!adding} loading={grant.isPending}>
                    Share
                  </Button>
                </Group>
              )}
            </Stack>
          </form>
          {failure ? (
            <Alert color="red" variant="light" role="alert" title="Could not change the sharing">
              {messageOf(failure)}
            </Alert>
          ) : null}
        </Stack>
      ) : null}
    </Modal>
  );
}
