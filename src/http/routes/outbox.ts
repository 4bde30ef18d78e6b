/**
 * The email outbox folder (email written there when no SMTP is configured): the caller's own messages,
 * raw (.eml) or parsed, and their attachments.
 */
import { simpleParser } from 'mailparser';
import { z } from 'zod';
import { NotFoundError } from '../../domain/errors.ts';
import * as notifications from '../../services/notification-service.ts';
import type { Principal, ServiceContext } from '../../services/service-context.ts';
import { type AnyRoute, route } from '../routes.ts';

/** The outbox folder (app/ wires the email channel's). */
export interface OutboxDeps {
  ctx: ServiceContext;
  outbox: {
    listOutbox(): Promise<{ file: string; size: number; createdAt: Date }[]>;
    readOutbox(file: string): Promise<Buffer>;
  } | null;
}

export function outboxRoutes(deps: OutboxDeps): AnyRoute[] {
  const { ctx } = deps;
  return [
    route({
      method: 'get',
      path: '/api/outbox',
      action: 'outbox.read_own',
      summary: 'Email written to the outbox folder (no SMTP configured), newest first',
      tag: 'notifications',
      responses: {
        200: {
          description: 'The messages',
          schema: z.array(
            z.object({
              file: z.string(),
              deliveryId: z.string(),
              size: z.number(),
              createdAt: z.string(),
              url: z.string(),
            }),
          ),
        },
      },
      handler: async ({ c, principal }) => {
        const entries = (await deps.outbox?.listOutbox()) ?? [];
        const ids = entries.map((e) => deliveryIdOf(e.file)).filter((id): id is string => id !== null);
        const mine = await notifications.ownDeliveryIds(ctx, principal, ids);
        return c.json(
          entries
            .filter((e) => mine.has(deliveryIdOf(e.file) ?? ''))
            .map((e) => ({
              file: e.file,
              deliveryId: deliveryIdOf(e.file)!,
              size: e.size,
              createdAt: e.createdAt.toISOString(),
              url: `/api/outbox/${encodeURIComponent(e.file)}`,
            })),
        );
      },
    }),
    route({
      method: 'get',
      path: '/api/outbox/:file',
      action: 'outbox.read_own',
      summary: 'One outbox message as message/rfc822 (.eml), with its attachments',
      tag: 'notifications',
      params: z.object({ file: z.string() }),
      responses: { 200: { description: 'The message', contentType: 'message/rfc822' } },
      handler: async ({ c, principal, params }) => {
        const bytes = await readOwnOutbox(principal, params.file);
        return c.body(new Uint8Array(bytes), 200, {
          'content-type': 'message/rfc822',
          'content-disposition': `inline; filename="${params.file}"`,
        });
      },
    }),
    route({
      method: 'get',
      path: '/api/outbox/:file/message',
      action: 'outbox.read_own',
      summary: 'One outbox message, parsed: headers, text and its attachments (with URLs)',
      tag: 'notifications',
      params: z.object({ file: z.string() }),
      responses: {
        200: {
          description: 'The message',
          schema: z.object({
            subject: z.string(),
            from: z.string(),
            to: z.string(),
            date: z.string().nullable(),
            text: z.string(),
            attachments: z.array(
              z.object({
                filename: z.string(),
                contentType: z.string(),
                size: z.number(),
                inline: z.boolean(),
                url: z.string(),
              }),
            ),
          }),
        },
      },
      handler: async ({ c, principal, params }) => {
        const mail = await simpleParser(await readOwnOutbox(principal, params.file));
        const text = (v: { text?: string } | { text?: string }[] | undefined) =>
          Array.isArray(v) ? v.map((x) => x.text ?? '').join(', ') : (v?.text ?? '');
        return c.json({
          subject: mail.subject ?? '',
          from: text(mail.from),
          to: text(mail.to),
          date: mail.date?.toISOString() ?? null,
          text: mail.text ?? '',
          attachments: mail.attachments.map((a, i) => ({
            filename: a.filename ?? `attachment-${i}`,
            contentType: a.contentType,
            size: a.size,
            inline: a.contentDisposition === 'inline' || Boolean(a.cid),
            url: `/api/outbox/${encodeURIComponent(params.file)}/attachments/${i}`,
          })),
        });
      },
    }),
    route({
      method: 'get',
      path: '/api/outbox/:file/attachments/:index',
      action: 'outbox.read_own',
      summary: 'One attachment of an outbox message (the screenshot, a CSV…)',
      tag: 'notifications',
      params: z.object({ file: z.string(), index: z.coerce.number().int().min(0) }),
      responses: { 200: { description: 'The attachment', contentType: 'application/octet-stream' } },
      handler: async ({ c, principal, params }) => {
        const mail = await simpleParser(await readOwnOutbox(principal, params.file));
        const attachment = mail.attachments[params.index];
        if (!attachment) throw new NotFoundError('attachment', `${params.file}#${params.index}`);
        return c.body(new Uint8Array(attachment.content), 200, {
          'content-type': attachment.contentType,
          'content-disposition': `inline; filename="${(attachment.filename ?? 'attachment').replace(/"/g, '')}"`,
        });
      },
    }),
  ];

  async function readOwnOutbox(principal: Principal, file: string): Promise<Buffer> {
    const id = deliveryIdOf(file);
    const own = id ? await notifications.ownDeliveryIds(ctx, principal, [id]) : new Set();
    if (!deps.outbox || !id || !own.has(id)) {
      throw new NotFoundError('outbox message', file);
    }
    return deps.outbox.readOutbox(file).catch(() => {
      throw new NotFoundError('outbox message', file);
    });
  }
}

/** Outbox files are `<stamp>-<delivery id>.eml`. */
function deliveryIdOf(file: string): string | null {
  const match = /([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.eml$/.exec(file);
  return match ? match[1]! : null;
}
