/**
 * A version's files on disk: the project folder a run of that version uses for relative paths and
 * imports. Versions are immutable and content-addressed, so each is written once, atomically (into a
 * temporary folder that is then renamed), under `<versionsDir>/<content hash>/`, and shared by runs.
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export function versionDir(versionsDir: string, contentHash: string): string {
  return join(versionsDir, contentHash);
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
  mkdirSync(staging, { recursive: true });
  try {
    for (const [path, content] of files) {
      const file = join(staging, path);
      if (!file.startsWith(staging + '/')) continue;
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, content);
    }
    try {
      renameSync(staging, target);
    } catch (error) {
      // Another worker wrote the same version first; its copy is identical.
      if (!existsSync(target)) throw error;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return target;
}
