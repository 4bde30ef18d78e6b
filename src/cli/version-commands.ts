/**
 * `almanac versions <project>` and `almanac rollback <project> <version>` (issue 15, bug 3): list a
 * project's versions with the current one marked, and make an older (or newer) version current. The
 * current version is the one schedules run and the app shows; rolling back makes the version's last
 * good run the app's default state, or queues a publish run when it has none.
 */
import type { Command } from 'commander';
import { ValidationError } from '../domain/errors.ts';
import type { ApiClient } from './api-client.ts';
import { terminalText } from './render.ts';

interface VersionJson {
  id: string;
  number: number;
  contentHash: string;
  createdAt: string;
  message: string | null;
  publishedBy: { id: string; email: string; name: string } | null;
  publishRun: { id: string; status: string | null } | null;
  current: boolean;
}

interface MakeCurrentJson {
  version: { number: number };
  madeCurrent: boolean;
  defaultRunId: string | null;
  run: { id: string } | null;
}

/** The line `rollback` (and a re-publish of older content) prints. */
export function describeMadeCurrent(slug: string, result: MakeCurrentJson): string {
  const v = `v${result.version.number}`;
  if (!result.madeCurrent) return `${slug}: ${v} is already current; nothing changed\n`;
  const state = result.run
    ? `; publish run ${result.run.id} queued for its default state`
    : result.defaultRunId
      ? `; the app shows its last good run (${result.defaultRunId})`
      : '';
  return `${slug}: ${v} is current again${state}\n`;
}

export function registerVersionCommands(
  program: Command,
  withClient: (command: Command) => Command,
  clientFor: (flags: object) => ApiClient,
): void {
  withClient(
    program
      .command('versions')
      .description('list published versions, newest first; * marks the current one (what schedules run)')
      .argument('<project>', 'project slug or id')
      .option('--json', 'print JSON', false),
  ).action(async (project: string, flags: { json: boolean }) => {
    const versions = await clientFor(flags).get<VersionJson[]>(
      `/api/projects/${encodeURIComponent(project)}/versions`,
    );
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(versions, null, 2)}\n`);
      return;
    }
    if (versions.length === 0) {
      process.stdout.write(`${project}: not published yet\n`);
      return;
    }
    for (const v of versions) {
      const by = v.publishedBy ? `  by ${terminalText(v.publishedBy.email)}` : '';
      const run = v.publishRun ? `  publish run ${v.publishRun.status ?? 'unknown'}` : '';
      const message = v.message ? `  "${terminalText(v.message.split('\n')[0]!.slice(0, 80))}"` : '';
      process.stdout.write(
        `${v.current ? '*' : ' '} v${v.number}  ${v.createdAt}  ${v.contentHash.slice(0, 12)}${by}${run}${message}\n`,
      );
    }
  });

  withClient(
    program
      .command('rollback')
      .description('make a version current again: schedules run it and the app shows it')
      .argument('<project>', 'project slug or id')
      .argument('<version>', 'version number, like 3 or v3')
      .option('--json', 'print JSON', false),
  ).action(async (project: string, version: string, flags: { json: boolean }) => {
    const number = version.replace(/^v/i, '');
    if (!/^\d+$/.test(number)) {
      throw new ValidationError('version', `'${version}' is not a version number; write 3 or v3`);
    }
    const { data } = await clientFor(flags).post<MakeCurrentJson>(
      `/api/projects/${encodeURIComponent(project)}/versions/${number}/make-current`,
      {},
    );
    process.stdout.write(
      flags.json ? `${JSON.stringify(data, null, 2)}\n` : describeMadeCurrent(project, data),
    );
  });
}
