/** Queries a project's pages share (TanStack Query caches them across tabs). */
import { useQuery } from '@tanstack/react-query';
import { client, unwrap } from './api.ts';

export function useManifest(project: string) {
  return useQuery({
    queryKey: ['manifest', project],
    queryFn: async ({ signal }) =>
      unwrap(
        await client.GET('/api/projects/{project}/app/manifest', { params: { path: { project } }, signal }),
      ),
  });
}

export function useRuns(
  project: string,
  filters: { status?: string; trigger?: string; limit?: number } = {},
) {
  return useQuery({
    queryKey: ['runs', project, filters],
    queryFn: async ({ signal }) =>
      unwrap(
        await client.GET('/api/runs', {
          params: {
            query: {
              project,
              limit: filters.limit ?? 50,
              ...(filters.status ? { status: filters.status } : {}),
              ...(filters.trigger ? { trigger: filters.trigger } : {}),
            },
          },
          signal,
        }),
      ),
  });
}

export function useSchedules(project: string, enabled = true) {
  return useQuery({
    queryKey: ['schedules', project],
    queryFn: async ({ signal }) =>
      unwrap(
        await client.GET('/api/projects/{project}/schedules', { params: { path: { project } }, signal }),
      ),
    enabled,
  });
}

/** "Run log", "Sales KPIs": the project's title for tab titles, once the manifest is in. */
export function useProjectTitle(project: string): string {
  const manifest = useManifest(project);
  return manifest.data?.title ?? project;
}
