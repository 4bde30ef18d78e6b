/**
 * People and access in real Chromium (issue 16's journeys): an admin invites someone, who accepts from
 * the outbox's link and signs in with the password; an App Only user opens the app but has no Run log;
 * a profile's API token is shown once and revoked. axe on every page, screenshots in test-results/e2e/.
 */

import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import AxeBuilder from '@axe-core/playwright';
import { expect, type Page, test } from '@playwright/test';
import { check, SHOTS } from './check-page.ts';

const TOKEN = process.env['ALMANAC_E2E_TOKEN']!;
const PASSWORD = 'correct horse battery';

/** A fresh address per run, so reruns against one server never collide. */
function address(who: string): string {
  return `${who}-${Date.now().toString(36)}@example.com`;
}

/**
 * The invitation link mailed to `email`, read from the outbox folder (no SMTP in the suite). Not
 * through GET /api/outbox: it lists notification deliveries only, and account mail is none.
 */
async function invitationPath(email: string): Promise<string> {
  const dir = join(process.env['ALMANAC_E2E_DATA_DIR']!, 'outbox');
  for (const file of (await readdir(dir)).filter((f) => f.includes('-account-'))) {
    // Quoted-printable: join soft line breaks and decode =XX.
    const text = (await readFile(join(dir, file), 'utf8'))
      .replace(/=\r?\n/g, '')
      .replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
    if (!text.toLowerCase().includes(email.toLowerCase())) continue;
    const link = /\/invite\?code=[^\s"<>]+/.exec(text);
    if (link) return link[0];
  }
  throw new Error(`no invitation to ${email} in the outbox folder ${dir}`);
}

async function signIn(page: Page, email: string, password: string): Promise<void> {
  await page.getByLabel('Email').fill(email);
  await page.getByRole('textbox', { name: 'Password', exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

test.describe('people', () => {
  test('an admin invites someone, who accepts from the emailed link and signs in', async ({
    page,
    browser,
  }) => {
    const email = address('ada');
    await page.goto('/settings/people');
    await check(page, 'people');
    await expect(page).toHaveTitle('People · Almanac');
    await page.getByRole('button', { name: 'Invite someone' }).click();
    const dialog = page.getByRole('dialog', { name: 'Invite someone' });
    await dialog.getByLabel('Email').fill(email);
    await dialog.getByLabel('Role').selectOption('member');
    await page.screenshot({ path: `${SHOTS}/people-invite.png` });
    await dialog.getByRole('button', { name: 'Send invitation' }).click();
    await expect(dialog).toBeHidden();
    const row = page.locator(`table.people tr[data-email="${email}"]`);
    await expect(row).toContainText('Invited');

    const path = await invitationPath(email);
    const invitee = await browser.newContext({ storageState: { cookies: [], origins: [] } });
    try {
      const them = await invitee.newPage();
      await them.goto(path);
      await check(them, 'invite');
      await expect(them).toHaveTitle('Accept your invitation · Almanac');
      await them.getByLabel('Your name').fill('Ada Lovelace');
      await them.getByRole('textbox', { name: 'Password', exact: true }).fill(PASSWORD);
      await them.getByRole('textbox', { name: 'Repeat the password' }).fill(PASSWORD);
      await them.getByRole('button', { name: 'Accept and sign in' }).click();
      await expect(them.getByRole('button', { name: 'Account: Ada Lovelace' })).toBeVisible();

      // Signing out lands on the sign-in page.
      await them.getByRole('button', { name: 'Account: Ada Lovelace' }).click();
      await them.getByRole('menuitem', { name: 'Sign out' }).click();
      await expect(them).toHaveURL(/\/sign-in$/);
      await check(them, 'sign-in');
      await expect(them).toHaveTitle('Sign in · Almanac');

      // A signed-out visit links to sign-in, and signing in comes back to it.
      await them.goto('/apps/sales/versions');
      await them.getByRole('link', { name: 'Sign in' }).first().click();
      await expect(them).toHaveURL(/\/sign-in\?next=%2Fapps%2Fsales%2Fversions$/);
      // A wrong password and an unknown address get the same words.
      await signIn(them, email, 'not the password at all');
      const neutral = them.getByRole('alert').filter({ hasText: 'do not match an account' });
      await expect(neutral).toBeVisible();
      await signIn(them, address('nobody'), PASSWORD);
      await expect(neutral).toBeVisible();
      await them.screenshot({ path: `${SHOTS}/sign-in-wrong.png` });
      await signIn(them, email, PASSWORD);
      await expect(them).toHaveURL(/\/apps\/sales\/versions$/);
      await expect(them.getByRole('button', { name: 'Account: Ada Lovelace' })).toBeVisible();
      // A member sees no People link in the menu.
      await them.getByRole('button', { name: 'Account: Ada Lovelace' }).click();
      await expect(them.getByRole('menuitem', { name: 'Profile and API tokens' })).toBeVisible();
      await expect(them.getByRole('menuitem', { name: 'People' })).toHaveCount(0);
      // Changing the password keeps this browser signed in (a fresh session) and the new one works.
      await them.getByRole('menuitem', { name: 'Profile and API tokens' }).click();
      await expect(them.locator('main[data-ready="true"]')).toHaveCount(1);
      await them.getByRole('textbox', { name: 'Current password', exact: true }).fill(PASSWORD);
      await them.getByRole('textbox', { name: 'New password', exact: true }).fill(`${PASSWORD} 2`);
      await them.getByRole('textbox', { name: 'Repeat the new password', exact: true }).fill(`${PASSWORD} 2`);
      await them.getByRole('button', { name: 'Change password' }).click();
      await expect(them.getByText('Password changed.')).toBeVisible();
      await them.reload();
      await expect(them.getByRole('button', { name: 'Account: Ada Lovelace' })).toBeVisible();
    } finally {
      await invitee.close();
    }
    await page.reload();
    await expect(row).toContainText('Active');
    // Deactivating asks first, naming the person.
    await row.getByRole('button', { name: 'Deactivate Ada Lovelace' }).click();
    const confirm = page.getByRole('dialog', { name: 'Deactivate Ada Lovelace?' });
    await expect(confirm).toContainText(email);
    await confirm.getByRole('button', { name: 'Deactivate Ada Lovelace' }).click();
    await expect(row).toContainText('Deactivated');
  });

  test('an App Only user opens the app, but the Run log is hidden and its address refused', async ({
    page,
    browser,
    request,
  }) => {
    const email = address('guest');
    const headers = { authorization: `Bearer ${TOKEN}` };
    const invited = await request.post('/api/users/invitations', {
      headers,
      data: { email, name: 'Grace Guest', role: 'guest' },
    });
    expect(invited.status()).toBe(201);
    const path = await invitationPath(email);

    // The admin shares the project with the guest at App Only, in the Share dialog.
    await page.goto('/apps/sales');
    await expect(page.locator('main[data-ready="true"]')).toHaveCount(1, { timeout: 30_000 });
    await page.getByRole('button', { name: 'Share' }).click();
    const dialog = page.getByRole('dialog', { name: /^Share / });
    await expect(dialog.getByLabel('Everyone in the workspace')).toBeVisible();
    await dialog.getByRole('combobox', { name: 'Person' }).click();
    await dialog.getByRole('combobox', { name: 'Person' }).fill('Grace');
    await page
      .getByRole('option', { name: new RegExp(`Grace Guest \\(${email.replace(/[.+]/g, '\\$&')}\\)`) })
      .click();
    await dialog.getByRole('combobox', { name: 'Access', exact: true }).selectOption('app_only');
    await dialog.getByRole('button', { name: 'Share', exact: true }).click();
    const grant = dialog.locator('table.grants tr', { hasText: 'Grace Guest' });
    await expect(grant.getByRole('combobox')).toHaveValue('app_only');
    const axe = await new AxeBuilder({ page })
      .include('.share-dialog')
      .withTags(['wcag2a', 'wcag2aa'])
      .analyze();
    expect(
      axe.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => v.id),
    ).toEqual([]);
    await page.screenshot({ path: `${SHOTS}/share-dialog.png` });
    await page.keyboard.press('Escape');

    const guest = await browser.newContext({ storageState: { cookies: [], origins: [] } });
    try {
      const them = await guest.newPage();
      const accepted = await them.request.post('/api/auth/accept-invite', {
        data: { code: decodeURIComponent(path.split('code=')[1]!), name: 'Grace Guest', password: PASSWORD },
      });
      expect(accepted.status()).toBe(201);
      await them.goto('/apps/sales');
      await check(them, 'app-app-only');
      await expect(them.locator('.snapshot')).toContainText('Orders for all regions');
      const nav = them.locator('nav[aria-label="Project"]');
      await expect(nav.getByRole('link', { name: 'App', exact: true })).toBeVisible();
      await expect(nav.getByRole('link', { name: 'Run log' })).toHaveCount(0);
      await expect(nav.getByRole('button', { name: 'Share' })).toHaveCount(0);
      // Nor a list of runs beside the app.
      await expect(them.locator('aside.runlog')).toHaveCount(0);
      await them.goto('/apps/sales/runs');
      await check(them, 'run-log-app-only');
      await expect(them.locator('main')).toContainText(/Could not load/);
      await expect(them.locator('table.run-table')).toHaveCount(0);
    } finally {
      await guest.close();
    }
  });

  test('a profile creates an API token, shows it once, and revokes it', async ({ page }) => {
    await page.goto('/settings/profile');
    await check(page, 'profile');
    await expect(page).toHaveTitle('Profile · Almanac');
    await page.getByLabel('Token name').fill('e2e laptop');
    await page.getByRole('button', { name: 'Create token' }).click();
    const secret = page.getByTestId('token-secret');
    await expect(secret).toHaveText(/\S{20,}/);
    await expect(page.getByText('it is shown once')).toBeVisible();
    const row = page.locator('table.tokens tbody tr', { hasText: 'e2e laptop' });
    await expect(row).toContainText('Never');
    await check(page, 'profile-token');
    await page.getByRole('button', { name: 'I have saved it' }).click();
    await expect(secret).toHaveCount(0);
    await page.reload();
    await expect(row).toBeVisible();
    await expect(page.getByTestId('token-secret')).toHaveCount(0);
    await row.getByRole('button', { name: 'Revoke e2e laptop' }).click();
    const confirm = page.getByRole('dialog', { name: 'Revoke the token “e2e laptop”?' });
    await confirm.getByRole('button', { name: 'Revoke e2e laptop' }).click();
    await expect(row).toHaveCount(0);
  });

  test('forgot password always says the same thing', async ({ browser }) => {
    const context = await browser.newContext({ storageState: { cookies: [], origins: [] } });
    try {
      const page = await context.newPage();
      await page.goto('/sign-in');
      await page.getByRole('link', { name: 'Forgot your password?' }).click();
      await check(page, 'forgot-password');
      await page.getByLabel('Email').fill(address('nobody'));
      await page.getByRole('button', { name: 'Email me a link' }).click();
      await expect(page.getByText('If that address has an account, we sent a link')).toBeVisible();
      await page.goto('/reset-password?code=almr_not_a_real_code');
      await check(page, 'reset-password');
      await page.getByRole('textbox', { name: 'New password', exact: true }).fill(PASSWORD);
      await page.getByRole('textbox', { name: 'Repeat the password' }).fill(PASSWORD);
      await page.getByRole('button', { name: 'Set the password and sign in' }).click();
      await expect(page.getByRole('alert')).toContainText('Could not set the password');
    } finally {
      await context.close();
    }
  });
});

test.describe('workspace settings', () => {
  test('the plan lists its limits, and the audit log lists what happened', async ({ page }) => {
    await page.goto('/settings/plan');
    await check(page, 'plan');
    await expect(page).toHaveTitle('Plan · Almanac');
    await expect(page.locator('table.plan-limits')).toContainText('Schedules per project');
    await expect(page.getByLabel('Change the plan')).toBeVisible();
    await page.goto('/settings/audit');
    await check(page, 'audit');
    await expect(page).toHaveTitle('Audit log · Almanac');
    await expect(page.locator('table.audit tbody tr').first()).toBeVisible();
    await page.getByLabel('Action or area').fill('no.such.action');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect(page).toHaveURL(/action=no\.such\.action/);
    await expect(page.getByText('No events match this filter')).toBeVisible();
  });
});

test.describe('people at 390 px', () => {
  test.use({ viewport: { width: 390, height: 844 } });

  test('profile, people and sign-in read well and do not scroll sideways', async ({ page }) => {
    for (const [path, name] of [
      ['/settings/profile', 'profile-390'],
      ['/settings/people', 'people-390'],
      ['/sign-in', 'sign-in-390'],
      ['/settings/audit', 'audit-390'],
    ] as const) {
      await page.goto(path);
      await check(page, name);
      const overflow = Number(
        await page.evaluate('document.documentElement.scrollWidth - window.innerWidth'),
      );
      expect(overflow, `${path} does not scroll sideways`).toBeLessThanOrEqual(0);
    }
    // The Share button sits in the folded project menu.
    await page.goto('/apps/sales');
    await expect(page.locator('main[data-ready="true"]')).toHaveCount(1, { timeout: 30_000 });
    await page.getByRole('button', { name: 'Open the project menu' }).click();
    await page.getByRole('button', { name: 'Share' }).click();
    await expect(
      page.getByRole('dialog', { name: /^Share / }).getByLabel('Everyone in the workspace'),
    ).toBeVisible();
    await page.screenshot({ path: `${SHOTS}/share-dialog-390.png` });
  });
});
