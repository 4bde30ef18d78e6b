#!/usr/bin/env node
/**
 * The `almanac` command line. Bad input exits 2 with one line naming what was wrong; a run that fails
 * exits 1 with one line naming the failing cell; anything unexpected exits 70 with one line (never a
 * stack trace: it would show server paths and internals). The data dir and the files in it are
 * private to the user (see `restrictDataDir`).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { resolveConfig } from '../app/config.ts';
import { createAlmanac } from '../app/create-almanac.ts';
import { AlmanacError, ValidationError } from '../domain/errors.ts';
import { parseNotebook } from '../domain/notebook/parse-notebook.ts';
import { isRunContext, RUN_CONTEXTS } from '../domain/run-context.ts';
import { restrictSqliteFiles } from '../store/database.ts';
import { ServerUnavailableError } from './api-client.ts';
import { collect, parseDuration, parseInputs } from './options.ts';

export { parseDuration };

import { ProgressPrinter, renderSnapshot } from './render.ts';
import { registerServerCommands } from './server-commands.ts';

const EXIT_RUN_FAILED = 1;
const EXIT_USAGE = 2;
/** The server could not be reached or failed. */
const EXIT_UNAVAILABLE = 3;

function positiveInt(text: string, field: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0)
    throw new ValidationError(field, `must be a whole number, got '${text}'`);
  return n;
}

interface RunFlags {
  input: string[];
  context: string;
  json: boolean;
  connection: string[];
  timeout?: string;
  memory?: string;
  rowLimit?: string;
  rows: string;
  dataDir?: string;
  scheduledFor?: string;
  color: boolean;
}

async function runCommand(file: string, flags: RunFlags): Promise<number> {
  if (!isRunContext(flags.context)) {
    throw new ValidationError(
      '--context',
      `must be one of ${RUN_CONTEXTS.join(', ')}, got '${flags.context}'`,
    );
  }
  let scheduledFor: Date | null = null;
  if (flags.scheduledFor) {
    scheduledFor = new Date(flags.scheduledFor);
    if (Number.isNaN(scheduledFor.getTime())) {
      throw new ValidationError('--scheduled-for', `'${flags.scheduledFor}' is not an ISO date-time`);
    }
  }
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ValidationError(
      'notebook',
      `cannot read '${file}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  const notebook = await parseNotebook(text, { file, defaultTitle: basename(file, '.md') });
  const inputs = parseInputs(flags.input);
  const config = resolveConfig({
    ...(flags.dataDir ? { dataDir: flags.dataDir } : {}),
    connections: flags.connection,
    ...(flags.timeout ? { timeoutMs: parseDuration(flags.timeout, '--timeout') } : {}),
    ...(flags.memory ? { memoryLimitMb: positiveInt(flags.memory, '--memory') } : {}),
    ...(flags.rowLimit ? { rowLimit: positiveInt(flags.rowLimit, '--row-limit') } : {}),
  });
  const projectDir = dirname(path);
  // `almanac run` runs the invoker's own notebook from the invoker's own files, as `node` would: as the
  // invoker, still sandboxed. The server is what runs other people's notebooks as an unprivileged user.
  const invoker = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  const almanac = await createAlmanac(
    { ...config, prewarm: false, sandboxUser: config.sandboxUser ?? invoker },
    { projectDirs: [projectDir] },
  );
  const color = flags.color && Boolean(process.stdout.isTTY) && !process.env['NO_COLOR'];
  const progress = flags.json ? null : new ProgressPrinter(process.stderr, color);
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const { snapshot } = await almanac.executor.run({
      notebook,
      projectDir,
      inputs,
      context: flags.context,
      scheduledFor,
      signal: controller.signal,
      onEvent: (event) => progress?.handle(event),
    });
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(snapshot, null, 2)}\n`);
    } else {
      process.stdout.write(
        renderSnapshot(snapshot, {
          color,
          width: Math.max(60, process.stdout.columns ?? 120),
          rows: positiveInt(flags.rows, '--rows'),
        }),
      );
    }
    if (snapshot.status !== 'succeeded') {
      process.stderr.write(`almanac: ${snapshot.message ?? `run ${snapshot.status}`}\n`);
      return EXIT_RUN_FAILED;
    }
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await almanac.close();
    restrictDataFiles(config); // created during this run (under root's umask)
  }
}

/** Whether runs start as another (unprivileged) user: the sandbox does so when the server is root. */
const RUNS_AS_OTHER_USER = process.getuid?.() === 0;

/**
 * Keeps the data dir private (issue 14: the store and DuckDB files were world-readable). When runs
 * start as this same user, the process runs with umask 077, so everything it and its children create
 * is 0600/0700. When the server is root, runs start as an unprivileged user who must read the run and
 * version folders under the data dir: the umask stays, the data dir is 0711 (passable, not listable),
 * and the files that hold data (the store, DuckDB and their WAL files) are made 0600 explicitly.
 */
function restrictDataDir(dataDir: string | undefined): void {
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

function restrictDataFiles(config: ReturnType<typeof resolveConfig>): void {
  for (const file of [config.duckdbPath, `${config.duckdbPath}.wal`]) {
    try {
      if (existsSync(file)) chmodSync(file, 0o600);
    } catch {
      // not ours to change
    }
  }
  if (!/^postgres(ql)?:\/\//.test(config.databaseUrl)) restrictSqliteFiles(config.databaseUrl);
}

export function buildProgram(): Command {
  const program = new Command('almanac')
    .description('Almanac: scheduled data apps from notebooks of SQL and TypeScript')
    .version(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version)
    // Program options (-V, --version) only before the subcommand, so `almanac trigger p --version 1`
    // is the subcommand's --version, not the CLI's (issue 14: it printed 0.1.0 and triggered nothing).
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeErr: () => {} })
    .showSuggestionAfterError(true)
    .hook('preAction', (_program, command) => {
      // Commands that keep data in the data dir: make it private before they create anything in it.
      if (command.name() === 'run' || command.name() === 'serve')
        restrictDataDir((command.opts() as { dataDir?: string }).dataDir);
    });

  program
    .command('run')
    .description("run a notebook top to bottom and print every cell's output")
    .argument('<notebook>', 'the notebook file (.md)')
    .option('-i, --input <key=value>', 'an input value (repeat for several)', collect, [])
    .addOption(
      new Option('-c, --context <context>', 'run context seen as almanac.runContext')
        .choices(RUN_CONTEXTS)
        .default('logic'),
    )
    .option('--json', 'print the run snapshot as JSON instead of text', false)
    .option(
      '--connection <id=url>',
      'a PostgreSQL connection the notebook uses (repeat for several)',
      collect,
      [],
    )
    .option('--timeout <duration>', 'wall-clock limit for the run, like 30s or 5m (default 5m)')
    .option('--memory <MiB>', 'memory cap for the run process in MiB (default 512)')
    .option('--row-limit <n>', 'rows kept per table in the snapshot (default 1000)')
    .option('--rows <n>', 'table rows to print per table', '10')
    .option('--scheduled-for <iso>', 'nominal fire time, seen as almanac.scheduledFor')
    .option('--data-dir <dir>', 'where Almanac keeps its data (default .almanac)')
    .option('--no-color', 'plain text output')
    .action(async (file: string, flags: RunFlags) => {
      process.exitCode = await runCommand(file, flags);
    });
  registerServerCommands(program);
  return program;
}

/** One line of an error's message: messages never span lines, and stacks are never shown. */
function oneLine(message: string): string {
  const line = message.replace(/\s*\n\s*/g, ' ').trim();
  return line.length > 2000 ? `${line.slice(0, 2000)}…` : line;
}

export async function main(argv: readonly string[]): Promise<number> {
  // Files this process and its runs create are 0600 and folders 0700, unless runs start as another
  // user who must read some of them (see restrictDataDir).
  if (!RUNS_AS_OTHER_USER) process.umask(0o077);
  const program = buildProgram();
  try {
    await program.parseAsync(argv as string[], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version' ||
        error.exitCode === 0
      ) {
        return 0;
      }
      process.stderr.write(`almanac: ${oneLine(error.message.replace(/^error: /, ''))}\n`);
      return EXIT_USAGE;
    }
    if (error instanceof AlmanacError) {
      process.stderr.write(`almanac: ${oneLine(error.message)}\n`);
      return EXIT_USAGE;
    }
    if (error instanceof ServerUnavailableError) {
      process.stderr.write(`almanac: ${oneLine(error.message)}\n`);
      return EXIT_UNAVAILABLE;
    }
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    process.stderr.write(`almanac: unexpected error: ${oneLine(message)}\n`);
    return 70;
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
  // A command that failed is done, even if what it opened (a server's connections) keeps handles alive.
  if (process.exitCode !== 0) process.exit(process.exitCode);
}
