/**
 * CLI commands that serve, or talk to a server: `serve`, `login-link`, `publish`, `runs` and `trigger`. The client
 * commands reach the server by URL (`--server`, ALMANAC_URL) and API token (`--token`, ALMANAC_TOKEN,
 * or the admin token `serve` saved under the data dir on first start).
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { ValidationError } from '../domain/errors.ts';
import { MAX_BULK_RUNS, RUN_STATUSES, RUN_TRIGGERS } from '../domain/run.ts';
import { ApiClient, ApiError, readCredentials, storedToken } from './api-client.ts';
import { registerNotifyCommands } from './notify-commands.ts';
import { collect, parseInputs, parseInputsLines } from './options.ts';
import { terminalText } from './render.ts';
import { registerScheduleCommands } from './schedule-commands.ts';
import { registerVersionCommands } from './version-commands.ts';

export const ADMIN_TOKEN_FILE = 'admin-token';

/**
 * The roles of `serve`, for its help text: `PROCESS_ROLES` of `app/create-server.ts`, which this module must
 * not import (it would load the whole server for every command). A test keeps the two equal.
 */
export const SERVE_ROLES = ['web', 'worker', 'scheduler', 'notifier'] as const;

export interface ServeFlags {
  port?: string;
  host?: string;
  dataDir?: string;
  role?: string;
  config?: string;
  seed: string[];
  adminEmail?: string;
}

export interface ClientFlags {
  server?: string;
  token?: string;
  dataDir?: string;
}

interface RunJson {
  id: string;
  trigger: string;
  context: string;
  status: string;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  attempts: number;
  inputs: Record<string, unknown>;
  error: { cell: string | null; message: string } | null;
  latenessMs?: number | null;
  projectSlug?: string;
  versionNumber?: number;
  cells?: { index: number; name: string; kind: string; status: string; durationMs: number | null }[];
}

export function client(flags: ClientFlags): ApiClient {
  const server =
    flags.server ?? process.env['ALMANAC_URL'] ?? readCredentials().current ?? 'http://127.0.0.1:3100';
  if (!/^https?:\/\/[^/]+/.test(server)) {
    throw new ValidationError('--server', `'${server}' is not an http:// or https:// URL`);
  }
  // Then the token `almanac login` saved for this server, then the admin token of a local `serve`.
  let token = flags.token ?? process.env['ALMANAC_TOKEN'] ?? storedToken(server);
  if (!token) {
    const file = join(
      resolve(flags.dataDir ?? process.env['ALMANAC_DATA_DIR'] ?? '.almanac'),
      ADMIN_TOKEN_FILE,
    );
    if (existsSync(file)) token = readFileSync(file, 'utf8').trim();
  }
  if (!token) {
    throw new ValidationError(
      '--token',
      'no API token: run `almanac login`, pass --token, set ALMANAC_TOKEN, or run this next to the data dir of `almanac serve`',
    );
  }
  return new ApiClient(server, token);
}

export function addClientOptions(command: Command): Command {
  return command
    .option('--server <url>', 'the Almanac server (default ALMANAC_URL or http://127.0.0.1:3100)')
    .option('--token <token>', 'API token (default ALMANAC_TOKEN, or the admin token saved by serve)')
    .option('--data-dir <dir>', 'where serve keeps its data, to find the saved admin token');
}

interface ProjectJson {
  id: string;
  slug: string;
  title: string;
  currentVersion: number | null;
  appUrl: string;
}

/** A project as `almanac projects` lists it: the server's project, its newest run and next fire time. */
interface ProjectListing extends ProjectJson {
  lastRun: { id: string; status: string; trigger: string; createdAt: string } | null;
  nextFireAt: string | null;
}

/** Rows as aligned columns under a header. */
function printTable(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const row of [head, ...rows]) {
    process.stdout.write(
      `${row
        .map((v, i) => v.padEnd(widths[i]!))
        .join('  ')
        .trimEnd()}\n`,
    );
  }
}

function seconds(run: RunJson): string {
  if (!run.startedAt || !run.finishedAt) return '';
  return ` in ${((Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000).toFixed(2)} s`;
}

/** Follows a run's events, printing each cell as it finishes. Resolves to the final run. */
async function follow(api: ApiClient, runId: string, print: boolean): Promise<RunJson> {
  const seen = new Map<number, string>();
  let last: RunJson | null = null;
  for await (const message of api.events(`/api/runs/${runId}/events`)) {
    if (message.event !== 'run') continue;
    last = JSON.parse(message.data) as RunJson;
    if (!print) continue;
    for (const cell of last.cells ?? []) {
      if (seen.get(cell.index) === cell.status) continue;
      seen.set(cell.index, cell.status);
      const mark = { running: '…', succeeded: '✓', failed: '✗', cancelled: '■', skipped: '-' }[cell.status];
      if (mark && cell.status !== 'queued') {
        const time = cell.durationMs !== null && cell.status !== 'running' ? ` ${cell.durationMs} ms` : '';
        process.stderr.write(`  ${mark} ${cell.name} (${cell.kind})${time}\n`);
      }
    }
  }
  if (!last) throw new ValidationError('run', `no progress received for run ${runId}`);
  return last;
}

export function registerServerCommands(program: Command): void {
  registerScheduleCommands(program, addClientOptions, (flags) => client(flags as ClientFlags));
  registerNotifyCommands(program, addClientOptions, (flags) => client(flags as ClientFlags));
  registerVersionCommands(program, addClientOptions, (flags) => client(flags as ClientFlags));
  program
    .command('serve')
    .description('serve the API, app pages, a worker and the scheduler in one process on the data dir')
    .option('--port <port>', 'HTTP port (default ALMANAC_PORT or 3100)')
    .option('--host <host>', 'bind address (default ALMANAC_HOST or 127.0.0.1)')
    .option('--data-dir <dir>', 'where Almanac keeps its data (default .almanac)')
    .option(
      '--role <roles>',
      `comma-separated roles to run: ${SERVE_ROLES.join(', ')} (default ALMANAC_ROLES or all; a subset needs PostgreSQL)`,
    )
    .option('--config <file>', 'a JSON file of settings (docs/configuration.md); env and flags override it')
    .option(
      '--admin-email <email>',
      "the first admin's email on first start (default ALMANAC_ADMIN_EMAIL or admin@localhost)",
    )
    .option(
      '--seed <notebook>',
      'create or update this project and publish it on start (repeat for several)',
      collect,
      [],
    )
    .action(async (flags: ServeFlags) => {
      const { serveCommand } = await import('./serve-command.ts');
      await serveCommand(flags);
    });

  addClientOptions(
    program
      .command('login-link')
      .description(
        "print a one-time link that signs a browser in as the token's admin (it works once, within 10 minutes)",
      )
      .option('--next <path>', 'the page to open after signing in', '/'),
  ).action(async (flags: ClientFlags & { next: string }) => {
    const api = client(flags);
    const { data } = await api.post<{ path: string; expiresAt: string }>('/api/auth/login-codes', {
      next: flags.next,
    });
    process.stdout.write(`${api.baseUrl}${data.path}\n`);
    process.stderr.write(`(works once, until ${data.expiresAt})\n`);
  });

  addClientOptions(
    program
      .command('publish')
      .description("publish a notebook (and its folder's files) to the server as a new version")
      .argument('<notebook>', 'the notebook file (.md)')
      .option('--slug <slug>', 'project slug (default: the file name)')
      .option('--wait', 'wait for the publish run and print its progress', false)
      .option('--json', 'print the published version (and, with --wait, its final run) as JSON', false),
  ).action(async (file: string, flags: ClientFlags & { slug?: string; wait: boolean; json: boolean }) => {
    let source: string;
    try {
      source = readFileSync(file, 'utf8');
    } catch (error) {
      throw new ValidationError(
        'notebook',
        `cannot read '${file}': ${(error as NodeJS.ErrnoException).code}`,
      );
    }
    const [{ parseNotebook }, { collectProjectFiles }] = await Promise.all([
      import('../domain/notebook/parse-notebook.ts'),
      import('../app/project-files.ts'),
    ]);
    await parseNotebook(source, { file });
    const api = client(flags);
    const slug =
      flags.slug ??
      basename(file, '.md')
        .toLowerCase()
        .replace(/[^a-z0-9]+/g, '-')
        .replace(/^-|-$/g, '');
    try {
      await api.get(`/api/projects/${encodeURIComponent(slug)}`);
      await api.request('PUT', `/api/projects/${encodeURIComponent(slug)}/draft`, { source });
    } catch (error) {
      if (!(error instanceof ApiError && error.httpStatus === 404)) throw error;
      await api.post('/api/projects', { source, slug });
    }
    const files = Object.fromEntries(
      [...collectProjectFiles(file)].map(([path, content]) => [path, content.toString('base64')]),
    );
    const { data } = await api.post<{
      version: { number: number };
      created: boolean;
      madeCurrent?: boolean;
      run: RunJson | null;
    }>(`/api/projects/${encodeURIComponent(slug)}/publish`, { files });
    if (flags.json) {
      const run = flags.wait && data.run ? await follow(api, data.run.id, false) : data.run;
      process.stdout.write(`${JSON.stringify({ project: slug, ...data, run }, null, 2)}\n`);
      if (run && flags.wait && run.status !== 'succeeded') process.exitCode = 1;
      return;
    }
    if (!data.created) {
      // Older content makes its version current again (a rollback, issue 15 bug 3).
      process.stdout.write(
        data.madeCurrent
          ? `${slug}: v${data.version.number} is current again (same content as before)\n`
          : `${slug}: v${data.version.number} already has this content and is current; nothing published\n`,
      );
      return;
    }
    process.stdout.write(`${slug}: published v${data.version.number}; publish run ${data.run!.id} queued\n`);
    if (flags.wait) {
      const run = await follow(api, data.run!.id, true);
      process.stdout.write(`publish run ${run.status}${seconds(run)}\n`);
      if (run.status !== 'succeeded') {
        process.stderr.write(`almanac: ${run.error?.message ?? `publish run ${run.status}`}\n`);
        process.exitCode = 1;
      }
    }
  });

  addClientOptions(
    program
      .command('runs')
      .description('list runs, newest first')
      .argument('[project]', 'project slug or id (default: all projects)')
      .option('--status <status>', `only runs with this status (${RUN_STATUSES.join(', ')})`)
      .option('--trigger <trigger>', `only runs with this trigger (${RUN_TRIGGERS.join(', ')})`)
      .option('--schedule <id>', 'only runs of this schedule')
      .option('--limit <n>', 'how many (1-200)', '20')
      .option('--json', 'print JSON', false),
  ).action(
    async (
      project: string | undefined,
      flags: ClientFlags & {
        status?: string;
        trigger?: string;
        schedule?: string;
        limit: string;
        json: boolean;
      },
    ) => {
      const api = client(flags);
      const query = new URLSearchParams();
      if (project) query.set('project', project);
      if (flags.status) query.set('status', flags.status);
      if (flags.trigger) query.set('trigger', flags.trigger);
      if (flags.schedule) query.set('schedule', flags.schedule);
      query.set('limit', flags.limit);
      const page = await api.get<{ runs: RunJson[]; nextCursor: string | null }>(`/api/runs?${query}`);
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(page, null, 2)}\n`);
        return;
      }
      if (page.runs.length === 0) {
        process.stdout.write('no runs\n');
        return;
      }
      const rows = page.runs.map((r) => [
        r.id,
        r.status,
        r.trigger,
        r.context,
        r.createdAt.replace('T', ' ').slice(0, 19),
        seconds(r).replace(' in ', ''),
        r.latenessMs === null || r.latenessMs === undefined ? '' : `${r.latenessMs} ms`,
        r.error ? `${r.error.cell ? `${r.error.cell}: ` : ''}${r.error.message}`.slice(0, 60) : '',
      ]);
      printTable(['RUN', 'STATUS', 'TRIGGER', 'CONTEXT', 'CREATED (UTC)', 'TOOK', 'LATE', 'ERROR'], rows);
      if (page.nextCursor) process.stdout.write(`(more: --limit ${Number(flags.limit) * 2})\n`);
    },
  );

  addClientOptions(
    program
      .command('projects')
      .description("list the workspace's projects with their current version, last run and next fire")
      .option('--json', 'print the projects as JSON', false),
  ).action(async (flags: ClientFlags & { json: boolean }) => {
    const api = client(flags);
    const projects = await api.get<ProjectJson[]>('/api/projects');
    const listed: ProjectListing[] = [];
    for (const project of projects) {
      const id = encodeURIComponent(project.id);
      const [page, schedules] = await Promise.all([
        api.get<{ runs: RunJson[] }>(`/api/runs?project=${id}&limit=1`),
        // Someone who may not see a project's schedules still sees the project (App Only access).
        api
          .get<{ enabled: boolean; nextFireAt: string | null }[]>(`/api/projects/${id}/schedules`)
          .catch((error: unknown) => {
            if (error instanceof ApiError && (error.httpStatus === 403 || error.httpStatus === 404))
              return [];
            throw error;
          }),
      ]);
      const fires = schedules
        .filter((s) => s.enabled && s.nextFireAt)
        .map((s) => s.nextFireAt!)
        .sort();
      const last = page.runs[0] ?? null;
      listed.push({
        ...project,
        lastRun: last
          ? { id: last.id, status: last.status, trigger: last.trigger, createdAt: last.createdAt }
          : null,
        nextFireAt: fires[0] ?? null,
      });
    }
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(listed, null, 2)}\n`);
      return;
    }
    if (listed.length === 0) {
      process.stdout.write('no projects: publish a notebook with `almanac publish <notebook.md>`\n');
      return;
    }
    const rows = listed.map((p) => [
      p.slug,
      p.currentVersion === null ? '—' : `v${p.currentVersion}`,
      p.lastRun
        ? `${p.lastRun.status} (${p.lastRun.trigger}, ${p.lastRun.createdAt.replace('T', ' ').slice(0, 16)})`
        : '—',
      p.nextFireAt ? p.nextFireAt.replace('T', ' ').slice(0, 16) : '—',
      terminalText(p.title),
    ]);
    printTable(['PROJECT', 'VERSION', 'LAST RUN (UTC)', 'NEXT FIRE (UTC)', 'TITLE'], rows);
  });

  addClientOptions(
    program
      .command('trigger')
      .description('start an API-triggered run of the published version (context api-triggered)')
      .argument('<project>', 'project slug or id')
      .option('-i, --input <key=value>', 'an input value (repeat for several)', collect, [])
      .option(
        '--inputs-file <file>',
        `queue one run per line of a JSON Lines file of inputs ({"region":"EMEA"}), ${MAX_BULK_RUNS.toLocaleString('en-US')} per request`,
      )
      .option('--version <version>', 'version number or id (default: latest)')
      .option('--wait', 'wait for the run to end, printing progress; exit 1 if it fails', false)
      .option('--json', 'print the run as JSON', false),
  ).action(
    async (
      project: string,
      flags: ClientFlags & {
        input: string[];
        inputsFile?: string;
        version?: string;
        wait: boolean;
        json: boolean;
      },
    ) => {
      const inputs = parseInputs(flags.input);
      const api = client(flags);
      if (flags.inputsFile !== undefined) {
        if (flags.input.length > 0 || flags.wait)
          throw new ValidationError('--inputs-file', 'cannot be combined with --input or --wait');
        const file = resolve(flags.inputsFile);
        if (!existsSync(file)) throw new ValidationError('--inputs-file', `'${file}' does not exist`);
        const sets = parseInputsLines(readFileSync(file, 'utf8'));
        const queued: RunJson[] = [];
        // Each request is all or none; a bad entry in a later chunk leaves the earlier chunks queued,
        // and the error says how many were.
        for (let i = 0; i < sets.length; i += MAX_BULK_RUNS) {
          try {
            const { data } = await api.post<{ runs: RunJson[] }>(
              `/api/projects/${encodeURIComponent(project)}/runs/batch`,
              {
                runs: sets.slice(i, i + MAX_BULK_RUNS).map((inputs) => ({ inputs })),
                ...(flags.version ? { version: flags.version } : {}),
              },
            );
            queued.push(...data.runs);
          } catch (error) {
            // Entries are numbered within their request; number them within the file's input sets.
            if (i > 0 && error instanceof ApiError)
              error.message = `${error.message.replace(/runs\[(\d+)\]/g, (_, k) => `runs[${Number(k) + i}]`)} (the first ${i} runs were queued)`;
            throw error;
          }
        }
        process.stdout.write(
          flags.json ? `${JSON.stringify(queued, null, 2)}\n` : `${queued.length} runs queued\n`,
        );
        return;
      }
      const { data: run } = await api.post<RunJson>(`/api/projects/${encodeURIComponent(project)}/runs`, {
        inputs,
        ...(flags.version ? { version: flags.version } : {}),
      });
      if (!flags.wait) {
        process.stdout.write(flags.json ? `${JSON.stringify(run, null, 2)}\n` : `run ${run.id} queued\n`);
        return;
      }
      if (!flags.json) process.stderr.write(`run ${run.id} queued\n`);
      const final = await follow(api, run.id, !flags.json);
      if (flags.json) process.stdout.write(`${JSON.stringify(final, null, 2)}\n`);
      else process.stdout.write(`run ${final.id} ${final.status}${seconds(final)}\n`);
      if (final.status !== 'succeeded') {
        process.stderr.write(`almanac: ${final.error?.message ?? `run ${final.status}`}\n`);
        process.exitCode = 1;
      }
    },
  );
}
