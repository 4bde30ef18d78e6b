/**
 * Screenshots of a run's app page, the same page a person sees, from a warm headless Chromium
 * (playwright-core driving the system's `chromium`). The browser is launched once and kept; each shot
 * gets its own browser context (cookies, storage) with a view ticket for the recipient, which reads only
 * that run's page (GET of its API routes; anything else is 403, so a script in the page cannot use it
 * as an API token), waits for the
 * page's `data-ready="true"`, refuses a blank or half-rendered page, and renders a full-page PNG or an
 * A4 PDF. Shots have a timeout each and run at most `concurrency` at a time.
 */
import { existsSync } from 'node:fs';
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';
import { DeliveryError } from './delivery-error.ts';

interface Clip {
  x: number;
  y: number;
  width: number;
  height: number;
}

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
  /** The session cookie, which carries the view ticket (`SESSION_COOKIE`). */
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
  /** One browser context per viewer, kept warm: its HTTP and code caches make the next shot fast. */
  readonly #contexts = new Map<string, { context: Promise<BrowserContext>; used: number; idle: Page[] }>();
  readonly #sessions = new WeakMap<Page, Promise<CDPSession>>();
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
      // Loaded on first use: playwright-core adds about 70 MB to a process, which every worker and
      // scheduler would otherwise carry, and a bigger process makes each fork() of a run slower.
      const launching = import('playwright-core').then(({ chromium }) =>
        chromium.launch({ executablePath: this.#o.executablePath, args: CHROMIUM_ARGS }),
      );
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

  async #contextFor(viewer: string): Promise<{ context: BrowserContext; idle: Page[] }> {
    const now = Date.now();
    for (const [key, entry] of this.#contexts) {
      if (now - entry.used > 300_000 && key !== viewer) {
        this.#contexts.delete(key);
        void entry.context.then((c) => c.close()).catch(() => {});
      }
    }
    let entry = this.#contexts.get(viewer);
    if (!entry) {
      if (this.#contexts.size >= 8) {
        const [oldest] = [...this.#contexts.entries()].sort((a, b) => a[1].used - b[1].used);
        this.#contexts.delete(oldest![0]);
        void oldest![1].context.then((c) => c.close()).catch(() => {});
      }
      const context = this.#launch().then((browser) =>
        browser.newContext({ viewport: { width: this.#o.width ?? 1280, height: 800 }, deviceScaleFactor: 1 }),
      );
      context.catch(() => this.#contexts.delete(viewer));
      entry = { context, used: now, idle: [] };
      this.#contexts.set(viewer, entry);
    }
    entry.used = now;
    return { context: await entry.context, idle: entry.idle };
  }

  /**
   * Renders `path` (like `/apps/sales/runs/<id>`) as the holder of `ticket` (a view ticket for
   * `viewer`, issued for that run) sees it. Throws a DeliveryError when the page does not become
   * ready, or is blank.
   */
  async take(path: string, format: 'png' | 'pdf', ticket: string, viewer = ticket): Promise<Buffer> {
    const release = await this.#slot();
    const timeout = this.#o.timeoutMs ?? 20_000;
    try {
      const base = new URL(this.#o.baseUrl());
      // Print mode (UI.md): the app as a report, inputs as text, no top bar, sidebar or controls.
      const printed = new URL(path, base);
      printed.searchParams.set('print', '1');
      const shown = `${printed.pathname}${printed.search}`;
      const { context, idle } = await this.#contextFor(viewer);
      // The fresh ticket replaces the last one; the context keeps only its caches.
      await context.addCookies([
        { name: this.#o.cookieName, value: ticket, url: base.origin, httpOnly: true, sameSite: 'Lax' },
      ]);
      // A warm page already runs the web app: navigating inside it skips loading and compiling the
      // app and its chart library again, which is most of a cold shot's time.
      let page = idle.pop() ?? null;
      let healthy = false;
      if (page && !page.isClosed() && new URL(page.url()).origin === base.origin) {
        await page.evaluate(
          `(() => { history.pushState(null, '', ${JSON.stringify(shown)}); dispatchEvent(new PopStateEvent('popstate')); })()`,
        );
      } else {
        page = await context.newPage();
        page.setDefaultTimeout(timeout);
        await page.goto(new URL(shown, base).toString(), { waitUntil: 'domcontentloaded', timeout });
      }
      try {
        const view = JSON.stringify(new URL(path, base).pathname);
        const ready = `main[data-ready="true"][data-view=${view}]`;
        // The page's own error banner ends the wait at once: a page that cannot load its data (no such
        // app, a ticket that does not cover it) is refused when it says so, not when the timeout passes.
        const failed = `main[data-view=${view}] .banner.failed`;
        try {
          await page.waitForSelector(`${ready}, ${failed}`, { timeout });
        } catch {
          const text = (await page.textContent('body').catch(() => ''))?.trim().slice(0, 200) ?? '';
          throw new DeliveryError(
            `the app page did not become ready within ${Math.round(timeout / 1000)} s${text ? ` (it shows: ${text})` : ''}`,
            true,
          );
        }
        if (!(await page.$(ready))) {
          const text = (await page.textContent(failed).catch(() => ''))?.trim().slice(0, 200) ?? '';
          throw new DeliveryError(`the app page shows an error: ${text || 'no message'}`, true);
        }
        // Charts draw asynchronously after the data is in; let the next frame land, then measure the
        // app in the same round trip. (Page scripts are strings: they run in the browser, not in Node.)
        const shape = (await page.evaluate(`new Promise((resolve) => requestAnimationFrame(() => {
          const main = document.querySelector('main');
          const box = main?.getBoundingClientRect();
          resolve({
            text: (main?.textContent ?? '').trim().length,
            box: box ? { x: box.x + scrollX, y: box.y + scrollY, width: box.width, height: box.height } : null,
            error: document.querySelector('.banner.failed, [role="alert"]')?.textContent ?? null,
          });
        }))`)) as { text: number; box: Clip | null; error: string | null };
        if (!shape.box || shape.text < 20 || shape.box.height < 100) {
          throw new DeliveryError('the app page rendered blank; no screenshot was taken', true);
        }
        if (shape.error) throw new DeliveryError(`the app page shows an error: ${shape.error}`, true);
        const shot =
          format === 'pdf'
            ? await page.pdf({ format: 'A4', printBackground: true, margin: { top: '12mm', bottom: '12mm' } })
            : // The app itself (the page's main element, all of it), without the run log beside it.
              await this.#png(page, shape.box);
        healthy = true;
        return shot;
      } finally {
        // A page that worked stays open for the next shot of this viewer.
        if (healthy && idle.length < 2) idle.push(page);
        else await page.close().catch(() => {});
      }
    } finally {
      release();
    }
  }

  /**
   * A PNG of `clip` (page coordinates), beyond the viewport too, through the DevTools protocol with
   * Chromium's fast encoder (`optimizeForSpeed`: a lighter zlib level, ≈ 25% bigger files, about half
   * the encoding time of Playwright's element screenshot; docs/performance.md).
   */
  async #png(page: Page, clip: Clip): Promise<Buffer> {
    let session = this.#sessions.get(page);
    if (!session) {
      session = page.context().newCDPSession(page);
      this.#sessions.set(page, session);
    }
    const { data } = await (await session).send('Page.captureScreenshot', {
      format: 'png',
      clip: { ...clip, scale: 1 },
      captureBeyondViewport: true,
      optimizeForSpeed: true,
    });
    return Buffer.from(data, 'base64');
  }

  async close(): Promise<void> {
    const contexts = [...this.#contexts.values()];
    this.#contexts.clear();
    await Promise.all(contexts.map((e) => e.context.then((c) => c.close()).catch(() => {})));
    const browser = this.#browser;
    this.#browser = null;
    if (browser) await (await browser.catch(() => null))?.close().catch(() => {});
  }
}
