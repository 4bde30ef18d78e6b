/**
 * What a notification says: templates over run fields and cell values, the default subject and body, and
 * CSV files of table cells. Pure; every channel (email, Slack, webhook) renders from one `Message`.
 *
 * Templates use `{{ path }}` with these fields:
 * - `app.title`, `app.slug`, `app.url` (the run's app page)
 * - `run.id`, `run.status`, `run.trigger`, `run.scheduledFor`, `run.finishedAt`, `run.url`, `run.error`,
 *   `run.errorCell`
 * - `schedule.name`
 * - `cells.<name>`: a value cell's value, or a table's row count
 * - `inputs.<name>`
 * An unknown path renders as empty text, so a template never fails a delivery.
 */
import { decodeValue, type RunSnapshot, type TableOutput } from '../snapshot.ts';
import type { NotificationContent } from './rule.ts';

export interface MessageFacts {
  appTitle: string;
  appSlug: string;
  /** Absolute URL of the run's own app page. */
  runUrl: string;
  runId: string;
  status: string;
  trigger: string;
  scheduleName: string | null;
  scheduledFor: Date | null;
  finishedAt: Date | null;
  errorCell: string | null;
  errorMessage: string | null;
  snapshot: RunSnapshot | null;
}

export interface Attachment {
  filename: string;
  contentType: string;
  content: Buffer;
}

export interface Message {
  subject: string;
  /** Plain text, with the link and, on failure, the failing cell and the error. */
  text: string;
  runUrl: string;
  status: string;
  failure: { cell: string | null; message: string } | null;
  attachments: Attachment[];
}

function text(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  if (value instanceof Date) return value.toISOString();
  return JSON.stringify(value);
}

function cellValue(snapshot: RunSnapshot | null, name: string): unknown {
  const output = snapshot?.cells.find((c) => c.name === name)?.output;
  if (!output) return undefined;
  if (output.kind === 'table') return output.totalRows;
  if (output.kind === 'value') {
    const value = decodeValue(output.value);
    return typeof value === 'bigint' ? value.toString() : value;
  }
  return undefined;
}

export function templateFields(facts: MessageFacts): (path: string) => unknown {
  return (path) => {
    const [head, ...rest] = path.split('.');
    const key = rest.join('.');
    switch (head) {
      case 'app':
        return key === 'title'
          ? facts.appTitle
          : key === 'slug'
            ? facts.appSlug
            : key === 'url'
              ? facts.runUrl
              : undefined;
      case 'run':
        return (
          {
            id: facts.runId,
            status: facts.status,
            trigger: facts.trigger,
            scheduledFor: facts.scheduledFor,
            finishedAt: facts.finishedAt,
            url: facts.runUrl,
            error: facts.errorMessage,
            errorCell: facts.errorCell,
          } as Record<string, unknown>
        )[key];
      case 'schedule':
        return key === 'name' ? facts.scheduleName : undefined;
      case 'cells':
        return cellValue(facts.snapshot, key);
      case 'inputs':
        return facts.snapshot?.inputs[key];
      default:
        return undefined;
    }
  };
}

export function renderTemplate(template: string, lookup: (path: string) => unknown): string {
  return template.replace(/\{\{\s*([A-Za-z_][\w.]*)\s*\}\}/g, (_, path: string) => text(lookup(path)));
}

const STATUS_WORDS: Record<string, string> = {
  succeeded: 'succeeded',
  failed: 'failed',
  timed_out: 'timed out',
  cancelled: 'was cancelled',
};

/** Column types whose values are numbers: they keep a leading minus sign as data. */
const NUMERIC_TYPE =
  /^(TINYINT|SMALLINT|INTEGER|INT\d*|BIGINT|HUGEINT|U(TINY|SMALL|BIG|HUGE)?INT|DECIMAL|NUMERIC|REAL|FLOAT\d*|DOUBLE|int2|int4|int8|float4|float8|numeric|oid)\b/i;

/**
 * RFC 4180 CSV of a table cell, with a header row. Text that a spreadsheet would run as a formula
 * (it starts with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`, so a value a
 * notebook produced cannot run as a formula in the recipient's spreadsheet (CSV injection).
 */
export function tableCsv(table: TableOutput): string {
  const field = (v: unknown, numeric = false) => {
    let s = text(v);
    if (!numeric && typeof v !== 'number' && typeof v !== 'bigint' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const numeric = table.columns.map((c) => NUMERIC_TYPE.test(c.type));
  const lines = [table.columns.map((c) => field(c.name)).join(',')];
  for (const row of table.rows) lines.push(row.map((v, i) => field(v, numeric[i])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

export function buildMessage(facts: MessageFacts, content: NotificationContent, because: string): Message {
  const lookup = templateFields(facts);
  const word = STATUS_WORDS[facts.status] ?? facts.status;
  const when = facts.scheduledFor ? ` (scheduled for ${facts.scheduledFor.toISOString()})` : '';
  const subject = content.subject
    ? renderTemplate(content.subject, lookup)
    : `${facts.appTitle || facts.appSlug}: run ${word}${facts.scheduleName ? ` — ${facts.scheduleName}` : ''}`;
  const failure =
    facts.status === 'succeeded'
      ? null
      : { cell: facts.errorCell, message: facts.errorMessage ?? `the run ${word}` };
  const lines: string[] = [];
  if (content.body) lines.push(renderTemplate(content.body, lookup));
  else {
    // The trigger's reason, when it says more than the status does ("3 failures in a row", "total = 120").
    const extra = because && !because.startsWith('the run ') ? `: ${because}` : '';
    lines.push(`The run of ${facts.appTitle || facts.appSlug}${when} ${word}${extra}.`);
  }
  if (failure) lines.push('', `Failing cell: ${failure.cell ?? '(none)'}`, `Error: ${failure.message}`);
  lines.push('', `Open the app as it was at this run: ${facts.runUrl}`);
  const attachments: Attachment[] = [];
  for (const name of content.csvCells) {
    const output = facts.snapshot?.cells.find((c) => c.name === name)?.output;
    if (output?.kind === 'table') {
      attachments.push({
        filename: `${name}.csv`,
        contentType: 'text/csv; charset=utf-8',
        content: Buffer.from(tableCsv(output)),
      });
    }
  }
  return {
    subject,
    text: lines.join('\n'),
    runUrl: facts.runUrl,
    status: facts.status,
    failure,
    attachments,
  };
}

/**
 * Text for HTML: `&`, `<`, `>`, `"` and `'` become entities, so a cell value, an error message or a
 * template's text is shown as written and never becomes markup in an email body.
 */
export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
}

/**
 * The HTML body of a notification email: the message's text (every line escaped; cell values, error
 * messages and templates are untrusted), the inline screenshot linking to the run, and a note.
 */
export function messageHtml(
  message: Message,
  options: { inlineImageCid: string | null; note: string | null },
): string {
  return [
    `<p>${escapeHtml(message.text).replace(/\n/g, '<br>')}</p>`,
    options.inlineImageCid
      ? `<p><a href="${escapeHtml(message.runUrl)}"><img src="cid:${escapeHtml(options.inlineImageCid)}" alt="The app at this run" style="max-width:100%"></a></p>`
      : '',
    options.note ? `<p><em>${escapeHtml(options.note)}</em></p>` : '',
  ].join('\n');
}

/**
 * Text for Slack's mrkdwn: `&`, `<` and `>` are the only characters Slack parses as control sequences
 * (`<!channel>`, `<@U123>`, `<https://evil|a harmless label>`), and Slack asks for exactly these three
 * to be escaped. Emphasis (`*bold*`, `_italic_`) still works; links and mentions from a cell do not.
 */
export function escapeSlackText(text: string): string {
  return text.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c] ?? c);
}

/** Cuts escaped Slack text to `max` characters without leaving half an entity (`&am`) at the end. */
export function cutSlackText(escaped: string, max: number): string {
  if (escaped.length <= max) return escaped;
  return escaped.slice(0, max).replace(/&[a-z]{0,3}$/, '');
}
