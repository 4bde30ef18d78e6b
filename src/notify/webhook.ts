/**
 * Signed webhooks: a JSON POST with an `Almanac-Signature` header,
 *
 *   Almanac-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<raw body>")>
 *
 * as docs/notifications.md shows receivers how to verify (compare in constant time, and reject a `t`
 * older than five minutes). Addresses are checked when the socket connects (not only when the URL is
 * parsed), so a name that resolves to a private, loopback or link-local address is refused unless an
 * admin allowed private webhooks: DNS cannot be used to reach the internal network.
 */
import { createHmac } from 'node:crypto';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP } from 'node:net';
import { DeliveryError, parseRetryAfter } from './delivery-error.ts';

/**
 * IPv4 networks that are not the public internet (RFC 6890 and friends): "this network", private,
 * shared (CGNAT), loopback, link-local, IETF protocol assignments, documentation, benchmarking,
 * multicast, reserved and broadcast.
 */
const PRIVATE_V4: readonly (readonly [string, number])[] = [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
];

/** `a.b.c.d` as the two 16-bit groups an IPv6 address writes it in (`7f00:1` for 127.0.0.1). */
function v4Groups(address: string): [string, string] {
  const [a, b, c, d] = address.split('.').map(Number) as [number, number, number, number];
  return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
}

/**
 * Every address Almanac refuses to send a webhook to, in Node's `BlockList` (which matches each
 * spelling of an address: `::ffff:127.0.0.1` and `::ffff:7f00:1` are one address to it). IPv6 forms
 * that carry an IPv4 address are blocked when the IPv4 address is: IPv4-mapped (`::ffff:0:0/96`),
 * NAT64 (`64:ff9b::/96`, `64:ff9b:1::/48`) and 6to4 (`2002::/16`, the address in bits 16-48). The
 * deprecated IPv4-compatible block (`::/96`, with `::` and `::1`), Teredo (`2001::/32`, whose IPv4 part
 * is obfuscated), ORCHID, documentation, discard-only, unique-local, site-local, link-local and
 * multicast IPv6 are blocked whole.
 */
const blocked = new BlockList();
for (const [net, prefix] of PRIVATE_V4) {
  blocked.addSubnet(net, prefix, 'ipv4');
  const [high, low] = v4Groups(net);
  blocked.addSubnet(`64:ff9b::${high}:${low}`, 96 + prefix, 'ipv6');
  blocked.addSubnet(`2002:${high}:${low}::`, 16 + prefix, 'ipv6');
}
for (const [net, prefix] of [
  ['::', 96],
  ['64:ff9b:1::', 48],
  ['100::', 64],
  ['2001::', 32],
  ['2001:10::', 28],
  ['2001:20::', 28],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
] as const) {
  blocked.addSubnet(net, prefix, 'ipv6');
}

/**
 * Whether an address is private, loopback, link-local or otherwise not on the public internet, in any
 * spelling: IPv4-mapped, NAT64 or 6to4 IPv6 carrying such an IPv4 address included. Not an IP
 * address at all: true (refused).
 */
export function isPrivateAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, '');
  const family = isIP(bare);
  if (family === 0) return true;
  if (family === 4) return blocked.check(bare, 'ipv4');
  // Node's BlockList matches an IPv4-mapped IPv6 address against the IPv4 rules itself.
  return blocked.check(bare, 'ipv6');
}

export function sign(key: string, timestamp: number, body: string): string {
  const mac = createHmac('sha256', key).update(`${timestamp}.${body}`).digest('hex');
  return `t=${timestamp},v1=${mac}`;
}

export interface WebhookRequest {
  url: string;
  body: unknown;
  key: string;
  allowPrivate: boolean;
  now: Date;
  timeoutMs?: number;
}

export async function postWebhook(request: WebhookRequest): Promise<{ status: number }> {
  const url = new URL(request.url);
  const body = JSON.stringify(request.body);
  const timestamp = Math.floor(request.now.getTime() / 1000);
  const guardedLookup = (
    hostname: string,
    options: object,
    callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const list = addresses as LookupAddress[];
      const blocked = list.find((a) => isPrivateAddress(a.address));
      if (blocked && !request.allowPrivate) {
        const error = new Error(
          `${hostname} resolves to ${blocked.address}, a private address; an admin can allow private webhooks`,
        ) as NodeJS.ErrnoException;
        error.code = 'EPRIVATE';
        return callback(error, '', 0);
      }
      if ((options as { all?: boolean }).all) return callback(null, list);
      callback(null, list[0]!.address, list[0]!.family);
    });
  };
  // A literal IP skips the lookup, so check it here. The WHATWG parser has already normalized the
  // legacy spellings (`0177.0.0.1`, `2130706433`, `127.1`, `0x7f.1` are all `127.0.0.1` by now).
  const literal = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(literal) && isPrivateAddress(literal) && !request.allowPrivate) {
    throw new DeliveryError(
      `${url.hostname} is a private address; an admin can allow private webhooks`,
      false,
    );
  }
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(
      url,
      {
        method: 'POST',
        lookup: guardedLookup as never,
        timeout: request.timeoutMs ?? 10_000,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Almanac-Webhook/1',
          'almanac-signature': sign(request.key, timestamp, body),
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return resolve({ status });
          // 408, 429 and 5xx may pass later; other 4xx will not.
          const retryable = status === 408 || status === 429 || status >= 500;
          const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
          reject(
            new DeliveryError(
              `webhook ${url.origin} answered HTTP ${status}${retryAfterMs !== null ? ` (retry after ${Math.ceil(retryAfterMs / 1000)} s)` : ''}`,
              retryable,
              { retryAfterMs },
            ),
          );
        });
      },
    );
    // Once the whole request is written, the receiver may have acted on it: a timeout or reset after
    // that is not retried (the message may have arrived), so nothing is ever sent twice.
    let written = false;
    req.on('finish', () => {
      written = true;
    });
    const seconds = Math.round((request.timeoutMs ?? 10_000) / 100) / 10;
    req.on('timeout', () =>
      req.destroy(Object.assign(new Error(`no answer within ${seconds} s`), { code: 'ETIMEDOUT' })),
    );
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPRIVATE') return reject(new DeliveryError(error.message, false));
      if (written && (error.code === 'ETIMEDOUT' || error.code === 'ECONNRESET')) {
        return reject(
          new DeliveryError(
            `webhook ${url.origin} took the message but gave ${error.code === 'ETIMEDOUT' ? `no answer within ${seconds} s` : 'no answer before closing'}, so it may have arrived; not sent again (resend it if it did not)`,
            false,
          ),
        );
      }
      reject(new DeliveryError(`webhook ${url.origin}: ${error.message}`, true));
    });
    req.end(body);
  });
}
