/**
 * Resolves the values a run uses for a notebook's inputs: defaults, then the supplied values, each
 * checked and converted for its input type. Values may come as text (CLI `--input k=v`, query strings)
 * or typed (JSON bodies).
 */

import { ValidationError } from '../errors.ts';
import { checkInputSizes } from '../limits.ts';
import type { InputValue } from '../run-context.ts';
import { isValidDate } from './frontmatter.ts';
import type { InputSpec } from './notebook.ts';

export function resolveInputs(
  specs: readonly InputSpec[],
  supplied: Readonly<Record<string, unknown>> = {},
): Record<string, InputValue> {
  checkInputSizes(supplied);
  const byName = new Map(specs.map((s) => [s.name, s]));
  for (const name of Object.keys(supplied)) {
    if (!byName.has(name)) {
      const known = specs.map((s) => s.name).join(', ') || 'none';
      throw new ValidationError(`inputs.${name}`, `is not an input of this notebook (inputs: ${known})`);
    }
  }
  const values: Record<string, InputValue> = {};
  for (const spec of specs) {
    values[spec.name] = spec.name in supplied ? coerce(spec, supplied[spec.name]) : spec.default;
  }
  return values;
}

function coerce(spec: InputSpec, raw: unknown): InputValue {
  const field = `inputs.${spec.name}`;
  switch (spec.type) {
    case 'text':
      if (raw === null || raw === undefined) return '';
      if (typeof raw !== 'string' && typeof raw !== 'number')
        throw new ValidationError(field, 'must be text');
      return String(raw);
    case 'number': {
      const n =
        typeof raw === 'number'
          ? raw
          : typeof raw === 'string' && raw.trim() !== ''
            ? Number(raw)
            : Number.NaN;
      if (!Number.isFinite(n)) throw new ValidationError(field, `must be a number, not ${shown(raw)}`);
      if (spec.min !== undefined && n < spec.min)
        throw new ValidationError(field, `must be at least ${spec.min}`);
      if (spec.max !== undefined && n > spec.max)
        throw new ValidationError(field, `must be at most ${spec.max}`);
      return n;
    }
    case 'date':
      if (typeof raw !== 'string' || !isValidDate(raw)) {
        throw new ValidationError(field, `must be a date written as YYYY-MM-DD, not ${shown(raw)}`);
      }
      return raw;
    case 'checkbox':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1' || raw === 'yes' || raw === 'on') return true;
      if (raw === 'false' || raw === '0' || raw === 'no' || raw === 'off') return false;
      throw new ValidationError(field, `must be true or false, not ${shown(raw)}`);
    case 'select': {
      const options = spec.options ?? [];
      const match = options.find((o) => o === raw || String(o) === String(raw));
      if (match === undefined) {
        throw new ValidationError(field, `must be one of ${options.join(', ')}; got ${shown(raw)}`);
      }
      return match;
    }
  }
}

/** A supplied value as error messages quote it: JSON, cut at 100 characters. */
function shown(raw: unknown): string {
  const text = JSON.stringify(raw) ?? String(raw);
  return text.length > 100 ? `${text.slice(0, 100)}…` : text;
}
