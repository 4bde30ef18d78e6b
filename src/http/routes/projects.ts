/**
 * Projects: list, create, read with the draft, visibility, the draft itself, and publishing it.
 */
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

export function projectRoutes(deps: RouteDeps): AnyRoute[] {
  const { ctx, currentVersion } = deps;
  return [
    route({
      method: 'get',
      path: '/api/projects',
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
      method: 'put',
      path: '/api/projects/:project/draft',
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
