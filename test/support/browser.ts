/**
 * Real headless Chromium (Debian's `chromium`) through playwright-core. Without it the browser suite is
 * skipped with a loud banner; with ALMANAC_REQUIRE_SERVICES=1 (CI) a missing browser fails instead.
 */
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';
import { CHROMIUM_ARGS } from '../../src/notify/screenshots.ts';
import { REQUIRE_SERVICES } from './services.ts';

export const CHROMIUM_PATH = process.env['ALMANAC_CHROMIUM'] ?? '/usr/bin/chromium';
export { CHROMIUM_ARGS };

export function chromiumUnavailable(): string | false {
  if (existsSync(CHROMIUM_PATH)) return false;
  const reason = `Chromium is not installed at ${CHROMIUM_PATH}`;
  if (REQUIRE_SERVICES) throw new Error(`${reason}, and ALMANAC_REQUIRE_SERVICES=1 requires it`);
  process.stderr.write(
    `\n${'!'.repeat(78)}\n!! SKIPPING browser suites: ${reason}\n!! Install it: apt-get install -y chromium fonts-liberation\n${'!'.repeat(78)}\n\n`,
  );
  return reason;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
}
