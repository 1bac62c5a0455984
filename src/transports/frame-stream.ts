/**
 * Cuts a byte stream (Unix socket, TCP) into sealed frames (native/frame.h).
 *
 * The 16-byte frame header carries the magic and the body length, so the reader
 * knows where each frame ends before it has the whole frame. It checks the magic
 * and the announced length (never more than FRAME_MAX_BODY_BYTES, or the smaller
 * limit the caller gives) as soon as the header is in, so a peer cannot make it
 * buffer without bound. Frames are returned
 * 8-byte aligned, as the native verifier requires: a frame that sits at an aligned
 * offset of one received chunk is returned as a view, any other is copied once.
 *
 * The reader does not verify frames: the caller verifies each (`FrameReader.read`,
 * `assertFrame`). The peer is untrusted; the first bad header makes `push` throw
 * FrameCorruptError and the caller closes the connection.
 *
 * Message streams (gRPC): with `messageLeadBytes`, every chunk pushed while no frame is
 * under way (a message that starts a frame) begins with that many zero bytes, which the
 * reader checks and skips; chunks that continue a frame have none. grpc-js hands each
 * message over 5 bytes into its buffer (behind its own message prefix), so a lead of 3
 * puts the frame 8-byte aligned and it is returned as a view, not copied.
 */

import { FrameCorruptError } from '../errors.js';
import { FRAME_ALIGNMENT_BYTES, FRAME_HEADER_BYTES, FRAME_MAX_BODY_BYTES } from '../native.js';

/** 'D' 'S' 'C' 'O' as a little-endian u32: the first four bytes of every frame. */
export const FRAME_MAGIC = 0x4f435344;

/** Accumulates chunks of a stream and yields whole frames. */
export class FrameStreamReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  /** Total length of the frame at the front, once its header has been read. */
  private pending = -1;

  /**
   * @param peer - named in errors.
   * @param maxBodyBytes - largest body a frame may announce; at most FRAME_MAX_BODY_BYTES.
   * @param messageLeadBytes - zero bytes that open every chunk that starts a frame (see above).
   */
  constructor(
    private readonly peer: string,
    private readonly maxBodyBytes = FRAME_MAX_BODY_BYTES,
    private readonly messageLeadBytes = 0,
  ) {}

  /** Bytes received and not yet returned as frames. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /**
   * Adds a chunk and calls `onFrame` for every frame it completes, in order.
   * @throws {FrameCorruptError} when a frame header has a bad magic or length.
   */
  push(chunk: Uint8Array, onFrame: (frame: Uint8Array) => void): void {
    if (this.messageLeadBytes > 0 && this.buffered === 0) chunk = this.skipLead(chunk);
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.pending < 0) {
        if (this.buffered < FRAME_HEADER_BYTES) return;
        this.pending = this.readHeader();
      }
      if (this.buffered < this.pending) return;
      onFrame(this.take(this.pending));
      this.pending = -1;
    }
  }

  /** The chunk after its lead, which must be there and be zeros. */
  private skipLead(chunk: Uint8Array): Uint8Array {
    const n = this.messageLeadBytes;
    let bad = chunk.length < n;
    for (let i = 0; i < n && !bad; i++) bad = chunk[i] !== 0;
    if (bad) {
      throw new FrameCorruptError(
        this.peer,
        `a message that starts a frame must open with ${n} zero bytes`,
      );
    }
    return chunk.subarray(n);
  }

  private readHeader(): number {
    const head = this.peek(FRAME_HEADER_BYTES);
    const view = new DataView(head.buffer, head.byteOffset, FRAME_HEADER_BYTES);
    const magic = view.getUint32(0, true);
    if (magic !== FRAME_MAGIC) {
      throw new FrameCorruptError(
        this.peer,
        `bad frame magic 0x${magic.toString(16).padStart(8, '0')}`,
      );
    }
    const body = view.getUint32(4, true);
    const limit = Math.min(this.maxBodyBytes, FRAME_MAX_BODY_BYTES);
    if (body > limit) {
      throw new FrameCorruptError(
        this.peer,
        `frame header announces ${body} body bytes, over the limit of ${limit}`,
      );
    }
    return FRAME_HEADER_BYTES + body;
  }

  /** The first `n` bytes without consuming them (copied only when they span chunks). */
  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    return concat(this.chunks, n);
  }

  /** Removes and returns the first `n` bytes, 8-byte aligned. */
  private take(n: number): Uint8Array {
    const first = this.chunks[0]!;
    let out: Uint8Array;
    if (first.length >= n) {
      out = first.subarray(0, n);
      // A copy: `slice` of a Buffer (what sockets and grpc-js hand out) is another view.
      if (out.byteOffset % FRAME_ALIGNMENT_BYTES !== 0) out = new Uint8Array(out);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = concat(this.chunks, n);
      let left = n;
      while (left > 0) {
        const c = this.chunks[0]!;
        if (c.length <= left) {
          left -= c.length;
          this.chunks.shift();
        } else {
          this.chunks[0] = c.subarray(left);
          left = 0;
        }
      }
    }
    this.buffered -= n;
    return out;
  }
}

/** Copies the first `n` bytes of `chunks` into a fresh (aligned) buffer. */
function concat(chunks: readonly Uint8Array[], n: number): Uint8Array {
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    const k = Math.min(c.length, n - at);
    out.set(c.subarray(0, k), at);
    at += k;
    if (at === n) break;
  }
  return out;
}
