/**
 * Settings › Plan: the workspace's plan and its limits (everyone reads it; admins change it). A
 * downgrade pauses the schedules the new plan does not allow, each with a note; nothing is deleted.
 */
import { Alert, Badge, Button, Group, Modal, NativeSelect, Paper, Table, Text } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { client, unwrap } from '../api.ts';
import { useMe } from '../me.ts';
import { ErrorState, LoadingRows, Page, PageTitle } from '../ui.tsx';

const PLANS = ['professional', 'team', 'enterprise'] as const;
type Plan = (typeof PLANS)[number];
const PLAN_LABELS: Record<Plan, string> = {
  professional: 'Professional',
  team: 'Team',
  enterprise: 'Enterprise',
};

function yes(value: boolean): string {
  return value ? 'Yes' : 'No';
}

export function PlanPage() {
  const me = useMe();
  const queryClient = useQueryClient();
  const admin = me.data?.role === 'admin';
  const plan = useQuery({
    queryKey: ['plan'],
    queryFn: async ({ signal }) => unwrap(await client.GET('/api/workspace/plan', { signal })),
  });
  const [choice, setChoice] = useState<Plan | null>(null);
  const [confirming, setConfirming] = useState(false);
  const change = useMutation({
    mutationFn: async (next: Plan) =>
      unwrap(await client.PUT('/api/workspace/plan', { body: { plan: next } })),
    onSuccess: (result) => {
      setChoice(null);
      setConfirming(false);
      queryClient.setQueryData(['plan'], { plan: result.plan, limits: result.limits });
      notifications.show({
        color: result.paused.length > 0 ? 'yellow' : 'green',
        message:
          result.paused.length > 0
            ? `Now on ${PLAN_LABELS[result.plan]}; paused ${result.paused.length} schedule(s) it does not allow: ${result.paused.map((s) => s.name).join(', ')}`
            : `Now on ${PLAN_LABELS[result.plan]}`,
      });
    },
  });
  const limits = plan.data?.limits;
  return (
    <Page title={['Plan']} ready={!plan.isPending} className="settings-page">
      <PageTitle sub="What the workspace's plan allows.">Plan</PageTitle>
      {plan.isPending ? <LoadingRows rows={4} label="Loading the plan" /> : null}
      {plan.isError ? <ErrorState what="the plan" error={plan.error} /> : null}
      {plan.data && limits ? (
        <>
          <Group gap="sm" mb="md">
            <Text>This workspace is on</Text>
            <Badge size="lg" variant="light" className="plan-name">
              {PLAN_LABELS[plan.data.plan]}
            </Badge>
          </Group>
          <Paper withBorder radius="md">
            <Table className="plan-limits" verticalSpacing="sm">
              <Table.Tbody>
                <Table.Tr>
                  <Table.Th scope="row">Schedules per project</Table.Th>
                  <Table.Td>{limits.schedulesPerProject ?? 'No limit'}</Table.Td>
                </Table.Tr>
                <Table.Tr>
                  <Table.Th scope="row">Custom cron schedules</Table.Th>
                  <Table.Td>{yes(limits.cronSchedules)}</Table.Td>
                </Table.Tr>
                <Table.Tr>
                  <Table.Th scope="row">Slack notifications</Table.Th>
                  <Table.Td>{yes(limits.slack)}</Table.Td>
                </Table.Tr>
                <Table.Tr>
                  <Table.Th scope="row">Enforce single sign-on</Table.Th>
                  <Table.Td>{yes(limits.ssoEnforcement)}</Table.Td>
                </Table.Tr>
                <Table.Tr>
                  <Table.Th scope="row">Audit log export</Table.Th>
                  <Table.Td>{yes(limits.auditExport)}</Table.Td>
                </Table.Tr>
              </Table.Tbody>
            </Table>
          </Paper>
          {admin ? (
            <Group align="flex-end" mt="lg" gap="sm">
              <NativeSelect
                label="Change the plan"
                value={choice ?? plan.data.plan}
                data={PLANS.map((p) => ({ value: p, label: PLAN_LABELS[p] }))}
                onChange={(e) => setChoice(e.currentTarget.value as Plan)}
              />
              <Button
                variant="default"
                disabled={!choice || choice === plan.data.plan}
                onClick={() => choice && setConfirming(true)}
              >
                Change plan
              </Button>
            </Group>
          ) : (
            <Text size="sm" c="dimmed" mt="md">
              An admin changes the plan.
            </Text>
          )}
        </>
      ) : null}
      <Modal
        closeButtonProps={{ 'aria-label': 'Close' }}
        opened={confirming && choice !== null}
        onClose={() => setConfirming(false)}
        title={choice ? `Move the workspace to ${PLAN_LABELS[choice]}?` : ''}
      >
        <Text size="sm">
          Schedules the {choice ? PLAN_LABELS[choice] : ''} plan does not allow are paused, each with a note
          saying why. Nothing is deleted; they resume when un-paused on a plan that allows them.
        </Text>
        {change.error ? (
          <Alert color="red" variant="light" mt="sm" role="alert" title="Could not change the plan">
            {change.error.message}
          </Alert>
        ) : null}
        <Group justify="flex-end" mt="md">
          <Button variant="default" onClick={() => setConfirming(false)}>
            Cancel
          </Button>
          <Button loading={change.isPending} onClick={() => choice && change.mutate(choice)}>
            Move to {choice ? PLAN_LABELS[choice] : ''}
          </Button>
        </Group>
      </Modal>
    </Page>
  );
}
