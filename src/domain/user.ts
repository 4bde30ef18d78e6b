/**
 * A user's account (issue 16): who they are to sign in, and where they stand. The workspace's `User`
 * (domain/workspace.ts) is what the rest of the system needs of a person; an `Account` adds their status
 * and times, which only the people pages and the sign-in paths read.
 */
import { z } from 'zod';
import { ValidationError } from './errors.ts';
import { userSchema } from './workspace.ts';

/**
 * - `invited`: has an invitation that is not accepted yet; cannot sign in;
 * - `active`: signs in, and their sessions and tokens work;
 * - `deactivated`: an admin removed them; every session and token they had is revoked.
 */
export const USER_STATUSES = ['invited', 'active', 'deactivated'] as const;
export type UserStatus = (typeof USER_STATUSES)[number];

export const accountSchema = userSchema
  .extend({
    status: z.enum(USER_STATUSES),
    createdAt: z.date(),
    lastSeenAt: z.date().nullable().describe('The last sign-in or use of a session or token (to the minute)'),
  })
  .meta({ id: 'Account' });
export type Account = z.infer<typeof accountSchema>;

/** @default 10: long enough that guessing is slow even against the per-address rate limit. */
export const MIN_PASSWORD_LENGTH = 10;
/** @default 256: argon2 takes any length, but a request should not make the server hash megabytes. */
export const MAX_PASSWORD_LENGTH = 256;
/** An invitation link works this long. @default 7 days */
export const INVITE_TTL_MS = 7 * 86_400_000;
/** A password reset link works this long. @default 1 hour */
export const RESET_TTL_MS = 3_600_000;

/** Emails compare without case: `Ada@Example.com` and `ada@example.com` are one address. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

const EMAIL = /^[^\s@]+@[^\s@]+$/;

/** Throws a ValidationError naming `field` unless `email` looks like an address. */
export function assertEmail(email: string, field = 'email'): string {
  const normalized = email.trim();
  if (!EMAIL.test(normalized) || normalized.length > 254) {
    throw new ValidationError(
      field,
      `'${email.slice(0, 80)}' is not an email address (like ada@example.com)`,
    );
  }
  return normalized;
}

/** Throws a ValidationError naming `field` unless `password` is within the length limits. */
export function assertPassword(password: string, field = 'password'): void {
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new ValidationError(
      field,
      `must be at least ${MIN_PASSWORD_LENGTH} characters (got ${password.length}); a short sentence works well`,
    );
  }
  if (password.length > MAX_PASSWORD_LENGTH) {
    throw new ValidationError(field, `must be at most ${MAX_PASSWORD_LENGTH} characters`);
  }
}
