/**
 * The web app: a project list, and each project's app page at /apps/<slug> (the default state) and
 * /apps/<slug>/runs/<run> (the app as it was at that run). The page marks itself `data-ready="true"`
 * once the snapshot and all its charts are drawn, so screenshots know when to shoot.
 */
import { useCallback, useEffect, useState } from 'react';
import { api, type Delivery, followRun, type Manifest, type Run, type Snapshot } from './api.ts';
import { HomeLink } from './HomeLink.tsx';
import { Outbox } from './Outbox.tsx';
import { SnapshotView } from './SnapshotView.tsx';

function usePath(): [string, (to: string) => void] {
  const [path, setPath] = useState(window.location.pathname);
  useEffect(() => {
    const onPop = () => setPath(window.location.pathname);
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, []);
  const navigate = useCallback((to: string) => {
    window.history.pushState(null, '', to);
    setPath(to);
  }, []);
  return [path, navigate];
}

function when(iso: string | null): string {
  if (!iso) return '';
  return (
    new Date(iso).toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'medium', timeZone: 'UTC' }) +
    ' UTC'
  );
}

function took(run: Run): string {
  if (!run.startedAt || !run.finishedAt) return '';
  return `${((Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000).toFixed(2)} s`;
}

function Projects({ navigate }: { navigate: (to: string) => void }) {
  const [projects, setProjects] = useState<
    { slug: string; title: string; latestVersion: number | null }[] | null
  >(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api.projects().then(setProjects, (e: Error) => setError(e.message));
  }, []);
  if (error)
    return (
      <main className="page">
        <div className="banner failed">{error}</div>
      </main>
    );
  if (!projects) return <main className="page">Loading…</main>;
  return (
    <main className="page" data-ready="true">
      <h1>Projects</h1>
      <p className="meta">
        <a
          href="/outbox"
          onClick={(e) => {
            e.preventDefault();
            navigate('/outbox');
          }}
        >
          Email outbox
        </a>
      </p>
      <ul className="projects">
        {projects.map((p) => (
          <li key={p.slug}>
            <a
              href={`/apps/${p.slug}`}
              onClick={(e) => {
                e.preventDefault();
                navigate(`/apps/${p.slug}`);
              }}
            >
              {p.title}
            </a>{' '}
            <span className="meta">{p.latestVersion ? `v${p.latestVersion}` : 'not published'}</span>
          </li>
        ))}
      </ul>
    </main>
  );
}

function InputsForm({
  manifest,
  values,
  onChange,
}: {
  manifest: Manifest;
  values: Record<string, unknown>;
  onChange: (name: string, value: unknown) => void;
}) {
  return (
    <div className="inputs">
      {manifest.inputs.map((input) => {
        const value = values[input.name];
        const id = `input-${input.name}`;
        let control: React.ReactNode;
        switch (input.type) {
          case 'select':
            control = (
              <select id={id} value={String(value)} onChange={(e) => onChange(input.name, e.target.value)}>
                {(input.options ?? []).map((o) => (
                  <option key={String(o)} value={String(o)}>
                    {String(o)}
                  </option>
                ))}
              </select>
            );
            break;
          case 'checkbox':
            control = (
              <input
                id={id}
                type="checkbox"
                checked={Boolean(value)}
                onChange={(e) => onChange(input.name, e.target.checked)}
              />
            );
            break;
          case 'number':
            control = (
              <input
                id={id}
                type="number"
                value={String(value ?? '')}
                min={input.min}
                max={input.max}
                onChange={(e) => onChange(input.name, e.target.value === '' ? null : Number(e.target.value))}
              />
            );
            break;
          case 'date':
            control = (
              <input
                id={id}
                type="date"
                value={String(value ?? '')}
                onChange={(e) => onChange(input.name, e.target.value)}
              />
            );
            break;
          default:
            control = (
              <input
                id={id}
                type="text"
                value={String(value ?? '')}
                onChange={(e) => onChange(input.name, e.target.value)}
              />
            );
        }
        return (
          <label key={input.name} htmlFor={id} title={input.description}>
            <span>{input.label}</span>
            {control}
          </label>
        );
      })}
    </div>
  );
}

function Progress({ run, onCancel }: { run: Run; onCancel: () => void }) {
  return (
    <div className="progress" data-run-status={run.status}>
      <div>
        Running… <span className="meta">{run.status}</span>{' '}
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
      <ol>
        {(run.cells ?? []).map((c) => (
          <li key={c.index} className={`cell-${c.status}`}>
            {c.name}{' '}
            <span className="meta">
              {c.kind} · {c.status}
              {c.durationMs !== null && c.status !== 'running' ? ` · ${c.durationMs} ms` : ''}
            </span>
          </li>
        ))}
      </ol>
    </div>
  );
}

function RunLog({
  slug,
  runs,
  current,
  onOpen,
}: {
  slug: string;
  runs: Run[];
  current: string | null;
  onOpen: (run: Run) => void;
}) {
  return (
    <aside className="runlog">
      <h2>Run log</h2>
      <ul>
        {runs.map((r) => (
          <li key={r.id} className={r.id === current ? 'current' : ''}>
            <a
              href={`/apps/${slug}/runs/${r.id}`}
              data-run-link={r.id}
              onClick={(e) => {
                e.preventDefault();
                onOpen(r);
              }}
            >
              <span className={`status status-${r.status}`}>{r.status}</span> {r.trigger}
              {r.private ? ' (yours)' : ''}
            </a>
            <div className="meta">
              {when(r.createdAt)} {took(r)}
              {r.latenessMs !== null && r.latenessMs !== undefined ? ` · ${r.latenessMs} ms late` : ''}
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
  const [list, setList] = useState<Delivery[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = useCallback(() => {
    api.deliveries(runId).then(setList, (e: Error) => setError(e.message));
  }, [runId]);
  useEffect(load, [load]);
  if (error) return <div className="meta error-text">{error}</div>;
  if (!list || list.length === 0) return null;
  return (
    <section className="deliveries">
      <h2>Notifications</h2>
      <ul>
        {list.map((d) => (
          <li key={d.id} data-delivery={d.id}>
            <span
              className={`status status-${d.status === 'sent' ? 'succeeded' : d.status === 'failed' ? 'failed' : 'queued'}`}
            >
              {d.status}
            </span>{' '}
            {d.destination}
            <div className="meta">
              {d.rule} · attempt {d.attempts}/{d.maxAttempts}
              {d.error ? ` · ${d.error}` : ''}
              {d.note ? ` · ${d.note}` : ''}
            </div>
            {d.status === 'sent' || d.status === 'failed' ? (
              <button
                type="button"
                className="link"
                onClick={() => void api.resend(d.id).then(load, (e: Error) => setError(e.message))}
              >
                Resend
              </button>
            ) : null}
          </li>
        ))}
      </ul>
    </section>
  );
}

function AppPage({
  slug,
  runId,
  navigate,
}: {
  slug: string;
  runId: string | null;
  navigate: (to: string) => void;
}) {
  const [manifest, setManifest] = useState<Manifest | null>(null);
  const [snapshot, setSnapshot] = useState<Snapshot | null>(null);
  const [runs, setRuns] = useState<Run[]>([]);
  const [running, setRunning] = useState<Run | null>(null);
  const [values, setValues] = useState<Record<string, unknown>>({});
  const [error, setError] = useState<string | null>(null);
  // Which view is ready (its path), so `data-ready` never describes the previous view for a frame after
  // an in-app navigation (screenshots navigate a warm page this way).
  const view = runId ? `/apps/${slug}/runs/${runId}` : `/apps/${slug}`;
  const [readyView, setReadyView] = useState<string | null>(null);
  const ready = readyView === view;
  const setReady = useCallback((on: boolean) => setReadyView(on ? view : null), [view]);

  const refreshRuns = useCallback(() => {
    api.runs(slug).then(
      (page) => setRuns(page.runs),
      () => {},
    );
  }, [slug]);

  const follow = useCallback(
    async (run: Run) => {
      setRunning(run);
      setReady(false);
      try {
        const final = await followRun(run.id, setRunning);
        setSnapshot(await api.snapshot(final.id));
      } catch (e) {
        setError((e as Error).message);
        setReady(true);
      } finally {
        setRunning(null);
        refreshRuns();
      }
    },
    [refreshRuns, setReady],
  );

  useEffect(() => {
    let stale = false;
    setReady(false);
    setError(null);
    setSnapshot(null);
    (async () => {
      try {
        const m = await api.manifest(slug);
        if (stale) return;
        setManifest(m);
        setValues(Object.fromEntries(m.inputs.map((i) => [i.name, i.default])));
        refreshRuns();
        if (runId) {
          const [run, snap] = await Promise.all([api.run(runId), api.snapshot(runId)]);
          if (stale) return;
          setValues({ ...run.inputs });
          setSnapshot(snap);
          return;
        }
        const opened = await api.openApp(slug);
        if (stale) return;
        if ('snapshot' in opened && opened.snapshot) setSnapshot(opened.snapshot);
        else if ('run' in opened && opened.run) await follow(opened.run);
      } catch (e) {
        if (!stale) {
          setError((e as Error).message);
          setReady(true);
        }
      }
    })();
    return () => {
      stale = true;
    };
  }, [slug, runId, refreshRuns, follow, setReady]);

  const rerun = async () => {
    setError(null);
    try {
      await follow(await api.rerun(slug, values));
    } catch (e) {
      setError((e as Error).message);
    }
  };
  const viewing = runId ? runs.find((r) => r.id === runId) : null;

  return (
    <div className="layout">
      <main className="page" data-ready={ready && !running ? 'true' : 'false'} data-view={view}>
        <header>
          <HomeLink navigate={navigate} />
          <span className="meta">
            {' '}
            › {manifest?.title ?? slug}
            {manifest?.version ? ` · version ${manifest.version}` : ''}
          </span>
          {manifest?.description ? <p className="meta">{manifest.description}</p> : null}
        </header>
        {runId ? (
          <div className="banner info" data-viewing-run={runId}>
            Showing the app as it was at run {runId.slice(0, 8)}
            {viewing ? ` (${viewing.trigger}, ${when(viewing.createdAt)})` : ''}.{' '}
            <a
              href={`/apps/${slug}`}
              onClick={(e) => {
                e.preventDefault();
                navigate(`/apps/${slug}`);
              }}
            >
              Back to the current app
            </a>
          </div>
        ) : null}
        {manifest && manifest.inputs.length > 0 ? (
          <InputsForm
            manifest={manifest}
            values={values}
            onChange={(n, v) => setValues((old) => ({ ...old, [n]: v }))}
          />
        ) : null}
        <div className="actions">
          <button type="button" onClick={rerun} disabled={!!running || !manifest?.version}>
            Re-run
          </button>
          <span className="meta">A re-run is yours alone: it does not change what others see.</span>
        </div>
        {error ? <div className="banner failed">{error}</div> : null}
        {running ? (
          <Progress
            run={running}
            onCancel={() => void api.cancel(running.id).catch((e: Error) => setError(e.message))}
          />
        ) : null}
        {snapshot && !running ? (
          <SnapshotView
            snapshot={snapshot}
            showCodeOutputs={!(manifest?.hideCode ?? true)}
            onReady={() => setReady(true)}
          />
        ) : null}
      </main>
      <RunLog
        slug={slug}
        runs={runs}
        current={runId ?? snapshot?.runId ?? null}
        onOpen={(r) => navigate(`/apps/${slug}/runs/${r.id}`)}
      />
    </div>
  );
}

export function App() {
  const [path, navigate] = usePath();
  const outbox = /^\/outbox(?:\/([^/]+))?\/?$/.exec(path);
  if (outbox) return <Outbox file={outbox[1] ? decodeURIComponent(outbox[1]) : null} navigate={navigate} />;
  const match = /^\/apps\/([^/]+)(?:\/runs\/([^/]+))?\/?$/.exec(path);
  if (match)
    return <AppPage slug={decodeURIComponent(match[1]!)} runId={match[2] ?? null} navigate={navigate} />;
  return <Projects navigate={navigate} />;
}
