/**
 * The executor's channel to a run's child process: frames on one extra stdio descriptor (fd 3, a Unix
 * socketpair, so one descriptor carries both directions). A frame is a 4-byte unsigned big-endian length,
 * then that many bytes of `v8.serialize` output, so messages keep structured-clone semantics (BigInt,
 * Date, Map, typed arrays), as with Node's `serialization: 'advanced'` IPC before.
 *
 * Why not Node's IPC channel (issue 14, finding 1): cell code can write raw bytes to the channel's
 * descriptor, and Node's IPC parser buffers a frame of any announced length (up to 4 GiB) before it
 * looks at it, and throws from inside its own handle callback on bytes it cannot parse. Here the host
 * parses the bytes itself: a frame whose header announces more than the run may legitimately send is
 * refused before any of its body is buffered, and anything that is not a frame is a `FrameError`,
 * thrown to the caller that fed the bytes, never out of a Node internal.
 *
 * This module is bundled into the child runtime (sandbox.ts, `bundleChildRuntime`): it imports only
 * built-ins through `node:` and the child's own modules by name.
 */
import { deserialize, serialize } from 'node:v8';
import { MAX_ERROR_TEXT_CHARS, MAX_SQL_PARAM_BYTES, MAX_SQL_TEXT_CHARS } from './protocol-limits.ts';

/** Bytes of a frame's header: the payload's length, unsigned 32-bit big-endian. */
export const FRAME_HEADER_BYTES = 4;

/** Something on the channel that is not a frame the reader accepts; the run ends as a protocol violation. */
export class FrameError extends Error {
  override name = 'FrameError';
}

/** One message as a frame: its length, then its `v8.serialize` bytes. */
export function encodeFrame(message: unknown): Buffer {
  const payload = serialize(message);
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUInt32BE(payload.length, 0);
  return Buffer.concat([header, payload], FRAME_HEADER_BYTES + payload.length);
}

/**
 * The largest frame an honest child sends in a run with these limits, plus headroom: the bigger of
 * - a `cell_finished`: the output (at most `maxOutputBytes` as JSON; `v8.serialize` can take up to 4.5
 *   times that, for arrays of doubles JSON writes in 2 bytes, such as `-0` or `1`), its logs (at most
 *   `maxLogBytes` of UTF-8, twice that as a two-byte V8 string) and its error (message and stack);
 * - a `sql` request: its text (two bytes a character at most) and bound values (a non-string value
 *   takes at most 9 bytes serialized against 8 counted, a string at most twice its UTF-8 size).
 * The host refuses a larger header before it buffers the body; what fits is still checked in full by
 * the protocol's schemas and limits once it is read.
 */
export function maxFrameBytesFor(limits: { maxOutputBytes: number; maxLogBytes: number }): number {
  const cellFinished = 5 * limits.maxOutputBytes + 2 * limits.maxLogBytes + 4 * 2 * MAX_ERROR_TEXT_CHARS;
  const sqlRequest = 2 * MAX_SQL_TEXT_CHARS + 2 * MAX_SQL_PARAM_BYTES;
  return Math.max(cellFinished, sqlRequest) + FRAME_HEADROOM_BYTES;
}

/** Room in `maxFrameBytesFor` for the fields every message has (type, index, names, times). */
export const FRAME_HEADROOM_BYTES = 1024 * 1024;

/**
 * Cuts a byte stream into frames and deserializes them. It holds at most one unfinished frame, and
 * refuses a header above `maxFrameBytes` as soon as the header is complete, so what it buffers never
 * passes `maxFrameBytes + FRAME_HEADER_BYTES` (plus one chunk, handed to it whole). After a
 * `FrameError` the stream is unusable: every later `push` throws it again.
 */
export class FrameReader {
  /** The largest payload accepted; may be raised or lowered between chunks (a run's limits arrive late). */
  maxFrameBytes: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** Payload length of the frame being read, once its header is complete. */
  #expected = -1;
  #failed: FrameError | null = null;

  constructor(maxFrameBytes: number) {
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Bytes held of a frame not yet complete. */
  get buffered(): number {
    return this.#buffered;
  }

  /** The payload length of the frame being read, once its header arrived; null between frames. */
  get expected(): number | null {
    return this.#expected < 0 ? null : this.#expected;
  }

  /** Feeds bytes; returns the messages they complete, in order. Throws a `FrameError` on a bad frame. */
  push(chunk: Buffer): unknown[] {
    if (this.#failed) throw this.#failed;
    const messages: unknown[] = [];
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    try {
      for (;;) {
        if (this.#expected < 0) {
          if (this.#buffered < FRAME_HEADER_BYTES) break;
          const length = this.#take(FRAME_HEADER_BYTES).readUInt32BE(0);
          if (length > this.maxFrameBytes) {
            throw new FrameError(
              `a frame announcing ${length} bytes, above the ${this.maxFrameBytes} bytes the largest message of this run may take`,
            );
          }
          if (length === 0) throw new FrameError('an empty frame');
          this.#expected = length;
        }
        if (this.#buffered < this.#expected) break;
        const payload = this.#take(this.#expected);
        this.#expected = -1;
        let message: unknown;
        try {
          message = deserialize(payload);
        } catch (error) {
          throw new FrameError(
            `a frame of ${payload.length} bytes that is not a serialized value (${(error as Error)?.message ?? error})`,
          );
        }
        messages.push(message);
      }
    } catch (error) {
      this.#failed = error instanceof FrameError ? error : new FrameError(String(error));
      this.#chunks = [];
      this.#buffered = 0;
      throw this.#failed;
    }
    return messages;
  }

  /** Removes and returns the next `n` buffered bytes (n <= buffered). */
  #take(n: number): Buffer {
    const first = this.#chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let at = 0;
      while (at < n) {
        const chunk = this.#chunks[0]!;
        const used = Math.min(chunk.length, n - at);
        chunk.copy(out, at, 0, used);
        at += used;
        if (used === chunk.length) this.#chunks.shift();
        else this.#chunks[0] = chunk.subarray(used);
      }
    }
    this.#buffered -= n;
    return out;
  }
}
