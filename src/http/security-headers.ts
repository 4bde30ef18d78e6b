/**
 * The HTTP layer's browser defences, in one place (docs/security.md):
 * - headers on every response: no framing, no MIME sniffing, no cross-site referrers, and a strict
 *   Content-Security-Policy on HTML (a policy that loads nothing on everything else);
 * - where a request came from: its origin (behind a trusted proxy, from `X-Forwarded-*`), whether it
 *   came over https, and whether a cookie-authenticated change comes from this origin (CSRF);
 * - `safeNext`: the only redirect targets a login accepts are paths on this origin.
 */
import type { Context, MiddlewareHandler } from 'hono';

/**
 * The Content-Security-Policy of every HTML page (the web app, app pages, the screenshot browser's
 * pages). Scripts come only from this origin's built files, so a notebook's output, rendered as data,
 * cannot run script; and `connect-src 'self'` keeps a script that does run from sending data away.
 * The web app is built to work under exactly this policy: change it with the web app, not alone.
 */
export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; frame-src 'self' blob: data:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** The policy of everything that is not HTML (JSON, event streams, files): it loads nothing. */
export const API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'";

/** Headers every response carries, whatever its route, status or type. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'same-origin',
});

/**
 * Pages get the web app's policy; everything else, and anything under /api/ whatever its type (an
 * outbox attachment may be HTML that a notebook wrote), gets the policy that runs and loads nothing.
 */
function apply(headers: Headers, path: string): void {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) headers.set(name, value);
  const page = /^text\/html\b/i.test(headers.get('content-type') ?? '') && !path.startsWith('/api/');
  headers.set('Content-Security-Policy', page ? CONTENT_SECURITY_POLICY : API_CONTENT_SECURITY_POLICY);
}

/**
 * Sets the security headers on every response, including errors and 404s (Hono hands the error
 * handler's response back through the middleware) and event streams (their headers are sent when the
 * handler returns, before the stream's first byte).
 */
export function securityHeaders(): MiddlewareHandler {
  return async (c, next) => {
    await next();
    try {
      apply(c.res.headers, c.req.path);
    } catch {
      // A response built with immutable headers (a fetched one): copy it with headers we can set.
      const copy = new Response(c.res.body, c.res);
      apply(copy.headers, c.req.path);
      c.res = copy;
    }
  };
}

export interface OriginOptions {
  /** Take the scheme and host from `X-Forwarded-Proto`/`X-Forwarded-Host` (a proxy in front sets them). */
  trustProxy: boolean;
  /** The public URL people use (`ALMANAC_PUBLIC_URL`), also accepted as this server's origin. */
  publicUrl?: string | null;
}

function firstValue(header: string | undefined): string | undefined {
  return header?.split(',')[0]?.trim() || undefined;
}

/** Whether the request came over https: the URL's scheme, or behind a trusted proxy its header. */
/** The client's address: the socket's, or (behind a trusted proxy) X-Forwarded-For's first hop. */
export function clientIp(c: Context, origin: OriginOptions): string {
  if (origin.trustProxy) {
    const forwarded = c.req.header('x-forwarded-for')?.split(',')[0]?.trim();
    if (forwarded) return forwarded;
  }
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
  return env?.incoming?.socket?.remoteAddress ?? 'unknown';
}

export function isHttps(c: Context, options: OriginOptions): boolean {
  if (options.trustProxy) {
    const proto = firstValue(c.req.header('x-forwarded-proto'));
    if (proto) return proto.toLowerCase() === 'https';
  }
  return new URL(c.req.url).protocol === 'https:';
}

/** The origin the client addressed (scheme, host, port). */
export function requestOrigin(c: Context, options: OriginOptions): string {
  const url = new URL(c.req.url);
  if (options.trustProxy) {
    const host = firstValue(c.req.header('x-forwarded-host'));
    if (host) {
      try {
        return new URL(`${isHttps(c, options) ? 'https' : 'http'}://${host}`).origin;
      } catch {
        // A malformed header: fall back to the URL the server saw.
      }
    }
    if (isHttps(c, options)) url.protocol = 'https:';
  }
  return url.origin;
}

/** The origins a browser on this server sends: the request's own, and the configured public URL's. */
function ownOrigins(c: Context, options: OriginOptions): Set<string> {
  const origins = new Set([requestOrigin(c, options), new URL(c.req.url).origin]);
  if (options.publicUrl) origins.add(new URL(options.publicUrl).origin);
  return origins;
}

/**
 * Whether a cookie-authenticated state change comes from this origin. Browsers send `Origin` on every
 * POST, PUT, PATCH and DELETE; when it is missing, `Sec-Fetch-Site: same-origin` will do. A request
 * with neither is refused: a browser that sends no Origin cannot be told apart from a forged one.
 */
export function sameOriginRequest(
  c: Context,
  options: OriginOptions,
): { ok: true } | { ok: false; why: string } {
  const origin = c.req.header('origin');
  if (origin !== undefined) {
    return ownOrigins(c, options).has(origin)
      ? { ok: true }
      : { ok: false, why: `it comes from another origin (${origin.slice(0, 100)})` };
  }
  const site = c.req.header('sec-fetch-site');
  if (site === 'same-origin') return { ok: true };
  return site
    ? { ok: false, why: `it comes from another site (Sec-Fetch-Site: ${site.slice(0, 40)})` }
    : { ok: false, why: 'it carries neither an Origin nor a Sec-Fetch-Site header' };
}

/**
 * The path a login may redirect to: `next` when it is a path on `origin`, else `/`. It is resolved
 * the way a browser resolves a Location header, and refused when it has a backslash (browsers read
 * `/\evil` as `//evil`), a control character (CRLF would split the header), does not start with one
 * `/`, or resolves to another origin. Never throws.
 */
export function safeNext(next: string | undefined | null, origin: string): string {
  if (!next) return '/';
  // Control characters (CR, LF, tab, NUL…) and backslashes, literal or percent-encoded.
  if (/[\u0000-\u001f\u007f\\]/.test(next) || /%(?:0[0-9a-f]|1[0-9a-f]|7f|5c)/i.test(next)) return '/';
  if (!next.startsWith('/') || next.startsWith('//')) return '/';
  try {
    const base = new URL(origin);
    const url = new URL(next, base);
    if (url.origin !== base.origin) return '/';
    const path = `${url.pathname}${url.search}${url.hash}`;
    return path.startsWith('/') && !path.startsWith('//') ? path : '/';
  } catch {
    return '/';
  }
}
