/**
 * Issue 14, finding 2: cell outputs are data, not markup. A run's child process runs a notebook
 * author's code and can report any output, so every place an output becomes markup is attacked here:
 *
 * - the web app (and so the screenshot browser), in real headless Chromium under the production
 *   Content-Security-Policy: HTML outputs full of script vectors, charts that load URLs;
 * - the sanitizer's allowlist itself (DOMPurify on jsdom);
 * - email bodies (real nodemailer, parsed back), Slack messages (a local server speaking Slack's Web
 *   API), and the CLI's terminal output.
 *
 * Before the fix the page inserted prose with `innerHTML` as it came, so `<img src=x onerror=…>` ran
 * in an admin's session (and could mint a token and send it out); a Vega-Lite `data.url` inside a layer
 * made viewers' browsers fetch any URL; Slack turned `<!channel>` in a cell value into a mention; and an
 * ESC sequence in a cell value reached the terminal of whoever ran `almanac run`.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { after, before, describe, it } from 'node:test';
import createDOMPurify from 'dompurify';
import { simpleParser } from 'mailparser';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { htmlToText, renderSnapshot, terminalText } from '../src/cli/render.ts';
import { chartSpecIssue, chartSpecProblem } from '../src/domain/chart-spec.ts';
import { parseNotebook } from '../src/domain/notebook/parse-notebook.ts';
import {
  buildMessage,
  escapeSlackText,
  type MessageFacts,
  messageHtml,
} from '../src/domain/notification/message.ts';
import type { CellResult, RunSnapshot } from '../src/domain/snapshot.ts';
import { EmailChannel } from '../src/notify/email.ts';
import { SlackClient } from '../src/notify/slack.ts';
import { createProseSanitizer, PROSE_TAGS } from '../web/src/sanitize-html.ts';
import { chromiumUnavailable, launchChromium } from './support/browser.ts';
import { createHarness } from './support/harness.ts';
import { type FakeSlack, startFakeSlack } from './support/slack-server.ts';

const ROOT = join(import.meta.dirname, '..');
/** The built web app; another build can be named to see these tests fail against it. */
const WEB = process.env['ALMANAC_TEST_WEB_DIST'] ?? join(ROOT, 'web', 'dist');
const RESULTS = join(ROOT, 'test-results');

/**
 * The policy the server sends with every HTML page (src/http/security-headers.ts). The web app must
 * work under exactly this: no inline script, no eval.
 */
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; frame-src 'self' blob: data:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** A 1×1 transparent PNG, the one kind of image prose may carry. */
const PIXEL =
  'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=';

/** Script vectors in one HTML output; `CANARY` is replaced with a URL the test watches. */
const HOSTILE_HTML = `
<h2>Quarterly summary</h2>
<p>Revenue grew <strong>12%</strong> in <em>EMEA</em>; see <code>orders</code>.</p>
<table><thead><tr><th>Region</th><th style="text-align:right">Total</th></tr></thead>
<tbody><tr><td>EMEA</td><td style="text-align:right">1,200</td></tr><tr><td>APAC</td><td style="text-align:right">800</td></tr></tbody></table>
<p><a href="https://example.com/report" id="good-link">the full report</a> · <a href="/apps/other">another app</a></p>
<p><img src="${PIXEL}" alt="pixel"></p>
<img src=x onerror="window.__pwned='img-onerror';fetch('CANARY/img-onerror')">
<script>window.__pwned='script';fetch('CANARY/script')</script>
<a id="js-link" href="javascript:window.__pwned='javascript-link'">click me</a>
<a href="JaVaScRiPt&#x3A;window.__pwned='entity-link'">and me</a>
<a href="data:text/html,<script>alert(1)</script>">data link</a>
<iframe src="CANARY/iframe" srcdoc="<script>parent.__pwned='iframe'</script>"></iframe>
<svg onload="window.__pwned='svg-onload'"><script>window.__pwned='svg-script'</script><image href="CANARY/svg-image"/></svg>
<style>body { background: url(CANARY/style-sheet) } .prose { display: none }</style>
<form action="CANARY/form" method="post"><input name="token" value="secret"><button>Send</button></form>
<img src="CANARY/tracking-pixel" alt="tracker">
<p style="background:url(CANARY/inline-style)" onclick="window.__pwned='onclick'">styled text</p>
<div class="banner failed">Fake app error</div>
<math><mtext><table><mglyph><style><img src=x onerror="window.__pwned='mxss'">
<meta http-equiv="refresh" content="0;url=CANARY/meta-refresh">
<base href="CANARY/">
<link rel="stylesheet" href="CANARY/link">
<details open ontoggle="window.__pwned='ontoggle'"><summary>x</summary></details>
<input autofocus onfocus="window.__pwned='onfocus'">
`;

function cellOf(name: string, kind: CellResult['kind'], output: CellResult['output']): CellResult {
  return {
    name,
    kind,
    status: 'succeeded',
    startedAt: '2026-03-02T09:00:00.000Z',
    durationMs: 1,
    output,
    logs: [],
    error: null,
  };
}

function hostileSnapshot(canary: string): RunSnapshot {
  const html = HOSTILE_HTML.replaceAll('CANARY', canary);
  const rows = [
    { region: 'EMEA', n: 3 },
    { region: 'APAC', n: 2 },
    { region: 'AMER', n: 4 },
  ];
  return {
    format: 1,
    runId: 'run-hostile-0001',
    title: 'Hostile outputs',
    status: 'succeeded',
    reason: null,
    message: null,
    context: 'app',
    scheduledFor: null,
    inputs: {},
    startedAt: '2026-03-02T09:00:00.000Z',
    finishedAt: '2026-03-02T09:00:01.000Z',
    cells: [
      cellOf('intro', 'prose', { kind: 'html', html }),
      // Prose HTML from a JS cell, beyond what Markdown makes.
      cellOf('embedded', 'prose', {
        kind: 'html',
        html: `<p>Embedded below:</p><object data="${canary}/object" type="text/html"></object><embed src="${canary}/embed"><p>after the object</p>`,
      }),
      cellOf('values', 'sql', {
        kind: 'table',
        columns: [
          { name: 'label', type: 'VARCHAR' },
          { name: 'n', type: 'INTEGER' },
        ],
        rows: [
          [`<img src=x onerror="window.__pwned='table'">`, 1],
          ['plain', 2],
        ],
        totalRows: 2,
        truncated: false,
      }),
      cellOf('layered_url', 'chart', {
        kind: 'chart',
        spec: {
          layer: [
            {
              data: { name: 'values' },
              mark: 'bar',
              encoding: { x: { field: 'region' }, y: { field: 'n' } },
            },
            { data: { url: `${canary}/data.csv` }, mark: 'line' },
          ],
        },
        datasets: { values: rows },
      }),
      cellOf('href_chart', 'chart', {
        kind: 'chart',
        spec: {
          data: { name: 'values' },
          mark: 'bar',
          encoding: { x: { field: 'region' }, y: { field: 'n' }, href: { value: `${canary}/href` } },
        },
        datasets: { values: rows },
      }),
      cellOf('embed_options', 'chart', {
        kind: 'chart',
        spec: {
          data: { name: 'values' },
          mark: 'bar',
          encoding: { x: { field: 'region' }, y: { field: 'n' } },
          usermeta: { embedOptions: { ast: false, config: `${canary}/config.json` } },
        },
        datasets: { values: rows },
      }),
      // A good chart with expressions: it must still draw under a CSP without 'unsafe-eval'.
      cellOf('good_chart', 'chart', {
        kind: 'chart',
        spec: {
          title: 'Orders by region',
          data: { name: 'values' },
          transform: [{ calculate: 'datum.n * 2', as: 'double' }, { filter: 'datum.double > 0' }],
          mark: 'bar',
          encoding: {
            x: { field: 'region', type: 'nominal' },
            y: { field: 'double', type: 'quantitative' },
            tooltip: [{ field: 'region' }, { field: 'double' }],
          },
        },
        datasets: { values: rows },
      }),
    ],
  };
}

const { JSDOM } = (await import('jsdom' as string)) as {
  JSDOM: new (html: string) => { window: unknown };
};

// ---------------------------------------------------------------------------------------------------
// The sanitizer's allowlist, on jsdom.

describe('ProseSanitizer (DOMPurify allowlist for cell HTML)', () => {
  // jsdom is loaded untyped: its types switch on the DOM library for the whole project's typecheck.
  const { window } = new JSDOM('');
  const sanitize = createProseSanitizer(createDOMPurify(window as never));

  it('drops script, style, iframe, object, embed, form, svg, math, meta, base and link, with their content', () => {
    const out = sanitize.html(HOSTILE_HTML.replaceAll('CANARY', 'http://canary.test'));
    for (const tag of [
      'script',
      'style',
      'iframe',
      'object',
      'embed',
      'form',
      'svg',
      'math',
      'meta',
      'base',
      'link',
      'input',
      'details',
    ]) {
      assert.doesNotMatch(out, new RegExp(`<${tag}\\b`, 'i'), `no <${tag}>`);
    }
    assert.doesNotMatch(out, /__pwned|canary\.test/, 'no handler, no URL to the canary survives');
    assert.doesNotMatch(out, /\son\w+=/i, 'no event handler attribute');
    assert.doesNotMatch(out, /\sstyle=/i, 'no style attribute');
    assert.doesNotMatch(out, /\sid=/i, 'no id (DOM clobbering)');
    assert.doesNotMatch(out, /javascript:|data:text/i, 'no script or data link');
  });

  it('keeps Markdown: headings, emphasis, code, tables with alignment, safe links and data: images', () => {
    const out = sanitize.html(HOSTILE_HTML.replaceAll('CANARY', 'http://canary.test'));
    assert.match(out, /<h2>Quarterly summary<\/h2>/);
    assert.match(out, /<strong>12%<\/strong> in <em>EMEA<\/em>; see <code>orders<\/code>/);
    assert.match(out, /<th class="align-right">Total<\/th>/);
    assert.match(out, /<td>EMEA<\/td><td class="align-right">1,200<\/td>/);
    assert.match(
      out,
      /<a href="https:\/\/example\.com\/report" rel="noopener noreferrer" target="_blank">the full report<\/a>/,
    );
    assert.match(out, /<a href="\/apps\/other" rel="noopener noreferrer" target="_blank">another app<\/a>/);
    assert.ok(out.includes(`<img src="${PIXEL}" alt="pixel">`), 'a data: PNG stays');
    assert.match(out, /<img alt="tracker">/, 'a remote image loses its src and keeps its alt');
    assert.match(out, /<a>click me<\/a>/, 'a javascript: link keeps its text, not its href');
    assert.match(out, /<p>styled text<\/p>/);
    assert.match(out, /<div>Fake app error<\/div>|Fake app error/, 'text stays');
    assert.doesNotMatch(out, /class="banner/, 'classes other than code languages and alignment go');
  });

  it('allows only the allowlisted elements and a mailto link', () => {
    const out = sanitize.html(
      '<p><a href="mailto:ops@example.com">mail</a><a href="vbscript:x">vb</a><a href="file:///etc/passwd">f</a></p><pre><code class="language-sql">select 1</code></pre>',
    );
    assert.match(
      out,
      /<a href="mailto:ops@example\.com" rel="noopener noreferrer" target="_blank">mail<\/a>/,
    );
    assert.match(out, /<a>vb<\/a><a>f<\/a>/);
    assert.match(out, /<code class="language-sql">select 1<\/code>/);
    const tags = new Set([...out.matchAll(/<([a-z0-9]+)/g)].map((m) => m[1]));
    for (const tag of tags) assert.ok(PROSE_TAGS.includes(tag!), `<${tag}> is on the allowlist`);
  });
});

// ---------------------------------------------------------------------------------------------------
// The chart rule the web app shares with the parser.

describe('chartSpecIssue (charts that fetch or reconfigure the renderer)', () => {
  it('finds data.url inside a layer, an href encoding, and usermeta.embedOptions', () => {
    assert.deepEqual(chartSpecIssue({ layer: [{ mark: 'bar' }, { data: { url: 'http://10.0.0.1/' } }] }), {
      path: 'layer[1].data.url',
      kind: 'fetch',
      message:
        'charts may not load or link to URLs; give the chart its data with "data": { "name": "<an earlier cell>" } or inline "values"',
    });
    assert.equal(chartSpecIssue({ encoding: { href: { field: 'link' } } })?.path, 'encoding.href');
    assert.deepEqual(
      chartSpecIssue({ mark: 'bar', usermeta: { embedOptions: { ast: false } } })?.kind,
      'renderer',
    );
    assert.match(
      chartSpecProblem({ usermeta: { embedOptions: {} } })!,
      /^usermeta\.embedOptions: charts may not set/,
    );
    assert.equal(chartSpecIssue({ data: { name: 'orders' }, mark: 'bar', usermeta: { note: 'fine' } }), null);
  });
});

// ---------------------------------------------------------------------------------------------------
// Email, Slack and the terminal.

const HOSTILE_VALUE = `<script>alert(1)</script> <!channel> <https://evil.test|Open the report> & \u001b]52;c;cm0gLXJmIH4=\u0007\u001b[2J\u009b31m`;

function hostileFacts(): MessageFacts {
  const snapshot = hostileSnapshot('http://canary.test');
  snapshot.cells.push(cellOf('total', 'js', { kind: 'value', value: HOSTILE_VALUE }));
  return {
    appTitle: 'Sales <b>report</b>',
    appSlug: 'sales',
    runUrl: 'https://almanac.test/apps/sales/runs/r1?a=1&b=2',
    runId: 'r1',
    status: 'failed',
    trigger: 'schedule',
    scheduleName: 'daily',
    scheduledFor: null,
    finishedAt: null,
    errorCell: 'boom',
    errorMessage: `<img src=x onerror=alert(1)> ${HOSTILE_VALUE}`,
    snapshot,
  };
}

describe('notification escaping (email HTML, Slack mrkdwn)', () => {
  let slack: FakeSlack;
  let outbox: string;
  before(async () => {
    slack = await startFakeSlack();
    outbox = join(tmpdir(), `almanac-hostile-outbox-${process.pid}`);
  });
  after(async () => {
    await slack?.close();
    rmSync(outbox, { recursive: true, force: true });
  });

  it('EmailChannel: an HTML email shows cell values and errors as text, and the subject stays one header', async () => {
    const message = buildMessage(
      hostileFacts(),
      {
        subject: 'Total: {{ cells.total }}\r\nBcc: victim@example.com',
        body: 'Total is {{ cells.total }}',
        screenshot: null,
        csvCells: [],
      },
      'the run failed',
    );
    const html = messageHtml(message, { inlineImageCid: 'app-screenshot', note: '<b>note</b>' });
    assert.doesNotMatch(html, /<script|<img src=x|<b>|<!channel>/);
    assert.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
    assert.match(html, /href="https:\/\/almanac\.test\/apps\/sales\/runs\/r1\?a=1&amp;b=2"/);
    const email = new EmailChannel({ outboxDir: outbox });
    const sent = await email.send(
      null,
      {
        from: 'reports@almanac.test',
        to: 'admin@almanac.test',
        subject: message.subject,
        text: message.text,
        html,
        attachments: [],
      },
      'hostile',
    );
    const mail = await simpleParser(readFileSync(sent.outboxFile!));
    assert.equal(mail.bcc, undefined, 'a line break in a value does not add a header');
    assert.match(String(mail.html), /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
    assert.doesNotMatch(String(mail.html), /<script|<img src=x/);
  });

  it('SlackClient: a cell value cannot mention the channel or hide a link, in the section or the fallback', async () => {
    const facts = hostileFacts();
    const message = buildMessage(
      facts,
      {
        subject: 'Alert <!here> {{ cells.total }}',
        body: 'Total: {{ cells.total }}',
        screenshot: null,
        csvCells: [],
      },
      'the run failed',
    );
    await new SlackClient({ apiUrl: slack.apiUrl }).post(slack.token, {
      channel: 'ops',
      dm: false,
      message,
      files: [],
    });
    const posted = slack.messages.at(-1)!;
    // The header block is plain_text, which Slack does not parse; the section is mrkdwn.
    const section = JSON.stringify(posted.blocks.filter((b) => (b as { type: string }).type === 'section'));
    assert.doesNotMatch(section, /<!channel>|<!here>|<https:\/\/evil/);
    assert.match(section, /&lt;!channel&gt; &lt;https:\/\/evil\.test\|Open the report&gt; &amp;/);
    assert.doesNotMatch(posted.text, /<!here>/);
    assert.match(posted.text, /^Alert &lt;!here&gt;/);
    assert.equal(escapeSlackText('a & b < c > d *bold*'), 'a &amp; b &lt; c &gt; d *bold*');
  });
});

describe('terminalText (the CLI prints no escape sequences from outputs)', () => {
  it('renderSnapshot and htmlToText strip control characters but keep newlines and tabs', () => {
    const snapshot = hostileSnapshot('http://canary.test');
    snapshot.title = 'Report\u001b]0;pwned\u0007';
    snapshot.cells = [
      cellOf('prose', 'prose', { kind: 'html', html: '<p>Hello\u001b[2J <b>world</b>\tok</p><p>line 2</p>' }),
      cellOf('value', 'js', { kind: 'value', value: HOSTILE_VALUE }),
      {
        ...cellOf('logs', 'js', { kind: 'value', value: 1 }),
        logs: [{ level: 'log', text: 'log\u001b[31mred\u009b2J', at: 0 }],
      },
      cellOf('table', 'sql', {
        kind: 'table',
        columns: [{ name: 'n\u001b[1m', type: 'VARCHAR' }],
        rows: [['cell\u001b]52;c;eA==\u0007']],
        totalRows: 1,
        truncated: false,
      }),
      {
        ...cellOf('failing', 'js', null),
        status: 'failed',
        error: { cell: 'failing', line: 1, name: 'Error\u001b[8m', message: 'bad\u001bc', stack: '' },
      },
    ];
    const text = renderSnapshot(snapshot, { color: false, width: 100, rows: 5 });
    assert.doesNotMatch(text, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    assert.match(text, /Hello\[2J world\tok\nline 2/);
    assert.match(text, /log\[31mred2J/);
    assert.match(text, /Error\[8m: badc/);
    assert.equal(htmlToText('<p>a\u001b[31mb\u0007</p>'), 'a[31mb');
    assert.equal(terminalText('tab\there\nnext\r\u0085'), 'tab\there\nnext');
    // Colours the renderer adds itself are still there.
    assert.match(renderSnapshot(snapshot, { color: true, width: 100, rows: 5 }), /\u001b\[1m/);
  });
});

// ---------------------------------------------------------------------------------------------------
// The page, in real Chromium under the CSP.

interface Fixture {
  url: string;
  /** A URL prefix on another origin: any request to it means an output made the browser fetch. */
  canaryUrl: string;
  /** Requests that reached the canary server (another origin) or the app server's /canary path. */
  canaryHits: string[];
  snapshots: Map<string, { manifest: object; snapshot: RunSnapshot }>;
  /** Whether HTML responses carry the CSP (on by default; off shows what the sanitizer stops alone). */
  csp: boolean;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/**
 * The built web app from a small local server, with the CSP header on HTML, and the few API answers an
 * app page asks for (manifest, default state, run log, deliveries) from fixed snapshots. A second
 * server on another port is the canary: any request to it means an output made the browser fetch.
 */
async function startFixture(): Promise<Fixture> {
  const canaryHits: string[] = [];
  const snapshots = new Map<string, { manifest: object; snapshot: RunSnapshot }>();
  const json = (res: import('node:http').ServerResponse, body: unknown) =>
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  const app: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path.startsWith('/canary')) {
      canaryHits.push(`app:${path}`);
      res.writeHead(204).end();
      return;
    }
    const api = /^\/api\/projects\/([^/]+)\/app(\/manifest)?$/.exec(path);
    if (api) {
      const entry = snapshots.get(api[1]!);
      if (!entry) return void res.writeHead(404).end();
      return json(res, api[2] ? entry.manifest : entry.snapshot);
    }
    if (path === '/api/runs') return json(res, { runs: [], nextCursor: null });
    if (/^\/api\/runs\/[^/]+\/deliveries$/.test(path)) return json(res, []);
    if (path.startsWith('/api/')) return void res.writeHead(404).end();
    const file = path.startsWith('/assets/')
      ? join(WEB, normalize(path).replace(/^(\.\.[/\\])+/, ''))
      : join(WEB, 'index.html');
    if (!existsSync(file)) return void res.writeHead(404).end();
    const type = TYPES[extname(file)] ?? 'application/octet-stream';
    res.writeHead(200, {
      'content-type': type,
      ...(type.startsWith('text/html') && fixture.csp ? { 'content-security-policy': CSP } : {}),
    });
    res.end(readFileSync(file));
  });
  const canary: Server = createServer((req, res) => {
    canaryHits.push(`canary:${req.url}`);
    res.writeHead(204).end();
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => canary.listen(0, '127.0.0.1', r));
  const fixture: Fixture = {
    csp: true,
    url: `http://127.0.0.1:${(app.address() as AddressInfo).port}`,
    canaryHits,
    snapshots,
    canaryUrl: `http://127.0.0.1:${(canary.address() as AddressInfo).port}/canary`,
    async close() {
      await new Promise((r) => app.close(r));
      await new Promise((r) => canary.close(r));
    },
  };
  return fixture;
}

function manifest(slug: string, title: string, runId: string, inputs: readonly object[] = []) {
  return {
    project: slug,
    title,
    description: '',
    version: 1,
    inputs,
    hideCode: true,
    showLastRun: true,
    defaultRunId: runId,
  };
}

/** Records requests, CSP violations and page errors; `window.__pwned` is the flag any payload sets. */
async function watch(context: BrowserContext, page: Page) {
  const requests: string[] = [];
  const errors: string[] = [];
  context.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => errors.push(e.message));
  await page.addInitScript(`(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) =>
      window.__violations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || '') + ' ' + (e.target && e.target.outerHTML || '').slice(0, 200)));
  })()`);
  return { requests, errors };
}

const skipBrowser = chromiumUnavailable();

describe('hostile outputs in headless Chromium, with and without the CSP', { skip: skipBrowser }, () => {
  let fixture: Fixture;
  let browser: Browser;
  before(async () => {
    assert.ok(existsSync(join(WEB, 'index.html')), 'the web app is built (npm test runs build:web first)');
    mkdirSync(RESULTS, { recursive: true });
    fixture = await startFixture();
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await fixture?.close();
  });

  it('the built index.html has no inline script (script-src has no unsafe-inline)', () => {
    const html = readFileSync(join(WEB, 'index.html'), 'utf8');
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
    assert.ok(scripts.length > 0);
    for (const [, attrs, body] of scripts) {
      assert.match(attrs!, /\ssrc="\/assets\//, 'every script is a file');
      assert.equal(body!.trim(), '', 'and has no inline body');
    }
    assert.doesNotMatch(html, /\son\w+=/i, 'no inline handlers');
  });

  // Under the CSP (production), and without it: the sanitizer alone must stop every payload too, for a
  // deployment whose proxy drops the header. Against the build before this fix, the first fails (the
  // good chart never draws: vega compiled expressions with new Function) and the second runs the
  // payloads (window.__pwned is set, the tracking pixel reaches the canary).
  for (const csp of [true, false]) {
    it(`StoredXss ${csp ? 'under the CSP' : 'without the CSP (the sanitizer alone)'}: no payload runs and nothing is fetched; prose, table, link and a good chart render; bad charts are refused`, async () => {
      fixture.csp = csp;
      fixture.canaryHits.length = 0;
      const snapshot = hostileSnapshot(fixture.canaryUrl);
      fixture.snapshots.set('hostile', {
        manifest: manifest('hostile', 'Hostile outputs', snapshot.runId),
        snapshot,
      });
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const page = await context.newPage();
      const seen = await watch(context, page);
      const response = await page.goto(`${fixture.url}/apps/hostile`);
      assert.equal(response?.headers()['content-security-policy'], csp ? CSP : undefined);
      await page.waitForSelector('main[data-ready="true"]', { timeout: 20_000 });
      await page.waitForSelector('[data-cell="good_chart"] svg .mark-rect path', { timeout: 20_000 });
      // Give the payloads every chance: hover, focus and click what is left, then let a frame pass.
      await page.hover('[data-cell="good_chart"] svg .mark-rect path');
      // The tooltip is drawn by the page's own formatter (text only, no `image` field as an <img>).
      await page.waitForSelector('#vg-tooltip-element.visible td.key', { timeout: 5_000 });
      assert.match((await page.textContent('#vg-tooltip-element'))!, /^region(AMER|APAC|EMEA)double\d+$/);
      await page.click('text=click me').catch(() => {});
      await page.evaluate('new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)))');

      assert.equal(await page.evaluate('window.__pwned'), undefined, 'no payload ran');
      assert.deepEqual(fixture.canaryHits, [], 'no request reached the canary');
      assert.deepEqual(
        seen.requests.filter((u) => u.includes('/canary')),
        [],
        'the browser made no request for a canary URL',
      );
      assert.deepEqual(seen.errors, []);
      assert.equal(new URL(page.url()).pathname, '/apps/hostile', 'no redirect (meta refresh, base, form)');

      const intro = page.locator('[data-cell="intro"]');
      assert.equal(await intro.locator('h2').textContent(), 'Quarterly summary');
      assert.equal(await intro.locator('tbody tr').count(), 2);
      assert.equal(await intro.locator('td.align-right').first().textContent(), '1,200');
      const good = intro.locator('a[href="https://example.com/report"]');
      assert.equal(await good.getAttribute('rel'), 'noopener noreferrer');
      assert.equal(await good.getAttribute('target'), '_blank');
      assert.equal(await intro.locator('img[alt="pixel"]').getAttribute('src'), PIXEL);
      for (const selector of [
        'script',
        'iframe',
        'object',
        'embed',
        'form',
        'svg',
        'style',
        'math',
        'input',
        'meta',
        'base',
        'link',
        '[style]',
        '[onclick]',
        '.banner',
        'a[href^="javascript"]',
        'a[href^="data"]',
      ]) {
        assert.equal(await page.locator(`.prose ${selector}`).count(), 0, `no ${selector} in prose`);
      }
      assert.match((await page.textContent('[data-cell="embedded"]'))!, /Embedded below:\s*after the object/);
      assert.match(
        (await page.textContent('[data-cell="values"] tbody'))!,
        /<img src=x onerror=/,
        'a table value is text',
      );
      assert.equal(
        await page.textContent('[data-cell="layered_url"]'),
        'This chart asks to load layer[1].data.url; charts may only use data from the notebook.',
      );
      assert.equal(
        await page.textContent('[data-cell="href_chart"]'),
        'This chart asks to load encoding.href; charts may only use data from the notebook.',
      );
      assert.match(
        (await page.textContent('[data-cell="embed_options"]'))!,
        /sets the renderer's options \(usermeta\.embedOptions\)/,
      );
      assert.equal(
        await page.locator('[data-cell="good_chart"] svg .mark-rect path').count(),
        3,
        'three bars',
      );
      // Chromium reports the handler attributes of the hostile HTML as blocked while DOMPurify parses it
      // in its inert document (`script-src-attr`, nothing loaded, nothing run); no other directive is hit,
      // so no image, frame, style sheet, form or connection was even attempted.
      const violations = (await page.evaluate('window.__violations')) as string[];
      assert.deepEqual(
        violations.filter((v) => !v.startsWith('script-src-attr inline')),
        [],
        'no load was attempted against the CSP',
      );
      if (csp) await page.screenshot({ path: join(RESULTS, 'hostile-outputs.png'), fullPage: true });
      await context.close();
      fixture.csp = true;
    });
  }

  it('the demo app (real run of examples/sales) draws its prose, tables and chart under the CSP, in print mode and at 390 px', async () => {
    const harness = await createHarness({
      files: {
        'data/orders.csv': readFileSync(join(ROOT, 'examples', 'sales', 'data', 'orders.csv'), 'utf8'),
      },
    });
    let snapshot: RunSnapshot;
    let inputs: readonly object[];
    try {
      const text = readFileSync(join(ROOT, 'examples', 'sales', 'sales.md'), 'utf8');
      inputs = (await parseNotebook(text)).inputs;
      snapshot = (await harness.run(text)).snapshot;
    } finally {
      await harness.close();
    }
    assert.equal(snapshot.status, 'succeeded');
    fixture.snapshots.set('sales', {
      manifest: manifest('sales', snapshot.title, snapshot.runId, inputs),
      snapshot,
    });
    for (const [name, viewport] of [
      ['demo-print', { width: 1280, height: 900 }],
      ['demo-390', { width: 390, height: 844 }],
    ] as const) {
      const context = await browser.newContext({ viewport });
      const page = await context.newPage();
      const seen = await watch(context, page);
      if (name === 'demo-print') await page.emulateMedia({ media: 'print' });
      await page.goto(`${fixture.url}/apps/sales`);
      await page.waitForSelector('main[data-ready="true"]', { timeout: 30_000 });
      assert.match((await page.textContent('.snapshot'))!, /Orders for all regions since 2025-01-01/);
      assert.ok((await page.locator('.prose strong').count()) >= 1, 'Markdown emphasis survives');
      assert.ok((await page.locator('.chart svg .role-mark').count()) >= 1, `the chart drew (${name})`);
      assert.equal(await page.locator('[data-cell="top_products"] tbody tr').count(), 5);
      assert.deepEqual(await page.evaluate('window.__violations'), [], `no CSP violation (${name})`);
      assert.deepEqual(seen.errors, []);
      const main = page.locator('main');
      const box = (await main.boundingBox())!;
      assert.ok(box.height > 400, 'the page fits its content (print mode measures main)');
      await main.screenshot({ path: join(RESULTS, `${name}.png`) });
      await context.close();
    }
  });
});
