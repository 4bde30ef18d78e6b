/**
 * Screenshots of a run's app page, the same page a person sees, from a warm headless Chromium
 * (playwright-core driving the system's `chromium`). The browser is launched once and kept; each shot
 * gets its own browser context (cookies, storage) with a view ticket for the recipient, waits for the
 * page's `data-ready="true"`, refuses a blank or half-rendered page, and renders a full-page PNG or an
 * A4 PDF. Shots have a timeout each and run at most `concurrency` at a time.
 */
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';
import { DeliveryError } from './delivery-error.ts';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

/** The configured Chromium, or `/usr/bin/chromium` when it exists; null when there is none. */
export function findChromium(configured: string | null | undefined): string | null {
  if (configured) return existsSync(configured) ? configured : null;
  for (const path of ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']) {
    if (existsSync(path)) return path;
  }
  return null;
}

export interface ScreenshotOptions {
  executablePath: string;
  /** The server's own base URL (pages are rendered from it, not from the public URL). */
  baseUrl: () => string;
  /** Cookie name the web app reads the token from. */
  cookieName: string;
  /** @default 2 */
  concurrency?: number;
  /** Per shot. @default 20000 */
  timeoutMs?: number;
  /** @default 1280 */
  width?: number;
}

export class Screenshots {
  readonly #o: ScreenshotOptions;
  #browser: Promise<Browser> | null = null;
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(options: ScreenshotOptions) {
    this.#o = options;
  }

  /** Launches the browser now, so the first shot is warm. */
  async warm(): Promise<void> {
    await this.#launch();
  }

  #launch(): Promise<Browser> {
    if (!this.#browser) {
      const launching = chromium.launch({ executablePath: this.#o.executablePath, args: CHROMIUM_ARGS });
      this.#browser = launching;
      launching
        .then((browser) =>
          browser.on('disconnected', () => {
            if (this.#browser === launching) this.#browser = null;
          }),
        )
        .catch(() => {
          if (this.#browser === launching) this.#browser = null;
        });
    }
    return this.#browser;
  }

  async #slot(): Promise<() => void> {
    const limit = this.#o.concurrency ?? 2;
    if (this.#running >= limit) await new Promise<void>((r) => this.#waiting.push(r));
    this.#running++;
    return () => {
      this.#running--;
      this.#waiting.shift()?.();
    };
  }

  /**
   * Renders `path` (like `/apps/sales/runs/<id>`) as the holder of `ticket` sees it. Throws a
   * DeliveryError when the page does not become ready, or is blank.
   */
  async take(path: string, format: 'png' | 'pdf', ticket: string): Promise<Buffer> {
    const release = await this.#slot();
    const timeout = this.#o.timeoutMs ?? 20_000;
    try {
      const browser = await this.#launch();
      const base = new URL(this.#o.baseUrl());
      const context = await browser.newContext({
        viewport: { width: this.#o.width ?? 1280, height: 800 },
        deviceScaleFactor: 1,
      });
      try {
        await context.addCookies([
          { name: this.#o.cookieName, value: ticket, url: base.origin, httpOnly: true, sameSite: 'Lax' },
        ]);
        const page = await context.newPage();
        page.setDefaultTimeout(timeout);
        await page.goto(new URL(path, base).toString(), { waitUntil: 'domcontentloaded', timeout });
        try {
          await page.waitForSelector('[data-ready="true"]', { timeout });
        } catch {
          const text = (await page.textContent('body').catch(() => ''))?.trim().slice(0, 200) ?? '';
          throw new DeliveryError(
            `the app page did not become ready within ${Math.round(timeout / 1000)} s${text ? ` (it shows: ${text})` : ''}`,
            true,
          );
        }
        // Charts draw asynchronously after the data is in; let the next frames land. (Page scripts are
        // strings: they run in the browser, not in Node.)
        await page.evaluate(
          'new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(null))))',
        );
        const shape = (await page.evaluate(`(() => {
          const main = document.querySelector('main');
          return {
            text: (main?.textContent ?? '').trim().length,
            height: main?.getBoundingClientRect().height ?? 0,
            error: document.querySelector('.banner.failed, [role="alert"]')?.textContent ?? null,
          };
        })()`)) as { text: number; height: number; error: string | null };
        if (shape.text < 20 || shape.height < 100) {
          throw new DeliveryError('the app page rendered blank; no screenshot was taken', true);
        }
        if (shape.error) throw new DeliveryError(`the app page shows an error: ${shape.error}`, true);
        if (format === 'pdf') {
          return await page.pdf({
            format: 'A4',
            printBackground: true,
            margin: { top: '12mm', bottom: '12mm' },
          });
        }
        return await page.screenshot({ fullPage: true, type: 'png', timeout });
      } finally {
        await context.close().catch(() => {});
      }
    } finally {
      release();
    }
  }

  async close(): Promise<void> {
    const browser = this.#browser;
    this.#browser = null;
    if (browser) await (await browser.catch(() => null))?.close().catch(() => {});
  }
}
