/**
 * `almanac run`: runs a notebook file top to bottom in this process's executor, printing progress and
 * the snapshot. Loaded only when the command runs (it brings in the executor, DuckDB and the store).
 */
import { readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { resolveConfig } from '../app/config.ts';
import { createAlmanac } from '../app/create-almanac.ts';
import { ValidationError } from '../domain/errors.ts';
import { parseNotebook } from '../domain/notebook/parse-notebook.ts';
import { isRunContext, RUN_CONTEXTS } from '../domain/run-context.ts';
import { restrictDataFiles } from './data-dir.ts';
import { parseDuration, parseInputs } from './options.ts';
import { ProgressPrinter, renderSnapshot } from './render.ts';

const EXIT_RUN_FAILED = 1;

function positiveInt(text: string, field: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0)
    throw new ValidationError(field, `must be a whole number, got '${text}'`);
  return n;
}

export interface RunFlags {
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

export async function runCommand(file: string, flags: RunFlags): Promise<number> {
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
