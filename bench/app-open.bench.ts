/**
 * Cached app open: `GET /api/projects/sales/app` (token check, the app's default state, precompressed
 * snapshot with an ETag) at 100 concurrent connections, next to a plain static-file server serving the
 * same gzip bytes from disk, in the same run. Each server runs in its own process; the load generator
 * (autocannon) runs in this one. Latency is autocannon's per-request time, first byte to last, which for
 * responses this small is the time to first byte plus a few microseconds.
 *
 * Run: npm run bench:app [-- --seconds 10 --connections 100]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '100' },
  },
});
const SECONDS = Number(values.seconds);
const CONNECTIONS = Number(values.connections);
const ROOT = join(import.meta.dirname, '..');
const TOKEN = 'alm_bench-token-0123456789abcdef';

function start(
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (ready.test(line)) resolve({ child, line });
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });
}

async function load(url: string, headers: Record<string, string>) {
  const result = await autocannon({ url, connections: CONNECTIONS, duration: SECONDS, headers });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
  };
}

const dir = mkdtempSync(join(tmpdir(), 'almanac-open-bench-'));
const children: ChildProcess[] = [];
try {
  const almanac = await start(
    ['src/cli/main.ts', 'serve', '--port', '0', '--seed', 'examples/sales/sales.md'],
    { ALMANAC_DATA_DIR: dir, ALMANAC_ADMIN_TOKEN: TOKEN, ALMANAC_LOG_LEVEL: 'warn' },
    /serving at (http:\S+)/,
  );
  children.push(almanac.child);
  const base = /serving at (http:\S+)/.exec(almanac.line)![1]!;
  const appUrl = `${base}/api/projects/sales/app`;
  const headers = { authorization: `Bearer ${TOKEN}`, 'accept-encoding': 'gzip' };
  let response: Response;
  for (;;) {
    response = await fetch(appUrl, { headers });
    if (response.status === 200) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const etag = response.headers.get('etag')!;
  // fetch decodes gzip; store the exact bytes the server sends by asking with the raw client.
  const raw = await new Promise<Buffer>((resolve, reject) => {
    import('node:http').then(({ get }) =>
      get(appUrl, { headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks)));
      }).on('error', reject),
    );
  });
  const file = join(dir, 'snapshot.json.gz');
  writeFileSync(file, raw);
  const statik = await start(['bench/support/static-server.ts', file, etag], {}, /listening on (http:\S+)/);
  children.push(statik.child);
  const staticUrl = /listening on (http:\S+)/.exec(statik.line)![1]!;

  // Warm both up, then measure one after the other.
  await load(appUrl, headers).catch(() => {});
  const a = await load(appUrl, headers);
  const s = await load(staticUrl, { 'accept-encoding': 'gzip' });

  process.stdout.write(
    `\nCached app open: ${raw.length} gzip bytes, ${CONNECTIONS} connections, ${SECONDS} s each (latency in ms)\n`,
  );
  process.stdout.write(
    `${'server'.padEnd(34)} ${'req/s'.padStart(8)} ${'p50'.padStart(6)} ${'p99'.padStart(6)} ${'errors'.padStart(7)}\n`,
  );
  for (const [name, r] of [
    ['almanac GET /api/projects/:p/app', a],
    ['static file server (node:http+fs)', s],
  ] as const) {
    process.stdout.write(
      `${name.padEnd(34)} ${r.rps.toFixed(0).padStart(8)} ${String(r.p50).padStart(6)} ${String(r.p99).padStart(6)} ${String(r.errors + r.non2xx).padStart(7)}\n`,
    );
  }
  process.stdout.write(`almanac / static opens per second: ${(a.rps / s.rps).toFixed(2)}\n`);
} finally {
  for (const child of children) child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
  rmSync(dir, { recursive: true, force: true });
}
