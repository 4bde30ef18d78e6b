/**
 * A small route table over Hono: each route declares its params, query and body schemas and its
 * responses once. `mount` validates requests against them (a 400 that names the field), checks the
 * caller's credential (an API token, a browser session, or a screenshot's view ticket, each with what
 * it may do), refuses cross-site changes made with a cookie (CSRF) and bodies that are not JSON, and
 * `openApiDocument` turns the same table into the OpenAPI 3.1 document.
 */
import type { Context, Hono } from 'hono';
import { getCookie } from 'hono/cookie';
import { z } from 'zod';
import type { Action } from '../domain/access-policy.ts';
import { ForbiddenError, UnsupportedMediaTypeError, ValidationError } from '../domain/errors.ts';
import { validationErrorOf } from '../domain/schema-errors.ts';
import type { ActionTarget } from '../services/authorize.ts';
import type { Principal } from '../services/service-context.ts';
import type { Caller } from '../services/workspace-service.ts';
import { hoistDefs } from './hoist-defs.ts';
import { clientIp, type OriginOptions, sameOriginRequest } from './security-headers.ts';

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface ResponseSpec {
  description: string;
  schema?: z.ZodType;
  /** @default application/json */
  contentType?: string;
}

type Infer<S> = S extends z.ZodType ? z.output<S> : undefined;

export interface RouteSpec<
  P extends z.ZodType | undefined,
  Q extends z.ZodType | undefined,
  B extends z.ZodType | undefined,
> {
  method: Method;
  /** Hono path syntax: `/api/runs/:run`. */
  path: string;
  summary: string;
  tag: string;
  /**
   * What the route does, in the access policy's terms (domain/access-policy.ts): `mount` asks the
   * policy before the handler runs, for the project the request names (`:project`, `?project=`, or
   * through `:schedule`, `:run`, `:rule`, `:delivery`). Routes without a credential say `public`.
   */
  action: Action;
  /** Whether a credential is required. @default true */
  auth?: boolean;
  /**
   * Refuse browser sessions: only an `Authorization: Bearer` API token may call this route (for
   * routes that mint credentials, which a script running in a signed-in page must not reach).
   * @default false
   */
  bearerOnly?: boolean;
  /**
   * A view ticket (the screenshot browser's) may GET this route for its own project (`'project'`:
   * `params.project`, or `query.project` on a list) or its own run (`'run'`: `params.run`). Routes
   * without it answer a ticket 403. @default undefined
   */
  ticket?: 'project' | 'run';
  params?: P;
  query?: Q;
  body?: B;
  /**
   * What the domain calls the body in its errors' fields (`rule`), so that the schema's errors name
   * fields as the domain's checks of the same body do: `rule.trigger.kind`. @default none
   */
  bodyName?: string;
  responses: Record<number, ResponseSpec>;
  handler(input: {
    c: Context;
    principal: Principal;
    /** How the principal signed in (null on routes with `auth: false`). */
    caller: Caller | null;
    params: Infer<P>;
    query: Infer<Q>;
    body: Infer<B>;
  }): Promise<Response>;
}

export type AnyRoute = RouteSpec<any, any, any>;

export function route<
  P extends z.ZodType | undefined = undefined,
  Q extends z.ZodType | undefined = undefined,
  B extends z.ZodType | undefined = undefined,
>(spec: RouteSpec<P, Q, B>): AnyRoute {
  return spec as AnyRoute;
}

/** The cookie that holds a browser session (or, in the screenshot browser, a view ticket). */
export const SESSION_COOKIE = 'almanac_session';

/** The token from `Authorization: Bearer …`, if any. */
export function tokenOf(c: Context): string | null {
  const header = c.req.header('authorization');
  if (!header) return null;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match ? match[1]! : header;
}

/** The caller's credential: the bearer token when there is one (it wins), else the session cookie. */
export function credentialOf(c: Context): { value: string | null; from: 'bearer' | 'cookie' } {
  const bearer = tokenOf(c);
  if (bearer !== null) return { value: bearer, from: 'bearer' };
  return { value: getCookie(c, SESSION_COOKIE) ?? null, from: 'cookie' };
}

export interface MountOptions {
  authenticate: (credential: string | null, from: 'bearer' | 'cookie') => Promise<Caller>;
  /** How to tell this server's own origin, for the CSRF check. */
  origin: OriginOptions;
  /** Applies the access policy to a signed-in request (throws 403/404); services/authorize.ts. */
  authorize: (principal: Principal, action: Action, target: ActionTarget) => Promise<void>;
}

/** The things a request names, from its path parameters (or a list's `?project=`). */
export function targetOf(
  params: Record<string, unknown> | undefined,
  query: Record<string, unknown> | undefined,
): ActionTarget {
  const text = (value: unknown) => (typeof value === 'string' ? value : undefined);
  return {
    project: text(params?.['project']) ?? text(query?.['project']),
    schedule: text(params?.['schedule']),
    run: text(params?.['run']),
    rule: text(params?.['rule']),
    delivery: text(params?.['delivery']),
  };
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Whether a view ticket's scope covers this route and these parameters. */
function ticketAllows(
  spec: AnyRoute,
  method: string,
  caller: Caller,
  params: Record<string, unknown> | undefined,
  query: Record<string, unknown> | undefined,
): boolean {
  const scope = caller.scope!;
  if (method !== 'GET' || !spec.ticket) return false;
  if (spec.ticket === 'run') return params?.['run'] === scope.runId;
  const project = params?.['project'] ?? query?.['project'];
  return project === scope.projectSlug || project === scope.projectId;
}

const JSON_TYPE = /^application\/json\s*(;|$)/i;

function parseWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  where: 'params' | 'query' | 'body',
  prefix = '',
): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw validationErrorOf(result.error.issues[0]!, { prefix, where });
}

export function mount(app: Hono, routes: readonly AnyRoute[], options: MountOptions): void {
  for (const spec of routes) {
    const method = spec.method.toUpperCase();
    app.on(method, spec.path, async (c) => {
      let caller: Caller | null = null;
      if (spec.auth !== false) {
        const credential = credentialOf(c);
        if (spec.bearerOnly && credential.from === 'cookie' && credential.value !== null) {
          throw new ForbiddenError(
            `${method} ${spec.path} takes an API token (Authorization: Bearer <token>), not a browser session`,
          );
        }
        caller = await options.authenticate(credential.value, credential.from);
        // CSRF: a browser attaches the cookie to requests any site makes; only this origin's count.
        if (credential.from === 'cookie' && !SAFE_METHODS.has(method)) {
          const check = sameOriginRequest(c, options.origin);
          if (!check.ok) {
            throw new ForbiddenError(
              `a change made with a browser session must come from this site's own pages, and ${check.why}; programs send Authorization: Bearer <token> instead`,
            );
          }
        }
      }
      // The client's address travels with the principal, for the audit log (services/audit-service.ts).
      const principal = caller
        ? { ...caller.principal, ip: clientIp(c, options.origin) }
        : (null as unknown as Principal);
      const params = spec.params ? parseWith(spec.params, c.req.param(), 'params') : undefined;
      const query = spec.query ? parseWith(spec.query, c.req.query(), 'query') : undefined;
      if (caller?.scope && !ticketAllows(spec, method, caller, params, query)) {
        throw new ForbiddenError(
          `a view ticket only reads the app page it was issued for (run ${caller.scope.runId} of '${caller.scope.projectSlug}'); ${method} ${c.req.path} needs an API token or a signed-in session`,
        );
      }
      if (caller) {
        await options.authorize(caller.principal, spec.action, targetOf(params, query));
      }
      let body: unknown;
      if (spec.body) {
        let raw: unknown;
        const text = await c.req.text();
        if (text.trim() !== '' && !JSON_TYPE.test(c.req.header('content-type') ?? '')) {
          throw new UnsupportedMediaTypeError(
            'Content-Type',
            `the body must be sent with Content-Type: application/json (got ${c.req.header('content-type')?.slice(0, 80) ?? 'none'})`,
          );
        }
        if (text.trim() === '') raw = {};
        else {
          try {
            raw = JSON.parse(text);
          } catch (error) {
            throw new ValidationError(
              'body',
              `is not valid JSON (${(error as Error).message}); send a JSON object`,
            );
          }
        }
        if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
          throw new ValidationError('body', 'must be a JSON object');
        }
        body = parseWith(spec.body, raw, 'body', spec.bodyName);
      }
      return spec.handler({ c, principal, caller, params, query, body });
    });
  }
}

function toJsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const json = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as Record<
    string,
    unknown
  >;
  delete json['$schema'];
  return json;
}

/** The OpenAPI 3.1 document for a route table. */
export function openApiDocument(routes: readonly AnyRoute[], info: { title: string; version: string }) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const spec of routes) {
    const path = spec.path.replace(/:(\w+)/g, '{$1}');
    const parameters: unknown[] = [];
    for (const [where, schema] of [
      ['path', spec.params],
      ['query', spec.query],
    ] as const) {
      if (!schema) continue;
      const json = toJsonSchema(schema, 'input') as {
        properties?: Record<string, { description?: string }>;
        required?: string[];
      };
      for (const [name, property] of Object.entries(json.properties ?? {})) {
        parameters.push({
          name,
          in: where,
          required: where === 'path' || (json.required ?? []).includes(name),
          ...(property.description ? { description: property.description } : {}),
          schema: property,
        });
      }
    }
    const responses: Record<string, unknown> = {};
    for (const [status, response] of Object.entries(spec.responses)) {
      responses[status] = {
        description: response.description,
        ...(response.schema
          ? {
              content: {
                [response.contentType ?? 'application/json']: {
                  schema: toJsonSchema(response.schema, 'output'),
                },
              },
            }
          : {}),
      };
    }
    responses['default'] = {
      description:
        'An error: 400 bad input (names the field), 401 no or bad token, 403 not allowed, 404 not found, 409 conflict, 413 body too large, 415 body not application/json',
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    };
    paths[path] ??= {};
    paths[path][spec.method] = {
      summary: spec.summary,
      tags: [spec.tag],
      operationId: `${spec.method}${path.replace(/[{}]/g, '').replace(/(^|[/_-])(\w)/g, (_, __, ch: string) => ch.toUpperCase())}`,
      'x-almanac-action': spec.action,
      ...(spec.auth === false ? { security: [] } : {}),
      ...(parameters.length ? { parameters } : {}),
      ...(spec.body
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: toJsonSchema(spec.body, 'input') } },
            },
          }
        : {}),
      responses,
    };
  }
  // Every schema's `$defs` move into components, where their references can reach them.
  const schemas: Record<string, unknown> = {
    Error: {
      type: 'object',
      required: ['error'],
      properties: {
        error: {
          type: 'object',
          required: ['code', 'message'],
          properties: {
            code: { type: 'string' },
            message: { type: 'string' },
            field: { type: 'string' },
          },
        },
      },
    },
  };
  const bundled = hoistDefs(paths, schemas);
  return {
    openapi: '3.1.0',
    info: {
      ...info,
      description:
        "Almanac: scheduled data apps. Programs authenticate with Authorization: Bearer <API token>; browsers with the session cookie from a one-time login link, and their changes must come from this site's own pages (Origin). JSON bodies must be sent as Content-Type: application/json.",
    },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }, { session: [] }],
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'An Almanac API token (alm_…)' },
        session: {
          type: 'apiKey',
          in: 'cookie',
          name: SESSION_COOKIE,
          description: 'A browser session (GET /login?code=…, or POST /api/auth/session with a token)',
        },
      },
      schemas: Object.fromEntries(Object.entries(schemas).sort(([a], [b]) => a.localeCompare(b))),
    },
    paths: bundled,
  };
}
