/**
 * The `almanac` command line. Exit codes:
 * - 2, usage: bad flags or input, or a 4xx the user caused (a bad token, an unknown project), with one
 *   line naming what was wrong;
 * - 1, failure: a run that fails (one line naming the failing cell), or a server that cannot be reached
 *   or answers 5xx (issue 15: server errors exit 1, usage errors 2; it was 3);
 * - 70: anything unexpected, with one line (never a stack trace: it would show server paths and
 *   internals). The data dir and the files in it are
 * private to the user (see `restrictDataDir`).
 *
 * This module and the modules that declare commands load only commander and small parts of `domain/`:
 * each command's action imports what it needs (the executor, the server, the notebook parser) when it
 * runs, so `almanac --version`, `--help` and the client commands start in about the time of a bare
 * `node` (issue 15; `npm run bench:cli`, docs/performance.md). `test/cli.test.ts` checks that they
 * never load the server.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { AlmanacError } from '../domain/errors.ts';
import { RUN_CONTEXTS } from '../domain/run-context.ts';
import { registerAccountCommands } from './account-commands.ts';
import { ServerUnavailableError } from './api-client.ts';
import { registerAuditCommands } from './audit-commands.ts';
import { collect, parseDuration } from './options.ts';
import { registerPlanCommands } from './plan-commands.ts';
import type { RunFlags } from './run-command.ts';
import { registerServerCommands } from './server-commands.ts';
import { registerShareCommands } from './share-commands.ts';

export { parseDuration };

/** Bad flags or input, or a request the server refused as the user's mistake (4xx). */
const EXIT_USAGE = 2;
/** The server could not be reached or failed (5xx), like a run that failed. */
const EXIT_FAILURE = 1;

/** Whether runs start as another (unprivileged) user: the sandbox does so when the server is root. */
const RUNS_AS_OTHER_USER = process.getuid?.() === 0;

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
    .hook('preAction', async (_program, command) => {
      // Commands that keep data in the data dir: make it private before they create anything in it.
      if (command.name() === 'run' || command.name() === 'serve') {
        const { restrictDataDir } = await import('./data-dir.ts');
        restrictDataDir((command.opts() as { dataDir?: string }).dataDir);
      }
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
      const { runCommand } = await import('./run-command.ts');
      process.exitCode = await runCommand(file, flags);
    });
  registerServerCommands(program);
  registerAccountCommands(program);
  registerShareCommands(program);
  registerPlanCommands(program);
  registerAuditCommands(program);
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
      return EXIT_FAILURE;
    }
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    process.stderr.write(`almanac: unexpected error: ${oneLine(message)}\n`);
    return 70;
  }
}

/**
 * A reader that went away (`almanac runs | head -1`) ends the command quietly with exit 0, as `cat`
 * and `ls` do, instead of an unhandled EPIPE error with a stack trace (issue 15).
 */
export function endQuietlyOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    process.stderr.write(`almanac: cannot write output: ${error.code ?? error.message}\n`);
    process.exit(70);
  });
}
