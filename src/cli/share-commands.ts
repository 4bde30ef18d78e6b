/**
 * CLI commands for sharing a project (issue 16): `share <project> (--user|--group) --access <level>`,
 * `unshare <project> (--user|--group)` and `access <project> [--workspace <default>]`, which lists who
 * has what (and sets what every workspace member gets). Full access holders share; every command takes
 * `--json`. A user is named by email or id, a group by id.
 */
import type { Command } from 'commander';
import { ACCESS_LEVELS, WORKSPACE_DEFAULTS } from '../domain/access-policy.ts';
import { ValidationError } from '../domain/errors.ts';
import type { ApiClient } from './api-client.ts';
import { addClientOptions, type ClientFlags, client } from './server-commands.ts';

interface AccessJson {
  workspace: string;
  grants: { principal: string; access: string; reason: string }[];
}

interface UserJson {
  id: string;
  email: string;
  name: string;
}

type Flags = ClientFlags & { json: boolean; user?: string; group?: string };

function print(json: boolean, value: unknown, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : text);
}

function oneOf<T extends string>(field: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new ValidationError(field, `must be one of ${allowed.join(', ')} (got '${value}')`);
}

/** `user:<id>` or `group:<id>` from `--user <email or id>` or `--group <id>`. */
async function granteeOf(api: ApiClient, flags: Flags): Promise<string> {
  if (flags.user !== undefined && flags.group !== undefined) {
    throw new ValidationError('--user', 'give --user or --group, not both');
  }
  if (flags.group !== undefined) return `group:${flags.group}`;
  if (flags.user === undefined)
    throw new ValidationError('--user', 'give --user <email or id> or --group <id>');
  if (!flags.user.includes('@')) return `user:${flags.user}`;
  const users = await api.get<UserJson[]>('/api/users');
  const found = users.find((u) => u.email.toLowerCase() === flags.user!.toLowerCase());
  if (!found) {
    throw new ValidationError(
      '--user',
      `no user '${flags.user}' in this workspace; see \`almanac users list\``,
    );
  }
  return `user:${found.id}`;
}

function describe(access: AccessJson): string {
  const lines = [`workspace members: ${access.workspace}\n`];
  if (access.grants.length === 0) lines.push('no one else is named\n');
  for (const g of access.grants) lines.push(`${g.principal}  ${g.access}  (${g.reason})\n`);
  return lines.join('');
}

export function registerShareCommands(program: Command): void {
  addClientOptions(
    program
      .command('share')
      .description('share a project with a user or group at an access level (Full access holders)')
      .argument('<project>', 'the project slug'),
  )
    .option('--user <user>', 'their email or id')
    .option('--group <group>', 'the group id')
    .requiredOption('--access <level>', `one of ${ACCESS_LEVELS.join(', ')}`)
    .option('--json', 'print JSON', false)
    .action(async (project: string, flags: Flags & { access: string }) => {
      const access = oneOf('--access', flags.access, ACCESS_LEVELS);
      const api = client(flags);
      const principal = await granteeOf(api, flags);
      const { data } = await api.request<AccessJson>(
        'PUT',
        `/api/projects/${encodeURIComponent(project)}/grants`,
        { principal, access },
      );
      print(flags.json, data, `Shared ${project} with ${principal} (${access})\n${describe(data)}`);
    });
  addClientOptions(
    program
      .command('unshare')
      .description("remove a user's or group's grant on a project")
      .argument('<project>', 'the project slug'),
  )
    .option('--user <user>', 'their email or id')
    .option('--group <group>', 'the group id')
    .option('--json', 'print JSON', false)
    .action(async (project: string, flags: Flags) => {
      const api = client(flags);
      const principal = await granteeOf(api, flags);
      await api.request(
        'DELETE',
        `/api/projects/${encodeURIComponent(project)}/grants/${encodeURIComponent(principal)}`,
      );
      print(
        flags.json,
        { project, principal, removed: true },
        `Removed ${principal}'s grant on ${project}\n`,
      );
    });
  addClientOptions(
    program
      .command('access')
      .description('who may open a project and at what level; --workspace sets what every member gets')
      .argument('<project>', 'the project slug'),
  )
    .option('--workspace <default>', `one of ${WORKSPACE_DEFAULTS.join(', ')}`)
    .option('--json', 'print JSON', false)
    .action(async (project: string, flags: Flags & { workspace?: string }) => {
      const api = client(flags);
      const path = `/api/projects/${encodeURIComponent(project)}/access`;
      const data =
        flags.workspace === undefined
          ? await api.get<AccessJson>(path)
          : (
              await api.request<AccessJson>('PUT', path, {
                workspace: oneOf('--workspace', flags.workspace, WORKSPACE_DEFAULTS),
              })
            ).data;
      print(flags.json, data, describe(data));
    });
}
