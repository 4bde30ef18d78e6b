#!/usr/bin/env node
/**
 * The CLI's entry: `bin/almanac.js` (the installed `almanac`) calls `runCli`, and `node src/cli/main.ts`
 * runs it directly. Either way Node's compile cache is on before the CLI loads, so later starts reuse
 * the type-stripped and compiled code of the CLI's modules (issue 15: a fast CLI; `npm run bench:cli`,
 * docs/performance.md). Everything else is in `program.ts`.
 */
import { enableCompileCache } from 'node:module';

if (!process.env['NODE_COMPILE_CACHE'])
  enableCompileCache(new URL('../../node_modules/.cache/almanac-compile', import.meta.url).pathname);

export const { buildProgram, endQuietlyOnClosedPipe, main, parseDuration } = await import('./program.ts');

/** Runs the CLI as the `almanac` executable does (bin/almanac.js), and sets the exit code. */
export async function runCli(argv: string[]): Promise<void> {
  endQuietlyOnClosedPipe(process.stdout);
  process.exitCode = await main(argv);
  // A command that failed is done, even if what it opened (a server's connections) keeps handles alive.
  if (process.exitCode !== 0) process.exit(process.exitCode);
}

if (import.meta.main) await runCli(process.argv.slice(2));
