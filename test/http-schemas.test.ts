/**
 * One schema per concept (issue 15, section 1): the API's request and response shapes and its OpenAPI
 * document derive from the zod schemas in src/domain/, so the enum lists the document shows are the
 * domain's, and a rule body has its real shape.
 *
 * Regression: rule bodies were taken as `z.record(unknown)`, so the document showed a rule's trigger,
 * destinations and content as objects of anything (`additionalProperties: {}`), and a generated client
 * had no type for them; `src/http/schemas.ts` repeated the weekday, overlap and catch-up lists.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ValidationError } from '../src/domain/errors.ts';
import { DELIVERY_STATUSES } from '../src/domain/notification/delivery.ts';
import {
  DESTINATION_KINDS,
  NOTIFY_VIAS,
  TRIGGER_KINDS,
  validateRule,
} from '../src/domain/notification/rule.ts';
import { PROJECT_VISIBILITIES } from '../src/domain/project.ts';
import { RUN_STATUSES } from '../src/domain/run.ts';
import { CATCHUP_MODES, OVERLAP_POLICIES, WEEKDAYS } from '../src/domain/schedule/schedule.ts';
import { startTestServer, type TestServer, testStores } from './support/server-harness.ts';

type Json = any;

let doc: Json;

/** The schema behind `node`, following a `$ref` into the document's components. */
function deref(_root: Json, node: Json): Json {
  const ref = node?.$ref as string | undefined;
  return ref ? doc.components.schemas[ref.replace('#/components/schemas/', '')] : node;
}

/** The `kind` values of a discriminated union's options. */
function kinds(root: Json, union: Json): string[] {
  return deref(root, union).oneOf.map((option: Json) => deref(root, option).properties.kind.const);
}

/** Every `$ref` in `node`. */
function refs(node: Json): string[] {
  if (Array.isArray(node)) return node.flatMap(refs);
  if (node === null || typeof node !== 'object') return [];
  return Object.entries(node).flatMap(([key, value]) =>
    key === '$ref' && typeof value === 'string' ? [value] : refs(value),
  );
}

const sqlite = (await testStores()).find((s) => s.name === 'sqlite')!;

describe('API shapes derive from the domain schemas', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer(sqlite);
    doc = (await t.json('GET', '/api/openapi.json', undefined, null)).body;
  });
  after(() => t?.close());

  const requestBody = (path: string, method: string) =>
    doc.paths[path][method].requestBody.content['application/json'].schema;
  const response = (path: string, method: string, status: number) =>
    doc.paths[path][method].responses[status].content['application/json'].schema;

  it('resolves every $ref of /api/openapi.json in the document itself', () => {
    // Regression: zod's per-schema `$defs` stayed inside each operation while their references
    // (`#/$defs/X`) pointed at the document's root, so no client generator could follow them.
    const all = refs(doc.paths);
    assert.ok(all.length > 20);
    for (const ref of all) {
      assert.match(ref, /^#\/components\/schemas\/\w+$/);
      assert.ok(deref(null, { $ref: ref }), `${ref} resolves`);
    }
    assert.doesNotMatch(JSON.stringify(doc.paths), /"\$defs"/);
  });

  it("documents a rule body's trigger, destinations and content with their real shapes", () => {
    const body = requestBody('/api/projects/{project}/notification-rules', 'post');
    assert.deepEqual(kinds(body, body.properties.trigger).sort(), [...TRIGGER_KINDS].sort());
    assert.deepEqual(kinds(body, body.properties.destinations.items).sort(), [...DESTINATION_KINDS].sort());
    const user = deref(body, deref(body, body.properties.destinations.items).oneOf[0]);
    assert.deepEqual(user.properties.via.enum, [...NOTIFY_VIAS]);
    const content = deref(body, body.properties.content);
    assert.deepEqual(Object.keys(content.properties).sort(), ['body', 'csvCells', 'screenshot', 'subject']);
    // The response shows the stored rule the same way.
    const listed = response('/api/projects/{project}/notification-rules', 'get', 200);
    const rule = deref(listed, listed.items);
    assert.deepEqual(kinds(listed, rule.properties.trigger).sort(), [...TRIGGER_KINDS].sort());
  });

  it("shows the domain's enum lists", () => {
    const schedule = requestBody('/api/projects/{project}/schedules', 'post');
    const policies = deref(schedule, schedule.properties.policies);
    assert.deepEqual(policies.properties.overlap.enum, [...OVERLAP_POLICIES]);
    assert.deepEqual(policies.properties.catchupMode.enum, [...CATCHUP_MODES]);
    const cadence = deref(schedule, schedule.properties.cadence);
    const weekly = cadence.oneOf
      .map((o: Json) => deref(schedule, o))
      .find((o: Json) => o.properties.kind.const === 'weekly');
    assert.deepEqual(weekly.properties.days.items.enum, [...WEEKDAYS]);
    const run = response('/api/runs/{run}/cancel', 'post', 200);
    assert.deepEqual(deref(run, run).properties.status.enum, [...RUN_STATUSES]);
    const delivery = response('/api/deliveries/{delivery}/resend', 'post', 200);
    assert.deepEqual(deref(delivery, delivery).properties.status.enum, [...DELIVERY_STATUSES]);
    const visibility = requestBody('/api/projects/{project}/visibility', 'put');
    assert.deepEqual(visibility.properties.visibility.enum, [...PROJECT_VISIBILITIES]);
    // Responses carry every policy (the domain fills defaults); requests may leave any out.
    const created = response('/api/projects/{project}/schedules', 'post', 201);
    const stored = deref(created, deref(created, created).properties.policies);
    assert.deepEqual([...stored.required].sort(), Object.keys(stored.properties).sort());
    assert.equal(policies.required, undefined);
  });

  it('answers a schedule body of the wrong shape with a 400 naming the field and the choices', async () => {
    // The domain's enum lists word the error: `z.enum`'s own message listed the values in quotes and
    // pipes ("Invalid option: expected one of \"skip\"|…").
    const cases: [unknown, string, RegExp][] = [
      [
        { cadence: { kind: 'yearly' } },
        'cadence.kind',
        /must be one of hourly, daily, weekly, monthly, cron/,
      ],
      [
        { cadence: { kind: 'weekly', days: ['mon', 'funday'], time: '09:00' } },
        'cadence.days[1]',
        /must be one of sun, mon, tue, wed, thu, fri, sat \(got "funday"\)/,
      ],
      [
        { cadence: { kind: 'daily', time: '09:00' }, policies: { overlap: 'queue' } },
        'policies.overlap',
        /must be one of skip, buffer_one, allow, cancel_previous/,
      ],
    ];
    for (const [body, field, message] of cases) {
      const answer = await t.json('POST', '/api/projects/any/schedules', {
        name: 'n',
        timezone: 'UTC',
        ...(body as object),
      });
      assert.equal(answer.status, 400, JSON.stringify(answer.body));
      assert.equal(answer.body.error.field, field);
      assert.match(answer.body.error.message, message);
    }
  });

  it('answers a rule body of the wrong shape with a 400 naming the field', async () => {
    const cases: [unknown, string, RegExp][] = [
      [
        { trigger: { kind: 'sometimes' }, destinations: [] },
        'rule.trigger.kind',
        /must be one of success, failure/,
      ],
      [
        { destinations: [{ kind: 'user', userId: 'u1', via: 'pigeon' }] },
        'rule.destinations[0].via',
        /must be one of preference, email, slack, both \(got "pigeon"\)/,
      ],
      [
        { destinations: [{ kind: 'webhook', url: 'https://e.test' }], content: { screenshot: 'gif' } },
        'rule.content.screenshot',
        /must be png, pdf or null \(got "gif"\)/,
      ],
      [{ destinations: 'everyone' }, 'rule.destinations', /has no recipients/],
    ];
    cases.push(
      [
        { trigger: { kind: 'failure', cont: 2 }, destinations: [] },
        'rule.trigger.cont',
        /is not a known field/,
      ],
      [{ trigger: { kind: 'failure_streak' }, destinations: [] }, 'rule.trigger.count', /whole number/],
    );
    for (const [body, field, message] of cases) {
      const answer = await t.json('POST', '/api/projects/any/notification-rules', body);
      assert.equal(answer.status, 400, JSON.stringify(answer.body));
      assert.equal(answer.body.error.field, field);
      assert.match(answer.body.error.message, message);
      // The domain's validator reads the same schema, so it names the same field (the CLI's and
      // inline rules' way in).
      assert.throws(
        () => validateRule(body),
        (error: ValidationError) => error.field === field && message.test(error.message),
        field,
      );
    }
  });
});
