/**
 * `almanac notify …`: notification rules, a run's deliveries (with resend), the workspace's
 * integrations, and the email outbox, on a running server.
 *
 *   almanac notify add sales --schedule <id> --on success --email me@x.com --slack '#ops' \
 *     --webhook https://hooks.example.com/almanac --screenshot png --csv top_products
 */
import type { Command } from 'commander';
import { ValidationError } from '../domain/errors.ts';
import { checkLength, MAX_NAME_LENGTH } from '../domain/limits.ts';
import type { ApiClient } from './api-client.ts';
import { collect } from './options.ts';
import { printJson } from './schedule-commands.ts';

interface RuleJson {
  id: string;
  name: string;
  scheduleId: string | null;
  trigger: { kind: string; count?: number; condition?: { cell: string; op: string; value: unknown } };
  destinations: Record<string, string>[];
  content: { screenshot: string | null; csvCells: string[] };
  enabled: boolean;
}

interface DeliveryJson {
  id: string;
  rule: string;
  channel: string;
  destination: string;
  status: string;
  attempts: number;
  maxAttempts: number;
  error: string | null;
  note: string | null;
}

interface AddFlags {
  name?: string;
  schedule?: string;
  on: string;
  streak?: string;
  when?: string;
  changed: boolean;
  user: string[];
  group: string[];
  slack: string[];
  webhook: string[];
  via?: string;
  subject?: string;
  body?: string;
  screenshot?: string;
  csv: string[];
  json: boolean;
}

/** `--when "total > 100"` or `--when "rows(top) >= 5"` into a condition. */
export function parseCondition(text: string, changedOnly: boolean) {
  const match =
    /^\s*(?:(rows)\(\s*([A-Za-z_]\w*)\s*\)|([A-Za-z_]\w*))\s*(>=|<=|!=|==|=|>|<)\s*(.+?)\s*$/.exec(text);
  if (!match) {
    throw new ValidationError('--when', `expected "cell > 100" or "rows(cell) >= 5", got '${text}'`);
  }
  const ops: Record<string, string> = {
    '>': 'gt',
    '>=': 'gte',
    '<': 'lt',
    '<=': 'lte',
    '=': 'eq',
    '==': 'eq',
    '!=': 'ne',
  };
  const raw = match[5]!;
  const value =
    raw === 'true' || raw === 'false'
      ? raw === 'true'
      : /^-?\d+(\.\d+)?$/.test(raw)
        ? Number(raw)
        : raw.replace(/^["']|["']$/g, '');
  return {
    cell: match[2] ?? match[3]!,
    measure: match[1] ? 'row_count' : 'value',
    op: ops[match[4]!]!,
    value,
    changedOnly,
  };
}

export function ruleFromFlags(flags: AddFlags) {
  const via = flags.via ?? 'preference';
  const destinations = [
    ...flags.user.map((userId) => ({ kind: 'user', userId, via })),
    ...flags.group.map((groupId) => ({ kind: 'group', groupId, via })),
    ...flags.slack.map((channel) => ({ kind: 'slack_channel', channel })),
    ...flags.webhook.map((url) => ({ kind: 'webhook', url })),
  ];
  const trigger =
    flags.on === 'failure_streak'
      ? { kind: 'failure_streak', count: Number(flags.streak ?? Number.NaN) }
      : flags.on === 'condition'
        ? {
            kind: 'condition',
            condition: parseCondition(flags.when ?? '', flags.changed),
          }
        : { kind: flags.on };
  if (flags.name) checkLength('--name', flags.name, MAX_NAME_LENGTH, 'MAX_NAME_LENGTH');
  return {
    ...(flags.name ? { name: flags.name } : {}),
    ...(flags.schedule ? { scheduleId: flags.schedule } : {}),
    trigger,
    destinations,
    content: {
      ...(flags.subject ? { subject: flags.subject } : {}),
      ...(flags.body ? { body: flags.body } : {}),
      ...(flags.screenshot ? { screenshot: flags.screenshot } : {}),
      csvCells: flags.csv,
    },
  };
}

function describeTrigger(t: RuleJson['trigger']): string {
  if (t.kind === 'failure_streak') return `after ${t.count} failures in a row`;
  if (t.kind === 'condition' && t.condition)
    return `when ${t.condition.cell} ${t.condition.op} ${JSON.stringify(t.condition.value)}`;
  return `on ${t.kind}`;
}

function describeDestination(d: Record<string, string>): string {
  switch (d['kind']) {
    case 'user':
      return `user ${d['userId']} (${d['via']})`;
    case 'group':
      return `group ${d['groupId']} (${d['via']})`;
    case 'slack_channel':
      return `#${d['channel']}`;
    default:
      return d['url'] ?? '?';
  }
}

export function registerNotifyCommands(
  program: Command,
  withClient: (command: Command) => Command,
  clientFor: (flags: object) => ApiClient,
): void {
  const notify = program.command('notify').description('notification rules, deliveries and integrations');

  withClient(
    notify
      .command('add')
      .description('add a notification rule to a project, or to one of its schedules')
      .argument('<project>', 'project slug or id')
      .option('--name <name>', 'rule name')
      .option('--schedule <id>', 'only this schedule (default: every scheduled run of the project)')
      .option('--on <trigger>', 'success, failure, all, recovery, failure_streak or condition', 'failure')
      .option('--streak <n>', 'with --on failure_streak: failures in a row')
      .option('--when <test>', 'with --on condition: "cell > 100", "rows(cell) >= 5", "status = ok"')
      .option('--changed', 'with --on condition: only when the result changed since the last success', false)
      .option('--user <id>', "a user id, or 'me' (repeat for several)", collect, [])
      .option('--group <id>', 'a group (repeat for several)', collect, [])
      .option('--slack <channel>', 'a Slack channel (repeat for several)', collect, [])
      .option('--webhook <url>', 'a webhook URL (repeat for several)', collect, [])
      .option('--via <how>', 'for users and groups: preference (default), email, slack or both')
      .option('--subject <template>', 'subject template, like "{{app.title}}: {{run.status}}"')
      .option('--body <template>', 'body template')
      .option('--screenshot <format>', 'attach a picture of the app: png or pdf')
      .option('--csv <cell>', 'attach a table cell as CSV (repeat for several)', collect, [])
      .option('--json', 'print the rule as JSON', false),
  ).action(async (project: string, flags: AddFlags) => {
    const client = clientFor(flags);
    if (flags.user.includes('me')) {
      const me = await client.get<{ userId: string }>('/api/me');
      flags.user = flags.user.map((u) => (u === 'me' ? me.userId : u));
    }
    const { data } = await client.post<RuleJson>(
      `/api/projects/${encodeURIComponent(project)}/notification-rules`,
      ruleFromFlags(flags),
    );
    if (flags.json) return printJson(data);
    process.stdout.write(
      `rule ${data.id} '${data.name}': ${describeTrigger(data.trigger)} → ${data.destinations.map(describeDestination).join(', ')}\n`,
    );
  });

  withClient(
    notify
      .command('rules')
      .description("a project's notification rules")
      .argument('<project>', 'project slug or id')
      .option('--json', 'print the rules as JSON', false),
  ).action(async (project: string, flags: { json: boolean }) => {
    const rules = await clientFor(flags).get<RuleJson[]>(
      `/api/projects/${encodeURIComponent(project)}/notification-rules`,
    );
    if (flags.json) return printJson(rules);
    if (rules.length === 0) {
      process.stdout.write(
        "no rules: nobody is notified (new schedules start with 'project owners on failure')\n",
      );
      return;
    }
    for (const r of rules) {
      const extras = [r.content.screenshot, ...r.content.csvCells.map((c) => `${c}.csv`)]
        .filter(Boolean)
        .join(', ');
      process.stdout.write(
        `${r.id}  ${r.name}  ${r.scheduleId ? `schedule ${r.scheduleId}` : 'every schedule'}  ${describeTrigger(r.trigger)} → ${r.destinations.map(describeDestination).join(', ')}${extras ? `  [${extras}]` : ''}${r.enabled ? '' : '  (disabled)'}\n`,
      );
    }
  });

  withClient(
    notify
      .command('remove')
      .description('delete a notification rule')
      .argument('<rule>', 'rule id')
      .option('--json', 'print {"id", "deleted": true} as JSON', false),
  ).action(async (rule: string, flags: { json: boolean }) => {
    await clientFor(flags).request('DELETE', `/api/notification-rules/${encodeURIComponent(rule)}`);
    if (flags.json) return printJson({ id: rule, deleted: true });
    process.stdout.write(`deleted rule ${rule}\n`);
  });

  withClient(
    notify
      .command('deliveries')
      .description("a run's notifications, per destination")
      .argument('<run>', 'run id')
      .option('--json', 'print the deliveries as JSON', false),
  ).action(async (run: string, flags: { json: boolean }) => {
    const list = await clientFor(flags).get<DeliveryJson[]>(
      `/api/runs/${encodeURIComponent(run)}/deliveries`,
    );
    if (flags.json) return printJson(list);
    if (list.length === 0) {
      process.stdout.write('no notifications for this run\n');
      return;
    }
    for (const d of list) {
      const detail = d.error ?? d.note ?? '';
      process.stdout.write(
        `${d.id}  ${d.status.padEnd(7)}  ${`${d.attempts}/${d.maxAttempts}`.padEnd(5)}  ${d.destination}${detail ? `  — ${detail}` : ''}\n`,
      );
    }
  });

  withClient(
    notify
      .command('resend')
      .description('send a delivery again')
      .argument('<delivery>', 'delivery id')
      .option('--json', 'print the delivery as JSON', false),
  ).action(async (delivery: string, flags: { json: boolean }) => {
    const { data } = await clientFor(flags).post<DeliveryJson>(
      `/api/deliveries/${encodeURIComponent(delivery)}/resend`,
    );
    if (flags.json) return printJson(data);
    process.stdout.write(`delivery ${data.id} to ${data.destination} is ${data.status} again\n`);
  });

  withClient(
    notify
      .command('outbox')
      .description('email written to the outbox folder (no SMTP configured)')
      .option('--json', 'print the outbox entries as JSON', false),
  ).action(async (flags: { json: boolean }) => {
    const entries =
      await clientFor(flags).get<{ file: string; size: number; createdAt: string; url: string }[]>(
        '/api/outbox',
      );
    if (flags.json) return printJson(entries);
    if (entries.length === 0) process.stdout.write('the outbox is empty\n');
    for (const e of entries)
      process.stdout.write(`${e.createdAt}  ${String(e.size).padStart(8)} B  ${e.url}\n`);
  });

  withClient(
    notify
      .command('integrations')
      .description("show or change the workspace's SMTP, Slack and webhook settings (changes: admins)")
      .option('--smtp <host:port>', 'send email through this SMTP server')
      .option('--smtp-user <user>', 'SMTP login')
      .option('--smtp-password-env <name>', 'read the SMTP password from this environment variable')
      .option('--smtp-tls', 'TLS from the start (port 465)', false)
      .option('--no-smtp', 'remove SMTP: email goes to the outbox folder')
      .option('--from <address>', 'sender address')
      .option('--slack-token-env <name>', 'read the Slack bot token from this environment variable')
      .option('--allow-private-webhooks <yes|no>', 'allow webhooks to private addresses')
      .option('--json', 'print JSON (the settings always print as JSON)', false),
  ).action(
    async (flags: {
      smtp?: string | false;
      smtpUser?: string;
      smtpPasswordEnv?: string;
      smtpTls: boolean;
      from?: string;
      slackTokenEnv?: string;
      allowPrivateWebhooks?: string;
    }) => {
      const body: Record<string, unknown> = {};
      if (flags.smtp === false) body['smtp'] = null;
      else if (flags.smtp) {
        const [host, port] = flags.smtp.split(':');
        body['smtp'] = {
          host,
          port: port ? Number(port) : 587,
          secure: flags.smtpTls,
          user: flags.smtpUser ?? null,
          password: flags.smtpPasswordEnv ? (process.env[flags.smtpPasswordEnv] ?? null) : null,
        };
      }
      if (flags.from) body['emailFrom'] = flags.from;
      if (flags.slackTokenEnv) {
        const token = process.env[flags.slackTokenEnv];
        if (!token) throw new ValidationError('--slack-token-env', `${flags.slackTokenEnv} is not set`);
        body['slackToken'] = token;
      }
      if (flags.allowPrivateWebhooks) {
        if (!['yes', 'no'].includes(flags.allowPrivateWebhooks)) {
          throw new ValidationError('--allow-private-webhooks', 'must be yes or no');
        }
        body['allowPrivateWebhooks'] = flags.allowPrivateWebhooks === 'yes';
      }
      const client = clientFor(flags);
      const view = Object.keys(body).length
        ? (await client.request('PUT', '/api/integrations', body)).data
        : await client.get('/api/integrations');
      printJson(view);
    },
  );
}
