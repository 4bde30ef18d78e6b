/**
 * Before the suite: the demo's publish run has finished, a daily schedule exists and has run once
 * ("run now": a scheduled run, so the app's default state shows the demo's snapshot history), and a
 * browser is signed in with a one-time login link (never the API token in a URL), its cookie saved for
 * every test.
 */
import { mkdirSync } from 'node:fs';
import { chromium, type FullConfig } from '@playwright/test';

async function api<T>(base: string, method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${process.env['ALMANAC_E2E_TOKEN']}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`e2e setup: ${method} ${path} answered ${response.status}: ${text}`);
  return JSON.parse(text) as T;
}

/** Waits for a run to end by following its event stream (no polling sleep). */
async function finished(base: string, run: string): Promise<void> {
  const response = await fetch(`${base}/api/runs/${run}/events`, {
    headers: { authorization: `Bearer ${process.env['ALMANAC_E2E_TOKEN']}` },
  });
  if (!response.ok || !response.body) throw new Error(`e2e setup: cannot follow run ${run}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    text += value;
    if (/^event: end$/m.test(text)) {
      await reader.cancel();
      return;
    }
  }
}

export default async function globalSetup(config: FullConfig): Promise<void> {
  const base = config.projects[0]!.use.baseURL!;
  const runs = await api<{ runs: { id: string; trigger: string }[] }>(base, 'GET', '/api/runs?project=sales');
  const publish = runs.runs.find((r) => r.trigger === 'publish');
  if (publish) await finished(base, publish.id);
  const schedule = await api<{ id: string }>(base, 'POST', '/api/projects/sales/schedules', {
    name: 'Morning report',
    cadence: { kind: 'daily', time: '08:00' },
    timezone: 'Europe/Berlin',
  });
  const run = await api<{ id: string }>(base, 'POST', `/api/schedules/${schedule.id}/run`);
  await finished(base, run.id);
  process.env['ALMANAC_E2E_SCHEDULED_RUN'] = run.id;

  const { path } = await api<{ path: string }>(base, 'POST', '/api/auth/login-codes', { next: '/' });
  mkdirSync('test-results/e2e', { recursive: true });
  const browser = await chromium.launch(config.projects[0]!.use.launchOptions);
  try {
    const page = await browser.newPage();
    await page.goto(`${base}${path}`);
    await page.waitForURL(`${base}/`);
    await page.context().storageState({ path: 'test-results/e2e/signed-in.json' });
  } finally {
    await browser.close();
  }
}
