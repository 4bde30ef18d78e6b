/**
 * `almanac audit` (issue 16): the workspace's audit log for admins, newest first, with `--actor`,
 * `--action`, `--since`, `--limit` and `--json`. A full page ends with the command that shows the next.
 */
import type { Command } from 'commander';
import { addClientOptions, type ClientFlags, client } from './server-commands.ts';

interface AuditEventJson {
  id: string;
  at: string;
  actorId: string | null;
  actorName: string;
  action: string;
  target: string | null;
  detail: Record<string, unknown>;
  ip: string | null;
}

type AuditFlags = ClientFlags & {
  json: boolean;
  actor?: string;
  action?: string;
  since?: string;
  limit?: string;
  cursor?: string;
};

export function registerAuditCommands(program: Command): void {
  addClientOptions(
    program
      .command('audit')
      .description('the audit log: who did what, when and from where (admins), newest first'),
  )
    .option('--actor <userId>', 'only events of this user')
    .option('--action <action>', 'only this action (schedule.update) or area (schedule)')
    .option('--since <iso>', 'only events at or after this instant')
    .option('--limit <n>', 'events per page (default 100)')
    .option('--cursor <cursor>', 'the page after this cursor (printed after a full page)')
    .option('--json', 'print JSON', false)
    .action(async (flags: AuditFlags) => {
      const params = new URLSearchParams();
      for (const key of ['actor', 'action', 'since', 'limit', 'cursor'] as const) {
        const value = flags[key];
        if (value !== undefined) params.set(key, value);
      }
      const query = params.size ? `?${params}` : '';
      const page = await client(flags).get<{ events: AuditEventJson[]; next: string | null }>(
        `/api/audit${query}`,
      );
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(page, null, 2)}\n`);
        return;
      }
      const lines = page.events.map(
        (e) =>
          `${e.at}  ${e.actorName}  ${e.action}${e.target ? ` ${e.target}` : ''}  ${e.ip ?? '-'}  ${JSON.stringify(e.detail)}`,
      );
      if (page.next) lines.push(`(more: almanac audit --cursor ${page.next})`);
      process.stdout.write(lines.length ? `${lines.join('\n')}\n` : 'No audit events.\n');
    });
}
