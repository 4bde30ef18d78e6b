/** The signed-in user (`/api/me`), cached for the whole app; an error (401) means signed out. */
import { useQuery } from '@tanstack/react-query';
import { client, unwrap } from './api.ts';

export function useMe() {
  return useQuery({
    queryKey: ['me'],
    queryFn: async ({ signal }) => unwrap(await client.GET('/api/me', { signal })),
    retry: false,
    staleTime: 5 * 60_000,
  });
}
