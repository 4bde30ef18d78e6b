/**
 * The files published with a notebook: everything in the notebook's folder except the notebook itself,
 * dot-files, `node_modules` and Almanac's data dir, so data files and `.ts` modules travel with the
 * version and a run on any machine finds them.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { ValidationError } from '../domain/errors.ts';
import { displayFileName, fileNameProblem, validateProjectFiles } from '../domain/file-names.ts';
import { MAX_PROJECT_BYTES, MAX_PROJECT_FILES } from '../domain/limits.ts';

const SKIP = new Set(['node_modules', '.git', '.almanac', 'dist']);

export function collectProjectFiles(notebookPath: string): Map<string, Buffer> {
  const root = dirname(resolve(notebookPath));
  const notebook = basename(notebookPath);
  const files = new Map<string, Buffer>();
  let total = 0;
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name.startsWith('.') || SKIP.has(entry.name)) continue;
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) {
        const rel = relative(root, full).split(sep).join('/');
        if (rel === notebook) continue;
        // Checked here too, so the CLI names the local file before sending anything.
        const problem = fileNameProblem(rel);
        if (problem) throw new ValidationError(`files.${displayFileName(rel)}`, problem);
        total += statSync(full).size;
        if (files.size >= MAX_PROJECT_FILES || total > MAX_PROJECT_BYTES) {
          throw new ValidationError(
            'files',
            `the folder of ${notebookPath} holds more than ${MAX_PROJECT_FILES} files or ${MAX_PROJECT_BYTES / 1024 / 1024} MiB; move the notebook into its own folder`,
          );
        }
        files.set(rel, readFileSync(full));
      }
    }
  };
  walk(root);
  validateProjectFiles(files);
  return files;
}
