/** Where sign-in goes and comes back from: `/sign-in?next=<a path on this site>`. */

/**
 * Where to go after signing in: `next` when it is a path on this site, else home. `//evil.example` and
 * `/\evil.example` are other sites to a browser, so they go home too.
 */
export function safeNext(next: string | null): string {
  if (!next?.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '/';
  return next;
}

/** The sign-in page's address that comes back to `path` afterwards. */
export function signInHref(path: string): string {
  return path === '/' ? '/sign-in' : `/sign-in?next=${encodeURIComponent(path)}`;
}
