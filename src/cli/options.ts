/** Option parsers shared by the CLI's commands. */
import { ValidationError } from '../domain/errors.ts';

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
  return inputs;
}
