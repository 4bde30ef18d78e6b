/**
 * Network address classes: where an IP address leads, in every spelling of it. Shared by the webhook
 * guard (notify/webhook.ts: a receiver must be on the public internet) and the cell network guard
 * (executor/child/net-guard.ts: a cell may not reach the host's own services). Pure: it parses and
 * compares, and never resolves a name.
 *
 * This module is also bundled into the sandboxed child runtime: keep its exports named functions and
 * constants, and its imports Node built-ins only.
 */
import { BlockList, isIP } from 'node:net';

/**
 * Where an address leads:
 * - `loopback`: this machine (127.0.0.0/8, ::1);
 * - `unspecified`: "this network" (0.0.0.0/8, ::), which Linux connects to this machine;
 * - `link-local`: the local link (169.254.0.0/16, fe80::/10), where cloud metadata services
 *   (169.254.169.254, fd00:ec2::254 aside) answer;
 * - `private`: internal networks (10/8, 172.16/12, 192.168/16, shared 100.64/10, benchmarking
 *   198.18/15, unique-local fc00::/7, site-local fec0::/10, local-use NAT64 64:ff9b:1::/48);
 * - `reserved`: not routed on the public internet, and not a network of one's own either
 *   (documentation, IETF assignments, multicast, 240/4 and broadcast, Teredo, discard-only);
 * - `public`: everything else;
 * - `invalid`: not an IP address at all.
 */
export type AddressClass =
  | 'loopback'
  | 'unspecified'
  | 'link-local'
  | 'private'
  | 'reserved'
  | 'public'
  | 'invalid';

/** IPv4 networks by class (RFC 6890 and friends). */
const V4_NETWORKS: readonly (readonly [string, number, AddressClass])[] = [
  ['127.0.0.0', 8, 'loopback'],
  ['0.0.0.0', 8, 'unspecified'],
  ['169.254.0.0', 16, 'link-local'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'private'],
  ['172.16.0.0', 12, 'private'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'private'],
  ['192.0.0.0', 24, 'reserved'],
  ['192.0.2.0', 24, 'reserved'],
  ['192.88.99.0', 24, 'reserved'],
  ['198.51.100.0', 24, 'reserved'],
  ['203.0.113.0', 24, 'reserved'],
  ['224.0.0.0', 4, 'reserved'],
  ['240.0.0.0', 4, 'reserved'],
];

/** IPv6 networks by class that carry no IPv4 address (those are added from `V4_NETWORKS`). */
const V6_NETWORKS: readonly (readonly [string, number, AddressClass])[] = [
  ['::1', 128, 'loopback'],
  ['::', 128, 'unspecified'],
  ['fe80::', 10, 'link-local'],
  ['fc00::', 7, 'private'],
  ['fec0::', 10, 'private'],
  ['64:ff9b:1::', 48, 'private'],
  ['100::', 64, 'reserved'],
  ['2001::', 32, 'reserved'],
  ['2001:10::', 28, 'reserved'],
  ['2001:20::', 28, 'reserved'],
  ['2001:db8::', 32, 'reserved'],
  ['ff00::', 8, 'reserved'],
  // The rest of the deprecated IPv4-compatible block (`::8.8.8.8`): nothing routes it any more.
  ['::', 96, 'reserved'],
];

/** The classes in the order they are checked: the first that matches wins (`::1` before `::/96`). */
const CHECK_ORDER = ['loopback', 'unspecified', 'link-local', 'private', 'reserved'] as const;

/** `a.b.c.d` as the two 16-bit groups an IPv6 address writes it in (`7f00:1` for 127.0.0.1). */
function v4Groups(address: string): [string, string] {
  const [a, b, c, d] = address.split('.').map(Number) as [number, number, number, number];
  return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
}

/**
 * One `BlockList` per class. Node's BlockList compares addresses, not text, so every spelling of one
 * address matches (`::ffff:127.0.0.1`, `::ffff:7f00:1`, `0:0:0:0:0:ffff:7f00:1`). An IPv6 address that
 * carries an IPv4 address is in the IPv4 address's class: IPv4-mapped (`::ffff:0:0/96`, which BlockList
 * also matches against IPv4 rules itself), IPv4-translated (`::ffff:0:0:0/96`), the deprecated
 * IPv4-compatible (`::/96`, so `::7f00:1` is loopback), NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`,
 * the address in bits 16-48).
 */
const LISTS = (() => {
  const lists = new Map<AddressClass, BlockList>(CHECK_ORDER.map((c) => [c, new BlockList()]));
  for (const [net, prefix, kind] of V4_NETWORKS) {
    const list = lists.get(kind)!;
    list.addSubnet(net, prefix, 'ipv4');
    const [high, low] = v4Groups(net);
    list.addSubnet(`::ffff:${high}:${low}`, 96 + prefix, 'ipv6');
    list.addSubnet(`::ffff:0:${high}:${low}`, 96 + prefix, 'ipv6');
    list.addSubnet(`::${high}:${low}`, 96 + prefix, 'ipv6');
    list.addSubnet(`64:ff9b::${high}:${low}`, 96 + prefix, 'ipv6');
    list.addSubnet(`2002:${high}:${low}::`, 16 + prefix, 'ipv6');
  }
  for (const [net, prefix, kind] of V6_NETWORKS) lists.get(kind)!.addSubnet(net, prefix, 'ipv6');
  return lists;
})();

/**
 * The class of an IP address, in any spelling Node accepts as an address (brackets and an IPv6 zone,
 * `fe80::1%eth0`, allowed). A host name, or an IPv4 address in a form only `inet_aton` reads
 * (`0x7f.1`, `2130706433`), is `invalid`: resolve it first, and classify what it resolves to.
 */
export function classifyAddress(address: string): AddressClass {
  const bare = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const family = isIP(bare);
  if (family === 0) return 'invalid';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const kind of CHECK_ORDER) if (LISTS.get(kind)!.check(bare, type)) return kind;
  return 'public';
}

/** Why an address of a class is not public, in words for error messages. */
export function describeAddressClass(kind: AddressClass): string {
  switch (kind) {
    case 'loopback':
      return 'a loopback address, this machine itself';
    case 'unspecified':
      return 'an unspecified address, which reaches this machine itself';
    case 'link-local':
      return 'a link-local address, where cloud metadata services answer';
    case 'private':
      return 'a private network address';
    case 'reserved':
      return 'a reserved address, not on the public internet';
    case 'public':
      return 'a public address';
    case 'invalid':
      return 'not an IP address';
  }
}

/**
 * Whether an address is private, loopback, link-local or otherwise not on the public internet, in any
 * spelling: IPv4-mapped, IPv4-compatible, NAT64 or 6to4 IPv6 carrying such an IPv4 address included.
 * Not an IP address at all: true (refused).
 */
export function isPrivateAddress(address: string): boolean {
  return classifyAddress(address) !== 'public';
}
