/**
 * A zod issue as a `ValidationError`, naming the field as the rest of Almanac names fields:
 * `notifications[0].trigger.count`, after a prefix that says what the value is (`rule`). One function
 * for the HTTP layer (request bodies, queries, parameters) and the domain's own checks, so a field is
 * named the same way whichever of them finds the problem.
 */
import { z } from 'zod';
import { ValidationError } from './errors.ts';

/** The parts of a zod issue this needs (zod's `$ZodIssue` has them). */
export interface SchemaIssue {
  code: string;
  path: readonly PropertyKey[];
  message: string;
  keys?: readonly string[];
}

/** `notifications[0].trigger.count`: keys joined with dots, indexes in brackets, after `prefix`. */
export function fieldOfPath(path: readonly PropertyKey[], prefix = ''): string {
  const written = path
    .map((key, i) => (typeof key === 'number' ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`))
    .join('');
  if (!prefix) return written;
  return written ? (written.startsWith('[') ? `${prefix}${written}` : `${prefix}.${written}`) : prefix;
}

/**
 * The error for an issue. An unknown key is named itself (`rule.trigger.cont`); a missing value "is
 * required"; other issues keep the schema's message (which our schemas write as the domain does).
 * `where` says which part of a request it came from (`body`, `query`), when there is one.
 */
export function validationErrorOf(
  issue: SchemaIssue,
  options: { prefix?: string; where?: string } = {},
): ValidationError {
  const unknownKeys = issue.code === 'unrecognized_keys' ? (issue.keys ?? []) : [];
  const path = unknownKeys.length > 0 ? [...issue.path, unknownKeys[0]!] : issue.path;
  const field = fieldOfPath(path, options.prefix) || options.where || 'value';
  const where = options.where ? ` (${options.where})` : '';
  const message =
    issue.code === 'invalid_type' && /received undefined/.test(issue.message)
      ? `is required${where}`
      : unknownKeys.length > 0
        ? `is not a known field${where}${unknownKeys.length > 1 ? `; unknown: ${unknownKeys.join(', ')}` : ''}`
        : issue.message;
  return new ValidationError(field, message);
}

/** A discriminated union's error when `kind` is none of its options: names them. */
export const kindError = (issue: { code: string; options?: unknown; input?: unknown }) =>
  issue.code === 'invalid_union' && Array.isArray(issue.options)
    ? `must be one of ${issue.options.join(', ')} (got ${JSON.stringify(issue.input)})`
    : undefined;

/** An enum whose error lists the allowed values, as `validateRule` says it. */
export const oneOfSchema = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, {
    error: (issue) => `must be one of ${values.join(', ')} (got ${JSON.stringify(issue.input)})`,
  });
