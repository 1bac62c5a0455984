/**
 * ResendBuffer: the sealed frames a reliable link has sent and the peer has not
 * acknowledged yet, in link_seq order, with a write cursor for the current call.
 *
 * ```
 *   acked ... │ head ─────────── cursor ─────────── end │
 *             │ written on this call │ not yet written │
 * ```
 * - `push` appends a frame (link_seq strictly increasing); `trim(ack)` drops every frame
 *   with link_seq ≤ ack (acks are cumulative) and returns how many messages they held.
 * - `rewind()` moves the cursor back to the oldest unacknowledged frame: a new call
 *   writes everything again, in order. `next()` hands out the frame at the cursor and
 *   says whether it had been written before (a resend).
 * - A trimmed frame is handed to `release` (its memory may then be reused); frames dropped by
 *   `clear` are not.
 * Owned by one GrpcLink; not shared.
 */

interface SentFrame {
  readonly seq: number;
  readonly frame: Buffer;
  readonly count: number;
  written: boolean;
}

/** Unacknowledged frames of one link; see the file header. */
export class ResendBuffer {
  private frames: (SentFrame | undefined)[] = [];
  private head = 0;
  private cursor = 0;
  /** Bytes of the frames held. */
  bytes = 0;
  /** Messages in the frames held. */
  messages = 0;

  /** @param release - gets each frame acknowledged (trimmed), once. */
  constructor(private readonly release: (frame: Buffer) => void = () => {}) {}

  /** Frames held. */
  get length(): number {
    return this.frames.length - this.head;
  }

  /** True when every frame held has been written on the current call. */
  get caughtUp(): boolean {
    return this.cursor === this.frames.length;
  }

  push(seq: number, frame: Buffer, count: number): void {
    this.frames.push({ seq, frame, count, written: false });
    this.bytes += frame.length;
    this.messages += count;
  }

  /** The next frame to write on this call and whether it is a resend, or null when caught up. */
  next(): { frame: Buffer; resend: boolean } | null {
    if (this.cursor === this.frames.length) return null;
    const f = this.frames[this.cursor++]!;
    const resend = f.written;
    f.written = true;
    return { frame: f.frame, resend };
  }

  /** Everything held is to be written again (a new call). */
  rewind(): void {
    this.cursor = this.head;
  }

  /** Drops the frames with link_seq ≤ `ack`; returns how many messages they held. */
  trim(ack: number): number {
    const frames = this.frames;
    let dropped = 0;
    while (this.head < frames.length && frames[this.head]!.seq <= ack) {
      const f = frames[this.head]!;
      this.bytes -= f.frame.length;
      dropped += f.count;
      frames[this.head] = undefined; // release the bytes now
      this.head++;
      this.release(f.frame);
    }
    this.messages -= dropped;
    if (this.cursor < this.head) this.cursor = this.head;
    if (this.head === frames.length || (this.head > 1024 && this.head * 2 > frames.length)) {
      this.frames = frames.slice(this.head);
      this.cursor -= this.head;
      this.head = 0;
    }
    return dropped;
  }

  /** Drops everything (the link failed); the counts stay for the error report. */
  clear(): void {
    this.frames = [];
    this.head = this.cursor = 0;
    this.bytes = 0;
  }
}
