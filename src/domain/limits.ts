/**
 * Size and length limits at every boundary, in one place: the HTTP schemas, the services, the notebook
 * parser and the CLI all read them from here. A value over a **size** limit (an input value, a notebook,
 * published files) is refused with HTTP 413 (`TooLargeError`); a **length** over its limit (a name, a
 * title, a note) with HTTP 400 (`ValidationError`). Both name the field and the limit.
 *
 * Why: a 60 MB input value was accepted, and afterwards every page of the run log was 73 MB
 * (issue 14, finding 12). Limits are generous for real use and small next to what breaks a page.
 */
import { TooLargeError, ValidationError } from './errors.ts';

/** Characters in one input value (a text input, a date, a select option). @default 10000 */
export const MAX_INPUT_VALUE_CHARS = 10_000;
/** Input values supplied with one run or schedule. @default 100 */
export const MAX_INPUTS = 100;
/** Characters of a name: schedule, notification rule, connection, API token. @default 200 */
export const MAX_NAME_LENGTH = 200;
/** Characters of a project title (the notebook's title or first heading). @default 200 */
export const MAX_TITLE_LENGTH = 200;
/** Characters of a free-text note (a schedule's pause note) or an input's label. @default 1000 */
export const MAX_NOTE_LENGTH = 1000;
/** Characters of a URL (connection, webhook). @default 2048 */
export const MAX_URL_LENGTH = 2048;
/** UTF-8 bytes of a notebook's source. @default 1 MiB */
export const MAX_NOTEBOOK_BYTES = 1024 * 1024;
/** Cells (code, chart and prose) in one notebook. @default 500 */
export const MAX_NOTEBOOK_CELLS = 500;
/** Files published with one version. @default 200 */
export const MAX_PROJECT_FILES = 200;
/** Bytes of all files published with one version. @default 50 MiB */
export const MAX_PROJECT_BYTES = 50 * 1024 * 1024;
/** UTF-8 bytes of one component of a published file's path (the filesystem's NAME_MAX). @default 255 */
export const MAX_FILE_NAME_BYTES = 255;
/** UTF-8 bytes of a published file's whole path (the filesystem's PATH_MAX). @default 4096 */
export const MAX_FILE_PATH_BYTES = 4096;
/** YAML aliases (`*anchor`) resolved in a frontmatter or chart spec: stops "billion laughs". @default 100 */
export const MAX_YAML_ALIASES = 100;
/** Characters of each input value shown in run lists (the single run shows it whole). @default 200 */
export const INPUT_SUMMARY_CHARS = 200;

const count = (n: number) => n.toLocaleString('en-US');

/** Throws a 400 naming `field` when `value` is longer than `max` characters. */
export function checkLength(field: string, value: string, max: number, limitName: string): void {
  if (value.length > max) {
    throw new ValidationError(
      field,
      `is ${count(value.length)} characters; at most ${count(max)} are allowed (${limitName}); shorten it`,
    );
  }
}

/**
 * Throws a 413 naming the input when a supplied value is too big, before anything else looks at the
 * values (so no error message, log line or stored run ever carries a huge one).
 */
export function checkInputSizes(supplied: Readonly<Record<string, unknown>>, field = 'inputs'): void {
  const names = Object.keys(supplied);
  if (names.length > MAX_INPUTS) {
    throw new TooLargeError(
      field,
      MAX_INPUTS,
      `has ${count(names.length)} values; at most ${count(MAX_INPUTS)} are accepted (MAX_INPUTS)`,
    );
  }
  for (const name of names) {
    if (name.length > MAX_NAME_LENGTH) {
      throw new ValidationError(
        `${field}.${name.slice(0, 40)}…`,
        `an input name is at most ${count(MAX_NAME_LENGTH)} characters (MAX_NAME_LENGTH)`,
      );
    }
    const value = supplied[name];
    const length = typeof value === 'string' ? value.length : JSON.stringify(value ?? null).length;
    if (length > MAX_INPUT_VALUE_CHARS) {
      throw new TooLargeError(
        `${field}.${name}`,
        MAX_INPUT_VALUE_CHARS,
        `is ${count(length)} characters; an input value may have at most ${count(MAX_INPUT_VALUE_CHARS)} (MAX_INPUT_VALUE_CHARS). Pass large data as a project file and an input that names it`,
      );
    }
  }
}

/** Throws a 413 naming `field` when `text` is more than `max` UTF-8 bytes. */
export function checkBytes(field: string, text: string, max: number, limitName: string, what: string): void {
  // Most texts are far below the limit: only count bytes when the characters alone could exceed it.
  if (text.length * 3 <= max) return;
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > max) {
    throw new TooLargeError(
      field,
      max,
      `${what} is ${count(bytes)} bytes; at most ${count(max)} are accepted (${limitName})`,
    );
  }
}

/**
 * Rows one SQL statement may return to a run (into the cell's scope). The server reads results in
 * chunks and stops past this, so one `SELECT *` of a huge table cannot fill the server's memory.
 * @default 500000
 */
export const MAX_SQL_RESULT_ROWS = 500_000;
