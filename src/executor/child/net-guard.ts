/**
 * The cell network guard: a cell may not connect to the host's own services (issue 14, finding 3).
 * Installed by the child runtime before any cell runs, in every isolation mode. It refuses, with an
 * `EACCES` error that says why, each connection a cell starts to
 * - a Unix socket, by path or abstract name (PostgreSQL's `/var/run/postgresql/.s.PGSQL.5432`, which
 *   trusts local users, is 0777 on most systems);
 * - a loopback or unspecified address (127.0.0.0/8, ::1, 0.0.0.0, ::, in every IPv6 spelling that
 *   carries them), where the host's databases, caches and admin ports listen;
 * - a link-local address (169.254.0.0/16, fe80::/10), where cloud metadata services hand out
 *   credentials;
 * - and, once `blockPrivateNetworks()` is called, private and reserved networks too.
 *
 * Names are resolved first and every address they resolve to is checked; the connection then goes to
 * those checked addresses, through a lookup that returns them (no second resolution, so no DNS
 * rebinding between check and connect). Two layers are hooked, both fixed in place so a cell cannot
 * put the originals back:
 * - `net.Socket.prototype.connect`, which `net.connect`, `http`, `https`, `tls` and `fetch` (undici)
 *   all go through: clear messages, and names resolved and checked;
 * - the `connect`/`send` methods of libuv's TCP, Pipe and UDP handles, which every socket of the
 *   process ends in: a cell that builds a handle itself (`socket._handle.constructor`), or `dgram`,
 *   meets the same rule as an `EACCES` error code;
 * - c-ares's `setServers` (`dns.Resolver`), whose queries leave from C: a cell may not point DNS
 *   queries at a refused address, other than the system's own resolvers.
 *
 * This is a JavaScript-level guard, defence in depth: a cell that reaches a raw socket some other way
 * (a native addon, a child process: both refused by Node's permission model) is not stopped by it.
 * The kernel-level barrier is bubblewrap's network namespace when a workspace cuts network access, and
 * bubblewrap's filesystem view, which holds no host socket file.
 */

import dgram from 'node:dgram';
import { lookup as dnsLookup, type LookupAddress, Resolver } from 'node:dns';
import net from 'node:net';
import { constants as osConstants } from 'node:os';
import { type AddressClass, classifyAddress, describeAddressClass } from '../../domain/network-address.ts';

/** libuv's error code for "permission denied", as a handle method returns it. */
const UV_EACCES = -osConstants.errno.EACCES;

/** Whether private and reserved networks are refused too (set once per process, never unset). */
let blockPrivate = false;

/** The error a refused connection fails with: shaped like Node's own `connect EACCES`. */
class CellNetworkError extends Error {
  override name = 'CellNetworkError';
  readonly code = 'EACCES';
  readonly errno = UV_EACCES;
  readonly syscall = 'connect';
  /** What the cell tried to reach, as it named it. */
  readonly target: string;
  constructor(target: string, reason: string) {
    super(`cells may not connect to ${target}: ${reason}`);
    this.target = target;
  }
}

const SERVICES_ADVICE =
  "the host's own services are out of reach of cells; query databases through a connection (almanac.query), and call other services at their network address";

/** What an address is and what to do instead, when it is refused; null when it is allowed. */
function refusalOf(address: string): { what: string; advice: string } | null {
  const kind: AddressClass = classifyAddress(address);
  switch (kind) {
    case 'public':
      return null;
    case 'private':
    case 'reserved':
      return blockPrivate
        ? {
            what: describeAddressClass(kind),
            advice: 'this server keeps cells off private networks (ALMANAC_CELL_BLOCK_PRIVATE_NETWORKS)',
          }
        : null;
    case 'loopback':
    case 'unspecified':
    case 'link-local':
    case 'invalid':
      return { what: describeAddressClass(kind), advice: SERVICES_ADVICE };
  }
}

/** `host:port` as a message shows it. */
function targetOf(host: string, port: unknown): string {
  const shown = net.isIP(host) === 6 ? `[${host}]` : host;
  return port === undefined || port === null ? shown : `${shown}:${String(port)}`;
}

function refusePath(path: unknown): CellNetworkError {
  const text = String(path);
  const shown = text.startsWith('\0') ? `the abstract socket @${text.slice(1)}` : `the Unix socket ${text}`;
  return new CellNetworkError(shown, `Unix sockets lead to services of the host; ${SERVICES_ADVICE}`);
}

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;
type LookupFunction = (hostname: string, options: Record<string, unknown>, callback: LookupCallback) => void;

/**
 * A lookup that resolves every address of a name (through the socket's own lookup, or `dns.lookup`),
 * refuses the name when any of them is refused, and otherwise answers with exactly those addresses:
 * the socket connects to what was checked.
 */
function guardedLookup(lookup: LookupFunction, port: unknown): LookupFunction {
  return (hostname, options, callback) => {
    lookup(hostname, { ...options, all: true }, (error, addresses, family) => {
      if (error) return callback(error, options['all'] ? [] : '', 0);
      const list: LookupAddress[] = Array.isArray(addresses)
        ? addresses
        : typeof addresses === 'string'
          ? [{ address: addresses, family: family ?? net.isIP(addresses) }]
          : [];
      for (const entry of list) {
        const refusal = refusalOf(String(entry?.address));
        if (refusal) {
          const error = new CellNetworkError(
            targetOf(hostname, port),
            `it resolves to ${entry.address}, ${refusal.what}; ${refusal.advice}`,
          );
          return callback(error, options['all'] ? [] : '', 0);
        }
      }
      if (list.length === 0) {
        const none = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
          code: 'ENOTFOUND',
          hostname,
        });
        return callback(none, options['all'] ? [] : '', 0);
      }
      if (options['all']) return callback(null, list);
      callback(null, list[0]!.address, list[0]!.family);
    });
  };
}

/** `Socket#connect`'s arguments as one options object and callback (as Node's `normalizeArgs`). */
function normalizeConnectArgs(args: unknown[]): { options: Record<string, unknown>; callback: unknown } {
  let list = args;
  // `net.connect` passes its already normalized arguments as one array.
  if (Array.isArray(args[0])) list = args[0] as unknown[];
  const [first, second] = list;
  const last = list[list.length - 1];
  const callback = typeof last === 'function' ? last : undefined;
  if (typeof first === 'object' && first !== null) return { options: { ...first }, callback };
  // Node's `isPipeName`: a string that is not a number >= 0.
  if (typeof first === 'string' && !(Number(first) >= 0)) return { options: { path: first }, callback };
  const options: Record<string, unknown> = { port: first };
  if (typeof second === 'string') options['host'] = second;
  return { options, callback };
}

/** Fixes `proto[name]` to `value`: not writable, not configurable, so a cell cannot put it back. */
function fix(proto: object, name: string, value: unknown): void {
  Object.defineProperty(proto, name, { value, writable: false, configurable: false, enumerable: false });
}

/** Wraps a handle method so that the address at `at` in its arguments is checked first. */
function guardHandleMethod(proto: Record<string, unknown> | null, name: string, at: number | 'path'): void {
  const original = proto?.[name];
  if (!proto || typeof original !== 'function') return;
  fix(proto, name, function guarded(this: unknown, ...args: unknown[]) {
    if (at === 'path') return UV_EACCES;
    const address = args[at];
    if (typeof address === 'string' && refusalOf(address)) return UV_EACCES;
    return Reflect.apply(original, this, args);
  });
}

let installed = false;

/**
 * Refuses private and reserved networks too, from now on, for the rest of the process: a latch that
 * nothing turns off. For a host that keeps cells off its internal networks; call it before cells run.
 */
export function blockPrivateNetworks(): void {
  blockPrivate = true;
}

/**
 * Installs the guard in this process, once, before any cell runs. `options.blockPrivateNetworks`
 * refuses private and reserved networks too (as `blockPrivateNetworks()`).
 */
export function installNetGuard(options: { blockPrivateNetworks?: boolean } = {}): void {
  if (options.blockPrivateNetworks) blockPrivate = true;
  if (installed) return;
  installed = true;
  const Socket = net.Socket;
  const originalConnect = Socket.prototype.connect as (...args: unknown[]) => net.Socket;

  // The libuv handle classes, from handles made here and dropped before they connect anywhere: a
  // bad `path` and a bad port fail `connect` right after it creates its handle.
  const handleProto = (options: Record<string, unknown>): Record<string, unknown> | null => {
    const socket = new Socket();
    try {
      originalConnect.call(socket, options);
    } catch {
      // expected: the arguments are invalid on purpose
    }
    const handle = (socket as unknown as { _handle: object | null })._handle;
    socket.destroy();
    return handle ? (Object.getPrototypeOf(handle) as Record<string, unknown>) : null;
  };
  const tcp = handleProto({ host: '127.0.0.1', port: -1 });
  const pipe = handleProto({ path: 1 });
  const udpSocket = dgram.createSocket('udp4');
  const state = Object.getOwnPropertySymbols(udpSocket)
    .map((symbol) => (udpSocket as unknown as Record<symbol, { handle?: object } | undefined>)[symbol])
    .find((value) => value && typeof value === 'object' && value.handle);
  const udp = state?.handle ? (Object.getPrototypeOf(state.handle) as Record<string, unknown>) : null;
  udpSocket.close();
  if (!tcp || !pipe || !udp) {
    throw new Error('the cell network guard found no TCP, Pipe or UDP handle class; Node changed inside');
  }
  guardHandleMethod(tcp, 'connect', 1);
  guardHandleMethod(tcp, 'connect6', 1);
  guardHandleMethod(pipe, 'connect', 'path');
  guardHandleMethod(udp, 'connect', 0);
  guardHandleMethod(udp, 'connect6', 0);
  guardHandleMethod(udp, 'send', 4);
  guardHandleMethod(udp, 'send6', 4);

  // c-ares, behind `dns.Resolver` and `dns.resolve*`, opens its own UDP and TCP sockets in C, to the
  // servers a cell may set: only the system's own (`/etc/resolv.conf`, often 127.0.0.53) may be
  // refused addresses, on their own port.
  const resolver = new Resolver() as unknown as {
    _handle: { getServers(): [string, number][] | undefined } | undefined;
  };
  const channel = resolver._handle;
  if (!channel) throw new Error('the cell network guard found no c-ares channel; Node changed inside');
  const system = new Set((channel.getServers() ?? []).map(([ip, port]) => `${ip} ${port}`));
  const channelProto = Object.getPrototypeOf(channel) as Record<string, unknown>;
  const setServers = channelProto['setServers'];
  if (typeof setServers !== 'function') {
    throw new Error('the cell network guard found no c-ares setServers; Node changed inside');
  }
  fix(channelProto, 'setServers', function guarded(this: unknown, ...args: unknown[]) {
    const servers = args[0];
    if (!Array.isArray(servers)) return UV_EACCES;
    for (const server of servers) {
      const [, ip, port] = Array.isArray(server) ? server : [];
      if (typeof ip !== 'string' || (refusalOf(ip) && !system.has(`${ip} ${port}`))) return UV_EACCES;
    }
    return Reflect.apply(setServers, this, args);
  });

  const defaultLookup = dnsLookup as unknown as LookupFunction;
  fix(Socket.prototype, 'connect', function connect(this: net.Socket, ...args: unknown[]) {
    const { options, callback } = normalizeConnectArgs(args);
    const fail = (error: CellNetworkError) => {
      // As Node fails a connection: asynchronously, with 'error' on the socket.
      process.nextTick(() => this.destroy(error));
      return this;
    };
    if (options['path']) return fail(refusePath(options['path']));
    const host = typeof options['host'] === 'string' && options['host'] ? options['host'] : 'localhost';
    if (net.isIP(host)) {
      const refusal = refusalOf(host);
      if (refusal) {
        const target = targetOf(host, options['port']);
        return fail(new CellNetworkError(target, `it is ${refusal.what}; ${refusal.advice}`));
      }
    } else {
      const own =
        typeof options['lookup'] === 'function' ? (options['lookup'] as LookupFunction) : defaultLookup;
      options['host'] = host;
      options['lookup'] = guardedLookup(own, options['port']);
    }
    return callback === undefined
      ? originalConnect.call(this, options)
      : originalConnect.call(this, options, callback);
  });
}
