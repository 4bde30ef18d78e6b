/**
 * The peer for the cached-open benchmark: a plain static-file server that reads one precompressed file
 * from disk per request (as a static server does, with the OS page cache) and sends it with the same
 * headers Almanac sends, ETag included.
 *
 * Usage: node bench/support/static-server.ts <file.gz> <etag>
 */
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const [file, etag] = process.argv.slice(2) as [string, string];
const server = createServer(async (req, res) => {
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, { ETag: etag });
    res.end();
    return;
  }
  const body = await readFile(file);
  res.writeHead(200, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Encoding': 'gzip',
    'Cache-Control': 'private, no-cache',
    Vary: 'Accept-Encoding',
    ETag: etag,
    'Content-Length': body.length,
  });
  res.end(body);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
