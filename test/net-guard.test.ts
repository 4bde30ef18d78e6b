/**
 * The cell network guard (src/executor/child/net-guard.ts) and the address classes it shares with the
 * webhook guard (src/domain/network-address.ts). The guard changes the process it is installed in, so
 * it runs in a child node process here; hostile-notebooks.test.ts runs it inside real runs.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { type AddressInfo, createServer } from 'node:net';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type AddressClass, classifyAddress, isPrivateAddress } from '../src/domain/network-address.ts';
import { hostAddress } from './support/host-address.ts';

const GUARD = fileURLToPath(new URL('../src/executor/child/net-guard.ts', import.meta.url));

describe('network address classes', () => {
  it('names where an address leads, in every spelling of it', () => {
    const table: [string, AddressClass][] = [
      ['127.0.0.1', 'loopback'],
      ['127.255.0.9', 'loopback'],
      ['::1', 'loopback'],
      ['[::1]', 'loopback'],
      ['0:0:0:0:0:0:0:1', 'loopback'],
      ['::ffff:127.0.0.1', 'loopback'],
      ['::ffff:7f00:1', 'loopback'],
      ['::ffff:0:7f00:1', 'loopback'],
      ['::7f00:1', 'loopback'],
      ['::127.0.0.1', 'loopback'],
      ['64:ff9b::7f00:1', 'loopback'],
      ['2002:7f00:1::5', 'loopback'],
      ['0.0.0.0', 'unspecified'],
      ['0.1.2.3', 'unspecified'],
      ['::', 'unspecified'],
      ['::ffff:0.0.0.0', 'unspecified'],
      ['169.254.169.254', 'link-local'],
      ['::ffff:169.254.169.254', 'link-local'],
      ['64:ff9b::a9fe:a9fe', 'link-local'],
      ['fe80::1', 'link-local'],
      ['fe80::1%eth0', 'link-local'],
      ['febf::1', 'link-local'],
      ['10.1.2.3', 'private'],
      ['172.16.0.1', 'private'],
      ['172.31.255.255', 'private'],
      ['192.168.1.1', 'private'],
      ['100.64.0.1', 'private'],
      ['fd00::2', 'private'],
      ['fc00::1', 'private'],
      ['::ffff:10.0.0.1', 'private'],
      ['2002:c0a8:101::1', 'private'],
      ['192.0.2.2', 'reserved'],
      ['224.0.0.1', 'reserved'],
      ['255.255.255.255', 'reserved'],
      ['ff02::1', 'reserved'],
      ['2001:db8::1', 'reserved'],
      ['::8.8.8.8', 'reserved'],
      ['8.8.8.8', 'public'],
      ['172.32.0.1', 'public'],
      ['::ffff:8.8.8.8', 'public'],
      ['64:ff9b::808:808', 'public'],
      ['2002:808:808::1', 'public'],
      ['2606:4700::1111', 'public'],
      // Forms only inet_aton reads are names to Node: resolved first, then classified.
      ['0x7f.1', 'invalid'],
      ['2130706433', 'invalid'],
      ['localhost', 'invalid'],
    ];
    for (const [address, kind] of table) assert.equal(classifyAddress(address), kind, address);
    // The webhook guard's rule: anything but public.
    for (const [address, kind] of table) assert.equal(isPrivateAddress(address), kind !== 'public', address);
  });
});

/** Runs `body` in a fresh node process with the guard installed; resolves to what it printed. */
function guarded(body: string): Promise<Record<string, string>> {
  const script = `import { installNetGuard, blockPrivateNetworks } from ${JSON.stringify(GUARD)};
import net from 'node:net';
installNetGuard();
const tcp = (options) => new Promise((resolve) => {
  const socket = net.connect(options);
  socket.once('connect', () => { socket.destroy(); resolve('connected'); });
  socket.once('error', (e) => resolve(e.code + ' ' + e.message));
});
const out = {};
${body}
process.stdout.write(JSON.stringify(out));`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve(JSON.parse(stdout)) : reject(new Error(`exit ${code}: ${stderr}`)),
    );
  });
}

describe('the cell network guard', () => {
  it('connects to the addresses it checked, refuses a name when any address is refused, keeps DNS servers off loopback, and blocks private networks once asked', async () => {
    const address = hostAddress();
    let hits = 0;
    const server = createServer((s) => {
      hits++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, address, r));
    const port = (server.address() as AddressInfo).port;
    try {
      const out = await guarded(`
const address = ${JSON.stringify(address)}, port = ${port};
out.direct = await tcp({ host: address, port });
// A name goes where the lookup said, once checked: no second resolution.
out.named = await tcp({ host: 'service.test', port, lookup: (h, o, cb) => o.all ? cb(null, [{ address, family: net.isIP(address) }]) : cb(null, address, net.isIP(address)) });
// Every address of a name is checked, not only the first.
out.mixed = await tcp({ host: 'service.test', port, lookup: (h, o, cb) => cb(null, [{ address, family: net.isIP(address) }, { address: '127.0.0.1', family: 4 }]) });
out.single = await tcp({ host: 'service.test', port, lookup: (h, o, cb) => cb(null, '::1', 6) });
blockPrivateNetworks();
out.blocked = await tcp({ host: address, port });
out.ten = await tcp({ host: '10.0.0.1', port: 80 });
out.ula = await tcp({ host: 'fd00::1', port: 80 });
try { await fetch('http://192.168.0.1/'); } catch (e) { out.fetch = e.cause?.code + ' ' + e.cause?.message; }
// c-ares sends DNS queries from C, to servers a cell could point at a host service.
const { Resolver } = process.getBuiltinModule('node:dns');
const resolver = new Resolver();
try { resolver.setServers(['127.0.0.1:5432']); out.resolver = 'set'; } catch (e) { out.resolver = e.code; }
out.rawResolver = String(resolver._handle.setServers([[6, '::1', 5432]]));
try { resolver.setServers(['8.8.8.8']); out.publicResolver = resolver.getServers().join(); } catch (e) { out.publicResolver = e.code; }`);
      assert.equal(out['direct'], 'connected');
      assert.equal(out['named'], 'connected');
      assert.match(
        out['mixed']!,
        /^EACCES cells may not connect to service\.test:\d+: it resolves to 127\.0\.0\.1, a loopback address/,
      );
      assert.match(
        out['single']!,
        /^EACCES cells may not connect to service\.test:\d+: it resolves to ::1, a loopback address/,
      );
      assert.equal(hits, 2, 'the direct and the named connection arrived, nothing else');
      assert.equal(out['resolver'], 'ERR_DNS_SET_SERVERS_FAILED');
      assert.equal(out['rawResolver'], '-13');
      assert.equal(out['publicResolver'], '8.8.8.8');
      for (const key of ['blocked', 'ten', 'ula', 'fetch'])
        assert.match(
          out[key]!,
          /^EACCES cells may not connect to .*ALMANAC_CELL_BLOCK_PRIVATE_NETWORKS/,
          key,
        );
    } finally {
      server.close();
    }
  });
});
