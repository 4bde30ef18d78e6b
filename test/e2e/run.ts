/**
 * `npm run test:e2e`: runs the Playwright suite (playwright.config.ts) when Chromium is installed.
 * Without it the suite is SKIPPED LOUDLY, or fails under ALMANAC_REQUIRE_SERVICES=1 (CI). The web app
 * must be built first (`npm run build:web`; `npm test` does it).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
const chromium = process.env['ALMANAC_CHROMIUM'] ?? '/usr/bin/chromium';
const required = process.env['ALMANAC_REQUIRE_SERVICES'] === '1';

function banner(lines: string[]): void {
  const bar = '!'.repeat(78);
  process.stderr.write(`\n${bar}\n${lines.map((l) => `!! ${l}`).join('\n')}\n${bar}\n\n`);
}

if (!existsSync(chromium)) {
  const reason = `Chromium is not installed at ${chromium}`;
  if (required) {
    banner([`FAILING the end-to-end suite: ${reason}, and ALMANAC_REQUIRE_SERVICES=1 requires it`]);
    process.exit(1);
  }
  banner([
    `SKIPPING the end-to-end suite (test/e2e): ${reason}`,
    'Install it: apt-get install -y chromium fonts-liberation (or set ALMANAC_CHROMIUM)',
  ]);
  process.exit(0);
}
if (!existsSync(join(ROOT, 'web', 'dist', 'index.html'))) {
  banner(['The web app is not built: run npm run build:web first (npm test does it).']);
  process.exit(1);
}

/** A port nothing listens on now, for the suite's server. */
const port = await new Promise<number>((resolve, reject) => {
  const probe = createServer();
  probe.once('error', reject);
  probe.listen(0, '127.0.0.1', () => {
    const { port } = probe.address() as { port: number };
    probe.close(() => resolve(port));
  });
});
// The server's data dir, removed afterwards (playwright.config.ts makes one itself when run directly).
const dataDir = mkdtempSync(join(tmpdir(), 'almanac-e2e-'));
const result = spawnSync(
  join(ROOT, 'node_modules', '.bin', 'playwright'),
  ['test', '--config', join(ROOT, 'playwright.config.ts'), ...process.argv.slice(2)],
  {
    cwd: ROOT,
    stdio: 'inherit',
    env: { ...process.env, ALMANAC_E2E_PORT: String(port), ALMANAC_E2E_DATA_DIR: dataDir },
  },
);
rmSync(dataDir, { recursive: true, force: true });
process.exit(result.status ?? 1);
