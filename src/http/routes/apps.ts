/**
 * Apps: opening one (its cached default state, or a fresh private run), its manifest and settings.
 */
import { AlmanacError } from '../../domain/errors.ts';
import * as projects from '../../services/project-service.ts';
import * as runs from '../../services/run-service.ts';
import { runJson } from '../json.ts';
import type { RouteDeps } from '../route-deps.ts';
import { type AnyRoute, route } from '../routes.ts';
import * as S from '../schemas.ts';
import { sendSnapshot } from '../snapshots.ts';

export function appRoutes(deps: RouteDeps): AnyRoute[] {
  const { ctx, hot, snapshots, currentVersion } = deps;
  return [
    route({
      method: 'get',
      path: '/api/projects/:project/app',
      action: 'project.view_app',
      summary:
        "Open the app: its cached default state, or a fresh run when 'show results from the last run' is off",
      tag: 'apps',
      params: S.ProjectParams,
      responses: {
        200: {
          description: 'The default state: the snapshot of the last publish or scheduled run (gzip, ETag)',
        },
        202: { description: 'A private run in context app was started', schema: S.AppOpenStarted },
        304: { description: 'Not modified (If-None-Match)' },
      },
      handler: async ({ c, principal, params }) => {
        const key = `${principal.workspaceId}/${params.project}`;
        const cached = hot.state(key);
        if (cached) {
          const stored = snapshots.get(cached.runId);
          if (stored) return sendSnapshot(c, stored, 'private, no-cache', { 'X-Almanac-Run': cached.runId });
        }
        const state = await runs.openApp(ctx, principal, params.project);
        switch (state.kind) {
          case 'snapshot': {
            const stored = await snapshots.load(state.runId, () =>
              runs.defaultStateSnapshot(ctx, state.runId),
            );
            if (!stored)
              throw new AlmanacError('not_found', 'the default state was pruned; publish again', 404);
            // Only apps every member sees are cached for the workspace; a restricted one is checked each time.
            if (state.project.visibility === 'workspace') {
              hot.setState(key, { runId: state.runId, projectId: state.project.id });
            }
            return sendSnapshot(c, stored, 'private, no-cache', { 'X-Almanac-Run': state.runId });
          }
          case 'run':
            return c.json({ kind: 'run', run: runJson(state.run) }, 202);
          case 'empty':
            throw new AlmanacError(
              'not_found',
              `app '${state.project.slug}' has no default state yet: ${state.reason}`,
              404,
            );
        }
      },
    }),
    route({
      method: 'get',
      path: '/api/projects/:project/app/manifest',
      action: 'project.view_app',
      summary: "What an app page needs besides the snapshot: the published version's title and inputs",
      tag: 'apps',
      ticket: 'project',
      params: S.ProjectParams,
      responses: { 200: { description: 'The manifest', schema: S.AppManifest } },
      handler: async ({ c, principal, params }) => {
        const project = await projects.getProject(ctx, principal, params.project);
        const latest = await currentVersion(project);
        const settings = await projects.getAppSettings(ctx, principal, project.id);
        const notebook = latest ? await runs.notebookOfVersion(latest.id, latest.source) : null;
        return c.json({
          project: project.slug,
          title: notebook?.title ?? project.title,
          description: notebook?.description ?? '',
          version: latest?.number ?? null,
          inputs: notebook?.inputs ?? [],
          hideCode: notebook?.app.hideCode ?? true,
          showLastRun: settings.showLastRun,
          defaultRunId: settings.defaultRunId,
        });
      },
    }),
    route({
      method: 'get',
      path: '/api/projects/:project/app/settings',
      action: 'project.view_source',
      summary: 'App settings',
      tag: 'apps',
      params: S.ProjectParams,
      responses: { 200: { description: 'Settings', schema: S.AppSettings } },
      handler: async ({ c, principal, params }) => {
        const { projectId: _, ...settings } = await projects.getAppSettings(ctx, principal, params.project);
        return c.json(settings);
      },
    }),
    route({
      method: 'patch',
      path: '/api/projects/:project/app/settings',
      action: 'project.settings',
      summary: "Change app settings ('show results from the last run', retention)",
      tag: 'apps',
      params: S.ProjectParams,
      body: S.UpdateAppSettingsBody,
      responses: { 200: { description: 'Settings', schema: S.AppSettings } },
      handler: async ({ c, principal, params, body }) => {
        const { projectId: _, ...settings } = await projects.updateAppSettings(
          ctx,
          principal,
          params.project,
          body,
        );
        return c.json(settings);
      },
    }),
  ];
}
