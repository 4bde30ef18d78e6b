/**
 * The app: /apps/:project shows its default state (the last scheduled run or publish), and
 * /apps/:project/runs/:run the app as it was at that run, with that run's title, version and inputs.
 * A re-run is the viewer's own (private), followed live over SSE. Leaving the page cancels the follow
 * (TanStack Query aborts the query's signal, which closes the stream), so a run that is no longer on
 * screen never replaces the one that is.
 *
 * `<main data-ready="true">` once the snapshot and all its charts are drawn: screenshots wait for it.
 */
import {
  Alert,
  Anchor,
  Button,
  Checkbox,
  Group,
  List,
  NativeSelect,
  NumberInput,
  Paper,
  SimpleGrid,
  Skeleton,
  Stack,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { Link, useParams } from 'react-router';
import { useProjectAccess } from '../access.ts';
import {
  client,
  followRun,
  type LiveRun,
  type Manifest,
  openApp,
  type Run,
  type Snapshot,
  snapshotOf,
  unwrap,
} from '../api.ts';
import { useManifest, useRuns } from '../project.ts';
import { SnapshotView } from '../SnapshotView.tsx';
import { ErrorState, Page, StatusBadge, Time, usePrintMode } from '../ui.tsx';

type Values = Record<string, string | number | boolean | null>;

function InputsForm({
  manifest,
  values,
  onChange,
  print,
}: {
  manifest: Manifest;
  values: Values;
  onChange: (name: string, value: string | number | boolean | null) => void;
  print: boolean;
}) {
  if (print) {
    // A report: the inputs as text, no controls.
    return (
      <Text size="sm" c="dimmed" className="inputs-text">
        {manifest.inputs.map((i) => `${i.label}: ${String(values[i.name] ?? '—')}`).join(' · ')}
      </Text>
    );
  }
  return (
    <Paper withBorder p="sm" radius="md" className="inputs">
      <SimpleGrid cols={{ base: 1, xs: 2, md: 4 }} spacing="sm">
        {manifest.inputs.map((input) => {
          const id = `input-${input.name}`;
          const value = values[input.name];
          switch (input.type) {
            case 'select':
              return (
                <NativeSelect
                  key={input.name}
                  id={id}
                  label={input.label}
                  description={input.description}
                  value={String(value ?? '')}
                  data={(input.options ?? []).map((o) => String(o))}
                  onChange={(e) => onChange(input.name, e.currentTarget.value)}
                />
              );
            case 'checkbox':
              return (
                <Checkbox
                  key={input.name}
                  id={id}
                  label={input.label}
                  description={input.description}
                  checked={Boolean(value)}
                  onChange={(e) => onChange(input.name, e.currentTarget.checked)}
                  mt="lg"
                />
              );
            case 'number':
              return (
                <NumberInput
                  key={input.name}
                  id={id}
                  label={input.label}
                  description={input.description}
                  value={typeof value === 'number' ? value : ''}
                  min={input.min}
                  max={input.max}
                  onChange={(v) =>
                    onChange(input.name, typeof v === 'number' ? v : v === '' ? null : Number(v))
                  }
                />
              );
            default:
              return (
                <TextInput
                  key={input.name}
                  id={id}
                  type={input.type === 'date' ? 'date' : 'text'}
                  label={input.label}
                  description={input.description}
                  value={String(value ?? '')}
                  onChange={(e) => onChange(input.name, e.currentTarget.value)}
                />
              );
          }
        })}
      </SimpleGrid>
    </Paper>
  );
}

function Progress({
  run,
  onCancel,
  cancelling,
}: {
  run: LiveRun;
  onCancel: () => void;
  cancelling: boolean;
}) {
  return (
    <Paper withBorder p="sm" radius="md" className="progress" data-run-status={run.status}>
      <Group justify="space-between">
        <Group gap="xs">
          <Text fw={600}>Running…</Text>
          <StatusBadge status={run.status} />
        </Group>
        <Button variant="default" size="xs" onClick={onCancel} disabled={cancelling}>
          Cancel
        </Button>
      </Group>
      <List size="sm" mt="xs" type="ordered">
        {run.cells.map((c) => (
          <List.Item key={c.index} className={`cell-${c.status}`}>
            {c.name}{' '}
            <Text span c="dimmed" size="xs">
              {c.kind} · {c.status}
              {c.durationMs !== null && c.status !== 'running' ? ` · ${c.durationMs} ms` : ''}
            </Text>
          </List.Item>
        ))}
      </List>
    </Paper>
  );
}

/** The latest runs beside the app, and the notifications of the run on screen. */
function RecentRuns({ project, current }: { project: string; current: string | null }) {
  const runs = useRuns(project, { limit: 15 });
  const base = `/apps/${encodeURIComponent(project)}`;
  return (
    <aside className="runlog" aria-label="Recent runs">
      <Group justify="space-between" mb="xs">
        <Title order={2} size="h5">
          Recent runs
        </Title>
        <Anchor component={Link} to={`${base}/runs`} size="sm">
          Run log
        </Anchor>
      </Group>
      {runs.isPending ? <Skeleton height={120} /> : null}
      {runs.isError ? (
        <Text size="sm" c="dimmed">
          The run log could not be loaded ({runs.error.message}).
        </Text>
      ) : null}
      <ul>
        {(runs.data?.runs ?? []).map((r) => (
          <li key={r.id} className={r.id === current ? 'current' : ''}>
            <Link to={`${base}/runs/${r.id}`} data-run-link={r.id}>
              <StatusBadge status={r.status} /> {r.trigger}
              {r.private ? ' (yours)' : ''}
            </Link>
            <div className="meta">
              <Time iso={r.createdAt} />
              {r.latenessMs !== null ? ` · ${r.latenessMs} ms late` : ''}
            </div>
            {r.error ? <div className="meta error-text">{r.error.message}</div> : null}
          </li>
        ))}
      </ul>
      {current ? <Deliveries runId={current} /> : null}
    </aside>
  );
}

/** A run's notifications, per destination, with their status and a resend action. */
function Deliveries({ runId }: { runId: string }) {
  const queryClient = useQueryClient();
  const list = useQuery({
    queryKey: ['deliveries', runId],
    queryFn: async ({ signal }) =>
      unwrap(await client.GET('/api/runs/{run}/deliveries', { params: { path: { run: runId } }, signal })),
  });
  const resend = useMutation({
    mutationFn: async (delivery: string) =>
      unwrap(await client.POST('/api/deliveries/{delivery}/resend', { params: { path: { delivery } } })),
    onSettled: () => queryClient.invalidateQueries({ queryKey: ['deliveries', runId] }),
  });
  if (list.isError)
    return (
      <Text size="sm" c="dimmed">
        Notifications could not be loaded ({list.error.message}).
      </Text>
    );
  if (!list.data || list.data.length === 0) return null;
  return (
    <section className="deliveries" aria-label="Notifications of this run">
      <Title order={2} size="h5" mt="md">
        Notifications
      </Title>
      {resend.isError ? (
        <Text size="sm" c="red">
          Resend failed: {resend.error.message}
        </Text>
      ) : null}
      <ul>
        {list.data.map((d) => (
          <li key={d.id} data-delivery={d.id}>
            <StatusBadge
              status={d.status === 'sent' ? 'succeeded' : d.status === 'failed' ? 'failed' : 'queued'}
            />{' '}
            {d.destination}
            <div className="meta">
              {d.rule} · attempt {d.attempts}/{d.maxAttempts}
              {d.error ? ` · ${d.error}` : ''}
              {d.note ? ` · ${d.note}` : ''}
            </div>
            {d.status === 'sent' || d.status === 'failed' ? (
              <Button
                variant="subtle"
                size="compact-xs"
                disabled={resend.isPending}
                onClick={() => resend.mutate(d.id)}
              >
                Resend
              </Button>
            ) : null}
          </li>
        ))}
      </ul>
    </section>
  );
}

export function AppPage() {
  const { project = '', run: runId } = useParams();
  // One component per view: leaving a view (another run, the default state) unmounts it, and with it
  // its live follow.
  const view = runId ? `${project}/runs/${runId}` : project;
  return <AppView key={view} project={project} runId={runId ?? null} />;
}

function AppView({ project, runId }: { project: string; runId: string | null }) {
  const print = usePrintMode();
  const queryClient = useQueryClient();
  const manifest = useManifest(project);
  // App Only sees the app but not its run log (issue 16): no runs beside it.
  const access = useProjectAccess(project);
  // The default state (no run in the URL).
  const opened = useQuery({
    queryKey: ['app', project],
    queryFn: ({ signal }) => openApp(project, signal),
    enabled: !runId,
    staleTime: 0,
  });
  // A past run (the run in the URL): its record (version, inputs) and its snapshot.
  const pastRun = useQuery({
    queryKey: ['run', runId],
    queryFn: async ({ signal }) =>
      unwrap(await client.GET('/api/runs/{run}', { params: { path: { run: runId! } }, signal })),
    enabled: !!runId,
  });
  const pastSnapshot = useQuery({
    queryKey: ['snapshot', runId],
    queryFn: ({ signal }) => snapshotOf(runId!, signal),
    enabled: !!runId,
    staleTime: Number.POSITIVE_INFINITY,
  });

  // A run followed live: a re-run, or the run that makes the default state when show_last_run is off.
  const [rerunId, setRerunId] = useState<string | null>(null);
  const startedRun = opened.data && 'run' in opened.data ? opened.data.run : null;
  const followId = rerunId ?? startedRun?.id ?? null;
  const [progress, setProgress] = useState<LiveRun | null>(null);
  const followed = useQuery({
    queryKey: ['follow', followId],
    queryFn: ({ signal }) => followRun(followId!, setProgress, signal),
    enabled: !!followId,
    retry: false,
    staleTime: Number.POSITIVE_INFINITY,
    gcTime: 0,
  });
  const finalId = followed.data?.id ?? null;
  const followedSnapshot = useQuery({
    queryKey: ['snapshot', finalId],
    queryFn: ({ signal }) => snapshotOf(finalId!, signal),
    enabled: !!finalId,
    staleTime: Number.POSITIVE_INFINITY,
  });
  const running = !!followId && followed.isPending;

  // The snapshot on screen: a followed run's once it is in (never the one before it, which would
  // flag the page ready with the old results), else the past run's, else the default state's.
  let snapshot: Snapshot | null = null;
  if (followId) snapshot = followedSnapshot.data ?? null;
  else if (runId) snapshot = pastSnapshot.data ?? null;
  else if (opened.data && 'snapshot' in opened.data) snapshot = opened.data.snapshot;

  // The form shows the inputs of the snapshot on screen (issue 15, bug 4), else the defaults.
  const [values, setValues] = useState<Values>({});
  const shownInputs = snapshot?.inputs;
  useEffect(() => {
    if (!manifest.data) return;
    const defaults = Object.fromEntries(manifest.data.inputs.map((i) => [i.name, i.default])) as Values;
    const base = { ...defaults, ...(pastRun.data?.inputs ?? {}) };
    // While a re-run goes (no snapshot on screen) the form keeps what the viewer chose.
    setValues((old) =>
      shownInputs ? { ...base, ...(shownInputs as Values) } : Object.keys(old).length > 0 ? old : base,
    );
  }, [manifest.data, pastRun.data, shownInputs]);

  const rerun = useMutation({
    mutationFn: async () =>
      unwrap(
        await client.POST('/api/projects/{project}/runs', {
          params: { path: { project } },
          body: { inputs: values, private: true },
        }),
      ),
    onSuccess: (run: Run) => {
      setProgress(null);
      setRerunId(run.id);
    },
    onSettled: () => queryClient.invalidateQueries({ queryKey: ['runs', project] }),
  });
  const cancel = useMutation({
    mutationFn: async (run: string) =>
      unwrap(await client.POST('/api/runs/{run}/cancel', { params: { path: { run } } })),
  });
  // A finished follow refreshes the run log beside the app.
  useEffect(() => {
    if (finalId) void queryClient.invalidateQueries({ queryKey: ['runs', project] });
  }, [finalId, project, queryClient]);

  const [readyFor, setReadyFor] = useState<string | null>(null);
  const loadError =
    manifest.error ??
    (runId ? (pastSnapshot.error ?? null) : (opened.error ?? null)) ??
    followed.error ??
    followedSnapshot.error ??
    null;
  const ready = loadError ? true : !running && !!snapshot && readyFor === snapshot.runId;

  const base = `/apps/${encodeURIComponent(project)}`;
  const title = snapshot?.title ?? manifest.data?.title ?? project;
  const version = runId ? (pastRun.data?.versionNumber ?? null) : (manifest.data?.version ?? null);
  const shownRun = followed.data ?? pastRun.data ?? null;

  const page = (
    <Page title={[runId ? `Run ${runId.slice(0, 8)}` : null, title]} ready={ready} className="app-main">
      <header className="app-header">
        <Title order={1} size="h4">
          {title}
        </Title>
        <Text size="sm" c="dimmed">
          {version !== null ? `Version ${version}` : manifest.data ? 'Not published yet' : ''}
          {snapshot ? (
            <>
              {' · as of '}
              <Time iso={snapshot.finishedAt} absolute />
            </>
          ) : null}
        </Text>
        {manifest.data?.description ? (
          <Text size="sm" mt={4}>
            {manifest.data.description}
          </Text>
        ) : null}
      </header>
      {runId ? (
        <Alert
          variant="light"
          color="blue"
          className="banner info"
          data-viewing-run={runId}
          role="note"
          mt="sm"
        >
          Showing the app as it was at run {runId.slice(0, 8)}
          {shownRun ? (
            <>
              {' '}
              ({shownRun.trigger}, <Time iso={shownRun.createdAt} />)
            </>
          ) : null}
          .{' '}
          {print ? null : (
            <Anchor component={Link} to={base} size="sm">
              Back to the current app
            </Anchor>
          )}
        </Alert>
      ) : null}
      {manifest.data && manifest.data.inputs.length > 0 ? (
        <InputsForm
          manifest={manifest.data}
          values={values}
          print={print}
          onChange={(name, value) => setValues((old) => ({ ...old, [name]: value }))}
        />
      ) : null}
      {print || manifest.isError ? null : (
        <Group my="sm" gap="sm" className="actions">
          <Button
            onClick={() => rerun.mutate()}
            loading={rerun.isPending}
            disabled={running || !manifest.data?.version}
          >
            Re-run
          </Button>
          <Text size="sm" c="dimmed">
            A re-run is yours alone: it does not change what others see.
          </Text>
        </Group>
      )}
      {rerun.isError ? <ErrorState what="the re-run" error={rerun.error} /> : null}
      {cancel.isError ? <ErrorState what="the cancel" error={cancel.error} /> : null}
      {loadError ? <ErrorState what="the app" error={loadError} /> : null}
      {running && progress ? (
        <Progress run={progress} cancelling={cancel.isPending} onCancel={() => cancel.mutate(progress.id)} />
      ) : null}
      {running && !progress ? <Skeleton height={80} radius="md" /> : null}
      {!snapshot && !loadError && !running ? (
        <Stack gap="sm" aria-busy="true" aria-label="Loading the app">
          <Skeleton height={24} width="60%" />
          <Skeleton height={180} />
          <Skeleton height={120} />
        </Stack>
      ) : null}
      {snapshot && !running ? (
        <SnapshotView
          snapshot={snapshot}
          // Issue 15, bug 11: hide_code hid code cells' tables too (the demo's "Snapshot history");
          // SnapshotView now always shows their tables and charts, and their other values only here.
          showCodeOutputs={!(manifest.data?.hideCode ?? true)}
          onReady={() => setReadyFor(snapshot.runId)}
        />
      ) : null}
    </Page>
  );
  // Without the app (not signed in, no access, no such project) a list of its runs has nothing to add.
  if (print || manifest.isError || access === 'app_only') return page;
  return (
    <div className="app-layout">
      {page}
      <RecentRuns project={project} current={runId ?? snapshot?.runId ?? null} />
    </div>
  );
}
