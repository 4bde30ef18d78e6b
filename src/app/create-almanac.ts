/**
 * The run engine part of the composition root: builds the connections and the executor from the
 * resolved config. `createServer()` (create-server.ts, the one composition root) builds the rest around
 * it; `almanac run` uses it alone, with no store. Nothing outside app/ wires parts together.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isPostgresUrl } from '../domain/connection-url.ts';
import { EMBEDDED_CONNECTION } from '../domain/notebook/notebook.ts';
import { Executor } from '../executor/executor.ts';
import { detectIsolation } from '../executor/sandbox.ts';
import { DuckDbEngine } from '../executor/sql/duckdb-engine.ts';
import { PostgresEngine } from '../executor/sql/postgres-engine.ts';
import type { SqlEngine } from '../executor/sql/sql-engine.ts';
import type { AlmanacConfig } from './config.ts';

export interface Almanac {
  readonly config: Readonly<AlmanacConfig>;
  readonly executor: Executor;
  close(): Promise<void>;
}

export interface CreateOptions {
  /** Folders a run's version files lie in; SQL on the embedded database reads only its own run's. */
  projectDirs: readonly string[];
}

export async function createAlmanac(
  config: Readonly<AlmanacConfig>,
  options: CreateOptions,
): Promise<Almanac> {
  mkdirSync(config.runDir, { recursive: true });
  mkdirSync(dirname(config.duckdbPath), { recursive: true });
  const connections = new Map<string, SqlEngine>();
  connections.set(
    EMBEDDED_CONNECTION,
    await DuckDbEngine.open({
      id: EMBEDDED_CONNECTION,
      path: config.duckdbPath,
      allowedDirectories: options.projectDirs,
      limits: config.duckdb,
    }),
  );
  for (const connection of config.connections) {
    connections.set(
      connection.id,
      new PostgresEngine({ id: connection.id, connectionString: connection.url }),
    );
  }
  const executor = new Executor({
    connections,
    runRoot: config.runDir,
    limits: config.limits,
    prewarm: config.prewarm,
    blockPrivateNetworks: config.cellBlockPrivateNetworks,
    // User code never sees the data dir (the store, keys, tokens, other runs) or the SQLite store.
    isolation: detectIsolation({
      mode: config.sandbox,
      ...(config.sandboxUser ? { user: config.sandboxUser } : {}),
      hide: [
        config.dataDir,
        ...(isPostgresUrl(config.databaseUrl) ? [] : [dirname(resolve(config.databaseUrl))]),
      ],
    }),
  });
  return {
    config,
    executor,
    async close() {
      await executor.close();
      await Promise.all([...connections.values()].map((c) => c.close()));
    },
  };
}
