/**
 * A whole Almanac server in its own process, configured by the environment, for tests that kill it.
 * Prints one JSON line with its URL and worker id once it serves.
 */
import { resolveConfig } from '../../src/app/config.ts';
import { createServer } from '../../src/app/create-server.ts';

const server = await createServer(resolveConfig({ port: 0 }), { webDir: null });
process.stdout.write(`${JSON.stringify({ url: server.url, worker: server.worker?.id, pid: process.pid })}\n`);
