/**
 * Bad input to every route gets a clear 4xx with a JSON error naming the field, and the OpenAPI
 * document covers every route. A table of cases is kept per route, and a route without a case fails
 * the suite, so new routes cannot skip this.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fence } from './support/harness.ts';
import { notebook, startTestServer, type TestServer, testStores } from './support/server-harness.ts';

interface Case {
  method: string;
  path: string;
  body?: unknown;
  status: number;
  code: string;
  field?: string;
  message: RegExp;
}

const sqlite = (await testStores())[0]!;

describe('HTTP: bad input and the OpenAPI document', () => {
  let t: TestServer;
  let runId = '';
  let scheduleId = '';
  before(async () => {
    t = await startTestServer(sqlite);
    await t.json('POST', '/api/projects', {
      source: notebook(
        'Shop',
        fence('sql one', 'select {{ n }} as n'),
        'inputs:\n  n:\n    type: number\n    default: 1\n    max: 10\n',
      ),
      slug: 'shop',
    });
    runId = (await t.json('POST', '/api/projects/shop/publish', {})).body.run.id;
    await t.server.worker!.drain();
    scheduleId = (
      await t.json('POST', '/api/projects/shop/schedules', {
        name: 'daily',
        cadence: { kind: 'daily', time: '09:00' },
        timezone: 'UTC',
      })
    ).body.id;
  });
  after(() => t?.close());

  const cases = (): Case[] => [
    { method: 'GET', path: '/api/me', status: 401, code: 'unauthorized', message: /Bearer/ },
    {
      method: 'POST',
      path: '/api/tokens',
      body: {},
      status: 400,
      code: 'invalid_input',
      field: 'name',
      message: /required/,
    },
    {
      method: 'POST',
      path: '/api/tokens',
      body: { name: '  ' },
      status: 400,
      code: 'invalid_input',
      field: 'name',
      message: /what the token is for/,
    },
    { method: 'GET', path: '/api/projects', status: 401, code: 'unauthorized', message: /token/ },
    {
      method: 'POST',
      path: '/api/auth/login-codes',
      body: { next: 5 },
      status: 400,
      code: 'invalid_input',
      field: 'next',
      message: /expected string/,
    },
    { method: 'POST', path: '/api/auth/session', status: 401, code: 'unauthorized', message: /Bearer/ },
    // Accounts and tokens (issue 16).
    { method: 'GET', path: '/api/tokens', status: 401, code: 'unauthorized', message: /Bearer/ },
    { method: 'DELETE', path: '/api/tokens/nope', status: 404, code: 'not_found', message: /token/ },
    {
      method: 'POST',
      path: '/api/auth/login',
      body: { email: 'a@example.com' },
      status: 400,
      code: 'invalid_input',
      field: 'password',
      message: /required/,
    },
    {
      method: 'POST',
      path: '/api/auth/token',
      body: { email: 'a@example.com', password: 'p' },
      status: 400,
      code: 'invalid_input',
      field: 'name',
      message: /required/,
    },
    {
      method: 'POST',
      path: '/api/auth/accept-invite',
      body: { code: 'x', name: 'Ada', password: 'short' },
      status: 400,
      code: 'invalid_input',
      field: 'password',
      message: /at least 10 characters/,
    },
    {
      method: 'POST',
      path: '/api/auth/password-reset',
      body: {},
      status: 400,
      code: 'invalid_input',
      field: 'email',
      message: /required/,
    },
    {
      method: 'POST',
      path: '/api/auth/password-reset/complete',
      body: { code: 'x', password: 'short' },
      status: 400,
      code: 'invalid_input',
      field: 'password',
      message: /at least 10 characters/,
    },
    {
      method: 'POST',
      path: '/api/auth/password',
      body: { currentPassword: '', newPassword: 'short' },
      status: 400,
      code: 'invalid_input',
      field: 'newPassword',
      message: /at least 10 characters/,
    },
    { method: 'GET', path: '/api/users', status: 401, code: 'unauthorized', message: /Bearer/ },
    {
      method: 'POST',
      path: '/api/users/invitations',
      body: { email: 'not-an-address' },
      status: 400,
      code: 'invalid_input',
      field: 'email',
      message: /not an email address/,
    },
    { method: 'POST', path: '/api/users/nope/deactivate', status: 404, code: 'not_found', message: /user/ },
    {
      method: 'PUT',
      path: '/api/users/nope/role',
      body: { role: 'owner' },
      status: 400,
      code: 'invalid_input',
      field: 'role',
      message: /admin/,
    },
    {
      method: 'POST',
      path: '/api/projects',
      body: '{not json',
      status: 400,
      code: 'invalid_input',
      field: 'body',
      message: /not valid JSON/,
    },
    {
      method: 'POST',
      path: '/api/projects',
      body: [],
      status: 400,
      code: 'invalid_input',
      field: 'body',
      message: /JSON object/,
    },
    {
      method: 'POST',
      path: '/api/projects',
      body: { source: 42 },
      status: 400,
      code: 'invalid_input',
      field: 'source',
      message: /string/,
    },
    {
      method: 'POST',
      path: '/api/projects',
      body: { source: '```sql 1bad\nselect 1\n```\n' },
      status: 422,
      code: 'notebook_invalid',
      message: /^source:1: .*not a valid cell name/,
    },
    {
      method: 'POST',
      path: '/api/projects',
      body: { source: '# X\n', slug: 'Bad Slug' },
      status: 400,
      code: 'invalid_input',
      field: 'slug',
      message: /lowercase/,
    },
    {
      method: 'POST',
      path: '/api/projects',
      body: { source: '# Shop\n', slug: 'shop' },
      status: 409,
      code: 'conflict',
      message: /already exists/,
    },
    { method: 'GET', path: '/api/projects/nope', status: 404, code: 'not_found', message: /project 'nope'/ },
    {
      method: 'PUT',
      path: '/api/projects/shop/draft',
      body: { source: '' },
      status: 400,
      code: 'invalid_input',
      field: 'source',
      message: /too small|at least/i,
    },
    {
      method: 'PUT',
      path: '/api/projects/nope/draft',
      body: { source: '# x\n' },
      status: 404,
      code: 'not_found',
      message: /nope/,
    },
    {
      method: 'POST',
      path: '/api/projects/shop/publish',
      body: { files: { '../escape.csv': 'YQ==' } },
      status: 400,
      code: 'invalid_input',
      field: 'files.../escape.csv',
      message: /relative path/,
    },
    {
      method: 'POST',
      path: '/api/projects/shop/publish',
      body: { files: { 'a.csv': 'not base64!' } },
      status: 400,
      code: 'invalid_input',
      field: 'files.a.csv',
      message: /base64/,
    },
    { method: 'GET', path: '/api/projects/nope/versions', status: 404, code: 'not_found', message: /nope/ },
    {
      method: 'GET',
      path: '/api/projects/shop/versions/99',
      status: 404,
      code: 'not_found',
      message: /version '99'/,
    },
    {
      method: 'POST',
      path: '/api/projects/shop/versions/99/make-current',
      status: 404,
      code: 'not_found',
      message: /version '99'/,
    },
    { method: 'GET', path: '/api/projects/nope/app', status: 404, code: 'not_found', message: /nope/ },
    {
      method: 'GET',
      path: '/api/projects/nope/app/manifest',
      status: 404,
      code: 'not_found',
      message: /nope/,
    },
    {
      method: 'GET',
      path: '/api/projects/nope/app/settings',
      status: 404,
      code: 'not_found',
      message: /nope/,
    },
    {
      method: 'PATCH',
      path: '/api/projects/shop/app/settings',
      body: { showLastRun: 'yes' },
      status: 400,
      code: 'invalid_input',
      field: 'showLastRun',
      message: /boolean/,
    },
    {
      method: 'PATCH',
      path: '/api/projects/shop/app/settings',
      body: { keepDays: -1 },
      status: 400,
      code: 'invalid_input',
      field: 'keepDays',
      message: />= 1/,
    },
    {
      method: 'POST',
      path: '/api/projects/shop/runs',
      body: { inputs: { n: 11 } },
      status: 400,
      code: 'invalid_input',
      field: 'inputs.n',
      message: /at most 10/,
    },
    {
      method: 'POST',
      path: '/api/projects/shop/runs',
      body: { inputs: { m: 1 } },
      status: 400,
      code: 'invalid_input',
      field: 'inputs.m',
      message: /not an input/,
    },
    {
      method: 'POST',
      path: '/api/projects/shop/runs',
      body: { version: '7' },
      status: 400,
      code: 'invalid_input',
      field: 'version',
      message: /no version '7'/,
    },
    {
      method: 'POST',
      path: '/api/projects/shop/runs',
      body: { inputs: { n: { x: 1 } } },
      status: 400,
      code: 'invalid_input',
      field: 'inputs.n',
      message: /./,
    },
    {
      method: 'POST',
      path: '/api/projects/shop/runs/batch',
      body: { runs: [{ inputs: { n: 1 } }, { inputs: { n: 11 } }] },
      status: 400,
      code: 'invalid_input',
      field: 'runs[1].inputs.n',
      message: /runs\[1\]\.inputs\.n: must be at most 10/,
    },
    {
      method: 'POST',
      path: '/api/projects/shop/runs/batch',
      body: { runs: Array.from({ length: 1001 }, () => ({})) },
      status: 400,
      code: 'invalid_input',
      field: 'runs',
      message: /./,
    },
    {
      method: 'GET',
      path: '/api/runs?status=done',
      status: 400,
      code: 'invalid_input',
      field: 'status',
      message: /one of queued/,
    },
    {
      method: 'GET',
      path: '/api/runs?trigger=cron',
      status: 400,
      code: 'invalid_input',
      field: 'trigger',
      message: /one of manual/,
    },
    {
      method: 'GET',
      path: '/api/runs?limit=1000',
      status: 400,
      code: 'invalid_input',
      field: 'limit',
      message: /1 to 200/,
    },
    {
      method: 'GET',
      path: '/api/runs?cursor=zzz',
      status: 400,
      code: 'invalid_input',
      field: 'cursor',
      message: /nextCursor/,
    },
    { method: 'GET', path: '/api/runs?project=nope', status: 404, code: 'not_found', message: /nope/ },
    { method: 'GET', path: '/api/runs/nope', status: 404, code: 'not_found', message: /run 'nope'/ },
    { method: 'POST', path: '/api/runs/nope/cancel', status: 404, code: 'not_found', message: /run 'nope'/ },
    {
      method: 'POST',
      path: `/api/runs/${runId}/cancel`,
      status: 409,
      code: 'conflict',
      message: /already ended as succeeded/,
    },
    { method: 'GET', path: '/api/runs/nope/snapshot', status: 404, code: 'not_found', message: /run 'nope'/ },
    { method: 'GET', path: '/api/runs/nope/events', status: 404, code: 'not_found', message: /run 'nope'/ },
    {
      method: 'POST',
      path: '/api/connections',
      body: { name: 'duckdb', url: 'postgres://x@y/z' },
      status: 400,
      code: 'invalid_input',
      field: 'name',
      message: /embedded/,
    },
    {
      method: 'POST',
      path: '/api/connections',
      body: { name: 'w', url: 'mysql://x' },
      status: 400,
      code: 'invalid_input',
      field: 'url',
      message: /postgres:\/\//,
    },
    { method: 'GET', path: '/api/connections', status: 401, code: 'unauthorized', message: /token/ },
    { method: 'GET', path: '/api/workspace/settings', status: 401, code: 'unauthorized', message: /token/ },
    { method: 'GET', path: '/api/workspace/plan', status: 401, code: 'unauthorized', message: /token/ },
    {
      method: 'GET',
      path: '/api/audit?since=yesterday',
      status: 400,
      code: 'invalid_input',
      field: 'since',
      message: /ISO 8601/,
    },
    {
      method: 'PUT',
      path: '/api/workspace/plan',
      body: { plan: 'gold' },
      status: 400,
      code: 'invalid_input',
      field: 'plan',
      message: /professional/,
    },
    {
      method: 'PUT',
      path: '/api/workspace/settings',
      body: { cellNetwork: 'no' },
      status: 400,
      code: 'invalid_input',
      field: 'cellNetwork',
      message: /boolean/,
    },
    { method: 'GET', path: '/api/nothing-here', status: 404, code: 'not_found', message: /openapi/ },
    {
      method: 'POST',
      path: '/api/projects/shop/schedules',
      body: { name: 'x', cadence: { kind: 'cron', expression: '61 * * * *' }, timezone: 'UTC' },
      status: 400,
      code: 'invalid_input',
      field: 'cadence.expression',
      message: /cron '61 \* \* \* \*': minute must be 0-59/,
    },
    {
      method: 'POST',
      path: '/api/projects/shop/schedules',
      body: { name: 'x', cadence: { kind: 'daily', time: '09:00' }, timezone: 'Mars/Base' },
      status: 400,
      code: 'invalid_input',
      field: 'timezone',
      message: /'Mars\/Base' is not an IANA zone/,
    },
    {
      method: 'POST',
      path: '/api/projects/shop/schedules',
      body: { name: 'daily', cadence: { kind: 'daily', time: '10:00' }, timezone: 'UTC' },
      status: 400,
      code: 'invalid_input',
      field: 'name',
      message: /already has a schedule named 'daily'/,
    },
    {
      method: 'POST',
      path: '/api/projects/shop/schedules',
      body: { name: 'x', cadence: { kind: 'daily', time: '09:00' }, timezone: 'UTC', inputs: { n: 99 } },
      status: 400,
      code: 'invalid_input',
      field: 'inputs.n',
      message: /at most 10/,
    },
    { method: 'GET', path: '/api/projects/nope/schedules', status: 404, code: 'not_found', message: /nope/ },
    {
      method: 'POST',
      path: '/api/schedules/preview',
      body: { cadence: { kind: 'daily', time: '9am' }, timezone: 'UTC' },
      status: 400,
      code: 'invalid_input',
      field: 'cadence.time',
      message: /HH:MM/,
    },
    {
      method: 'POST',
      path: '/api/schedules/preview',
      body: { cadence: { kind: 'yearly' }, timezone: 'UTC' },
      status: 400,
      code: 'invalid_input',
      field: 'cadence.kind',
      message: /./,
    },
    {
      method: 'GET',
      path: '/api/schedules/nope',
      status: 404,
      code: 'not_found',
      message: /schedule 'nope'/,
    },
    {
      method: 'PATCH',
      path: '/api/schedules/nope',
      body: {},
      status: 404,
      code: 'not_found',
      message: /schedule 'nope'/,
    },
    {
      method: 'PATCH',
      path: `/api/schedules/${scheduleId}`,
      body: { policies: { overlap: 'queue' } },
      status: 400,
      code: 'invalid_input',
      field: 'policies.overlap',
      message: /./,
    },
    {
      method: 'DELETE',
      path: '/api/schedules/nope',
      status: 404,
      code: 'not_found',
      message: /schedule 'nope'/,
    },
    {
      method: 'POST',
      path: '/api/schedules/nope/pause',
      body: {},
      status: 404,
      code: 'not_found',
      message: /nope/,
    },
    {
      method: 'POST',
      path: `/api/schedules/${scheduleId}/pause`,
      body: { until: '2020-01-01T00:00:00Z' },
      status: 400,
      code: 'invalid_input',
      field: 'until',
      message: /in the future/,
    },
    { method: 'POST', path: '/api/schedules/nope/resume', status: 404, code: 'not_found', message: /nope/ },
    { method: 'POST', path: '/api/schedules/nope/run', status: 404, code: 'not_found', message: /nope/ },
    {
      method: 'POST',
      path: '/api/schedules/nope/backfill',
      body: { from: '2026-01-01T00:00:00Z', to: '2026-01-02T00:00:00Z' },
      status: 404,
      code: 'not_found',
      message: /nope/,
    },
    {
      method: 'POST',
      path: `/api/schedules/${scheduleId}/backfill`,
      body: { from: 'yesterday', to: '2026-01-02T00:00:00Z' },
      status: 400,
      code: 'invalid_input',
      field: 'from',
      message: /ISO 8601/,
    },
    { method: 'GET', path: '/api/schedules/nope/preview', status: 404, code: 'not_found', message: /nope/ },
    {
      method: 'GET',
      path: `/api/schedules/${scheduleId}/preview?count=0`,
      status: 400,
      code: 'invalid_input',
      field: 'count',
      message: /1-500/,
    },
    {
      method: 'PUT',
      path: '/api/projects/shop/visibility',
      body: { visibility: 'secret' },
      status: 400,
      code: 'invalid_input',
      field: 'visibility',
      message: /must be workspace or restricted/,
    },
    // Sharing (issue 16).
    {
      method: 'GET',
      path: '/api/projects/nope/access',
      status: 404,
      code: 'not_found',
      message: /project 'nope'/,
    },
    {
      method: 'PUT',
      path: '/api/projects/shop/access',
      body: { workspace: 'everyone' },
      status: 400,
      code: 'invalid_input',
      field: 'workspace',
      message: /none/,
    },
    {
      method: 'PUT',
      path: '/api/projects/shop/grants',
      body: { principal: 'ada', access: 'can_edit' },
      status: 400,
      code: 'invalid_input',
      field: 'principal',
      message: /user:<id> or group:<id>/,
    },
    {
      method: 'DELETE',
      path: '/api/projects/shop/grants/user:nobody',
      status: 404,
      code: 'not_found',
      message: /grant 'user:nobody'/,
    },
    // Notifications.
    {
      method: 'POST',
      path: '/api/projects/shop/notification-rules',
      body: { destinations: [] },
      status: 400,
      code: 'invalid_input',
      field: 'rule.destinations',
      message: /has no recipients: add at least one user, group, Slack channel or webhook/,
    },
    {
      method: 'POST',
      path: '/api/projects/shop/notification-rules',
      body: { destinations: [{ kind: 'slack_channel', channel: 'ops' }] },
      status: 400,
      code: 'invalid_input',
      field: 'rule.destinations[0].channel',
      message: /Slack is not set up/,
    },
    {
      method: 'POST',
      path: '/api/projects/shop/notification-rules',
      body: {
        destinations: [{ kind: 'webhook', url: 'https://example.com/h' }],
        content: { csvCells: ['nope'] },
      },
      status: 400,
      code: 'invalid_input',
      field: 'rule.content.csvCells',
      message: /the published notebook has no cell 'nope'/,
    },
    {
      method: 'GET',
      path: '/api/projects/nope/notification-rules',
      status: 404,
      code: 'not_found',
      message: /project 'nope'/,
    },
    {
      method: 'PUT',
      path: '/api/notification-rules/nope',
      body: { destinations: [{ kind: 'webhook', url: 'https://example.com/h' }] },
      status: 404,
      code: 'not_found',
      message: /notification rule 'nope'/,
    },
    {
      method: 'DELETE',
      path: '/api/notification-rules/nope',
      status: 404,
      code: 'not_found',
      message: /notification rule 'nope'/,
    },
    {
      method: 'GET',
      path: '/api/runs/nope/deliveries',
      status: 404,
      code: 'not_found',
      message: /run 'nope'/,
    },
    {
      method: 'POST',
      path: '/api/deliveries/nope/resend',
      status: 404,
      code: 'not_found',
      message: /delivery 'nope'/,
    },
    { method: 'GET', path: '/api/integrations', status: 401, code: 'unauthorized', message: /Bearer/ },
    {
      method: 'PUT',
      path: '/api/integrations',
      body: { smtp: { host: 'bad host!' } },
      status: 400,
      code: 'invalid_input',
      field: 'smtp.host',
      message: /must be a host name or address/,
    },
    {
      method: 'PUT',
      path: '/api/integrations',
      body: { slackToken: 'not-a-token' },
      status: 400,
      code: 'invalid_input',
      field: 'slackToken',
      message: /must be a Slack bot token \(xoxb-…\)/,
    },
    {
      method: 'GET',
      path: '/api/integrations/webhook-key',
      status: 401,
      code: 'unauthorized',
      message: /Bearer/,
    },
    {
      method: 'GET',
      path: '/api/integrations/slack/channels',
      status: 404,
      code: 'not_found',
      message: /Slack integration/,
    },
    {
      method: 'PUT',
      path: '/api/me/notify-via',
      body: { via: 'pigeon' },
      status: 400,
      code: 'invalid_input',
      field: 'notifyVia',
      message: /must be email, slack or both/,
    },
    { method: 'GET', path: '/api/outbox', status: 401, code: 'unauthorized', message: /Bearer/ },
    {
      method: 'GET',
      path: '/api/outbox/nope.eml/message',
      status: 404,
      code: 'not_found',
      message: /outbox message 'nope.eml'/,
    },
    {
      method: 'GET',
      path: '/api/outbox/nope.eml/attachments/x',
      status: 400,
      code: 'invalid_input',
      field: 'index',
      message: /number/,
    },
    {
      method: 'GET',
      path: '/api/outbox/nope.eml',
      status: 404,
      code: 'not_found',
      message: /outbox message 'nope.eml'/,
    },
    {
      method: 'POST',
      path: '/api/projects/shop/runs',
      body: {
        notifications: [
          { trigger: { kind: 'failure_streak' }, destinations: [{ kind: 'webhook', url: 'https://x.test' }] },
        ],
      },
      status: 400,
      code: 'invalid_input',
      field: 'notifications[0].trigger.count',
      message: /must be a whole number of failures in a row/,
    },
  ];

  it('answers every bad request with a 4xx JSON error that says what was wrong', async () => {
    for (const c of cases()) {
      const unauthenticated = c.code === 'unauthorized';
      const response = await t.json(c.method, c.path, c.body, unauthenticated ? null : t.token);
      const label = `${c.method} ${c.path} ${JSON.stringify(c.body) ?? ''}`;
      assert.equal(response.status, c.status, `${label}: ${JSON.stringify(response.body)}`);
      assert.equal(response.body.error.code, c.code, label);
      assert.match(response.body.error.message, c.message, label);
      if (c.field) assert.equal(response.body.error.field, c.field, label);
    }
  });

  it('has a bad-input case for every route', () => {
    const covered = cases().map((c) => `${c.method} ${c.path.split('?')[0]}`);
    for (const route of t.server.http.routes) {
      // Health and sign-out take no input at all.
      if (route.path === '/api/health' || route.path === '/api/auth/logout') continue;
      const pattern = new RegExp(`^${route.method.toUpperCase()} ${route.path.replace(/:\w+/g, '[^/]+')}$`);
      assert.ok(
        covered.some((c) => pattern.test(c)),
        `no bad-input case for ${route.method.toUpperCase()} ${route.path}`,
      );
    }
  });

  it('documents every route in /api/openapi.json, with request schemas and the error shape', async () => {
    const response = await t.api('GET', '/api/openapi.json', undefined, null);
    assert.equal(response.status, 200);
    const doc: any = await response.json();
    assert.equal(doc.openapi, '3.1.0');
    for (const route of t.server.http.routes) {
      const path = route.path.replace(/:(\w+)/g, '{$1}');
      const operation = doc.paths[path]?.[route.method];
      assert.ok(operation, `${route.method} ${path} is documented`);
      assert.ok(operation.responses.default, 'errors are documented');
      if (route.body) assert.ok(operation.requestBody.content['application/json'].schema.properties);
    }
    const create = doc.paths['/api/projects/{project}/runs'].post;
    assert.deepEqual(Object.keys(create.requestBody.content['application/json'].schema.properties).sort(), [
      'inputs',
      'notifications',
      'private',
      'version',
    ]);
    assert.ok(
      doc.paths['/api/runs'].get.parameters.some((p: any) => p.name === 'status' && p.in === 'query'),
    );
  });

  it('signs a browser in with a one-time login code: an HttpOnly session cookie that the API then accepts', async () => {
    // (test/http-security.test.ts covers codes, sessions and redirects in depth.)
    const login = await t.server.http.app.request(await t.server.loginLink('/apps/shop'));
    assert.equal(login.status, 302);
    assert.equal(login.headers.get('location'), '/apps/shop');
    const cookie = login.headers.get('set-cookie')!;
    assert.match(cookie, /almanac_session=alms_[^;]+; Max-Age=\d+; Path=\/; HttpOnly; SameSite=Lax/);
    const me = await t.server.http.app.request('/api/me', { headers: { cookie: cookie.split(';')[0]! } });
    assert.equal(me.status, 200);
    const bad = await t.server.http.app.request('/login?code=almc_wrong-wrong-wrong-wrong');
    assert.equal(bad.status, 401);
    const offsite = await t.server.http.app.request(
      `${await t.server.loginLink('/')}`.replace(/next=[^&]*/, 'next=//evil.example'),
    );
    assert.equal(offsite.headers.get('location'), '/');
  });
});
