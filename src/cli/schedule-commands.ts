/**
 * `almanac schedule …`: create, list, show, preview, pause, resume, run now, backfill and delete
 * schedules on a running server. Cadence flags: --hourly M, --daily HH:MM, --weekly mon,fri@HH:MM,
 * --monthly D@HH:MM [--short-months skip], or --cron "expr".
 */
import type { Command } from 'commander';
import { ValidationError } from '../domain/errors.ts';
import { checkLength, MAX_NAME_LENGTH } from '../domain/limits.ts';
import type { Cadence } from '../domain/schedule/schedule.ts';
import type { ApiClient } from './api-client.ts';
import { collect, parseDuration, parseInputs } from './options.ts';

interface CadenceFlags {
  hourly?: string;
  daily?: string;
  weekly?: string;
  monthly?: string;
  cron?: string;
  shortMonths?: string;
}

export function cadenceFromFlags(flags: CadenceFlags): Cadence {
  const given = (['hourly', 'daily', 'weekly', 'monthly', 'cron'] as const).filter(
    (k) => flags[k] !== undefined,
  );
  if (given.length !== 1) {
    throw new ValidationError(
      'cadence',
      'give exactly one of --hourly M, --daily HH:MM, --weekly mon,fri@HH:MM, --monthly D@HH:MM, --cron "expr"',
    );
  }
  const kind = given[0]!;
  const value = flags[kind]!;
  switch (kind) {
    case 'hourly': {
      if (!/^\d{1,2}$/.test(value))
        throw new ValidationError('--hourly', `expected the minute of the hour (0-59), got '${value}'`);
      return { kind, minute: Number(value) };
    }
    case 'daily':
      return { kind, time: value };
    case 'weekly': {
      const [days, time] = value.split('@');
      if (!days || !time)
        throw new ValidationError('--weekly', `expected days@HH:MM like mon,fri@09:00, got '${value}'`);
      return { kind, days: days.split(',').map((d) => d.trim().toLowerCase()) as never, time };
    }
    case 'monthly': {
      const [day, time] = value.split('@');
      if (!day || !time || !/^\d{1,2}$/.test(day))
        throw new ValidationError('--monthly', `expected D@HH:MM like 31@09:00, got '${value}'`);
      return {
        kind,
        day: Number(day),
        time,
        ...(flags.shortMonths ? { shortMonths: flags.shortMonths as 'last_day' | 'skip' } : {}),
      };
    }
    case 'cron':
      return { kind, expression: value };
  }
}

function addCadenceOptions(command: Command): Command {
  return command
    .option('--hourly <minute>', 'every hour at this minute')
    .option('--daily <HH:MM>', 'every day at this local time')
    .option('--weekly <days@HH:MM>', 'on these days at this local time, like mon,fri@09:00')
    .option('--monthly <D@HH:MM>', 'on this day of the month, like 31@09:00')
    .option('--short-months <policy>', 'days 29-31 in shorter months: last_day (default) or skip')
    .option('--cron <expr>', 'a cron expression: 5 fields, or 6 with seconds first')
    .option('--tz <zone>', 'IANA timezone, like Europe/Berlin', 'UTC');
}

interface PolicyFlags {
  overlap?: string;
  catchupWindow?: string;
  catchup?: string;
  jitter?: string;
  timeout?: string;
  retries?: string;
  backoff?: string;
}

function policiesFromFlags(flags: PolicyFlags): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (flags.overlap) out['overlap'] = flags.overlap;
  if (flags.catchupWindow) out['catchupWindowMs'] = parseDuration(flags.catchupWindow, '--catchup-window');
  if (flags.catchup) out['catchupMode'] = flags.catchup;
  if (flags.jitter) out['jitterSeconds'] = Math.round(parseDuration(flags.jitter, '--jitter') / 1000);
  if (flags.timeout) out['timeoutMs'] = parseDuration(flags.timeout, '--timeout');
  if (flags.retries !== undefined) {
    const n = Number(flags.retries);
    if (!Number.isInteger(n) || n < 0)
      throw new ValidationError('--retries', `must be a whole number >= 0, got '${flags.retries}'`);
    out['maxAttempts'] = n + 1;
  }
  if (flags.backoff) out['retryBackoffMs'] = parseDuration(flags.backoff, '--backoff');
  return out;
}

interface PreviewEntry {
  at: string;
  local: string;
  dst: 'gap' | 'repeat' | null;
}

function printPreview(entries: PreviewEntry[]): void {
  process.stdout.write(`${'LOCAL'.padEnd(27)}  ${'UTC'.padEnd(24)}  DST\n`);
  for (const e of entries) {
    const mark =
      e.dst === 'gap'
        ? 'moved: the local time does not exist (DST gap)'
        : e.dst === 'repeat'
          ? 'the local time occurs twice; fires once'
          : '';
    process.stdout.write(`${e.local.padEnd(27)}  ${e.at.padEnd(24)}  ${mark}\n`.replace(/\s+\n$/, '\n'));
  }
}

interface ScheduleJson {
  id: string;
  name: string;
  description: string;
  enabled: boolean;
  pausedUntil: string | null;
  pauseNote: string | null;
  nextFireAt: string | null;
  health?: {
    lastRun: { id: string; status: string; latenessMs: number | null } | null;
    skipped: number;
    missed: number;
    overdue: boolean;
    overdueReason: string | null;
  };
}

/** Prints a command's data as JSON (`--json`) for scripts: the server's own response, indented. */
export function printJson(data: unknown): void {
  process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
}

export function registerScheduleCommands(
  program: Command,
  withClient: (command: Command) => Command,
  clientFor: (flags: object) => ApiClient,
): void {
  const schedule = program.command('schedule').description('create and manage schedules on a server');

  withClient(
    addCadenceOptions(
      schedule
        .command('create')
        .description('create a schedule for a project')
        .argument('<project>', 'project slug or id')
        .requiredOption('--name <name>', 'schedule name, unique in the project')
        .option('-i, --input <key=value>', 'an input value for its runs (repeat for several)', collect, [])
        .option(
          '--overlap <policy>',
          'previous run still going: skip (default), buffer_one, allow, cancel_previous',
        )
        .option(
          '--catchup-window <duration>',
          'catch up fire times missed at most this long ago (default 1h)',
        )
        .option('--catchup <mode>', 'inside the window: coalesce (default) or all')
        .option('--jitter <duration>', 'deterministic offset up to this much, like 30s')
        .option('--timeout <duration>', 'wall-clock limit per run')
        .option('--retries <n>', 'retries after a failure (default 0)')
        .option('--backoff <duration>', 'first retry delay, doubling (default 30s)')
        .option('--paused', 'create it paused', false)
        .option('--json', 'print the schedule as JSON', false),
    ),
  ).action(
    async (
      project: string,
      flags: CadenceFlags &
        PolicyFlags & { name: string; input: string[]; tz: string; paused: boolean; json: boolean },
    ) => {
      checkLength('--name', flags.name, MAX_NAME_LENGTH, 'MAX_NAME_LENGTH');
      const body = {
        name: flags.name,
        cadence: cadenceFromFlags(flags),
        timezone: flags.tz,
        inputs: parseInputs(flags.input),
        enabled: !flags.paused,
        policies: policiesFromFlags(flags),
      };
      const { data } = await clientFor(flags).post<ScheduleJson>(
        `/api/projects/${encodeURIComponent(project)}/schedules`,
        body,
      );
      if (flags.json) return printJson(data);
      process.stdout.write(
        `schedule ${data.id} '${data.name}': ${data.description}; next fire ${data.nextFireAt ?? '—'}\n`,
      );
    },
  );

  withClient(
    schedule
      .command('list')
      .description("list a project's schedules")
      .argument('<project>', 'project slug or id')
      .option('--json', 'print the schedules as JSON', false),
  ).action(async (project: string, flags: { json: boolean }) => {
    const list = await clientFor(flags).get<ScheduleJson[]>(
      `/api/projects/${encodeURIComponent(project)}/schedules`,
    );
    if (flags.json) return printJson(list);
    if (list.length === 0) {
      process.stdout.write('no schedules\n');
      return;
    }
    for (const s of list) {
      const state = s.enabled
        ? `next ${s.nextFireAt}`
        : `paused${s.pausedUntil ? ` until ${s.pausedUntil}` : ''}${s.pauseNote ? ` (${s.pauseNote})` : ''}`;
      process.stdout.write(`${s.id}  ${s.name}  ${s.description}  ${state}\n`);
    }
  });

  withClient(
    schedule
      .command('show')
      .description('a schedule and its health')
      .argument('<schedule>', 'schedule id')
      .option('--json', 'print the schedule and its health as JSON', false),
  ).action(async (id: string, flags: { json: boolean }) => {
    const s = await clientFor(flags).get<ScheduleJson>(`/api/schedules/${encodeURIComponent(id)}`);
    if (flags.json) return printJson(s);
    const h = s.health!;
    process.stdout.write(
      [
        `${s.name}: ${s.description}`,
        `state:      ${s.enabled ? 'enabled' : `paused${s.pausedUntil ? ` until ${s.pausedUntil}` : ''}${s.pauseNote ? ` (${s.pauseNote})` : ''}`}`,
        `next fire:  ${s.nextFireAt ?? '—'}`,
        `last run:   ${h.lastRun ? `${h.lastRun.id} ${h.lastRun.status}${h.lastRun.latenessMs !== null ? `, ${h.lastRun.latenessMs} ms late` : ''}` : '—'}`,
        `skipped:    ${h.skipped}   missed: ${h.missed}`,
        `overdue:    ${h.overdue ? `yes: ${h.overdueReason}` : 'no'}`,
      ].join('\n') + '\n',
    );
  });

  withClient(
    addCadenceOptions(
      schedule
        .command('preview')
        .description(
          'the next fire times of a schedule, or of a cadence given by flags, in local and UTC time',
        )
        .argument('[schedule]', 'schedule id (or give a cadence with flags)')
        .option('--count <n>', 'how many', '10')
        .option('--from <iso>', 'start from this instant instead of now')
        .option('--json', 'print the fire times as JSON', false),
    ),
  ).action(
    async (
      id: string | undefined,
      flags: CadenceFlags & { tz: string; count: string; from?: string; json: boolean },
    ) => {
      const api = clientFor(flags);
      const count = Number(flags.count);
      if (!Number.isInteger(count))
        throw new ValidationError('--count', `must be a whole number, got '${flags.count}'`);
      const entries = id
        ? await api.get<PreviewEntry[]>(
            `/api/schedules/${encodeURIComponent(id)}/preview?count=${count}${flags.from ? `&from=${encodeURIComponent(flags.from)}` : ''}`,
          )
        : (
            await api.post<PreviewEntry[]>('/api/schedules/preview', {
              cadence: cadenceFromFlags(flags),
              timezone: flags.tz,
              count,
              ...(flags.from ? { from: flags.from } : {}),
            })
          ).data;
      if (flags.json) return printJson(entries);
      printPreview(entries);
    },
  );

  withClient(
    schedule
      .command('pause')
      .description('pause a schedule, optionally until an instant')
      .argument('<schedule>', 'schedule id')
      .option('--until <iso>', 'resume by itself at this instant')
      .option('--note <text>', 'why it is paused')
      .option('--json', 'print the schedule as JSON', false),
  ).action(async (id: string, flags: { until?: string; note?: string; json: boolean }) => {
    const { data } = await clientFor(flags).post<ScheduleJson>(
      `/api/schedules/${encodeURIComponent(id)}/pause`,
      {
        ...(flags.until ? { until: flags.until } : {}),
        ...(flags.note ? { note: flags.note } : {}),
      },
    );
    if (flags.json) return printJson(data);
    process.stdout.write(`paused '${data.name}'${data.pausedUntil ? ` until ${data.pausedUntil}` : ''}\n`);
  });

  withClient(
    schedule
      .command('resume')
      .description('resume a paused schedule')
      .argument('<schedule>', 'schedule id')
      .option('--json', 'print the schedule as JSON', false),
  ).action(async (id: string, flags: { json: boolean }) => {
    const { data } = await clientFor(flags).post<ScheduleJson>(
      `/api/schedules/${encodeURIComponent(id)}/resume`,
    );
    if (flags.json) return printJson(data);
    process.stdout.write(`resumed '${data.name}'; next fire ${data.nextFireAt}\n`);
  });

  withClient(
    schedule
      .command('run-now')
      .description('run a schedule now (context scheduled, trigger manual)')
      .argument('<schedule>', 'schedule id')
      .option('--json', 'print the queued run as JSON', false),
  ).action(async (id: string, flags: { json: boolean }) => {
    const { data } = await clientFor(flags).post<{ id: string }>(
      `/api/schedules/${encodeURIComponent(id)}/run`,
    );
    if (flags.json) return printJson(data);
    process.stdout.write(`run ${data.id} queued\n`);
  });

  withClient(
    schedule
      .command('backfill')
      .description('create runs for the fire times of a past interval')
      .argument('<schedule>', 'schedule id')
      .requiredOption('--from <iso>', 'start (exclusive)')
      .requiredOption('--to <iso>', 'end (inclusive)')
      .option('--json', 'print the created runs as JSON', false),
  ).action(async (id: string, flags: { from: string; to: string; json: boolean }) => {
    const { data } = await clientFor(flags).post<{
      created: { id: string; scheduledFor: string }[];
      existing: number;
    }>(`/api/schedules/${encodeURIComponent(id)}/backfill`, { from: flags.from, to: flags.to });
    if (flags.json) return printJson(data);
    for (const run of data.created) process.stdout.write(`run ${run.id} for ${run.scheduledFor}\n`);
    process.stdout.write(
      `${data.created.length} run(s) queued, ${data.existing} fire time(s) already had one\n`,
    );
  });

  withClient(
    schedule
      .command('delete')
      .description('delete a schedule (its runs stay)')
      .argument('<schedule>', 'schedule id'),
  ).action(async (id: string, flags: object) => {
    await clientFor(flags).request('DELETE', `/api/schedules/${encodeURIComponent(id)}`);
    process.stdout.write('deleted\n');
  });
}
