/**
 * Projects: list, create, read with the draft, visibility, the draft itself, and publishing it.
 */
import { z } from 'zod';
import { ACCESS_LEVELS, WORKSPACE_DEFAULTS } from '../../domain/access-policy.ts';
import { ValidationError } from '../../domain/errors.ts';
import * as projects from '../../services/project-service.ts';
import { projectJson, runJson, versionJson } from '../json.ts';
import type { RouteDeps } from '../route-deps.ts';
import { type AnyRoute, route } from '../routes.ts';
import * as S from '../schemas.ts';

/** A publish's files, base64 by path, as bytes; a value that is not base64 is a 400 naming the file. */
function decodeFiles(files: Record<string, string> | undefined): Map<string, Buffer> | undefined {
  if (!files) return undefined;
  const map = new Map<string, Buffer>();
  for (const [path, base64] of Object.entries(files)) {
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(base64))
      throw new ValidationError(`files.${path}`, 'must be base64-encoded');
    map.set(path, Buffer.from(base64, 'base64'));
  }
  return map;
}

/** A project's sharing: what the workspace gets, and each grant. */
const ProjectAccess = z
  .object({
    workspace: z
      .enum(WORKSPACE_DEFAULTS)
      .describe('What every member of the workspace gets (guests excepted)'),
    grants: z.array(
      z.object({
        principal: z.string().describe('user:<id> or group:<id>'),
        access: z.enum(ACCESS_LEVELS),
        reason: z.string().describe('shared, or notification recipient'),
      }),
    ),
  })
  .meta({ id: 'ProjectAccess' });

export function projectRoutes(deps: RouteDeps): AnyRoute[] {
  const { ctx, currentVersion } = deps;
  return [
    route({
      method: 'get',
      path: '/api/projects',
      action: 'project.list',
      summary: 'List projects',
      tag: 'projects',
      responses: { 200: { description: 'Projects of the workspace', schema: S.Project.array() } },
      handler: async ({ c, principal }) => {
        const list = await projects.listProjects(ctx, principal);
        return c.json(await Promise.all(list.map(async (p) => projectJson(p, await currentVersion(p)))));
      },
    }),
    route({
      method: 'post',
      path: '/api/projects',
      action: 'project.create',
      summary: 'Create a project from a notebook',
      tag: 'projects',
      body: S.CreateProjectBody,
      responses: { 201: { description: 'Created', schema: S.ProjectWithDraft } },
      handler: async ({ c, principal, body }) => {
        const project = await projects.createProject(ctx, principal, body);
        return c.json({ ...projectJson(project, null), draftSource: project.draftSource }, 201);
      },
    }),
    route({
      method: 'get',
      path: '/api/projects/:project',
      action: 'project.view_source',
      summary: 'Get a project with its draft',
      tag: 'projects',
      params: S.ProjectParams,
      responses: { 200: { description: 'The project', schema: S.ProjectWithDraft } },
      handler: async ({ c, principal, params }) => {
        const project = await projects.getProject(ctx, principal, params.project);
        return c.json({
          ...projectJson(project, await currentVersion(project)),
          draftSource: project.draftSource,
        });
      },
    }),
    route({
      method: 'put',
      path: '/api/projects/:project/visibility',
      action: 'project.share',
      summary:
        'Who sees the project and its app: workspace (every member) or restricted (admins, its creator, grantees)',
      tag: 'projects',
      params: S.ProjectParams,
      body: S.VisibilityBody,
      responses: { 200: { description: 'The project', schema: S.Project } },
      handler: async ({ c, principal, params, body }) => {
        const project = await projects.setVisibility(ctx, principal, params.project, body.visibility);
        return c.json(projectJson(project, await currentVersion(project)));
      },
    }),
    route({
      method: 'get',
      path: '/api/projects/:project/access',
      action: 'project.share',
      summary: "Who may do what on the project: the workspace default and each user's or group's grant",
      tag: 'projects',
      params: S.ProjectParams,
      responses: { 200: { description: 'The sharing', schema: ProjectAccess } },
      handler: async ({ c, principal, params }) =>
        c.json(await projects.listAccess(ctx, principal, params.project)),
    }),
    route({
      method: 'put',
      path: '/api/projects/:project/access',
      action: 'project.share',
      summary:
        'Set what every member of the workspace gets on the project: none, app_only, can_view or can_edit',
      tag: 'projects',
      params: S.ProjectParams,
      body: z.object({ workspace: z.enum(WORKSPACE_DEFAULTS) }).strict(),
      responses: { 200: { description: 'The sharing', schema: ProjectAccess } },
      handler: async ({ c, principal, params, body }) => {
        await projects.setWorkspaceAccess(ctx, principal, params.project, body.workspace);
        return c.json(await projects.listAccess(ctx, principal, params.project));
      },
    }),
    route({
      method: 'put',
      path: '/api/projects/:project/grants',
      action: 'project.share',
      summary:
        'Share the project with a user or group (or change their level): app_only, can_view, can_edit or full_access',
      tag: 'projects',
      params: S.ProjectParams,
      body: z
        .object({
          principal: z.string().max(200).describe('user:<id> or group:<id>'),
          access: z.enum(ACCESS_LEVELS),
        })
        .strict(),
      responses: { 200: { description: 'The sharing', schema: ProjectAccess } },
      handler: async ({ c, principal, params, body }) => {
        await projects.shareProject(ctx, principal, params.project, body);
        return c.json(await projects.listAccess(ctx, principal, params.project));
      },
    }),
    route({
      method: 'delete',
      path: '/api/projects/:project/grants/:grantee',
      action: 'project.share',
      summary: "Take a user's or group's grant away (user:<id> or group:<id>)",
      tag: 'projects',
      params: z.object({ project: z.string(), grantee: z.string() }),
      responses: { 204: { description: 'Unshared' } },
      handler: async ({ c, principal, params }) => {
        await projects.unshareProject(ctx, principal, params.project, params.grantee);
        return c.body(null, 204);
      },
    }),
    route({
      method: 'put',
      path: '/api/projects/:project/draft',
      action: 'project.edit_draft',
      summary: "Replace the project's draft",
      tag: 'projects',
      params: S.ProjectParams,
      body: S.UpdateDraftBody,
      responses: { 200: { description: 'The updated project', schema: S.ProjectWithDraft } },
      handler: async ({ c, principal, params, body }) => {
        const project = await projects.updateDraft(ctx, principal, params.project, body.source);
        return c.json({
          ...projectJson(project, await currentVersion(project)),
          draftSource: project.draftSource,
        });
      },
    }),
    route({
      method: 'post',
      path: '/api/projects/:project/publish',
      action: 'project.publish',
      summary: 'Publish the draft as a version and start its publish run',
      tag: 'projects',
      params: S.ProjectParams,
      body: S.PublishBody,
      responses: {
        201: { description: 'A new version and its publish run', schema: S.PublishResult },
        200: { description: 'This content was already published', schema: S.PublishResult },
      },
      handler: async ({ c, principal, params, body }) => {
        const result = await projects.publish(ctx, principal, params.project, {
          files: decodeFiles(body.files),
          message: body.message,
        });
        return c.json(
          {
            version: versionJson(result.version),
            created: result.created,
            reused: result.reused,
            madeCurrent: result.madeCurrent,
            defaultRunId: result.defaultRunId,
            run: result.run ? runJson(result.run) : null,
          },
          result.created ? 201 : 200,
        );
      },
    }),
  ];
}
