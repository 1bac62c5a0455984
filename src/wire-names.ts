/**
 * Node and simproc names in frames: the few strings every envelope repeats, so that
 * the codec (src/envelope.ts) converts each between UTF-16 and UTF-8 about once
 * instead of once per envelope (TextEncoder and TextDecoder calls were the largest
 * part of encoding and decoding small frames).
 *
 * - NameWriter: one per FrameEncoder. Keeps the UTF-8 bytes of the names it has seen
 *   (bounded) and, within one frame, writes each name once into the frame's `names`
 *   vector; envelopes carry its index there.
 * - NameReader: one per module, used by decodeFrame. Reads a frame's `names` vector
 *   into an array once per frame, remembering short names across calls by their
 *   bytes, compared in full before use, so it never needs the frame to stay unchanged
 *   after the call.
 */

import type * as flatbuffers from 'flatbuffers';

/** Distinct names whose UTF-8 bytes a NameWriter keeps before it starts again. */
const WRITER_NAMES = 1024;
/** Names remembered across calls, by a hash of their bytes (a power of two). */
const READER_CONTENT_SLOTS = 256;
/** Longer strings are decoded each time rather than remembered. */
const READER_NAME_MAX_BYTES = 64;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** A name's UTF-8 bytes, and its index in the frame numbered `frame`. */
class WrittenName {
  index = 0;
  frame = -1;
  constructor(readonly bytes: Uint8Array) {}
}

/** Writes names into one Builder's frames; see the file header. */
export class NameWriter {
  private readonly names = new Map<string, WrittenName>();
  /** String offsets of the current frame's names, by index. */
  private readonly offsets: number[] = [];
  private frame = 0;

  constructor(private readonly builder: flatbuffers.Builder) {}

  /** Call when the Builder starts a new frame: names written before are gone. */
  startFrame(): void {
    this.frame++;
    this.offsets.length = 0;
  }

  /**
   * The index of `name` in the current frame's names, its string written on first use.
   * Call it outside a table under construction (it may write a string).
   */
  index(name: string): number {
    let entry = this.names.get(name);
    if (entry === undefined) {
      if (this.names.size >= WRITER_NAMES) this.names.clear();
      entry = new WrittenName(utf8Encoder.encode(name));
      this.names.set(name, entry);
    }
    if (entry.frame !== this.frame) {
      entry.index = this.offsets.length;
      entry.frame = this.frame;
      this.offsets.push(this.builder.createString(entry.bytes));
    }
    return entry.index;
  }

  /** The current frame's names vector; call once, after its last envelope. */
  vector(): number {
    const b = this.builder;
    const offsets = this.offsets;
    b.startVector(4, offsets.length, 4);
    for (let i = offsets.length - 1; i >= 0; i--) b.addOffset(offsets[i]!);
    return b.endVector();
  }
}

/** Reads names out of verified frames; see the file header. */
export class NameReader {
  private readonly contentBytes = new Array<Uint8Array | null>(READER_CONTENT_SLOTS).fill(null);
  private readonly contentNames = new Array<string>(READER_CONTENT_SLOTS).fill('');

  /**
   * Reads the vector of strings at `vector` (the position of its length word) into
   * `out`, which it resizes.
   */
  readVector(bb: flatbuffers.ByteBuffer, vector: number, out: string[]): void {
    const count = bb.readUint32(vector);
    out.length = count;
    for (let i = 0; i < count; i++) {
      const at = bb.__indirect(vector + 4 + 4 * i);
      out[i] = this.byContent(bb.bytes(), at + 4, bb.readUint32(at));
    }
  }

  private byContent(bytes: Uint8Array, start: number, length: number): string {
    if (length === 0) return '';
    const view = bytes.subarray(start, start + length);
    if (length > READER_NAME_MAX_BYTES) return utf8Decoder.decode(view);
    const slot =
      (length * 31 + bytes[start]! * 7 + bytes[start + length - 1]!) & (READER_CONTENT_SLOTS - 1);
    const known = this.contentBytes[slot];
    if (known != null && known.length === length && sameBytes(known, bytes, start)) {
      return this.contentNames[slot]!;
    }
    const name = utf8Decoder.decode(view);
    // A copy (`new Uint8Array(view)`: a Buffer's `slice` would not copy), since the frame
    // may be a view of memory that is reused once it is released.
    this.contentBytes[slot] = new Uint8Array(view);
    this.contentNames[slot] = name;
    return name;
  }
}

/** Whether `bytes[start, start + known.length)` equals `known` (the caller checked the length). */
function sameBytes(known: Uint8Array, bytes: Uint8Array, start: number): boolean {
  for (let i = 0; i < known.length; i++) if (known[i] !== bytes[start + i]) return false;
  return true;
}
