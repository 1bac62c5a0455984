/**
 * What a PHOLD event carries, and the window arithmetic every node shares.
 *
 * An event's timestamp travels as the envelope's epoch. Its data carries the
 * event's id (constant for the event's whole life: PHOLD has a fixed population),
 * the window in which it was sent (the receiver counts events per sending window
 * against the sender's promise for that window) and how often it has hopped.
 *
 * Two shapes: a small object (the default), or, to exercise raw byte payloads, a
 * Uint8Array of a chosen size whose first 12 bytes hold the same three fields as
 * little-endian uint32s. Bytes of a received event may be a view into a larger
 * buffer, so they are read through their own offset, never through `.buffer`.
 */

/** Bytes at the start of a byte payload that hold id, window and hops. */
export const PAYLOAD_HEADER_BYTES = 12;

/** The object form of an event's data. */
export interface PholdPayload {
  readonly id: number;
  /** Index of the window in which the sender handled the event that scheduled this one. */
  readonly window: number;
  readonly hops: number;
}

/** Decoded fields of a payload; reused by the receiver between events. */
export interface DecodedPayload {
  id: number;
  window: number;
  hops: number;
}

function writeUint32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value & 0xff;
  bytes[at + 1] = (value >>> 8) & 0xff;
  bytes[at + 2] = (value >>> 16) & 0xff;
  bytes[at + 3] = (value >>> 24) & 0xff;
}

function readUint32(bytes: Uint8Array, at: number): number {
  return (
    (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0
  );
}

/** Size of the blocks byte payloads are cut from, in bytes. */
export const PAYLOAD_SLAB_BYTES = 256 * 1024;

/**
 * Builds the data of events: objects when `payloadBytes` is 0, else Uint8Arrays of
 * that many bytes (at least PAYLOAD_HEADER_BYTES; the options check it).
 *
 * Byte payloads are views cut from shared, zeroed slabs rather than one buffer per
 * event: a fresh backing store per event costs far more than the bytes. Each view
 * is handed out once and never written again, since in-process delivery passes it
 * by reference. A slab is freed when its last view is.
 */
export class PayloadEncoder {
  private slab = new Uint8Array(0);
  private used = 0;

  constructor(readonly payloadBytes: number) {}

  encode(id: number, window: number, hops: number): PholdPayload | Uint8Array {
    const size = this.payloadBytes;
    if (size === 0) return { id, window, hops };
    if (this.used + size > this.slab.length) {
      this.slab = new Uint8Array(Math.max(size, PAYLOAD_SLAB_BYTES));
      this.used = 0;
    }
    const bytes = this.slab.subarray(this.used, this.used + size);
    this.used += size;
    writeUint32(bytes, 0, id);
    writeUint32(bytes, 4, window);
    writeUint32(bytes, 8, hops);
    return bytes;
  }
}

/** Reads an event's data into `out`; false when it is neither shape. */
export function decodePayload(data: unknown, out: DecodedPayload): boolean {
  if (data instanceof Uint8Array) {
    if (data.length < PAYLOAD_HEADER_BYTES) return false;
    out.id = readUint32(data, 0);
    out.window = readUint32(data, 4);
    out.hops = readUint32(data, 8);
    return true;
  }
  if (typeof data !== 'object' || data === null) return false;
  const p = data as Partial<PholdPayload>;
  if (typeof p.id !== 'number' || typeof p.window !== 'number' || typeof p.hops !== 'number') {
    return false;
  }
  out.id = p.id;
  out.window = p.window;
  out.hops = p.hops;
  return true;
}

/**
 * Window arithmetic: window `k` is `[start(k), start(k + 1))` with
 * `start(k) = k * width` computed in float64. `of` corrects the division's
 * rounding against those same products, so sender and receiver always agree on
 * which window a timestamp or a promise epoch belongs to.
 */
export class WindowClock {
  /** @param width - the lookahead: a positive, finite simulated-time span. */
  constructor(readonly width: number) {}

  /** Simulated time at which window `k` starts. */
  start(k: number): number {
    return k * this.width;
  }

  /** The window that contains `ts`. */
  of(ts: number): number {
    let k = Math.floor(ts / this.width);
    if (ts < k * this.width) k--;
    else if (ts >= (k + 1) * this.width) k++;
    return k;
  }
}
