/**
 * The app page in real headless Chromium: it renders the default state (prose, tables, a Vega-Lite
 * chart) without interaction and marks itself data-ready; a past run opens as the app was; a re-run
 * shows live progress and stays private; leaving a live re-run stops following it; the demo shows its
 * own snapshot history (bug 11).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { chromiumUnavailable, launchChromium } from './support/browser.ts';
import { startTestServer, type TestServer, testStores } from './support/server-harness.ts';

const ROOT = join(import.meta.dirname, '..');
const WEB = join(ROOT, 'web', 'dist');
const skip = chromiumUnavailable();

describe('app page in headless Chromium', { skip }, () => {
  let t: TestServer;
  let browser: Browser;
  let page: Page;
  let publishRun = '';
  before(async () => {
    assert.ok(existsSync(join(WEB, 'index.html')), 'the web app is built (npm test runs build:web first)');
    const sqlite = (await testStores())[0]!;
    t = await startTestServer(sqlite, { webDir: WEB, listen: true, autostart: true, clockStart: Date.now() });
    const seeded = await t.server.seed(join(ROOT, 'examples', 'sales', 'sales.md'));
    publishRun = seeded.run!.id;
    await t.server.worker!.drain();
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  });
  after(async () => {
    await browser?.close();
    await t?.close();
  });

  it('opens the app on its cached default state and signals data-ready', async () => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // A one-time login code signs the browser in (never the API token in a URL: issue 14).
    const response = await page.goto(`${t.server.url}${await t.server.loginLink('/apps/sales')}`);
    assert.match(response?.headers()['content-security-policy'] ?? '', /script-src 'self';/);
    await page.waitForSelector('main[data-ready="true"]', { timeout: 20_000 });
    assert.equal(new URL(page.url()).pathname, '/apps/sales');
    assert.equal(await page.getAttribute('.snapshot', 'data-run'), publishRun);
    assert.match((await page.textContent('.snapshot'))!, /Orders for all regions since 2025-01-01/);
    assert.ok((await page.locator('.chart svg').count()) >= 1, 'the Vega-Lite chart drew');
    assert.ok((await page.locator('[data-cell="top_products"] tbody tr').count()) === 5);
    // Big tables show a page of 50 rows at a time.
    const orders = page.locator('[data-cell="orders"]');
    assert.equal(await orders.locator('tbody tr').count(), 50);
    assert.match((await orders.locator('.pager').textContent())!, /rows 1–50 of [\d,]+ row\(s\)/);
    const first = await orders.locator('tbody tr').first().textContent();
    await orders.locator('button:has-text("Next")').click();
    assert.match((await orders.locator('.pager').textContent())!, /rows 51–100 of/);
    assert.notEqual(await orders.locator('tbody tr').first().textContent(), first);
    assert.equal(await orders.locator('button:has-text("Previous")').isDisabled(), false);
    assert.equal(await page.locator('.runlog li').count(), 1);
    assert.match((await page.textContent('.runlog'))!, /succeeded publish/);
    assert.equal(await page.title(), 'Monthly sales report · Almanac');
    assert.deepEqual(errors, []);
  });

  it('re-runs privately with other inputs, with live progress, without changing the default state', async () => {
    await page.selectOption('#input-region', 'EMEA');
    await page.click('button:has-text("Re-run")');
    await page.waitForSelector('main[data-ready="false"]');
    await page.waitForSelector('main[data-ready="true"]', { timeout: 20_000 });
    assert.match((await page.textContent('.snapshot'))!, /Orders for EMEA/);
    assert.match((await page.textContent('.runlog'))!, /manual \(yours\)/);
    const open = await t.api('GET', '/api/projects/sales/app');
    assert.equal(open.headers.get('x-almanac-run'), publishRun, 'the default state is still the publish run');
  });

  it('shows a past run from the run log as the app was at that run', async () => {
    await page.click(`[data-run-link="${publishRun}"]`);
    await page.waitForSelector(`[data-viewing-run="${publishRun}"]`);
    await page.waitForSelector('main[data-ready="true"]', { timeout: 20_000 });
    assert.equal(new URL(page.url()).pathname, `/apps/sales/runs/${publishRun}`);
    assert.match((await page.textContent('.snapshot'))!, /Orders for all regions/);
    // A fresh load of the run's URL renders the same state without interaction.
    const fresh = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    // A session from the API token, exchanged through a header (POST /api/auth/session).
    const exchanged = await t.api('POST', '/api/auth/session');
    const [name, value] = exchanged.headers.get('set-cookie')!.split(';')[0]!.split('=') as [string, string];
    await fresh.context().addCookies([{ name, value, url: t.server.url! }]);
    await fresh.goto(`${t.server.url}/apps/sales/runs/${publishRun}`);
    await fresh.waitForSelector('main[data-ready="true"]', { timeout: 20_000 });
    assert.equal(await fresh.getAttribute('.snapshot', 'data-run'), publishRun);
    await fresh.close();
  });

  it('leaving a live re-run stops its stream, and it no longer replaces the run you opened', async () => {
    // Issue 15, section 3: the old shell kept following a re-run after the viewer opened another run,
    // and when the re-run ended its snapshot replaced the run on screen.
    await page.goto(`${t.server.url}/apps/sales`);
    await page.waitForSelector('main[data-ready="true"]', { timeout: 20_000 });
    const streams: string[] = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/events')) streams.push(r.url());
    });
    // The worker stops claiming, so the re-run stays queued (and its stream open) while we leave.
    await t.server.worker!.stop();
    try {
      await page.click('button:has-text("Re-run")');
      await page.waitForSelector('main[data-ready="false"]');
      await page.waitForSelector('.progress');
      assert.equal(streams.length, 1, 'the re-run is followed over SSE');
      // The browser reports a stream the page closes as an aborted request.
      const closing = page.waitForEvent('requestfailed', {
        predicate: (r) => r.url().endsWith('/events'),
        timeout: 10_000,
      });
      // Open the publish run while the re-run is still queued (the shell navigates in the page).
      await page.click(`[data-run-link="${publishRun}"]`);
      await page.waitForSelector(`main[data-ready="true"][data-view="/apps/sales/runs/${publishRun}"]`, {
        timeout: 20_000,
      });
      // Leaving closed the stream...
      assert.equal((await closing).url(), streams[0], 'leaving the view closed its event stream');
      // ...so the re-run ending now changes nothing on screen.
      await t.server.worker!.drain();
      assert.equal(await page.getAttribute('.snapshot', 'data-run'), publishRun);
      assert.equal(new URL(page.url()).pathname, `/apps/sales/runs/${publishRun}`);
    } finally {
      t.server.worker!.start();
    }
  });

  it('with "show results from the last run" off, the app starts a run and follows it live to its snapshot', async () => {
    const off = await t.json('PATCH', '/api/projects/sales/app/settings', { showLastRun: false });
    assert.equal(off.status, 200, JSON.stringify(off.body));
    try {
      await page.goto(`${t.server.url}/apps/sales`);
      await page.waitForSelector('main[data-ready="true"]', { timeout: 20_000 });
      const shown = await page.getAttribute('.snapshot', 'data-run');
      assert.ok(shown && shown !== publishRun, 'a fresh run, not the cached default state');
      assert.match((await page.textContent('.snapshot'))!, /Orders for all regions/);
    } finally {
      await t.json('PATCH', '/api/projects/sales/app/settings', { showLastRun: true });
    }
  });

  it('Bug 11: the demo shows its own "Snapshot history" table (hide_code hid code cells\' outputs)', async () => {
    // Issue 15, bug 11: `hide_code` hid every output of a code cell, so the demo's "Snapshot history"
    // (the table the `history` code cell returns) never showed. A scheduled run records a row and shows it.
    const created = await t.json('POST', '/api/projects/sales/schedules', {
      name: 'Daily',
      cadence: { kind: 'daily', time: '08:00' },
      timezone: 'Europe/Berlin',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const run = await t.json('POST', `/api/schedules/${created.body.id}/run`);
    assert.equal(run.status, 201, JSON.stringify(run.body));
    await t.server.worker!.drain();
    await page.goto(`${t.server.url}/apps/sales/runs/${run.body.id}`);
    await page.waitForSelector('main[data-ready="true"]', { timeout: 20_000 });
    const history = page.locator('[data-cell="history"]');
    assert.equal(await history.locator('thead th').first().textContent(), 'recorded_at');
    assert.equal(await history.locator('tbody tr').count(), 1, 'the run recorded its own row');
    assert.match((await history.locator('tbody').textContent())!, /All/);
  });
});
