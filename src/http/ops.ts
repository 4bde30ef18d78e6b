/**
 * Operations endpoints, served by every process (a worker-only or scheduler-only process listens just
 * for these):
 * - `GET /healthz`: live, the process answers (no store access);
 * - `GET /readyz`: ready, the store answers and its migrations are current (503 otherwise);
 * - `GET /metrics`: Prometheus text. It needs a bearer token: `ALMANAC_METRICS_TOKEN` when set (for
 *   scrapers), or an admin's API token.
 */
import { timingSafeEqual } from 'node:crypto';
import { Hono } from 'hono';
import { allowed } from '../domain/access-policy.ts';
import { ForbiddenError } from '../domain/errors.ts';
import { type Metrics, readiness } from '../services/metrics.ts';
import type { Principal, ServiceContext } from '../services/service-context.ts';
import { handleErrors, notFoundResponse } from './errors.ts';
import { tokenOf } from './routes.ts';
import { securityHeaders } from './security-headers.ts';

export interface OpsDeps {
  ctx: ServiceContext;
  metrics: Metrics;
  /** A shared secret scrapers send as a bearer token; null means only admins' API tokens. */
  metricsToken: string | null;
  /** Checks an API token (from `Authorization: Bearer`; /metrics takes no cookie). */
  authenticate: (token: string | null) => Promise<Principal>;
  /** The roles this process runs, for /healthz. */
  roles?: readonly string[];
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function mountOps(app: Hono, deps: OpsDeps): void {
  app.get('/healthz', (c) => c.json({ status: 'ok', roles: deps.roles ?? [] }));
  app.get('/readyz', async (c) => {
    const state = await readiness(deps.ctx);
    return c.json({ status: state.ready ? 'ready' : 'not_ready', ...state }, state.ready ? 200 : 503);
  });
  app.get('/metrics', async (c) => {
    const token = tokenOf(c);
    if (!(deps.metricsToken && token && same(token, deps.metricsToken))) {
      const principal = await deps.authenticate(token);
      if (!allowed('workspace.metrics', null, principal.role)) {
        throw new ForbiddenError('metrics are for admins, or for scrapers holding ALMANAC_METRICS_TOKEN');
      }
    }
    return c.body(await deps.metrics.text(), 200, { 'content-type': deps.metrics.contentType });
  });
}

/**
 * The whole HTTP app of a process without the web role: the operations endpoints only, with the same
 * error mapping as the API (`errors.ts`).
 */
export function createOpsApp(deps: OpsDeps, onError?: (error: unknown) => void): Hono {
  const app = new Hono();
  app.use('*', securityHeaders());
  handleErrors(app, onError);
  mountOps(app, deps);
  app.all('*', (c) =>
    notFoundResponse(
      c,
      `this process runs the roles ${(deps.roles ?? []).join(', ') || 'none'} and serves only /healthz, /readyz and /metrics; the API is on processes with the web role`,
    ),
  );
  return app;
}
