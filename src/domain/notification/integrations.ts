/**
 * A workspace's notification integrations: SMTP for email, a Slack bot token, and webhook settings.
 * Secrets here are encrypted at rest by the services and never logged.
 */
import { z } from 'zod';
import { ValidationError } from '../errors.ts';

/** SMTP as stored (the password encrypted at rest by the services). */
export const smtpSettingsSchema = z.object({
  host: z.string().describe('A host name or address'),
  /** @default 587 */
  port: z.number().int().describe('1-65535 (default 587)'),
  /** TLS from the start (port 465); otherwise STARTTLS when the server offers it. */
  secure: z.boolean().describe('TLS from the start (default: on port 465 only); otherwise STARTTLS'),
  user: z.string().nullable(),
  password: z.string().nullable(),
  /** Accept a self-signed certificate (private relays). @default false */
  allowSelfSigned: z.boolean().optional().describe('Accept a self-signed certificate (default false)'),
});
export type SmtpSettings = z.infer<typeof smtpSettingsSchema>;

/** What anyone may see of a workspace's integrations: whether each is set, never a secret. */
export const integrationsViewSchema = z.object({
  smtp: smtpSettingsSchema.pick({ host: true, port: true, secure: true, user: true }).nullable(),
  /** The sender address of every email. */
  emailFrom: z.string(),
  /** Whether a Slack bot token is set. */
  slack: z.boolean(),
  /** May webhooks reach private addresses (a receiver on the same network)? @default false */
  allowPrivateWebhooks: z.boolean(),
});
export type IntegrationsView = z.infer<typeof integrationsViewSchema>;

/** A change to the integrations: each field optional; `null` removes SMTP or the Slack token. */
export const integrationsChangeSchema = z.strictObject({
  smtp: smtpSettingsSchema
    .partial({ port: true, secure: true, user: true, password: true })
    .strict()
    .nullable()
    .optional()
    .describe('null removes SMTP: email then goes to the outbox folder'),
  emailFrom: z.string().optional(),
  slackToken: z
    .string()
    .nullable()
    .optional()
    .describe('A bot token (xoxb-…); checked with Slack; null removes it'),
  allowPrivateWebhooks: integrationsViewSchema.shape.allowPrivateWebhooks.optional(),
});

export function validateSmtp(input: unknown): SmtpSettings {
  if (typeof input !== 'object' || input === null) throw new ValidationError('smtp', 'must be an object');
  const s = input as Record<string, unknown>;
  if (typeof s['host'] !== 'string' || !/^[A-Za-z0-9.:[\]-]+$/.test(s['host'])) {
    throw new ValidationError('smtp.host', 'must be a host name or address');
  }
  const port = s['port'] ?? 587;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ValidationError('smtp.port', 'must be a port number, 1-65535');
  }
  const text = (key: string) => {
    const value = s[key];
    if (value === undefined || value === null) return null;
    if (typeof value !== 'string') throw new ValidationError(`smtp.${key}`, 'must be text');
    return value;
  };
  return {
    host: s['host'],
    port,
    secure: s['secure'] === true || (s['secure'] === undefined && port === 465),
    user: text('user'),
    password: text('password'),
    allowSelfSigned: s['allowSelfSigned'] === true,
  };
}

/** A plain email address: `name@host`. */
export function validateEmailAddress(value: unknown, field: string): string {
  if (typeof value !== 'string' || !/^[^\s@<>]+@[^\s@<>]+$/.test(value)) {
    throw new ValidationError(
      field,
      `must be an email address like almanac@example.com (got ${JSON.stringify(value)})`,
    );
  }
  return value;
}
