/**
 * Short input summaries for run lists. A run keeps its inputs whole (the single-run endpoint returns
 * them), but a page of the run log shows each value cut to `INPUT_SUMMARY_CHARS`, so one big value
 * cannot make every page of the log huge (issue 14, finding 12).
 */
import { INPUT_SUMMARY_CHARS } from './limits.ts';
import type { InputValue } from './run-context.ts';

/** `…` and the full length in characters: `abc… (12,000 characters)`. */
export function summarizeValue(value: InputValue, max = INPUT_SUMMARY_CHARS): InputValue {
  if (typeof value !== 'string' || value.length <= max) return value;
  return `${value.slice(0, max)}… (${value.length.toLocaleString('en-US')} characters)`;
}

/** The inputs of a run with every long text value shortened (see `summarizeValue`). */
export function summarizeInputs(
  inputs: Readonly<Record<string, InputValue>>,
  max = INPUT_SUMMARY_CHARS,
): Record<string, InputValue> {
  const summary: Record<string, InputValue> = {};
  for (const [name, value] of Object.entries(inputs)) summary[name] = summarizeValue(value, max);
  return summary;
}
