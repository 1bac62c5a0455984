/**
 * Node and simproc names in frames: the few strings every envelope repeats, so that
 * the codec (src/envelope.ts) converts each between UTF-16 and UTF-8 about once
 * instead of once per envelope (TextEncoder and TextDecoder calls were the largest
 * part of encoding and decoding small frames).
 *
 * - NameWriter: one per FrameEncoder. Keeps the UTF-8 bytes of the names it has seen
 *   (bounded) and, within one frame, writes each name once and shares it, as the
 *   Builder's `createSharedString` would.
 * - NameReader: one per module, used by decodeFrame. Within one call it remembers
 *   the string at each position of the frame (shared strings sit at one position);
 *   across calls it remembers short names by their bytes, compared in full before
 *   use, so it never needs the frame to stay unchanged after the call.
 */

import type * as flatbuffers from 'flatbuffers';

/** Distinct names whose UTF-8 bytes a NameWriter keeps before it starts again. */
const WRITER_NAMES = 1024;
/** Positions remembered per decodeFrame call (a power of two). */
const READER_POSITION_SLOTS = 64;
/** Names remembered across calls, by a hash of their bytes (a power of two). */
const READER_CONTENT_SLOTS = 256;
/** Longer strings are decoded each time rather than remembered. */
const READER_NAME_MAX_BYTES = 64;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** A name's UTF-8 bytes, and where they were written in the frame numbered `frame`. */
class WrittenName {
  offset = 0;
  frame = -1;
  constructor(readonly bytes: Uint8Array) {}
}

/** Writes names into one Builder's frames; see the file header. */
export class NameWriter {
  private readonly names = new Map<string, WrittenName>();
  private frame = 0;

  constructor(private readonly builder: flatbuffers.Builder) {}

  /** Call when the Builder starts a new frame: names written before are gone. */
  startFrame(): void {
    this.frame++;
  }

  /** The offset of `name` in the current frame, written there on first use. */
  write(name: string): number {
    // Like createSharedString: an empty string is an absent field.
    if (name.length === 0) return 0;
    let entry = this.names.get(name);
    if (entry === undefined) {
      if (this.names.size >= WRITER_NAMES) this.names.clear();
      entry = new WrittenName(utf8Encoder.encode(name));
      this.names.set(name, entry);
    }
    if (entry.frame !== this.frame) {
      entry.offset = this.builder.createString(entry.bytes);
      entry.frame = this.frame;
    }
    return entry.offset;
  }
}

/** Reads names out of verified frames; see the file header. */
export class NameReader {
  private readonly positions = new Array<number>(READER_POSITION_SLOTS).fill(-1);
  private readonly positionCalls = new Array<number>(READER_POSITION_SLOTS).fill(-1);
  private readonly positionNames = new Array<string>(READER_POSITION_SLOTS).fill('');
  private readonly contentBytes = new Array<Uint8Array | null>(READER_CONTENT_SLOTS).fill(null);
  private readonly contentNames = new Array<string>(READER_CONTENT_SLOTS).fill('');
  private calls = 0;

  /** A number that tells this decodeFrame call's positions from any other call's. */
  startCall(): number {
    return ++this.calls;
  }

  /**
   * The string field at vtable offset `field` of the table at `table`, or '' when the
   * field is absent (the verifier has checked that required fields are present).
   * @param call - what `startCall` returned for the frame `bb` holds.
   */
  read(bb: flatbuffers.ByteBuffer, table: number, field: number, call: number): string {
    const offset = bb.__offset(table, field);
    if (offset === 0) return '';
    const at = bb.__indirect(table + offset);
    const slot = (at >>> 2) & (READER_POSITION_SLOTS - 1);
    if (this.positions[slot] === at && this.positionCalls[slot] === call) {
      return this.positionNames[slot]!;
    }
    const name = this.byContent(bb.bytes(), at + 4, bb.readUint32(at));
    this.positions[slot] = at;
    this.positionCalls[slot] = call;
    this.positionNames[slot] = name;
    return name;
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
