#!/usr/bin/env node
// The `almanac` executable. It is JavaScript on purpose, and the project's only such file: Node loads
// its TypeScript stripper for a `.ts` entry file before any of our code runs, and the compile cache
// can only cover modules loaded after it is turned on. Starting here, every CLI module (the TypeScript
// sources, stripped once) comes from the cache on later starts (issue 15, docs/performance.md).
// The cache lives in the install's own node_modules/.cache (trusted like the rest of node_modules,
// never a shared temp dir); where it cannot be written, Node runs without it.
import { enableCompileCache } from 'node:module';

if (!process.env.NODE_COMPILE_CACHE)
  enableCompileCache(new URL('../node_modules/.cache/almanac-compile', import.meta.url).pathname);

const { runCli } = await import('../src/cli/main.ts');
await runCli(process.argv.slice(2));
