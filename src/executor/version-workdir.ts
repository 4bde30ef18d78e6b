/**
 * A version's files on disk: the project folder a run of that version uses for relative paths and
 * imports. Versions are immutable and content-addressed, so each is written once, atomically (into a
 * temporary folder that is then renamed), under `<versionsDir>/<content hash>/`, and shared by runs.
 *
 * Publishing refuses names that cannot be stored (domain/file-names.ts); a version stored before that
 * check may still hold one, so writing it fails with an error that names the project file and never
 * the server's folders (issue 14: a run's error showed the data dir's path).
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AlmanacError } from '../domain/errors.ts';
import { displayFileName, fileNameProblem } from '../domain/file-names.ts';

export function versionDir(versionsDir: string, contentHash: string): string {
  return join(versionsDir, contentHash);
}

/** A version's file could not be written: names the project file, never a server path. */
export class VersionFileError extends AlmanacError {
  readonly file: string;
  constructor(file: string, reason: string) {
    super(
      'invalid_input',
      `project file '${displayFileName(file)}' cannot be stored on the worker: ${reason}; rename it and publish again`,
      422,
    );
    this.file = file;
  }
}

/** An error's reason without the paths it carries: its code when it has one (ENAMETOOLONG, ENOTDIR…). */
function reasonOf(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  return e.code ?? 'the filesystem refused it';
}

export async function materializeVersion(
  versionsDir: string,
  contentHash: string,
  loadFiles: () => Promise<ReadonlyMap<string, Buffer>>,
): Promise<string> {
  const target = versionDir(versionsDir, contentHash);
  if (existsSync(target)) return target;
  const files = await loadFiles();
  const staging = `${target}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    mkdirSync(staging, { recursive: true });
  } catch (error) {
    throw new Error(`the version's folder could not be created (${reasonOf(error)}); check the data dir`);
  }
  try {
    for (const [path, content] of files) {
      const problem = fileNameProblem(path);
      if (problem) throw new VersionFileError(path, `its name ${problem.split(';')[0]}`);
      const file = join(staging, path);
      if (!file.startsWith(staging + '/'))
        throw new VersionFileError(path, 'it is outside the project folder');
      try {
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, content);
      } catch (error) {
        throw new VersionFileError(path, reasonOf(error));
      }
    }
    try {
      renameSync(staging, target);
    } catch (error) {
      // Another worker wrote the same version first; its copy is identical.
      if (!existsSync(target))
        throw new Error(`the version's folder could not be created (${reasonOf(error)})`);
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return target;
}
