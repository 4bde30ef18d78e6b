#!/usr/bin/env node
/**
 * The `almanac` executable. It turns on Node's compile cache before it loads the CLI, so later starts
 * reuse the type-stripped and compiled code of the CLI's modules instead of stripping TypeScript again
 * (issue 15: a fast CLI; `npm run bench:cli`, docs/performance.md). The cache lives in the install's own
 * `node_modules/.cache` (trusted like the rest of node_modules, never a shared temp dir); where it
 * cannot be written, Node runs without it. Everything else is in `program.ts`.
 */
import { enableCompileCache } from 'node:module';

if (!process.env['NODE_COMPILE_CACHE'])
  enableCompileCache(new URL('../../node_modules/.cache/almanac-compile', import.meta.url).pathname);

export const { buildProgram, endQuietlyOnClosedPipe, main, parseDuration } = await import('./program.ts');

if (import.meta.main) {
  endQuietlyOnClosedPipe(process.stdout);
  process.exitCode = await main(process.argv.slice(2));
  // A command that failed is done, even if what it opened (a server's connections) keeps handles alive.
  if (process.exitCode !== 0) process.exit(process.exitCode);
}
