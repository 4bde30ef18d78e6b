/**
 * What every resource's route module (`routes/*.ts`) gets from `createHttpApp`: the services' context
 * and the server's shared, per-process parts (caches, cookie settings, the package version).
 */
import type { Context } from 'hono';
import type { Project, Version } from '../domain/project.ts';
import type { ServiceContext } from '../services/service-context.ts';
import type { StartedSession } from '../services/workspace-service.ts';
import type { HotPathCache } from './hot-path-cache.ts';
import type { OriginOptions } from './security-headers.ts';
import type { SnapshotCache } from './snapshots.ts';

export interface RouteDeps {
  ctx: ServiceContext;
  /** The package's version (package.json), reported by /api/health and the OpenAPI document. */
  version: string;
  /** Where people reach the server, if configured (login links use it). */
  publicUrl: string | null;
  /** How to tell this server's own origin (CSRF, Secure cookies). */
  origin: OriginOptions;
  hot: HotPathCache;
  snapshots: SnapshotCache;
  /** Sets the session cookie: HttpOnly, SameSite=Lax, Secure when the request came over https. */
  setSessionCookie(c: Context, session: StartedSession): void;
  /** The project's current version: the one schedules run and the app shows. */
  currentVersion(project: Project): Promise<Version | null>;
}
