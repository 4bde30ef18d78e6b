/**
 * Parsed notebooks of versions. Versions are immutable, so each is parsed once per process; services
 * that enqueue, fire or run versions share this cache.
 */

import type { Notebook } from '../domain/notebook/notebook.ts';
import { parseNotebook } from '../domain/notebook/parse-notebook.ts';

const parsedVersions = new Map<string, Promise<Notebook>>();

export function notebookOfVersion(versionId: string, source: string): Promise<Notebook> {
  let parsed = parsedVersions.get(versionId);
  if (!parsed) {
    parsed = parseNotebook(source);
    parsedVersions.set(versionId, parsed);
    if (parsedVersions.size > 500) parsedVersions.delete(parsedVersions.keys().next().value!);
    parsed.catch(() => parsedVersions.delete(versionId));
  }
  return parsed;
}
