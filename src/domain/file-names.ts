/**
 * Names of the files published with a version. A version's files are written to disk under their
 * names on every worker, so a name is accepted only if every filesystem we run on can store it, the same
 * way, inside the version's folder (issue 14, finding 13: NUL bytes, over-long names, a file and a folder
 * with one name and `..` gave 201 and then a run that crashed showing server paths).
 */
import { TooLargeError, ValidationError } from './errors.ts';
import { MAX_FILE_NAME_BYTES, MAX_FILE_PATH_BYTES, MAX_PROJECT_BYTES, MAX_PROJECT_FILES } from './limits.ts';

/** A file name as error fields and messages show it: control characters escaped, cut at 80 characters. */
export function displayFileName(path: string): string {
  const escaped = path.replace(
    /[\u0000-\u001f\u007f-\u009f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return escaped.length > 80 ? `${escaped.slice(0, 40)}…${escaped.slice(-20)}` : escaped;
}

/** What is wrong with one relative path, or null. */
export function fileNameProblem(path: string): string | null {
  if (path === '') return 'is empty: name the file';
  if (/[\u0000-\u001f\u007f-\u009f]/.test(path))
    return 'contains a control character (NUL, newline, …); rename the file';
  if (path.includes('\\')) return 'contains a backslash; use / between folders';
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path))
    return 'is an absolute path; use a path relative to the project folder';
  const parts = path.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..'))
    return "must be a relative path inside the project folder: no '..', '.' or empty parts";
  if (parts.some((p) => Buffer.byteLength(p, 'utf8') > MAX_FILE_NAME_BYTES))
    return `has a part longer than ${MAX_FILE_NAME_BYTES} bytes (MAX_FILE_NAME_BYTES), more than filesystems store; shorten it`;
  if (Buffer.byteLength(path, 'utf8') > MAX_FILE_PATH_BYTES)
    return `is longer than ${MAX_FILE_PATH_BYTES} bytes (MAX_FILE_PATH_BYTES); shorten it`;
  if (path.isWellFormed && !path.isWellFormed()) return 'is not valid Unicode; rename the file';
  return null;
}

/**
 * Checks the names and sizes of a version's files: each name (`fileNameProblem`), no two names that are
 * the same after Unicode normalization (NFC), and no name that is both a file and a folder (`a` and
 * `a/b`). Errors name the file (`files.<name>`) and never a server path.
 */
export function validateProjectFiles(files: ReadonlyMap<string, { length: number }>): void {
  if (files.size > MAX_PROJECT_FILES) {
    throw new TooLargeError(
      'files',
      MAX_PROJECT_FILES,
      `at most ${MAX_PROJECT_FILES} files may be published (MAX_PROJECT_FILES), got ${files.size}`,
    );
  }
  const normalized = new Map<string, string>();
  let total = 0;
  for (const [path, content] of files) {
    const problem = fileNameProblem(path);
    if (problem) throw new ValidationError(`files.${displayFileName(path)}`, problem);
    const key = path.normalize('NFC');
    const other = normalized.get(key);
    if (other !== undefined) {
      throw new ValidationError(
        `files.${displayFileName(path)}`,
        `is the same name as '${displayFileName(other)}' once Unicode is normalized (NFC); keep one of them`,
      );
    }
    normalized.set(key, path);
    total += content.length;
  }
  for (const [key, path] of normalized) {
    const parts = key.split('/');
    for (let n = 1; n < parts.length; n++) {
      const folder = normalized.get(parts.slice(0, n).join('/'));
      if (folder !== undefined) {
        throw new ValidationError(
          `files.${displayFileName(folder)}`,
          `is a file, and '${displayFileName(path)}' needs a folder of that name; rename one of them`,
        );
      }
    }
  }
  if (total > MAX_PROJECT_BYTES) {
    throw new TooLargeError(
      'files',
      MAX_PROJECT_BYTES,
      `files add up to ${total.toLocaleString('en-US')} bytes; at most ${MAX_PROJECT_BYTES.toLocaleString('en-US')} may be published (MAX_PROJECT_BYTES)`,
    );
  }
}
