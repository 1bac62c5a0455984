/**
 * Node and simproc names in frames: the few strings every envelope repeats, so that
 * the codec (src/envelope.ts) converts each from UTF-16 to UTF-8 about once instead
 * of once per envelope (TextEncoder calls were the largest part of encoding small
 * frames).
 *
 * NameWriter: one per FrameEncoder. Keeps the UTF-8 bytes of the names it has seen
 * (bounded) and, within one frame, writes each name once and shares it, as the
 * Builder's `createSharedString` would.
 */

import type * as flatbuffers from 'flatbuffers';

/** Distinct names whose UTF-8 bytes a NameWriter keeps before it starts again. */
const WRITER_NAMES = 1024;

const utf8Encoder = new TextEncoder();

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
