/**
 * The URL of a PostgreSQL connection, checked with the WHATWG URL parser rather than a pattern:
 * a port that is not a number, out of 1-65535 or a URL without a host is refused where it is given,
 * not when a run first connects (issue 14).
 */
import { MAX_URL_LENGTH } from './limits.ts';

const SCHEMES = new Set(['postgres:', 'postgresql:']);

/**
 * Whether `location` names PostgreSQL (a `postgres://` or `postgresql://` URL) rather than a SQLite
 * file: the one test for it, wherever a store location or a connection URL is told apart.
 */
export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

/** What is wrong with a connection URL, or null. Never echoes the URL (it may carry a password). */
export function connectionUrlProblem(url: string): string | null {
  const shape = 'must be a postgres://user:password@host:port/database URL';
  if (url.length > MAX_URL_LENGTH) return `is longer than ${MAX_URL_LENGTH} characters (MAX_URL_LENGTH)`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Non-special schemes accept any port text except a valid-looking one out of range; both land here.
    return `${shape}; it could not be parsed (is the port a number from 1 to 65535?)`;
  }
  if (!SCHEMES.has(parsed.protocol))
    return `${shape}; the scheme is '${parsed.protocol.replace(/:$/, '')}', not postgres`;
  if (parsed.hostname === '') return `${shape}; the host is missing`;
  if (parsed.port !== '') {
    const port = Number(parsed.port);
    if (!/^\d+$/.test(parsed.port) || port < 1 || port > 65535)
      return `${shape}; the port must be a number from 1 to 65535`;
  }
  return null;
}
