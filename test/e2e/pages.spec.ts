/**
 * Every page of the web shell in real Chromium against a real server on the demo notebook: it becomes
 * ready, names itself in the tab title, has no serious or critical axe violation, and leaves a
 * screenshot in test-results/e2e/ (look at them: 1280 px and 390 px).
 */
import { expect, test } from '@playwright/test';
import { check, SHOTS } from './check-page.ts';

test.describe('pages', () => {
  test('home lists the projects with their last and next run', async ({ page }) => {
    await page.goto('/');
    await check(page, 'home');
    await expect(page).toHaveTitle('Projects · Almanac');
    const row = page.locator('table.projects tbody tr', { hasText: 'Monthly sales report' });
    await expect(row).toContainText('succeeded');
    await expect(row.locator('time')).toHaveCount(2);
  });

  test('the app shows its default state, with the snapshot history (bug 11)', async ({ page }) => {
    await page.goto('/apps/sales');
    await check(page, 'app');
    await expect(page).toHaveTitle('Monthly sales report · Almanac');
    await expect(page.locator('.snapshot')).toContainText('Orders for all regions');
    await expect(page.locator('.chart svg').first()).toBeVisible();
    // Issue 15, bug 11: the `history` code cell's table showed nowhere under hide_code.
    await expect(page.locator('[data-cell="history"] tbody tr')).toHaveCount(1);
    await expect(page.locator('header[role="banner"], .topbar')).toHaveCount(1);
  });

  test('a past run shows the app as it was', async ({ page }) => {
    const run = process.env['ALMANAC_E2E_SCHEDULED_RUN']!;
    await page.goto(`/apps/sales/runs/${run}`);
    await check(page, 'past-run');
    await expect(page.locator(`[data-viewing-run="${run}"]`)).toBeVisible();
    await expect(page.locator('.snapshot')).toHaveAttribute('data-run', run);
    await expect(page).toHaveTitle(`Run ${run.slice(0, 8)} · Monthly sales report · Almanac`);
  });

  test('print mode shows the app without the frame', async ({ page }) => {
    await page.goto('/apps/sales?print=1');
    await check(page, 'app-print');
    await expect(page.locator('.topbar')).toHaveCount(0);
    await expect(page.locator('nav[aria-label="Project"]')).toHaveCount(0);
    await expect(page.getByRole('button', { name: 'Re-run' })).toHaveCount(0);
  });

  test('scheduled runs list the schedule in its own timezone', async ({ page }) => {
    await page.goto('/apps/sales/schedules');
    await check(page, 'schedules');
    await expect(page).toHaveTitle('Scheduled runs · Monthly sales report · Almanac');
    await expect(page.locator('table.schedules')).toContainText('Morning report');
    await expect(page.locator('table.schedules')).toContainText('Daily at 08:00');
    await expect(page.locator('table.schedules')).toContainText('Europe/Berlin');
  });

  test('the run log lists runs with status, trigger and time, filtered from the URL', async ({ page }) => {
    await page.goto('/apps/sales/runs');
    await check(page, 'run-log');
    await expect(page).toHaveTitle('Run log · Monthly sales report · Almanac');
    await expect(page.locator('table.run-table tbody tr')).toHaveCount(2);
    // A scheduled run names its schedule.
    await expect(page.locator('table.run-table tbody tr').first()).toContainText('Morning report');
    await page.getByLabel('Trigger').selectOption('publish');
    await expect(page).toHaveURL(/trigger=publish/);
    await expect(page.locator('table.run-table tbody tr')).toHaveCount(1);
    await page.goto('/apps/sales/runs?status=failed');
    await expect(page.getByText('No runs match these filters')).toBeVisible();
  });

  test('versions mark the current one', async ({ page }) => {
    await page.goto('/apps/sales/versions');
    await check(page, 'versions');
    await expect(page.locator('table.versions tbody tr')).toHaveCount(1);
    await expect(page.locator('table.versions tbody tr').first()).toContainText('current');
  });

  test('settings show how the app opens', async ({ page }) => {
    await page.goto('/apps/sales/settings');
    await check(page, 'settings');
    await expect(page.locator('table.settings')).toContainText('The last scheduled run or publish');
  });

  test('the outbox explains itself when empty', async ({ page }) => {
    await page.goto('/outbox');
    await check(page, 'outbox');
    await expect(page).toHaveTitle('Outbox · Almanac');
  });

  test('an unknown address is a real 404 page', async ({ page }) => {
    await page.goto('/no/such/page');
    await check(page, 'not-found');
    await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
    await page.goto('/apps/sales/nope');
    await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
    await expect(page).toHaveTitle('Page not found · Almanac');
  });

  test('the command palette opens on Ctrl+K and goes to a page', async ({ page }) => {
    await page.goto('/');
    await check(page, 'home-again');
    await page.keyboard.press('Control+k');
    const search = page.getByPlaceholder('Go to a project or page…');
    await expect(search).toBeVisible();
    await search.fill('run log');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Enter');
    await expect(page).toHaveURL(/\/apps\/sales\/runs$/);
  });
});

test.describe('at 390 px', () => {
  test.use({ viewport: { width: 390, height: 844 } });

  test('the app reads well, with the sidebar behind a burger', async ({ page }) => {
    await page.goto('/apps/sales');
    await check(page, 'app-390');
    const appOverflow = Number(
      await page.evaluate('document.documentElement.scrollWidth - window.innerWidth'),
    );
    expect(appOverflow, 'the app does not scroll sideways').toBeLessThanOrEqual(0);
    await expect(page.locator('nav[aria-label="Project"]')).not.toBeInViewport();
    await page.getByRole('button', { name: 'Open the project menu' }).click();
    await expect(page.locator('nav[aria-label="Project"]')).toBeInViewport();
    // The sidebar slides in: shoot once it is all the way in.
    await expect.poll(async () => (await page.locator('.sidebar').boundingBox())?.x).toBe(0);
    await page.screenshot({ path: `${SHOTS}/app-390-menu.png` });
    await page.locator('nav[aria-label="Project"]').getByRole('link', { name: 'Run log' }).click();
    await expect(page).toHaveURL(/\/apps\/sales\/runs$/);
    await check(page, 'run-log-390');
    // No page scrolls sideways.
    const overflow = Number(await page.evaluate('document.documentElement.scrollWidth - window.innerWidth'));
    expect(overflow).toBeLessThanOrEqual(0);
  });
});

test.describe('signed out', () => {
  test.use({ storageState: { cookies: [], origins: [] } });

  test('a page says how to sign in, in words', async ({ page }) => {
    await page.goto('/apps/sales');
    await check(page, 'signed-out');
    await expect(page.getByText('You are not signed in')).toBeVisible();
    await expect(page.getByText('almanac login-link')).toBeVisible();
    await expect(page.locator('main')).not.toContainText('{"error"');
    // The sign-in link comes back to this page.
    await expect(page.locator('main').getByRole('link', { name: 'Sign in' })).toHaveAttribute(
      'href',
      '/sign-in?next=%2Fapps%2Fsales',
    );
  });
});

test.describe('sign out', () => {
  // A session of its own, so signing out leaves the suite's session alone.
  test.use({ storageState: { cookies: [], origins: [] } });

  test('the user menu names the user and signs out', async ({ page, request }) => {
    const response = await request.post('/api/auth/login-codes', {
      headers: { authorization: `Bearer ${process.env['ALMANAC_E2E_TOKEN']}` },
      data: { next: '/' },
    });
    const { path } = (await response.json()) as { path: string };
    await page.goto(path);
    await check(page, 'home-signed-in');
    await page.getByRole('button', { name: /^Account: / }).click();
    await page.getByRole('menuitem', { name: 'Sign out' }).click();
    await expect(page).toHaveURL(/\/sign-in$/);
    // The session is gone: an app page now says how to sign in.
    await page.goto('/apps/sales');
    await expect(page.getByText('You are not signed in')).toBeVisible();
  });
});

test.describe('keyboard', () => {
  test('Tab reaches each sidebar tab, and Enter opens it', async ({ page }) => {
    await page.goto('/apps/sales');
    await check(page, 'keyboard-start');
    const tabs = ['Scheduled runs', 'Run log', 'Versions', 'Settings', 'App'];
    for (const name of tabs) {
      const link = page.locator('nav[aria-label="Project"]').getByRole('link', { name, exact: true });
      // Tab until the link has focus (the top bar comes first); a bounded number of presses.
      let focused = false;
      for (let i = 0; i < 40 && !focused; i++) {
        await page.keyboard.press('Tab');
        // Page scripts are strings: this file type-checks without the DOM library.
        focused =
          (await page.evaluate(
            `document.activeElement?.closest('nav[aria-label="Project"]') ? document.activeElement.textContent : null`,
          )) === name;
      }
      expect(focused, `Tab reaches ${name}`).toBe(true);
      await page.keyboard.press('Enter');
      await expect(link).toHaveAttribute('aria-current', 'page');
      await expect(page.locator('main[data-ready="true"]')).toHaveCount(1, { timeout: 30_000 });
      // Start again from the top of the page for the next tab.
      await page.locator('body').focus();
    }
  });
});
