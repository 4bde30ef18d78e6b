/**
 * Turning run snapshots into text for a terminal: live per-cell progress, then a readable summary with
 * tables as aligned text, cut to fit.
 */
import { inspect } from 'node:util';
import type { CellResult, RunSnapshot, TableOutput } from '../domain/snapshot.ts';
import { decodeValue } from '../domain/snapshot.ts';
import type { RunEvent } from '../executor/executor.ts';

export interface RenderOptions {
  color: boolean;
  /** Terminal width. */
  width: number;
  /** Table rows to show per table. */
  rows: number;
}

const STATUS_MARK: Record<string, string> = {
  succeeded: '✓',
  failed: '✗',
  cancelled: '■',
  skipped: '–',
  running: '…',
};

/**
 * C0 controls other than tab and newline, DEL, and C1 controls (U+0080–U+009F, which include the 8-bit
 * CSI). Any of them from a run's output could move the cursor, rewrite earlier lines, set the window
 * title, or send OSC 52 to the clipboard of whoever reads `almanac run` in a terminal.
 */
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/**
 * Text from a run (cell values, logs, errors, prose, names) made safe to print: terminal control
 * characters are removed, so escape sequences show as their harmless remainder (`[31m`). The renderer's
 * own colours are added after this, around text that has been through it.
 */
export function terminalText(text: string): string {
  return text.replace(CONTROL, '');
}

function paint(on: boolean, code: number, text: string): string {
  return on ? `\u001b[${code}m${text}\u001b[0m` : text;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** Live progress: one line per cell, updated in place on a terminal, printed when done elsewhere. */
export class ProgressPrinter {
  readonly #out: NodeJS.WriteStream;
  readonly #tty: boolean;
  readonly #color: boolean;
  #current: { name: string; kind: string; started: number } | null = null;
  #kinds = new Map<string, string>();
  #timer: NodeJS.Timeout | null = null;

  constructor(out: NodeJS.WriteStream, color: boolean) {
    this.#out = out;
    this.#tty = Boolean(out.isTTY);
    this.#color = color;
  }

  handle(event: RunEvent): void {
    switch (event.type) {
      case 'run_started':
        for (const cell of event.cells) this.#kinds.set(cell.name, cell.kind);
        break;
      case 'cell_started':
        this.#current = {
          name: event.name,
          kind: this.#kinds.get(event.name) ?? '',
          started: performance.now(),
        };
        if (this.#tty) {
          this.#draw();
          this.#timer = setInterval(() => this.#draw(), 100);
          this.#timer.unref();
        }
        break;
      case 'cell_finished': {
        this.#stopTimer();
        const r = event.result;
        if (r.status === 'skipped' && r.kind === 'prose') break;
        this.#line(
          r.status,
          r.name,
          r.kind,
          r.status === 'skipped' ? 'not run' : formatDuration(r.durationMs),
          summary(r),
        );
        this.#current = null;
        break;
      }
      case 'run_finished':
        this.#stopTimer();
        break;
      case 'log':
        break;
    }
  }

  #stopTimer(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  #draw(): void {
    if (!this.#current) return;
    const elapsed = formatDuration(performance.now() - this.#current.started);
    this.#out.write(
      `\r\u001b[2K  ${paint(this.#color, 36, '…')} ${terminalText(this.#current.name).padEnd(18)} ${this.#current.kind.padEnd(6)} running ${elapsed}`,
    );
  }

  #line(status: string, name: string, kind: string, elapsed: string, detail: string): void {
    const colorCode = status === 'succeeded' ? 32 : status === 'failed' ? 31 : 90;
    const mark = paint(this.#color, colorCode, STATUS_MARK[status] ?? '?');
    const text = `  ${mark} ${terminalText(name).padEnd(18)} ${kind.padEnd(6)} ${elapsed.padStart(8)}  ${terminalText(detail)}`;
    this.#out.write(`${this.#tty ? '\r\u001b[2K' : ''}${text.trimEnd()}\n`);
  }
}

function summary(result: CellResult): string {
  if (result.status === 'cancelled') return result.error?.message ?? 'cancelled';
  if (result.status === 'failed')
    return result.error ? `${result.error.name}: ${result.error.message}`.slice(0, 120) : 'failed';
  const output = result.output;
  if (!output) return '';
  switch (output.kind) {
    case 'table':
      return `${output.totalRows} row${output.totalRows === 1 ? '' : 's'}${output.rowsChanged !== undefined ? `, ${output.rowsChanged} changed` : ''}`;
    case 'value':
      return inspect(decodeValue(output.value), { depth: 1, breakLength: Number.POSITIVE_INFINITY }).slice(
        0,
        60,
      );
    case 'chart':
      return `chart, ${Object.values(output.datasets).reduce((n, d) => n + d.length, 0)} data points`;
    case 'html':
      return '';
  }
}

/** A copy of a JSON value with `terminalText` applied to every string in it, keys included. */
function cleanStrings<T>(value: T): T {
  if (typeof value === 'string') return terminalText(value) as T;
  if (Array.isArray(value)) return value.map(cleanStrings) as T;
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [terminalText(k), cleanStrings(v)])) as T;
}

/**
 * The full, readable summary of a run's outputs. Every string of the snapshot is untrusted (a run's
 * child process produced it) and goes through `terminalText` first.
 */
export function renderSnapshot(untrusted: RunSnapshot, options: RenderOptions): string {
  const snapshot = cleanStrings(untrusted);
  const c = options.color;
  const lines: string[] = [];
  const took = Date.parse(snapshot.finishedAt) - Date.parse(snapshot.startedAt);
  const status =
    snapshot.status === 'succeeded'
      ? paint(c, 32, '✓ succeeded')
      : paint(c, 31, `✗ ${snapshot.status.replace('_', ' ')}`);
  lines.push('');
  lines.push(
    `${paint(c, 1, snapshot.title)}  ${status} in ${formatDuration(took)}  ${paint(c, 90, `(context ${snapshot.context}, run ${snapshot.runId})`)}`,
  );
  const inputs = Object.entries(snapshot.inputs);
  if (inputs.length > 0) {
    lines.push(paint(c, 90, `inputs: ${inputs.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join('  ')}`));
  }
  for (const cell of snapshot.cells) {
    if (cell.status === 'skipped' && cell.kind === 'prose') continue;
    lines.push('');
    if (cell.kind === 'prose') {
      if (cell.output?.kind === 'html') lines.push(...htmlToText(cell.output.html).split('\n'));
      continue;
    }
    const header = `── ${cell.name} (${cell.kind})${cell.status === 'succeeded' ? '' : ` ${cell.status}`} `;
    lines.push(paint(c, 1, header + '─'.repeat(Math.max(0, Math.min(options.width, 80) - header.length))));
    for (const log of cell.logs) {
      lines.push(
        paint(
          c,
          log.level === 'error' || log.level === 'warn' || log.level === 'stderr' ? 33 : 90,
          `  ${log.level === 'log' ? '›' : log.level} ${log.text}`,
        ),
      );
    }
    if (cell.status === 'failed' && cell.error) {
      lines.push(
        paint(
          c,
          31,
          `  ${cell.error.name}: ${cell.error.message}${cell.error.line ? ` (line ${cell.error.line})` : ''}`,
        ),
      );
      continue;
    }
    if (cell.status === 'cancelled') {
      lines.push(paint(c, 33, `  ${cell.error?.message ?? 'Cancelled'}`));
      continue;
    }
    if (cell.status === 'skipped') {
      lines.push(paint(c, 90, '  not run: an earlier cell failed'));
      continue;
    }
    const output = cell.output;
    if (!output) {
      lines.push(paint(c, 90, '  (no value)'));
      continue;
    }
    switch (output.kind) {
      case 'table':
        lines.push(...renderTable(output, options));
        break;
      case 'value':
        lines.push(
          ...inspect(decodeValue(output.value), {
            depth: 4,
            colors: c,
            breakLength: options.width - 4,
            maxArrayLength: 20,
          })
            .split('\n')
            .map((l) => `  ${l}`),
        );
        break;
      case 'chart': {
        const mark = output.spec['mark'];
        const markName =
          typeof mark === 'string' ? mark : ((mark as { type?: string } | undefined)?.type ?? 'layered');
        const datasets = Object.entries(output.datasets).map(([n, d]) => `${n} (${d.length} rows)`);
        const title = typeof output.spec['title'] === 'string' ? `"${output.spec['title']}" ` : '';
        lines.push(
          `  ${title}${markName} chart of ${datasets.join(', ') || 'inline data'}; open the app to see it, or use --json for the spec and data`,
        );
        break;
      }
      case 'html':
        lines.push(
          ...htmlToText(output.html)
            .split('\n')
            .map((l) => `  ${l}`),
        );
        break;
    }
  }
  if (snapshot.message) {
    lines.push('');
    lines.push(paint(c, 31, snapshot.message));
  }
  return `${lines.join('\n')}\n`;
}

const NUMERIC =
  /^(number|bigint|integer|smallint|tinyint|hugeint|ubigint|uinteger|usmallint|utinyint|uhugeint|double|float|real|double precision|decimal.*|numeric)$/i;

/** A table as aligned text: numbers right-aligned, long values cut, columns dropped to fit the width. */
export function renderTable(
  table: TableOutput,
  options: Pick<RenderOptions, 'width' | 'rows' | 'color'>,
): string[] {
  const maxCell = 28;
  const shown = table.rows.slice(0, options.rows);
  const cellText = (v: unknown): string => {
    if (v === null || v === undefined) return 'NULL';
    const s = typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
    const flat = s.replace(/\s+/g, ' ');
    return flat.length > maxCell ? `${flat.slice(0, maxCell - 1)}…` : flat;
  };
  const columns = table.columns.map((col, i) => {
    const values = shown.map((row) => cellText(row[i]));
    const width = Math.max(col.name.length, ...values.map((v) => v.length));
    return { name: col.name, numeric: NUMERIC.test(col.type), values, width: Math.min(width, maxCell) };
  });
  const fitted: typeof columns = [];
  let used = 2;
  for (const col of columns) {
    if (used + col.width + 2 > options.width && fitted.length > 0) break;
    fitted.push(col);
    used += col.width + 2;
  }
  const pad = (text: string, width: number, right: boolean) =>
    right ? text.padStart(width) : text.padEnd(width);
  const out: string[] = [];
  out.push(`  ${fitted.map((c) => pad(c.name.slice(0, c.width), c.width, c.numeric)).join('  ')}`.trimEnd());
  out.push(`  ${fitted.map((c) => '─'.repeat(c.width)).join('  ')}`);
  for (let r = 0; r < shown.length; r++) {
    out.push(`  ${fitted.map((c) => pad(c.values[r]!, c.width, c.numeric)).join('  ')}`.trimEnd());
  }
  const notes: string[] = [];
  if (table.totalRows > shown.length)
    notes.push(`${table.totalRows - shown.length} more rows (${table.totalRows} in all)`);
  if (fitted.length < columns.length)
    notes.push(
      `${columns.length - fitted.length} more columns: ${columns
        .slice(fitted.length)
        .map((c) => c.name)
        .join(', ')}`,
    );
  if (table.rowsChanged !== undefined) notes.push(`${table.rowsChanged} rows changed`);
  if (table.rows.length === 0 && table.columns.length === 0)
    return [paint(options.color, 90, '  (statement ran; no result)')];
  if (notes.length > 0) out.push(paint(options.color, 90, `  … ${notes.join('; ')}`));
  return out;
}

export function htmlToText(html: string): string {
  return html
    .replace(/<h[1-6][^>]*>/g, '')
    .replace(/<\/h[1-6]>/g, '\n')
    .replace(/<li[^>]*>/g, '  • ')
    .replace(/<\/(p|li|ul|ol|pre|blockquote|tr)>/g, '\n')
    .replace(/<br\s*\/?>/g, '\n')
    .replace(/<[^>]+>/g, '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\n{3,}/g, '\n\n')
    .replace(CONTROL, '')
    .trim();
}
