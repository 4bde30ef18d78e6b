/**
 * Versions of a project: the list, one with its source, and making one current (rollback).
 */
import * as projects from '../../services/project-service.ts';
import * as runs from '../../services/run-service.ts';
import { runJson, versionJson, versionListingJson } from '../json.ts';
import type { RouteDeps } from '../route-deps.ts';
import { type AnyRoute, route } from '../routes.ts';
import * as S from '../schemas.ts';

export function versionRoutes(deps: RouteDeps): AnyRoute[] {
  const { ctx } = deps;
  return [
    route({
      method: 'get',
      path: '/api/projects/:project/versions',
      action: 'project.view_source',
      summary: 'List versions, newest first, with who published each, its publish run and which is current',
      tag: 'projects',
      params: S.ProjectParams,
      responses: { 200: { description: 'Versions', schema: S.VersionListing.array() } },
      handler: async ({ c, principal, params }) =>
        c.json((await projects.listVersions(ctx, principal, params.project)).map(versionListingJson)),
    }),
    route({
      method: 'post',
      path: '/api/projects/:project/versions/:version/make-current',
      action: 'project.rollback',
      summary:
        "Roll back (or forward): make a version current. Its last good run's snapshot becomes the app's default state, or a publish run is queued",
      tag: 'projects',
      params: S.VersionParams,
      responses: { 200: { description: 'The version is current', schema: S.MakeCurrentResult } },
      handler: async ({ c, principal, params }) => {
        const result = await projects.makeCurrent(ctx, principal, params.project, params.version);
        return c.json({
          version: versionJson(result.version),
          madeCurrent: result.madeCurrent,
          defaultRunId: result.defaultRunId,
          run: result.run ? runJson(result.run) : null,
        });
      },
    }),
    route({
      method: 'get',
      path: '/api/projects/:project/versions/:version',
      action: 'project.view_source',
      summary: 'Get a version with its notebook source',
      tag: 'projects',
      params: S.VersionParams,
      responses: { 200: { description: 'The version', schema: S.VersionWithSource } },
      handler: async ({ c, principal, params }) => {
        const found = await projects.getVersion(ctx, principal, params.project, params.version);
        const files = await runs.loadVersionFiles(ctx, found.id);
        return c.json({ ...versionJson(found), source: found.source, files: [...files.keys()].sort() });
      },
    }),
  ];
}
