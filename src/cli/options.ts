/** Option parsers shared by the CLI's commands. */
import { ValidationError } from '../domain/errors.ts';
import { checkInputSizes } from '../domain/limits.ts';

/** Commander accumulator for repeatable options. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `--input key=value` pairs as an object of text values (the server or executor types them). */
export function parseInputs(pairs: readonly string[]): Record<string, string> {
  const inputs: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new ValidationError('--input', `expected key=value, got '${pair}'`);
    inputs[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  checkInputSizes(inputs, '--input');
  return inputs;
}

/**
 * A JSON Lines text of input sets, one object per line (blank lines skipped), as `almanac trigger
 * --inputs-file` reads it: `{"region": "EMEA"}`. A bad line is named by its number.
 */
export function parseInputsLines(text: string, field = '--inputs-file'): Record<string, unknown>[] {
  const sets: Record<string, unknown>[] = [];
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new ValidationError(field, `line ${i + 1} is not JSON; write one object of inputs per line`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw new ValidationError(field, `line ${i + 1} must be an object of inputs, like {"region": "EMEA"}`);
    sets.push(value as Record<string, unknown>);
  }
  if (sets.length === 0) throw new ValidationError(field, 'has no input sets; write one object per line');
  return sets;
}

/** `30s`, `5m`, `1500ms`, `2h` or plain milliseconds. */
export function parseDuration(text: string, field: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?$/.exec(text.trim());
  if (!match) throw new ValidationError(field, `'${text}' is not a duration; write 30s, 5m, 1500ms or 2h`);
  const n = Number(match[1]);
  const unit = match[2] ?? 'ms';
  const factor = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'h' ? 3_600_000 : 60_000;
  return Math.round(n * factor);
}
