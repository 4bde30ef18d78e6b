/**
 * The audit log (domain/audit.ts), for admins: newest first, filtered by actor, action and time, in
 * keyset pages (`next` is the cursor of the following page).
 */
import { z } from 'zod';
import { MAX_AUDIT_PAGE } from '../../domain/audit.ts';
import { ValidationError } from '../../domain/errors.ts';
import * as audit from '../../services/audit-service.ts';
import type { RouteDeps } from '../route-deps.ts';
import { type AnyRoute, route } from '../routes.ts';

const AuditQuery = z.strictObject({
  actor: z.string().max(200).optional().describe('Only events of this user id'),
  action: z
    .string()
    .max(100)
    .optional()
    .describe('Only this action (`schedule.update`), or an area (`schedule`: every schedule change)'),
  since: z.string().max(40).optional().describe('Only events at or after this instant (ISO 8601)'),
  cursor: z.string().max(400).optional().describe('`next` of the previous page'),
  limit: z.coerce.number().optional().describe(`Page size, 1-${MAX_AUDIT_PAGE} (default 100)`),
});

const AuditEvent = z
  .object({
    id: z.string(),
    at: z.string().describe('When (ISO 8601)'),
    actorId: z.string().nullable().describe('The user who acted; null for a failed sign-in'),
    actorName: z.string().describe('Their name then (or the address a failed sign-in tried)'),
    action: z.string().describe('What they did: auth.sign_in, schedule.update, grant.auto…'),
    target: z.string().nullable().describe('What it acted on: kind:id'),
    detail: z.record(z.string(), z.unknown()).describe('What changed; never a secret'),
    ip: z.string().nullable().describe("The client's address"),
  })
  .meta({ id: 'AuditEvent' });

const AuditPage = z
  .object({
    events: z.array(AuditEvent),
    next: z.string().nullable().describe('The cursor of the next page; null on the last'),
  })
  .meta({ id: 'AuditPage' });

export function auditRoutes(deps: RouteDeps): AnyRoute[] {
  const { ctx } = deps;
  return [
    route({
      method: 'get',
      path: '/api/audit',
      action: 'workspace.audit',
      summary: 'The audit log: who did what, when and from where (admins), newest first',
      tag: 'workspace',
      query: AuditQuery,
      responses: { 200: { description: 'A page of events', schema: AuditPage } },
      handler: async ({ c, principal, query }) => {
        let since: Date | undefined;
        if (query.since !== undefined) {
          since = new Date(query.since);
          if (Number.isNaN(since.getTime())) {
            throw new ValidationError('since', `must be an ISO 8601 instant (got '${query.since}')`);
          }
        }
        const limit = query.limit;
        if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= MAX_AUDIT_PAGE)) {
          throw new ValidationError('limit', `must be an integer 1-${MAX_AUDIT_PAGE} (got ${limit})`);
        }
        const page = await audit.listAudit(ctx, principal, { ...query, since });
        return c.json({
          events: page.events.map((e) => ({ ...e, at: e.at.toISOString() })),
          next: page.next,
        });
      },
    }),
  ];
}
