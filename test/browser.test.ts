/**
 * The app page in real headless Chromium: it renders the default state (prose, tables, a Vega-Lite
 * chart) without interaction and marks itself data-ready; a past run opens as the app was; a re-run
 * shows live progress and stays private.
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
});
