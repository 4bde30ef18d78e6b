/**
 * A workspace's notification integrations: SMTP for email, a Slack bot token, and webhook settings.
 * Secrets here are encrypted at rest by the services and never logged.
 */
import { ValidationError } from '../errors.ts';

export interface SmtpSettings {
  host: string;
  port: number;
  /** TLS from the start (port 465); otherwise STARTTLS when the server offers it. */
  secure: boolean;
  user: string | null;
  password: string | null;
  /** Accept a self-signed certificate (private relays). @default false */
  allowSelfSigned?: boolean;
}

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
