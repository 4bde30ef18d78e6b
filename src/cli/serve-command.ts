/**
 * `almanac serve`: the API, app pages, a worker, the scheduler and the notifier in one process (or the
 * roles given). Loaded only when `serve` runs: it brings in the whole server.
 */
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { readConfigFile, resolveConfig } from '../app/config.ts';
import { createServer, PROCESS_ROLES, type ProcessRole } from '../app/create-server.ts';
import { isPostgresUrl } from '../domain/connection-url.ts';
import { ValidationError } from '../domain/errors.ts';
import { ADMIN_TOKEN_FILE, type ServeFlags } from './server-commands.ts';

export async function serveCommand(flags: ServeFlags): Promise<void> {
  const configFile = flags.config ?? process.env['ALMANAC_CONFIG'];
  const env = configFile ? { ...readConfigFile(configFile), ...process.env } : process.env;
  const port = flags.port === undefined ? undefined : Number(flags.port);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
    throw new ValidationError('--port', `must be a port number 0-65535, got '${flags.port}'`);
  }
  const roleField = flags.role ? '--role' : 'ALMANAC_ROLES';
  const roles = (flags.role ?? env['ALMANAC_ROLES'] ?? PROCESS_ROLES.join(','))
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean);
  if (roles.length === 0)
    throw new ValidationError(roleField, `name at least one of ${PROCESS_ROLES.join(', ')}`);
  for (const role of roles) {
    if (!(PROCESS_ROLES as readonly string[]).includes(role)) {
      throw new ValidationError(roleField, `unknown role '${role}'; roles are ${PROCESS_ROLES.join(', ')}`);
    }
  }
  for (const seed of flags.seed) {
    if (!existsSync(seed) || !statSync(seed).isFile())
      throw new ValidationError('--seed', `cannot read notebook '${seed}'`);
  }
  const config = resolveConfig(
    {
      ...(flags.dataDir ? { dataDir: flags.dataDir } : {}),
      ...(port !== undefined ? { port } : {}),
      ...(flags.host ? { host: flags.host } : {}),
      ...(flags.adminEmail ? { adminEmail: flags.adminEmail } : {}),
    },
    env,
  );
  if (roles.length < PROCESS_ROLES.length && !isPostgresUrl(config.databaseUrl)) {
    throw new ValidationError(
      roleField,
      `running only ${roles.join(', ')} needs PostgreSQL (DATABASE_URL=postgres://…): on the embedded SQLite store one process runs every role`,
    );
  }
  const server = await createServer(config, { roles: roles as ProcessRole[] });
  const tokenFile = join(config.dataDir, ADMIN_TOKEN_FILE);
  if (server.adminToken) writeFileSync(tokenFile, `${server.adminToken}\n`, { mode: 0o600 });
  for (const seed of flags.seed) {
    const result = await server.seed(seed);
    process.stdout.write(
      `${result.created ? 'published' : 'up to date:'} ${result.project} v${result.version.number}${result.run ? ` (publish run ${result.run.id})` : ''}\n`,
    );
  }
  if (server.url) {
    process.stdout.write(`\nAlmanac is serving at ${server.url}\n`);
    if (server.adminToken) {
      process.stdout.write(
        `Admin API token for the CLI and automation (shown once; also saved to ${tokenFile}):\n  ${server.adminToken}\n`,
      );
    }
    if (roles.includes('web')) {
      // A one-time login code, never the token: a URL ends up in history, logs and Referer headers.
      const next = flags.seed[0] ? `/apps/${basename(flags.seed[0], '.md')}` : '/';
      process.stdout.write(
        `Open in a browser (the link signs the admin in once, within 10 minutes; \`almanac login-link\` makes a fresh one):\n  ${server.url}${await server.loginLink(next)}\n`,
      );
    }
    process.stdout.write('Press Ctrl+C to stop.\n');
  }
  await new Promise<void>((done) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.stderr.write('stopping: finishing runs in progress…\n');
      void server.stop().then(done);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
