/**
 * One error → response mapping for every HTTP route (issue 15, section 1): an API route, an ops route
 * on the web process and an ops route on a process without the web role answer the same error with
 * the same status, body and headers. Before, the ops-only app had its own handler: it dropped `field`
 * and answered a transient store error with 500 instead of 503 with Retry-After.
 *
 * Also: /api/health reports the package's real version (it reported a hard-coded '0.1.0').
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  ConflictError,
  ForbiddenError,
  NotebookError,
  NotFoundError,
  PayloadTooLargeError,
  TooLargeError,
  UnauthorizedError,
  UnsupportedMediaTypeError,
  ValidationError,
} from '../src/domain/errors.ts';
import { errorResult } from '../src/http/errors.ts';
import { createOpsApp } from '../src/http/ops.ts';
import { createHttpApp } from '../src/http/server.ts';
import { createMetrics, type Metrics } from '../src/services/metrics.ts';
import { authenticate } from '../src/services/workspace-service.ts';
import { startTestServer, type TestServer, testStores } from './support/server-harness.ts';

const PACKAGE_VERSION = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;
const METRICS_TOKEN = 'scrape-token-errors-0123456789';

/** An error the store raises when PostgreSQL drops the connection (SQLSTATE 57P01). */
function transientError(): Error {
  return Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
}

const CASES: { name: string; make: () => unknown; status: number; code: string }[] = [
  {
    name: 'ValidationError',
    make: () => new ValidationError('inputs.region', 'must be text'),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'TooLargeError',
    make: () => new TooLargeError('source', 10, 'is too big'),
    status: 413,
    code: 'invalid_input',
  },
  {
    name: 'NotebookError',
    make: () => new NotebookError([{ line: 3, message: 'bad fence' }]),
    status: 422,
    code: 'notebook_invalid',
  },
  { name: 'UnauthorizedError', make: () => new UnauthorizedError(), status: 401, code: 'unauthorized' },
  { name: 'ForbiddenError', make: () => new ForbiddenError('admins only'), status: 403, code: 'forbidden' },
  { name: 'NotFoundError', make: () => new NotFoundError('run', 'r1'), status: 404, code: 'not_found' },
  { name: 'ConflictError', make: () => new ConflictError('already running'), status: 409, code: 'conflict' },
  {
    name: 'PayloadTooLargeError',
    make: () => new PayloadTooLargeError(1024, 'too large'),
    status: 413,
    code: 'payload_too_large',
  },
  {
    name: 'UnsupportedMediaTypeError',
    make: () => new UnsupportedMediaTypeError('Content-Type', 'send JSON'),
    status: 415,
    code: 'unsupported_media_type',
  },
  { name: 'a transient store error', make: transientError, status: 503, code: 'unavailable' },
  {
    name: 'an unexpected error',
    make: () => new Error('boom at /srv/secret/path'),
    status: 500,
    code: 'internal',
  },
];

for (const store of (await testStores()).filter((s) => s.name === 'sqlite')) {
  describe('one error mapping for API and ops routes', () => {
    let t: TestServer;
    let next: () => unknown = () => null;
    const unexpected: unknown[] = [];
    before(async () => {
      t = await startTestServer(store);
    });
    after(() => t?.close());

    /** Metrics whose text() throws the error of the case under test. */
    const throwingMetrics = (): Metrics => {
      const real = createMetrics(t.server.ctx, { roles: ['worker'] });
      return {
        ...real,
        text: async () => {
          throw next();
        },
      };
    };

    it('maps each error to the same status, body and headers on every route', async () => {
      const ctx = t.server.ctx;
      const web = createHttpApp({
        ctx,
        webDir: null,
        authCacheMs: 0,
        ops: { metrics: throwingMetrics(), metricsToken: METRICS_TOKEN, roles: ['web'] },
        notify: {
          slack: null,
          outbox: {
            listOutbox: async () => {
              throw next();
            },
            readOutbox: async () => Buffer.alloc(0),
          },
        },
        onError: (error) => unexpected.push(error),
      }).app;
      const opsOnly = createOpsApp(
        {
          ctx,
          metrics: throwingMetrics(),
          metricsToken: METRICS_TOKEN,
          authenticate: (token) => authenticate(ctx, token),
          roles: ['worker'],
        },
        (error) => unexpected.push(error),
      );
      const get = async (app: { request: typeof web.request }, path: string, token: string) => {
        const response = await app.request(path, { headers: { authorization: `Bearer ${token}` } });
        return {
          status: response.status,
          retryAfter: response.headers.get('retry-after'),
          body: (await response.json()) as { error: { code: string } },
        };
      };
      for (const c of CASES) {
        next = c.make;
        unexpected.length = 0;
        const api = await get(web, '/api/outbox', t.token);
        const ops = await get(web, '/metrics', METRICS_TOKEN);
        const worker = await get(opsOnly, '/metrics', METRICS_TOKEN);
        assert.equal(api.status, c.status, `${c.name} on an API route`);
        assert.equal(api.body.error.code, c.code, c.name);
        assert.deepEqual(ops, api, `${c.name}: the ops route on the web process maps it as the API does`);
        assert.deepEqual(worker, api, `${c.name}: the ops-only process maps it as the API does`);
        assert.deepEqual(api.body, errorResult(c.make()).body, c.name);
        // Only the unexpected error is reported (once per app), and its message never reaches the caller.
        assert.equal(unexpected.length, c.status === 500 ? 3 : 0, c.name);
        assert.doesNotMatch(JSON.stringify(api.body), /secret/);
      }
    });

    it('keeps the structured fields: field, problems, limit, header, Retry-After', () => {
      assert.equal(
        errorResult(new ValidationError('inputs.region', 'bad')).body.error.field,
        'inputs.region',
      );
      assert.deepEqual(errorResult(new NotebookError([{ line: 3, message: 'x' }])).body.error['problems'], [
        { line: 3, message: 'x' },
      ]);
      assert.equal(errorResult(new PayloadTooLargeError(1024, 'big')).body.error['limit'], 1024);
      assert.equal(
        errorResult(new UnsupportedMediaTypeError('Content-Type', 'json')).body.error['header'],
        'Content-Type',
      );
      assert.deepEqual(errorResult(transientError()).headers, { 'Retry-After': '1' });
    });

    it("/api/health and the OpenAPI document report the package's version", async () => {
      const health = await t.json('GET', '/api/health', undefined, null);
      assert.deepEqual(health, { status: 200, body: { ok: true, version: PACKAGE_VERSION } });
      const document = await t.json('GET', '/api/openapi.json', undefined, null);
      assert.equal(document.body.info.version, PACKAGE_VERSION);
    });
  });
}
