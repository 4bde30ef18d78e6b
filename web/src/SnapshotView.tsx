/**
 * Renders a run snapshot as the app: prose, tables, values and Vega-Lite charts, in notebook order.
 * This is also the page screenshots capture, so it reports when every chart has drawn (`onReady`).
 */
import DOMPurify from 'dompurify';
import { useEffect, useLayoutEffect, useRef, useState } from 'react';
import { expressionInterpreter } from 'vega-interpreter';
import { type ChartSpecIssue, chartSpecIssue } from '../../src/domain/chart-spec.ts';
import type { CellOutput, CellResult, Snapshot } from './api.ts';
import { createProseSanitizer } from './sanitize-html.ts';

/** One sanitizer for the page (its rules are hooks on this DOMPurify instance). */
const prose = createProseSanitizer(DOMPurify(window));

const NUMERIC =
  /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|DOUBLE|FLOAT|REAL|DECIMAL|NUMERIC|int|float|numeric|number|bigint)/i;

/** A value of the tagged JSON encoding (docs/run-snapshot.md) as display text. */
export function displayValue(value: unknown): string {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'number')
    return Number.isInteger(value)
      ? value.toLocaleString('en-US')
      : value.toLocaleString('en-US', { maximumFractionDigits: 4 });
  if (typeof value === 'string' || typeof value === 'boolean') return String(value);
  if (typeof value === 'object' && '$type' in value) {
    const tagged = value as { $type: string; value?: unknown };
    if (tagged.$type === 'undefined') return 'undefined';
    return tagged.value === undefined ? `[${tagged.$type}]` : displayValue(tagged.value);
  }
  return JSON.stringify(value);
}

/**
 * Rows per table page. A table shows one page at a time: a run's table can hold thousands of rows, and
 * drawing them all costs the page (and every screenshot of it) hundreds of milliseconds of layout for
 * rows nobody scrolls to.
 */
export const TABLE_PAGE = 50;

function Table({ name, output }: { name: string; output: Extract<CellOutput, { kind: 'table' }> }) {
  const numeric = output.columns.map((c) => NUMERIC.test(c.type));
  const [page, setPage] = useState(0);
  // A new output (another run) starts at its first page.
  // biome-ignore lint/correctness/useExhaustiveDependencies: reset per output
  useEffect(() => setPage(0), [output]);
  if (output.columns.length === 0 && output.rowsChanged !== undefined) {
    return <p className="meta">{output.rowsChanged} row(s) changed</p>;
  }
  const pages = Math.max(1, Math.ceil(output.rows.length / TABLE_PAGE));
  const current = Math.min(page, pages - 1);
  const from = current * TABLE_PAGE;
  const shown = output.rows.slice(from, from + TABLE_PAGE);
  return (
    <div className="table-cell">
      {/* A scrolling region is reachable from the keyboard (axe: scrollable-region-focusable). */}
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: it scrolls, so the keyboard must reach it */}
      <section className="table-wrap" tabIndex={0} aria-label={`Table ${name}`}>
        <table>
          <thead>
            <tr>
              {output.columns.map((c, i) => (
                <th key={c.name} className={numeric[i] ? 'num' : ''} title={c.type}>
                  {c.name}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {shown.map((row, r) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: rows have no identity
              <tr key={r}>
                {row.map((v, i) => (
                  // biome-ignore lint/suspicious/noArrayIndexKey: columns are positional
                  <td key={i} className={numeric[i] ? 'num' : ''}>
                    {displayValue(v)}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <p className="meta pager">
        {pages > 1 ? (
          <>
            <button type="button" disabled={current === 0} onClick={() => setPage(current - 1)}>
              ‹ Previous
            </button>{' '}
            <button type="button" disabled={current >= pages - 1} onClick={() => setPage(current + 1)}>
              Next ›
            </button>{' '}
            rows {(from + 1).toLocaleString('en-US')}–{(from + shown.length).toLocaleString('en-US')} of{' '}
          </>
        ) : null}
        {output.totalRows.toLocaleString('en-US')} row(s)
        {output.truncated ? ` (the run kept the first ${output.rows.length.toLocaleString('en-US')})` : ''}
      </p>
    </div>
  );
}

/** Numeric text (exact decimals, big integers) becomes a number for charting. */
function chartRows(rows: Record<string, unknown>[]): Record<string, unknown>[] {
  return rows.map((row) => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(row)) {
      if (typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v)) out[k] = Number(v);
      else if (v && typeof v === 'object' && '$type' in v) out[k] = (v as { value?: unknown }).value ?? null;
      else out[k] = v;
    }
    return out;
  });
}

/**
 * What vega uses to fetch: it refuses every load. The spec check below already refuses specs that ask
 * for a URL; this makes sure nothing is fetched even if such a key slipped past it.
 */
const NO_LOADS = Object.freeze({
  load: (uri: unknown) =>
    Promise.reject(new Error(`charts may only use data from the notebook (asked for ${String(uri)})`)),
  sanitize: (uri: unknown) =>
    Promise.reject(new Error(`charts may not link or load (asked for ${String(uri)})`)),
  http: () => Promise.reject(new Error('charts may not load over HTTP')),
  file: () => Promise.reject(new Error('charts may not load files')),
});

/**
 * Tooltip text without images: vega-tooltip would turn a datum's `image` field into an `<img>` request.
 * `toText` is vega-tooltip's own (it escapes `&` and `<`), and every value goes through it.
 */
function tooltipHtml(value: unknown, toText: (v: unknown) => string): string {
  const show = (v: unknown) => toText(v !== null && typeof v === 'object' ? JSON.stringify(v) : v);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return show(value);
  const { title, image: _image, ...rest } = value as Record<string, unknown>;
  const rows = Object.entries(rest)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `<tr><td class="key">${toText(k)}</td><td class="value">${show(v)}</td></tr>`)
    .join('');
  return `${title !== undefined ? `<h2>${show(title)}</h2>` : ''}${rows ? `<table>${rows}</table>` : ''}`;
}

/** The sentence shown in place of a refused chart. */
export function refusedChartText(issue: ChartSpecIssue): string {
  switch (issue.kind) {
    case 'fetch':
      return `This chart asks to load ${issue.path}; charts may only use data from the notebook.`;
    case 'renderer':
      return `This chart sets the renderer's options (${issue.path}); charts may only describe marks and data.`;
    case 'depth':
      return `This chart is nested too deeply (${issue.path}) to draw.`;
  }
}

function Chart({ output, onDone }: { output: Extract<CellOutput, { kind: 'chart' }>; onDone: () => void }) {
  const ref = useRef<HTMLDivElement>(null);
  // The run's output is whatever the child process sent: the parse-time check runs again here.
  const issue = chartSpecIssue(output.spec);
  const refused = issue !== null;
  useEffect(() => {
    if (refused) {
      onDone();
      return;
    }
    let cancelled = false;
    let finalize: (() => void) | undefined;
    void (async () => {
      try {
        const { default: embed } = await import('vega-embed');
        const datasets = Object.fromEntries(
          Object.entries(output.datasets).map(([k, rows]) => [k, chartRows(rows)]),
        );
        // vega-embed reads `usermeta.embedOptions` as options over the page's own; a spec gets none.
        const { usermeta: _usermeta, ...own } = output.spec;
        const spec = {
          width: 'container',
          // The legend and axes fit inside the card, not beyond it.
          autosize: { type: 'fit-x', contains: 'padding' },
          ...own,
          datasets: { ...datasets, ...(own['datasets'] as object) },
        };
        if (!ref.current || cancelled) return;
        const result = await embed(ref.current, spec as never, {
          actions: false,
          renderer: 'svg',
          // The page's CSP has no 'unsafe-eval': vega interprets expressions instead of compiling them.
          ast: true,
          expr: expressionInterpreter,
          loader: NO_LOADS as never,
          tooltip: {
            formatTooltip: (value: unknown, toText: (v: unknown) => string) => tooltipHtml(value, toText),
          },
        });
        finalize = () => result.finalize();
      } catch (error) {
        if (ref.current) ref.current.textContent = `chart failed: ${(error as Error).message}`;
      } finally {
        if (!cancelled) onDone();
      }
    })();
    return () => {
      cancelled = true;
      finalize?.();
    };
  }, [output, onDone, refused]);
  if (issue) {
    // Not a `.banner.failed` or an alert: the rest of the app is fine, and screenshots still go out.
    return (
      <div className="chart chart-refused" data-chart-refused={issue.path}>
        {refusedChartText(issue)}
      </div>
    );
  }
  // Vega sizes a 'container' width chart by the element's client width, padding included, so the
  // padded card holds an unpadded element for it.
  return (
    <div className="chart">
      <div ref={ref} />
    </div>
  );
}

/**
 * Cell HTML (prose the child rendered from Markdown, or any HTML a cell produced) is untrusted: a
 * hostile child process can send anything. It is sanitized down to Markdown's elements
 * (sanitize-html.ts) and appended as DOM nodes, under a CSP that runs no inline script.
 */
function Prose({ name, html }: { name: string; html: string }) {
  const ref = useRef<HTMLElement>(null);
  useLayoutEffect(() => {
    ref.current?.replaceChildren(prose.fragment(html));
  }, [html]);
  return <section className="cell prose" data-cell={name} ref={ref} />;
}

function Cell({
  cell,
  showCodeOutputs,
  onChartDone,
}: {
  cell: CellResult;
  showCodeOutputs: boolean;
  onChartDone: () => void;
}) {
  if (cell.status === 'cancelled') {
    return (
      <section className="cell cancelled" data-cell={cell.name}>
        <h3>{cell.name}</h3>
        <p className="note">{cell.error?.message ?? 'Cancelled'}</p>
      </section>
    );
  }
  if (cell.status === 'failed' && cell.error) {
    return (
      <section className="cell failed" data-cell={cell.name}>
        <h3>{cell.name}</h3>
        <pre className="error">
          {cell.error.name}: {cell.error.message}
          {cell.error.line ? ` (line ${cell.error.line})` : ''}
        </pre>
      </section>
    );
  }
  const output = cell.output;
  if (!output) return null;
  if (output.kind === 'html') {
    return <Prose name={cell.name} html={output.html} />;
  }
  if (output.kind === 'chart') {
    return (
      <section className="cell" data-cell={cell.name}>
        <Chart output={output} onDone={onChartDone} />
      </section>
    );
  }
  // Under hide_code a code cell's tables (and charts, above) still show: they are the app's content
  // (issue 15, bug 11: the demo's "Snapshot history" table is a code cell's). Its other values, the
  // working data that prose interpolates, show only when the code does.
  if ((cell.kind === 'js' || cell.kind === 'ts') && !showCodeOutputs && output.kind !== 'table') return null;
  if (
    output.kind === 'value' &&
    (output.value === null || (output.value as { $type?: string })?.$type === 'undefined')
  )
    return null;
  return (
    <section className="cell" data-cell={cell.name}>
      <h3>{cell.name}</h3>
      {output.kind === 'table' ? (
        <Table name={cell.name} output={output} />
      ) : (
        <pre className="value">{displayValue(output.value)}</pre>
      )}
    </section>
  );
}

export function SnapshotView({
  snapshot,
  showCodeOutputs,
  onReady,
}: {
  snapshot: Snapshot;
  /** Show code cells' values too (hide_code off); their tables and charts always show. */
  showCodeOutputs: boolean;
  onReady: () => void;
}) {
  const charts = snapshot.cells.filter((c) => c.output?.kind === 'chart' && c.status !== 'failed').length;
  const drawn = useRef(0);
  const readyRef = useRef(onReady);
  readyRef.current = onReady;
  // A layout effect, so the count is reset before any chart's own (passive) effect reports: a refused
  // chart reports at once, and a child's effects run before its parent's.
  // biome-ignore lint/correctness/useExhaustiveDependencies: reset per snapshot
  useLayoutEffect(() => {
    drawn.current = 0;
    if (charts === 0) readyRef.current();
  }, [snapshot, charts]);
  const onChartDone = useRef(() => {
    drawn.current += 1;
    if (drawn.current >= charts) readyRef.current();
  });
  onChartDone.current = () => {
    drawn.current += 1;
    if (drawn.current >= charts) readyRef.current();
  };
  const stableDone = useRef(() => onChartDone.current()).current;
  return (
    <div className="snapshot" data-run={snapshot.runId}>
      {snapshot.status !== 'succeeded' && snapshot.message ? (
        <div className="banner failed">{snapshot.message}</div>
      ) : null}
      {snapshot.cells.map((cell) => (
        <Cell key={cell.name} cell={cell} showCodeOutputs={showCodeOutputs} onChartDone={stableDone} />
      ))}
    </div>
  );
}
