/**
 * The notebook frontmatter: title, inputs, connections and app options, validated by one schema so
 * every error names the field and the rule.
 */
import { z } from 'zod';
import {
  MAX_INPUT_VALUE_CHARS,
  MAX_INPUTS,
  MAX_NAME_LENGTH,
  MAX_NOTE_LENGTH,
  MAX_TITLE_LENGTH,
} from '../limits.ts';
import { INPUT_TYPES } from './notebook.ts';

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;

const text = (max: number, limit: string) =>
  z.string().max(max, `must be at most ${max.toLocaleString('en-US')} characters (${limit})`);

const base = {
  label: text(MAX_NAME_LENGTH, 'MAX_NAME_LENGTH').optional(),
  description: text(MAX_NOTE_LENGTH, 'MAX_NOTE_LENGTH').optional(),
};
const inputText = text(MAX_INPUT_VALUE_CHARS, 'MAX_INPUT_VALUE_CHARS');

const inputSchema = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('text'), default: inputText.default(''), ...base }),
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
        .array(z.union([inputText, z.number()]), { error: 'must be a list of values' })
        .min(1, 'must list at least one value')
        .max(1000, 'must list at most 1,000 values'),
      default: z.union([inputText, z.number()]).optional(),
      ...base,
    }),
  ],
  { error: `type must be one of ${INPUT_TYPES.join(', ')}` },
);

export const frontmatterSchema = z.strictObject({
  title: z
    .string()
    .min(1, 'must not be empty')
    .max(MAX_TITLE_LENGTH, `must be at most ${MAX_TITLE_LENGTH} characters (MAX_TITLE_LENGTH)`)
    .optional(),
  description: text(MAX_NOTE_LENGTH * 10, 'MAX_NOTE_LENGTH x 10').optional(),
  inputs: z
    .record(
      z
        .string()
        .regex(IDENTIFIER, 'input names must be identifiers (letters, digits, _; not starting with a digit)'),
      inputSchema,
    )
    .refine((inputs) => Object.keys(inputs).length <= MAX_INPUTS, {
      error: `at most ${MAX_INPUTS} inputs are allowed (MAX_INPUTS)`,
    })
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
