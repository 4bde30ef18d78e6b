/**
 * An address of this machine that is not loopback or link-local, for tests whose cells must reach a
 * local server with network on: the cell network guard (executor/child/net-guard.ts) refuses
 * loopback, so a server on 127.0.0.1 no longer shows that a cell's network works.
 */
import { networkInterfaces } from 'node:os';
import { classifyAddress } from '../../src/domain/network-address.ts';

/** The first such address (IPv4 first), for `listen(0, address)`; throws when the machine has none. */
export function hostAddress(): string {
  const all = Object.values(networkInterfaces()).flatMap((list) => list ?? []);
  const usable = all
    .filter(
      (a) => !a.internal && !['loopback', 'link-local', 'unspecified'].includes(classifyAddress(a.address)),
    )
    .sort((a, b) => (a.family === b.family ? 0 : a.family === 'IPv4' ? -1 : 1));
  if (!usable[0]) {
    throw new Error(
      'this machine has no address but loopback and link-local ones: cells (which may not reach loopback) cannot reach a local test server',
    );
  }
  return usable[0].address;
}

/** `http://<address>:<port>/`, brackets around IPv6. */
export function httpUrl(address: string, port: number): string {
  return `http://${address.includes(':') ? `[${address}]` : address}:${port}/`;
}
