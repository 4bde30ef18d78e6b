/**
 * Keeping the data dir private. Loaded by `run` and `serve` only (it reads the configuration and the
 * store's file layout).
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { resolveConfig } from '../app/config.ts';
import { isPostgresUrl } from '../domain/connection-url.ts';
import { restrictSqliteFiles } from '../store/database.ts';

/** Whether runs start as another (unprivileged) user: the sandbox does so when the server is root. */
export const RUNS_AS_OTHER_USER = process.getuid?.() === 0;

/**
 * Keeps the data dir private (issue 14: the store and DuckDB files were world-readable). When runs
 * start as this same user, the process runs with umask 077, so everything it and its children create
 * is 0600/0700. When the server is root, runs start as an unprivileged user who must read the run and
 * version folders under the data dir: the umask stays, the data dir is 0711 (passable, not listable),
 * and the files that hold data (the store, DuckDB and their WAL files) are made 0600 explicitly.
 */
export function restrictDataDir(dataDir: string | undefined): void {
  let config: ReturnType<typeof resolveConfig>;
  try {
    config = resolveConfig(dataDir ? { dataDir } : {});
  } catch {
    return; // the command itself reports what is wrong with its configuration
  }
  mkdirSync(config.dataDir, { recursive: true });
  chmodSync(config.dataDir, RUNS_AS_OTHER_USER ? 0o711 : 0o700);
  restrictDataFiles(config);
}

export function restrictDataFiles(config: ReturnType<typeof resolveConfig>): void {
  for (const file of [config.duckdbPath, `${config.duckdbPath}.wal`]) {
    try {
      if (existsSync(file)) chmodSync(file, 0o600);
    } catch {
      // not ours to change
    }
  }
  if (!isPostgresUrl(config.databaseUrl)) restrictSqliteFiles(config.databaseUrl);
}
