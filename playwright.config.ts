/**
 * The end-to-end suite (test/e2e/): the built web app against a real `almanac serve` on the demo
 * notebook, in Debian's Chromium, with axe on every page. `npm run test:e2e` runs it through
 * test/e2e/run.ts, which skips loudly when Chromium is missing (or fails under
 * ALMANAC_REQUIRE_SERVICES=1) and picks a free port. Screenshots land in test-results/e2e/.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from '@playwright/test';

// Set once in the main process; Playwright's workers inherit the environment, so all agree.
process.env['ALMANAC_E2E_PORT'] ??= String(20_000 + Math.floor(Math.random() * 20_000));
process.env['ALMANAC_E2E_DATA_DIR'] ??= mkdtempSync(join(tmpdir(), 'almanac-e2e-'));
process.env['ALMANAC_E2E_TOKEN'] ??= 'alm_e2e_admin_token_0123456789';
const port = process.env['ALMANAC_E2E_PORT'];
const baseURL = `http://127.0.0.1:${port}`;

export const CHROMIUM_PATH = process.env['ALMANAC_CHROMIUM'] ?? '/usr/bin/chromium';

export default defineConfig({
  testDir: 'test/e2e',
  testMatch: '**/*.spec.ts',
  outputDir: 'test-results/e2e/artifacts',
  globalSetup: './test/e2e/global-setup.ts',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 60_000,
  reporter: [['list']],
  use: {
    baseURL,
    storageState: 'test-results/e2e/signed-in.json',
    viewport: { width: 1280, height: 900 },
    launchOptions: {
      executablePath: CHROMIUM_PATH,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
    trace: 'off',
  },
  webServer: {
    command: `node src/cli/main.ts serve --seed examples/sales/sales.md --host 127.0.0.1 --port ${port} --data-dir ${process.env['ALMANAC_E2E_DATA_DIR']}`,
    url: `${baseURL}/api/health`,
    env: {
      ALMANAC_ADMIN_TOKEN: process.env['ALMANAC_E2E_TOKEN'],
      ALMANAC_LOG_LEVEL: 'warn',
    },
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'ignore',
    stderr: 'pipe',
  },
});
