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
import { isIP } from 'node:net';
import { isPrivateAddress } from '../domain/network-address.ts';
import { DeliveryError, parseRetryAfter } from './delivery-error.ts';

/** Every address Almanac refuses to send a webhook to: any class but `public` (domain/network-address.ts). */
export { isPrivateAddress };

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
