/**
 * A small route table over Hono: each route declares its params, query and body schemas and its
 * responses once. `mount` validates requests against them (a 400 that names the field), checks the
 * caller's token, and `openApiDocument` turns the same table into the OpenAPI 3.1 document.
 */
import type { Context, Hono } from 'hono';
import { getCookie } from 'hono/cookie';
import { z } from 'zod';
import { ValidationError } from '../domain/errors.ts';
import type { Principal } from '../services/service-context.ts';

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
  /** Whether an API token is required. @default true */
  auth?: boolean;
  params?: P;
  query?: Q;
  body?: B;
  responses: Record<number, ResponseSpec>;
  handler(input: {
    c: Context;
    principal: Principal;
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

export const TOKEN_COOKIE = 'almanac_token';

/** The token from `Authorization: Bearer …`, or the cookie the browser login sets. */
export function tokenOf(c: Context): string | null {
  const header = c.req.header('authorization');
  if (header) {
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    return match ? match[1]! : header;
  }
  return getCookie(c, TOKEN_COOKIE) ?? null;
}

function fieldOf(issue: z.core.$ZodIssue, prefix: string): string {
  const path = issue.path.map(String).join('.');
  return prefix ? (path ? `${prefix}.${path}` : prefix) : path || 'body';
}

function parseWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  where: 'params' | 'query' | 'body',
): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = fieldOf(issue, '');
  const message =
    issue.code === 'invalid_type' && /received undefined/.test(issue.message)
      ? `is required (${where})`
      : issue.code === 'unrecognized_keys'
        ? `has unknown field(s): ${issue.keys.join(', ')}`
        : issue.message;
  throw new ValidationError(field, message);
}

export function mount(
  app: Hono,
  routes: readonly AnyRoute[],
  authenticate: (token: string | null) => Promise<Principal>,
): void {
  for (const spec of routes) {
    app.on(spec.method.toUpperCase(), spec.path, async (c) => {
      const principal = spec.auth === false ? (null as unknown as Principal) : await authenticate(tokenOf(c));
      const params = spec.params ? parseWith(spec.params, c.req.param(), 'params') : undefined;
      const query = spec.query ? parseWith(spec.query, c.req.query(), 'query') : undefined;
      let body: unknown;
      if (spec.body) {
        let raw: unknown;
        const text = await c.req.text();
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
        body = parseWith(spec.body, raw, 'body');
      }
      return spec.handler({ c, principal, params, query, body });
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
        'An error: 400 bad input (names the field), 401 no or bad token, 404 not found, 409 conflict',
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    };
    paths[path] ??= {};
    paths[path][spec.method] = {
      summary: spec.summary,
      tags: [spec.tag],
      operationId: `${spec.method}${path.replace(/[{}]/g, '').replace(/(^|[/_-])(\w)/g, (_, __, ch: string) => ch.toUpperCase())}`,
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
  return {
    openapi: '3.1.0',
    info: {
      ...info,
      description: 'Almanac: scheduled data apps. Authenticate with Authorization: Bearer <API token>.',
    },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'An Almanac API token (alm_…)' },
      },
      schemas: {
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
      },
    },
    paths,
  };
}
