/**
 * The composition root (STYLE.md, habit 9), the one place that wires parts together: from the resolved
 * config it opens the store and migrates it, builds the service context, the executor (create-almanac.ts),
 * a worker, the housekeeper, the scheduler, the notifier and the HTTP app, and starts the process roles
 * asked for. `almanac serve` runs all roles in one process; with PostgreSQL the same code runs with a
 * subset of roles on many machines (nothing one role needs is kept in another's memory).
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { createAdaptorServer } from '@hono/node-server';
import { ValidationError } from '../domain/errors.ts';
import { Housekeeper } from '../executor/housekeeper.ts';
import { describeIsolation } from '../executor/sandbox.ts';
import { Worker } from '../executor/worker.ts';
import { createOpsApp } from '../http/ops.ts';
import { SESSION_COOKIE } from '../http/routes.ts';
import { createHttpApp, type HttpApp } from '../http/server.ts';
import { EmailChannel } from '../notify/email.ts';
import { Notifier, type NotifierOptions } from '../notify/notifier.ts';
import { findChromium, Screenshots } from '../notify/screenshots.ts';
import { SlackClient } from '../notify/slack.ts';
import { Scheduler } from '../scheduler/scheduler.ts';
import { createMetrics } from '../services/metrics.ts';
import * as projects from '../services/project-service.ts';
import type { Principal, ServiceContext } from '../services/service-context.ts';
import {
  authenticate,
  bootstrap,
  createLoginCode,
  DEFAULT_WORKSPACE,
  firstAdmin,
} from '../services/workspace-service.ts';
import type { AlmanacConfig } from './config.ts';
import { type Almanac, createAlmanac } from './create-almanac.ts';
import { createLogger } from './logger.ts';
import { openServices } from './open-services.ts';
import { collectProjectFiles } from './project-files.ts';
import { FileClock } from './test-clock.ts';

/**
 * What one process runs (`--role`, ALMANAC_ROLES): the HTTP server, a worker, the scheduler, the
 * notifier. Not a user's role in a workspace: that is `WorkspaceRole`.
 */
export const PROCESS_ROLES = ['web', 'worker', 'scheduler', 'notifier'] as const;
export type ProcessRole = (typeof PROCESS_ROLES)[number];

export interface ServerOptions {
  roles?: readonly ProcessRole[];
  /** The clock services use. Tests pass a fake one. */
  now?: () => Date;
  /** Where the built web app is. @default `<package>/web/dist` */
  webDir?: string | null;
  /** Listen on the configured port. @default true */
  listen?: boolean;
  /** Worker options for tests. */
  worker?: { id?: string; leaseMs?: number; heartbeatMs?: number; concurrency?: number };
  /** Notifier options for tests (retry delays, screenshots, Slack). */
  notifier?: Partial<
    Pick<
      NotifierOptions,
      'retryBaseMs' | 'screenshots' | 'slack' | 'concurrency' | 'leaseMs' | 'webhookTimeoutMs'
    >
  >;
  /** Housekeeping interval. @default 5000 */
  housekeepingMs?: number;
  /** Start the worker and housekeeping loops. Tests turn this off and drive them with drain()/tick(). @default true */
  autostart?: boolean;
}

export interface AlmanacServer {
  readonly config: Readonly<AlmanacConfig>;
  readonly ctx: ServiceContext;
  readonly almanac: Almanac;
  readonly http: HttpApp;
  readonly worker: Worker | null;
  readonly housekeeper: Housekeeper;
  readonly scheduler: Scheduler | null;
  readonly notifier: Notifier | null;
  /** The first admin's token when this start created it, else null. */
  readonly adminToken: string | null;
  /** Base URL once listening. */
  url: string | null;
  /** The admin principal of the default workspace (seeding, tests). */
  admin(): Promise<Principal>;
  /**
   * A one-time link (path and query) that signs a browser in as the default workspace's first admin
   * and opens `next`: its login code works once, within 10 minutes (`npm start` prints it).
   */
  loginLink(next?: string): Promise<string>;
  /** Creates or updates a project from a notebook file and publishes it with its folder's files. */
  seed(notebookPath: string): Promise<projects.PublishResult & { project: string }>;
  stop(): Promise<void>;
}

const PACKAGE_ROOT = resolve(import.meta.dirname, '../..');

export async function createServer(
  config: Readonly<AlmanacConfig>,
  options: ServerOptions = {},
): Promise<AlmanacServer> {
  const roles = new Set(options.roles ?? PROCESS_ROLES);
  mkdirSync(config.dataDir, { recursive: true });
  // The port is bound before anything else happens (issue 15, bug 2: a start that failed on
  // EADDRINUSE after creating the first admin printed no token, locking the user out). Requests that
  // arrive before the server is ready get a 503 that says so.
  let fetchHandler: ((request: Request) => Response | Promise<Response>) | null = null;
  const server =
    options.listen === false
      ? null
      : await listen(config, (request) => (fetchHandler ? fetchHandler(request) : starting()));
  try {
    return await assemble(config, options, roles, server, (fetch) => {
      fetchHandler = fetch;
    });
  } catch (error) {
    await new Promise<void>((done) => (server ? server.close(() => done()) : done()));
    throw error;
  }
}

function starting(): Response {
  return new Response(
    JSON.stringify({ error: { code: 'unavailable', message: 'almanac is starting; try again in a moment' } }),
    { status: 503, headers: { 'Content-Type': 'application/json', 'Retry-After': '1' } },
  );
}

/** Binds the configured host and port, naming the setting to change when it cannot. */
async function listen(
  config: Readonly<AlmanacConfig>,
  fetch: (request: Request) => Response | Promise<Response>,
): Promise<Server> {
  const server = createAdaptorServer({ fetch }) as Server;
  try {
    await new Promise<void>((ready, fail) => {
      server.once('error', fail);
      server.listen(config.port, config.host, () => {
        server.off('error', fail);
        ready();
      });
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new ValidationError(
        code === 'EADDRNOTAVAIL' ? '--host' : '--port',
        `cannot listen on ${config.host}:${config.port} (${code}${code === 'EADDRINUSE' ? ': another process uses it' : ''}); pass --port/--host or set ALMANAC_PORT/ALMANAC_HOST`,
      );
    }
    throw error;
  }
  return server;
}

async function assemble(
  config: Readonly<AlmanacConfig>,
  options: ServerOptions,
  roles: ReadonlySet<string>,
  server: Server | null,
  serveWith: (fetch: (request: Request) => Response | Promise<Response>) => void,
): Promise<AlmanacServer> {
  // The reliability suite's shared clock (app/test-clock.ts); tests in one process pass `now` instead.
  const fileClock = !options.now && config.testClock ? new FileClock(config.testClock) : null;
  if (fileClock) options = { ...options, now: fileClock.now };
  // JSON logs go to stderr, so stdout carries only what a person reads (URLs, the first token).
  const log = createLogger(config.logLevel);
  const services = await openServices(config.databaseUrl, {
    ...(options.now ? { now: options.now } : {}),
    secretKey: (dialect) => secretKey(config, dialect),
    auditRetentionDays: config.auditRetentionDays,
  });
  const { ctx } = services;
  const boot = await bootstrap(ctx, { adminToken: config.adminToken, adminEmail: config.adminEmail });
  const versionsDir = join(config.dataDir, 'versions');
  mkdirSync(versionsDir, { recursive: true });
  const almanac = await createAlmanac(config, { projectDirs: [versionsDir] });
  if (roles.has('worker')) {
    // Once, at start: how cells are isolated from this server, as a warning where they are not.
    const isolation = describeIsolation(almanac.executor.isolation, [config.runDir, versionsDir]);
    log[isolation.warn ? 'warn' : 'info']({ isolated: isolation.isolated }, isolation.line);
  }
  const metrics = createMetrics(ctx, { roles: [...roles] });
  const worker = roles.has('worker')
    ? new Worker({
        ctx,
        executor: almanac.executor,
        versionsDir,
        concurrency: options.worker?.concurrency ?? config.workerConcurrency,
        leaseMs: options.worker?.leaseMs ?? config.leaseMs,
        ...(options.worker?.heartbeatMs ? { heartbeatMs: options.worker.heartbeatMs } : {}),
        ...(options.worker?.id ? { id: options.worker.id } : {}),
        log,
        metrics,
      })
    : null;
  const housekeeper = new Housekeeper(ctx, {
    intervalMs: options.housekeepingMs ?? config.housekeepingMs,
    log,
    metrics,
  });
  const scheduler = roles.has('scheduler')
    ? new Scheduler(ctx, { databaseClock: options.now === undefined, log, metrics })
    : null;
  const email = new EmailChannel({ outboxDir: config.outboxDir });
  const slack = new SlackClient({ apiUrl: config.slackApiUrl });
  const chromiumPath = roles.has('notifier') ? findChromium(config.chromium) : null;
  if (roles.has('notifier') && !roles.has('web') && !config.webUrl && !config.publicUrl) {
    log.warn(
      {},
      'a notifier without the web role renders screenshots from a web process: set ALMANAC_WEB_URL (or ALMANAC_PUBLIC_URL) to one',
    );
  }
  if (roles.has('notifier') && !chromiumPath) {
    log.warn(
      { chromium: config.chromium ?? '/usr/bin/chromium' },
      'no Chromium found: notifications go out without screenshots (install chromium or set ALMANAC_CHROMIUM)',
    );
  }
  const screenshots = chromiumPath
    ? new Screenshots({
        executablePath: chromiumPath,
        // Pages are rendered by a web process: this one, or (without the web role) ALMANAC_WEB_URL.
        baseUrl: () =>
          (roles.has('web') ? self.url : null) ??
          config.webUrl ??
          config.publicUrl ??
          `http://${config.host}:${config.port}`,
        cookieName: SESSION_COOKIE,
      })
    : null;
  const notifier = roles.has('notifier')
    ? new Notifier({
        ctx,
        email,
        // Links use the public URL, or this server's own address once it listens.
        get publicUrl() {
          return config.publicUrl ?? self.url ?? `http://${config.host}:${config.port}`;
        },
        slack,
        screenshots,
        webhookTimeoutMs: config.webhookTimeoutMs,
        ...(options.notifier ?? {}),
        log,
        metrics,
      })
    : null;
  const webDir = options.webDir === undefined ? join(PACKAGE_ROOT, 'web', 'dist') : options.webDir;
  const http = createHttpApp({
    ctx,
    webDir,
    notify: { slack, outbox: email },
    mail: email,
    ops: { metrics, metricsToken: config.metricsToken, roles: [...roles] },
    trustProxy: config.trustProxy,
    publicUrl: config.publicUrl,
    maxBodyBytes: config.maxBodyBytes,
    maxPublishBytes: config.maxPublishBytes,
    onError: (error, c) =>
      log.error({ err: error, method: c.req.method, path: c.req.path }, 'request failed'),
  });

  const self: AlmanacServer = {
    config,
    ctx,
    almanac,
    http,
    worker,
    housekeeper,
    scheduler,
    notifier,
    adminToken: boot.adminToken,
    url: null,
    admin() {
      return firstAdmin(ctx, DEFAULT_WORKSPACE);
    },
    async loginLink(next = '/') {
      const { code } = await createLoginCode(ctx, (await self.admin()).userId);
      return `/login?code=${encodeURIComponent(code)}&next=${encodeURIComponent(next)}`;
    },
    async seed(notebookPath) {
      const source = readFileSync(notebookPath, 'utf8');
      const principal = await self.admin();
      const files = collectProjectFiles(notebookPath);
      const slug = projects.slugify(notebookPath.replace(/^.*\//, '').replace(/\.md$/, ''));
      const existing = await projects.listProjects(ctx, principal);
      if (existing.some((p) => p.slug === slug)) await projects.updateDraft(ctx, principal, slug, source);
      else await projects.createProject(ctx, principal, { source, slug, file: notebookPath });
      return { ...(await projects.publish(ctx, principal, slug, { files })), project: slug };
    },
    async stop() {
      fileClock?.close();
      // Draining: every loop stops claiming at once; runs in progress get the grace period to finish
      // (then they are stopped and handed back to the queue), while the store is still open.
      const draining = worker?.stop(config.shutdownGraceMs);
      await new Promise<void>((done) => (server ? server.close(() => done()) : done()));
      server?.closeAllConnections?.();
      await scheduler?.stop();
      await notifier?.stop();
      await screenshots?.close();
      email.close();
      await housekeeper.stop();
      await draining;
      await almanac.close();
      await services.close();
    },
  };

  if (options.autostart !== false) {
    worker?.start();
    housekeeper.start();
    await scheduler?.start();
    notifier?.start();
    // When the shared test clock moves, every loop acts on the new time at once.
    // (A worker heartbeats first: in real time it would have renewed its leases on the way.)
    fileClock?.onChange(() => {
      void worker?.heartbeat();
      void scheduler?.tick().catch(() => {});
      void housekeeper.tick().catch(() => {});
      void notifier?.tick();
      void worker?.tick();
    });
  }
  // Every process listens: with the web role for everything, else for /healthz, /readyz and /metrics.
  if (server) {
    serveWith(
      roles.has('web')
        ? http.app.fetch
        : createOpsApp(
            {
              ctx,
              metrics,
              metricsToken: config.metricsToken,
              roles: [...roles],
              authenticate: (token) => authenticate(ctx, token),
            },
            (error) => log.error({ err: error }, 'request failed'),
          ).fetch,
    );
    const address = server.address() as AddressInfo;
    self.url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${address.port}`;
    log.info({ address: self.url, roles: [...roles], store: ctx.dialect }, 'almanac is serving');
  }
  return self;
}

/**
 * The key for secrets at rest: ALMANAC_SECRET_KEY (any string; hashed to 32 bytes), or on the embedded
 * store a random key kept in `<dataDir>/secret.key` (mode 600). Several machines on PostgreSQL must
 * share one key, so there it is required.
 */
function secretKey(config: Readonly<AlmanacConfig>, dialect: 'sqlite' | 'postgres'): Buffer {
  if (config.secretKey) return createHash('sha256').update(config.secretKey).digest();
  if (dialect === 'postgres') {
    throw new ValidationError(
      'ALMANAC_SECRET_KEY',
      'is required with a PostgreSQL DATABASE_URL, so every machine encrypts and decrypts secrets with the same key; set it to a long random string',
    );
  }
  const file = join(config.dataDir, 'secret.key');
  if (!existsSync(file)) {
    writeFileSync(file, randomBytes(32).toString('base64'), { mode: 0o600 });
    chmodSync(file, 0o600);
  }
  return createHash('sha256').update(readFileSync(file, 'utf8').trim()).digest();
}
