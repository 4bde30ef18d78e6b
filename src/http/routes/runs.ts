/**
 * Runs: start one or many, the run log, one run with its cells, cancel, its snapshot, live progress.
 */
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import { isFinal } from '../../domain/run.ts';
import { authorizeAction } from '../../services/authorize.ts';
import * as runs from '../../services/run-service.ts';
import { runDetailsJson, runJson, runSummaryJson } from '../json.ts';
import type { RouteDeps } from '../route-deps.ts';
import { type AnyRoute, route } from '../routes.ts';
import * as S from '../schemas.ts';
import { sendSnapshot } from '../snapshots.ts';

export function runRoutes(deps: RouteDeps): AnyRoute[] {
  const { ctx, snapshots } = deps;
  return [
    route({
      method: 'post',
      path: '/api/projects/:project/runs',
      action: 'project.rerun_private',
      summary: 'Start a run: API-triggered (context api-triggered), or a private re-run in context app',
      tag: 'runs',
      params: S.ProjectParams,
      body: S.CreateRunBody,
      responses: { 201: { description: 'The queued run', schema: S.Run } },
      handler: async ({ c, principal, params, body }) => {
        // A private re-run needs App Only (the route's action); an API-triggered one, Can Edit.
        if (!body.private)
          await authorizeAction(ctx, principal, 'project.run_api', { project: params.project });
        const run = await runs.enqueueRun(ctx, principal, params.project, {
          inputs: body.inputs,
          version: body.version,
          trigger: body.private ? 'manual' : 'api',
          context: body.private ? 'app' : 'api-triggered',
          private: body.private ?? false,
          notifications: body.notifications,
        });
        return c.json(runJson(run), 201);
      },
    }),
    route({
      method: 'post',
      path: '/api/projects/:project/runs/batch',
      action: 'project.run_api',
      summary:
        'Queue many API-triggered runs at once (up to 1,000, one statement and one wake-up); all or none',
      tag: 'runs',
      params: S.ProjectParams,
      body: S.CreateRunsBody,
      responses: {
        201: { description: 'The queued runs, in request order', schema: z.object({ runs: z.array(S.Run) }) },
      },
      handler: async ({ c, principal, params, body }) => {
        const queued = await runs.enqueueRuns(
          ctx,
          principal,
          params.project,
          {
            version: body.version,
            trigger: 'api',
            context: 'api-triggered',
            notifications: body.notifications,
          },
          body.runs.map((r) => r.inputs),
        );
        return c.json({ runs: queued.map(runJson) }, 201);
      },
    }),
    route({
      method: 'get',
      path: '/api/runs',
      action: 'project.view_runs',
      summary: 'The run log: list runs, newest first, with filters and keyset pagination',
      tag: 'runs',
      ticket: 'project',
      query: S.ListRunsQuery,
      responses: { 200: { description: 'A page of runs', schema: S.RunPage } },
      handler: async ({ c, principal, query }) => {
        const page = await runs.listRuns(ctx, principal, query);
        return c.json({ runs: page.runs.map(runSummaryJson), nextCursor: page.nextCursor });
      },
    }),
    route({
      method: 'get',
      path: '/api/runs/:run',
      action: 'run.view',
      summary: 'A run with its per-cell progress',
      tag: 'runs',
      ticket: 'run',
      params: S.RunParams,
      responses: { 200: { description: 'The run', schema: S.RunWithCells } },
      handler: async ({ c, principal, params }) =>
        c.json(runDetailsJson(await runs.getRun(ctx, principal, params.run))),
    }),
    route({
      method: 'post',
      path: '/api/runs/:run/cancel',
      action: 'run.cancel',
      summary: "Cancel a queued or running run (a running run's process is killed)",
      tag: 'runs',
      params: S.RunParams,
      responses: { 200: { description: 'The run after the request', schema: S.Run } },
      handler: async ({ c, principal, params }) =>
        c.json(runJson(await runs.cancelRun(ctx, principal, params.run))),
    }),
    route({
      method: 'get',
      path: '/api/runs/:run/snapshot',
      action: 'run.view',
      summary: "A finished run's snapshot: the app as it was at that run",
      tag: 'runs',
      ticket: 'run',
      params: S.RunParams,
      responses: { 200: { description: 'The snapshot (gzip, ETag)' }, 304: { description: 'Not modified' } },
      handler: async ({ c, principal, params }) => {
        await runs.getRun(ctx, principal, params.run);
        const stored = await snapshots.load(params.run, () => runs.getSnapshot(ctx, principal, params.run));
        return sendSnapshot(c, stored!, 'private, max-age=31536000, immutable');
      },
    }),
    route({
      method: 'get',
      path: '/api/runs/:run/events',
      action: 'run.view',
      summary: 'Live progress as Server-Sent Events: a `run` event per change, then `end`',
      tag: 'runs',
      ticket: 'run',
      params: S.RunParams,
      responses: {
        200: {
          description: 'text/event-stream of RunWithCells',
          contentType: 'text/event-stream',
          schema: S.RunWithCells,
        },
      },
      handler: async ({ c, principal, params }) => {
        const first = await runs.getRun(ctx, principal, params.run);
        return streamSSE(c, async (stream) => {
          let pending = true;
          let wake: (() => void) | null = null;
          const off = ctx.wakeups.subscribe('run_progress', (id) => {
            if (id !== params.run) return;
            pending = true;
            wake?.();
          });
          stream.onAbort(() => {
            off();
            wake?.();
          });
          try {
            let details = first;
            let id = 0;
            while (!stream.aborted) {
              if (pending) {
                pending = false;
                if (id > 0) {
                  // Access is asked again on every change: a caller who lost it gets no more events
                  // (the stream closes, and a reconnect answers 403 or 404).
                  const still = await authorizeAction(ctx, principal, 'run.view', { run: params.run }).then(
                    () => true,
                    () => false,
                  );
                  if (!still) break;
                  details = await runs.getRun(ctx, principal, params.run);
                }
                await stream.writeSSE({
                  event: 'run',
                  id: String(id++),
                  data: JSON.stringify(runDetailsJson(details)),
                });
                if (isFinal(details.run.status)) {
                  await stream.writeSSE({ event: 'end', data: details.run.status });
                  break;
                }
              }
              // Wait for the next change; a keep-alive comment every 15 s holds proxies open.
              await new Promise<void>((resolve) => {
                wake = resolve;
                setTimeout(resolve, 15_000).unref();
              });
              wake = null;
              if (!pending && !stream.aborted) await stream.write(': keep-alive\n\n');
            }
          } finally {
            off();
          }
        });
      },
    }),
  ];
}
