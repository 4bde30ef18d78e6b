/**
 * The notebook frontmatter: title, inputs, connections and app options, validated by one schema so
 * every error names the field and the rule.
 */
import { z } from 'zod';

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;

const base = {
  label: z.string().optional(),
  description: z.string().optional(),
};

const inputSchema = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('text'), default: z.string().default(''), ...base }),
    z.strictObject({
      type: z.literal('number'),
      default: z.number({ error: 'must be a number' }).default(0),
      min: z.number().optional(),
      max: z.number().optional(),
      ...base,
    }),
    z.strictObject({
      type: z.literal('date'),
      default: z
        .string({ error: "must be a date written as 'YYYY-MM-DD' (quote it)" })
        .regex(ISO_DATE, "must be a date written as 'YYYY-MM-DD'")
        .refine(isValidDate, 'is not a calendar date'),
      ...base,
    }),
    z.strictObject({ type: z.literal('checkbox'), default: z.boolean().default(false), ...base }),
    z.strictObject({
      type: z.literal('select'),
      options: z
        .array(z.union([z.string(), z.number()]), { error: 'must be a list of values' })
        .min(1, 'must list at least one value'),
      default: z.union([z.string(), z.number()]).optional(),
      ...base,
    }),
  ],
  { error: 'type must be one of select, text, number, date, checkbox' },
);

export const frontmatterSchema = z.strictObject({
  title: z.string().min(1, 'must not be empty').optional(),
  description: z.string().optional(),
  inputs: z
    .record(
      z
        .string()
        .regex(IDENTIFIER, 'input names must be identifiers (letters, digits, _; not starting with a digit)'),
      inputSchema,
    )
    .default({}),
  connections: z
    .array(z.string().regex(IDENTIFIER, 'connection ids must be identifiers'), {
      error: 'must be a list of connection ids, for example [warehouse]',
    })
    .default([]),
  app: z
    .strictObject({
      show_last_run: z.boolean().default(true),
      hide_code: z.boolean().default(true),
    })
    .default({ show_last_run: true, hide_code: true }),
});

export type Frontmatter = z.infer<typeof frontmatterSchema>;

export function isValidDate(text: string): boolean {
  if (!ISO_DATE.test(text)) return false;
  const date = new Date(`${text}T00:00:00Z`);
  return !Number.isNaN(date.getTime()) && date.toISOString().startsWith(text);
}

export { IDENTIFIER };
