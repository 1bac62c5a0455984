/**
 * Batches of envelopes across the native boundary: `BatchWriter` writes the staging layout a
 * ring producer (or `NativeBatchEncoder`) turns into one FlatBuffers frame, and `BatchReader`
 * reads the decoded layout a ring consumer (or `NativeFrameDecoder`) fills. Both layouts are drawn
 * in native/batch.h; the constants below mirror it and test/native/batch.test.ts compares them
 * with the addon's `batchLayout`.
 *
 * Invariants:
 * - One boundary crossing per batch: the writer sends one staging buffer plus an array of the
 *   large payloads (>= `EXTERNAL_PAYLOAD_BYTES`), which native code copies once, straight into the
 *   ring; small payloads travel inline in the staging buffer.
 * - Strings (node, simproc, header keys and values) are interned: each crosses once per string
 *   table, as an id definition. Writer and native encoder reset their tables together (the
 *   RESET_STRINGS flag) at the start of a batch once the table passes its soft limit; so does the
 *   reader with the native decoder (the STRINGS_RESET summary flag).
 * - A reader's payload views point into shared memory and are detached when the batch is
 *   released (the next `read` releases the previous batch): use after that throws. `copyPayload`
 *   is the one call that keeps the bytes.
 * - One writer per producer end (or encoder), one reader per consumer end (or decoder): the string
 *   ids only mean something to their pair.
 *
 * Callers: the shared-memory transport and the gRPC link (batching), native tests, benchmarks.
 */
import { EMPTY_HEADERS } from './envelope.js';
import { DataFormat, Kind, Lane } from './generated/envelope_generated.js';
import {
  NativeStatus,
  type NativeBatchLayout,
  type NativeBoundOutput,
  type NativeFrameDecoder,
  type NativeRingConsumer,
} from './native.js';

export { DataFormat, Kind, Lane };

/** 'DSCB' as a little-endian u32: the first word of a staging buffer. */
export const BATCH_MAGIC = 0x42435344;
/** Version of the staging layout. */
export const BATCH_VERSION = 1;
/** Bytes of the staging header. */
export const BATCH_HEADER_BYTES = 48;
/** Fixed bytes of one staged envelope, before its reply-to, headers and inline data. */
export const BATCH_ENVELOPE_FIXED_BYTES = 56;
/** Words of a decode summary. */
export const SUMMARY_WORDS = 9;
/** Words per decoded frame. */
export const FRAME_WORDS = 9;
/** Words per decoded envelope. */
export const ENVELOPE_WORDS = 16;
/** A string id that names no string (an absent reply-to). */
export const NO_STRING = 0xffffffff;
/** A string table resets at the next batch once it holds more strings than this... */
export const STRING_SOFT_ENTRIES = 2 ** 16;
/** ...or more bytes than this. */
export const STRING_SOFT_BYTES = 16 * 2 ** 20;
/** Within one batch a table may not grow past this many strings (the batch is refused)... */
export const STRING_HARD_ENTRIES = 2 ** 22;
/** ...or bytes. */
export const STRING_HARD_BYTES = 256 * 2 ** 20;
/** Payloads of at least this many bytes are passed by reference, not copied into the staging. */
export const EXTERNAL_PAYLOAD_BYTES = 4096;

const RESET_STRINGS = 1;
const HAS_DATA = 1;
const DATA_EXTERNAL = 2;
const HAS_REPLY_TO = 4;
const SUMMARY_STRINGS_RESET = 1;
const SUMMARY_REASSEMBLED = 2;
const TWO_POW_32 = 2 ** 32;
const TWO_POW_21 = 2 ** 21;
const DEFAULT_STAGING_BYTES = 64 * 1024;

/** A node and simproc pair, as src/address.ts `NodeRef` has it. */
export interface AddressRef {
  readonly node: string;
  readonly simproc: string;
}

/** String-valued header map. */
export type HeaderMap = Readonly<Record<string, string>>;

/** Compares the TypeScript mirror with the addon's constants; returns the names that differ. */
export function batchLayoutMismatches(native: NativeBatchLayout): string[] {
  const mirror: Record<keyof NativeBatchLayout, number> = {
    magic: BATCH_MAGIC,
    version: BATCH_VERSION,
    headerBytes: BATCH_HEADER_BYTES,
    envelopeFixedBytes: BATCH_ENVELOPE_FIXED_BYTES,
    summaryWords: SUMMARY_WORDS,
    frameWords: FRAME_WORDS,
    envelopeWords: ENVELOPE_WORDS,
    noString: NO_STRING,
    stringSoftEntries: STRING_SOFT_ENTRIES,
    stringSoftBytes: STRING_SOFT_BYTES,
    stringHardEntries: STRING_HARD_ENTRIES,
    stringHardBytes: STRING_HARD_BYTES,
  };
  return (Object.keys(mirror) as (keyof NativeBatchLayout)[]).filter(
    (k) => mirror[k] !== native[k],
  );
}

/**
 * A growable byte buffer with u32 word access. The staging layout is little-endian and
 * word-aligned; typed-array stores are in host order, which is little-endian on every platform
 * the addon builds for (checked at load, below).
 */
class ByteBuffer {
  bytes: Uint8Array;
  words: Uint32Array;
  view: DataView;
  used = 0;

  constructor(initialBytes: number) {
    this.bytes = new Uint8Array(initialBytes + (-initialBytes & 7));
    this.words = new Uint32Array(this.bytes.buffer);
    this.view = new DataView(this.bytes.buffer);
  }

  /** Makes room for `n` more bytes. */
  reserve(n: number): void {
    const need = this.used + n;
    if (need <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < need) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.bytes.subarray(0, this.used));
    this.bytes = grown;
    this.words = new Uint32Array(grown.buffer);
    this.view = new DataView(grown.buffer);
  }

  u32(v: number): void {
    this.words[this.used >>> 2] = v;
    this.used += 4;
  }

  /** Zero bytes up to the next multiple of 4. */
  pad4(): void {
    while ((this.used & 3) !== 0) this.bytes[this.used++] = 0;
  }

  /** Copies `data` to `used` and pads to 4; room must be reserved. */
  copyPadded(data: Uint8Array): void {
    const bytes = this.bytes;
    bytes.set(data, this.used);
    let at = this.used + data.length;
    while ((at & 3) !== 0) bytes[at++] = 0;
    this.used = at;
  }
}

/** One float64 and its two u32 halves, to store doubles at word-aligned offsets. */
const F64 = new Float64Array(1);
const F64_WORDS = new Uint32Array(F64.buffer);

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  throw new Error('disco-transport needs a little-endian host');
}

/**
 * Stores `v` as a little-endian u64 at words[i], words[i + 1]: a number (an integer up to
 * 2^53 - 1: link sequence numbers, most seqnrs) without making a bigint, or a bigint (taken
 * modulo 2^64).
 */
function u64(words: Uint32Array, i: number, v: number | bigint): void {
  if (typeof v === 'number') {
    words[i] = v % TWO_POW_32;
    words[i + 1] = Math.floor(v / TWO_POW_32);
    return;
  }
  const wide = BigInt.asUintN(64, v);
  words[i] = Number(wide & 0xffffffffn);
  words[i + 1] = Number(wide >> 32n);
}

/** The string an address slot of the previous envelope named, and its id. */
class LastId {
  key: string | null = null;
  id = 0;
}

/**
 * Writes batches of envelopes in the staging layout (native/batch.h), one batch at a time. Reuses
 * its buffers: after warm-up, adding an envelope allocates nothing (new strings aside).
 *
 * Use: `begin()`, `addEvent` / `addPromise` ..., `finish()` -> `producer.writeBatch(staging,
 * writer.payloads)`. After `RING_FULL` the same batch (more envelopes may be added and `finish()`
 * called again) can be retried; after any other failure call `resetStrings()`.
 *
 * The string ids are a conversation with ONE native encoder (one lane of a producer end, which
 * keeps a string table per lane, or a `NativeBatchEncoder`): use one writer per encoder, and hand
 * every finished batch to it before the next `begin()` (a refused write counts: the encoder took
 * its strings first). A batch dropped without being handed over, or a new encoder, needs
 * `resetStrings()`.
 */
export class BatchWriter {
  private readonly out: ByteBuffer;
  private readonly definitions = new ByteBuffer(4096);
  private readonly ids = new Map<string, number>();
  // One per address slot (sender node and simproc, target node and simproc): consecutive
  // envelopes of a batch mostly repeat them, and a comparison is cheaper than a Map lookup.
  // Valid while `ids` is not reset.
  private readonly lastSenderNode = new LastId();
  private readonly lastSenderSimproc = new LastId();
  private readonly lastTargetNode = new LastId();
  private readonly lastTargetSimproc = new LastId();
  private readonly encoder = new TextEncoder();
  private readonly externalBytes: number;
  private readonly external: Uint8Array[] = [];
  private stringBytes = 0;
  private definitionCount = 0;
  private envelopeCount = 0;
  private resetNext = true;
  private resetThis = false;
  private lane: Lane = Lane.Event;
  private linkSeq: number | bigint = 0;
  private ack: number | bigint = 0;

  /**
   * @param initialBytes - starting size of the staging buffer (it grows as needed).
   * @param externalPayloadBytes - payloads at least this long are passed by reference.
   */
  constructor(initialBytes = DEFAULT_STAGING_BYTES, externalPayloadBytes = EXTERNAL_PAYLOAD_BYTES) {
    this.out = new ByteBuffer(Math.max(initialBytes, BATCH_HEADER_BYTES));
    this.externalBytes = externalPayloadBytes;
    this.begin(Lane.Event);
  }

  /** Envelopes added since `begin`. */
  get count(): number {
    return this.envelopeCount;
  }

  /** Bytes this batch carries so far: staging plus external payloads. */
  get byteLength(): number {
    let n = this.out.used + this.definitions.used;
    for (const p of this.external) n += p.length;
    return n;
  }

  /** The large payloads of this batch, by reference, in the order `finish()`'s layout names them. */
  get payloads(): readonly Uint8Array[] {
    return this.external;
  }

  /**
   * Starts a new batch for `lane`, dropping the previous one. Resets the string table (both sides)
   * when it has passed its soft limit or `resetStrings()` asked for it. `linkSeq` and `ack`:
   * integers from 0 to 2^53 - 1, or bigints below 2^64.
   */
  begin(lane: Lane, linkSeq: number | bigint = 0, ack: number | bigint = 0): void {
    if (this.ids.size > STRING_SOFT_ENTRIES || this.stringBytes > STRING_SOFT_BYTES) {
      this.resetNext = true;
    }
    if (this.resetNext) {
      this.ids.clear();
      this.lastSenderNode.key = null;
      this.lastSenderSimproc.key = null;
      this.lastTargetNode.key = null;
      this.lastTargetSimproc.key = null;
      this.stringBytes = 0;
      this.resetNext = false;
      this.resetThis = true;
    } else {
      this.resetThis = false;
    }
    this.out.used = BATCH_HEADER_BYTES;
    this.definitions.used = 0;
    this.definitionCount = 0;
    this.envelopeCount = 0;
    this.external.length = 0;
    this.lane = lane;
    this.linkSeq = linkSeq;
    this.ack = ack;
  }

  /**
   * Sets the link_seq and ack `finish()` writes, for a batch staged before they were known (a
   * link numbers a frame when it writes it). Same ranges as `begin`.
   */
  setLink(linkSeq: number | bigint, ack: number | bigint): void {
    this.linkSeq = linkSeq;
    this.ack = ack;
  }

  /** Makes the next `begin()` reset the string tables (after a failed write, or a new peer). */
  resetStrings(): void {
    this.resetNext = true;
  }

  /**
   * Adds an event. `data` is copied into the staging buffer when small, else referenced until the
   * batch is written (do not change it before that). An add that throws leaves the batch as it
   * was (strings it defined stay defined, unused, which is harmless); so does `addPromise`.
   *
   * @throws RangeError when the batch would define more strings than the hard limits allow.
   */
  addEvent(
    repid: number,
    senderNode: string,
    senderSimproc: string,
    targetNode: string,
    targetSimproc: string,
    epoch: number,
    headers: HeaderMap | null,
    data: Uint8Array,
    dataFormat: DataFormat,
    hops: number,
    replyTo: AddressRef | null,
  ): void {
    const at = this.fixed(Kind.Event, repid, senderNode, senderSimproc, targetNode, targetSimproc);
    const out = this.out;
    const w = out.words;
    const i = at >>> 2;
    let flags = HAS_DATA;
    F64[0] = epoch;
    w[i + 2] = 0; // num_events
    w[i + 8] = F64_WORDS[0]!;
    w[i + 9] = F64_WORDS[1]!;
    w[i + 10] = 0; // seqnr
    w[i + 11] = 0;
    w[i + 12] = data.length;
    w[i + 13] = 0;
    // The shared empty map (most events) skips the for-in, which costs even over no keys.
    const hasHeaders = headers !== null && headers !== EMPTY_HEADERS;
    let headerCount = 0;
    if (replyTo !== null || hasHeaders) {
      try {
        if (replyTo !== null) {
          flags |= HAS_REPLY_TO;
          const node = this.id(replyTo.node);
          const simproc = this.id(replyTo.simproc);
          out.reserve(8);
          out.u32(node);
          out.u32(simproc);
        }
        if (hasHeaders) headerCount = this.headers(headers);
      } catch (err) {
        out.used = at; // what this envelope wrote goes, so the batch stays whole
        throw err;
      }
    }
    // Reads `out.words` afresh: adding headers or reply-to may have grown the buffer.
    out.words[i + 7] = headerCount;
    if (data.length >= this.externalBytes) {
      flags |= DATA_EXTERNAL;
      out.words[i + 13] = this.external.length;
      this.external.push(data);
    } else {
      out.reserve(data.length + 3);
      out.copyPadded(data);
    }
    // kind (set by fixed), data_format, hops, flags: one little-endian word.
    out.words[i] = Kind.Event | ((dataFormat & 0xff) << 8) | ((hops & 0xff) << 16) | (flags << 24);
    this.envelopeCount++;
  }

  /**
   * Adds a promise. `seqnr` is a number up to 2^53 - 1 or a bigint below 2^64; `numEvents` a u32
   * (2^32 - 1 is a pre-promise).
   *
   * @throws RangeError when the batch would define more strings than the hard limits allow.
   */
  addPromise(
    repid: number,
    senderNode: string,
    senderSimproc: string,
    targetNode: string,
    targetSimproc: string,
    epoch: number,
    seqnr: number | bigint,
    numEvents: number,
    hops: number,
  ): void {
    const at = this.fixed(
      Kind.Promise,
      repid,
      senderNode,
      senderSimproc,
      targetNode,
      targetSimproc,
    );
    const w = this.out.words;
    const i = at >>> 2;
    w[i] = Kind.Promise | (DataFormat.Raw << 8) | ((hops & 0xff) << 16); // flags 0
    w[i + 2] = numEvents;
    w[i + 7] = 0; // header_count
    F64[0] = epoch;
    w[i + 8] = F64_WORDS[0]!;
    w[i + 9] = F64_WORDS[1]!;
    u64(w, i + 10, seqnr);
    w[i + 12] = 0;
    w[i + 13] = 0;
    this.envelopeCount++;
  }

  /**
   * The staging buffer of the batch so far: a view valid until the next `begin()` or add (it may
   * move when the buffer grows). Can be called again after adding more envelopes.
   */
  finish(): Uint8Array {
    const out = this.out;
    const stringsAt = out.used;
    if (this.definitions.used > 0) {
      out.reserve(this.definitions.used);
      out.bytes.set(this.definitions.bytes.subarray(0, this.definitions.used), stringsAt);
    }
    const used = stringsAt + this.definitions.used;
    const v = out.view;
    v.setUint32(0, BATCH_MAGIC, true);
    v.setUint16(4, BATCH_VERSION, true);
    v.setUint16(6, this.resetThis ? RESET_STRINGS : 0, true);
    v.setUint32(8, used, true);
    v.setUint32(12, this.envelopeCount, true);
    v.setUint32(16, stringsAt, true);
    v.setUint32(20, this.definitionCount, true);
    v.setUint32(24, this.lane, true);
    v.setUint32(28, 0, true);
    u64(out.words, 8, this.linkSeq);
    u64(out.words, 10, this.ack);
    return out.bytes.subarray(0, used);
  }

  /** Writes the fixed part common to every envelope; returns its offset. */
  private fixed(
    kind: Kind,
    repid: number,
    senderNode: string,
    senderSimproc: string,
    targetNode: string,
    targetSimproc: string,
  ): number {
    // Ids first: defining a string never touches `out`, so `at` stays valid.
    const a = this.slotId(this.lastSenderNode, senderNode);
    const b = this.slotId(this.lastSenderSimproc, senderSimproc);
    const c = this.slotId(this.lastTargetNode, targetNode);
    const d = this.slotId(this.lastTargetSimproc, targetSimproc);
    const out = this.out;
    out.reserve(BATCH_ENVELOPE_FIXED_BYTES);
    const at = out.used;
    const w = out.words;
    const i = at >>> 2;
    w[i] = kind;
    w[i + 1] = repid;
    w[i + 3] = a;
    w[i + 4] = b;
    w[i + 5] = c;
    w[i + 6] = d;
    out.used = at + BATCH_ENVELOPE_FIXED_BYTES;
    return at;
  }

  /** Appends the header pairs; returns how many. */
  private headers(headers: HeaderMap): number {
    let n = 0;
    for (const key in headers) {
      const k = this.id(key);
      const value = this.id(headers[key]!);
      this.out.reserve(8);
      this.out.u32(k);
      this.out.u32(value);
      n++;
    }
    return n;
  }

  /** The id of `s` through the cache of one address slot. */
  private slotId(last: LastId, s: string): number {
    if (last.key === s) return last.id;
    const id = this.id(s);
    last.key = s;
    last.id = id;
    return id;
  }

  /** The id of `s`, defining it in this batch when new. */
  private id(s: string): number {
    const known = this.ids.get(s);
    if (known !== undefined) return known;
    const id = this.ids.size;
    if (id >= STRING_HARD_ENTRIES || this.stringBytes > STRING_HARD_BYTES) {
      throw new RangeError(
        `batch defines more than ${STRING_HARD_ENTRIES} strings or ${STRING_HARD_BYTES} bytes of ` +
          'them; send smaller batches',
      );
    }
    const d = this.definitions;
    d.reserve(8 + 3 * s.length + 3);
    const lengthAt = d.used + 4;
    d.view.setUint32(d.used, id, true);
    const { written } = this.encoder.encodeInto(s, d.bytes.subarray(d.used + 8));
    d.view.setUint32(lengthAt, written, true);
    d.used += 8 + written;
    d.pad4();
    this.ids.set(s, id);
    this.stringBytes += written;
    this.definitionCount++;
    return id;
  }
}

/** Capacities of a `BatchReader`'s output arrays (they grow when a frame needs more). */
export interface BatchReaderCapacity {
  readonly envelopes?: number;
  readonly headers?: number;
  readonly strings?: number;
  readonly frames?: number;
}

/**
 * Reads decoded batches: typed arrays the native side fills, the consumer's string table, and
 * accessors by envelope index (0 .. `envelopeCount - 1`). Accessors read the current batch only.
 */
export class BatchReader {
  summary: Uint32Array = new Uint32Array(SUMMARY_WORDS);
  frames: Uint32Array;
  envelopes: Uint32Array;
  epochs: Float64Array;
  headerIds: Uint32Array;
  strings: Uint32Array;
  /** The current batch's bytes (shared memory for a ring), or null. */
  view: Uint8Array | null = null;
  // The buffer under `view` and where `view` starts in it (valid while `view` is not null).
  private viewBuffer: ArrayBufferLike = new ArrayBuffer(0);
  private viewBase = 0;
  private readonly table: string[] = [];
  private readonly decoder = new TextDecoder();
  /** The ring end whose `bindOutput` arrays these are, or null for arrays of our own. */
  private boundTo: NativeBoundOutput | null = null;

  constructor(capacity: BatchReaderCapacity = {}) {
    const envelopes = capacity.envelopes ?? 4096;
    this.frames = new Uint32Array(FRAME_WORDS * (capacity.frames ?? 256));
    this.envelopes = new Uint32Array(ENVELOPE_WORDS * envelopes);
    this.epochs = new Float64Array(envelopes);
    this.headerIds = new Uint32Array(2 * (capacity.headers ?? 4096));
    this.strings = new Uint32Array(2 * (capacity.strings ?? 4096));
  }

  /** Frames in the current batch. */
  get frameCount(): number {
    return this.view === null ? 0 : this.summary[0]!;
  }

  /** Envelopes in the current batch. */
  get envelopeCount(): number {
    return this.view === null ? 0 : this.summary[1]!;
  }

  /** True when the current batch is a heap copy of a message that was chunked. */
  get reassembled(): boolean {
    return (this.summary[5]! & SUMMARY_REASSEMBLED) !== 0;
  }

  /** Strings the reader's table holds now. */
  get stringCount(): number {
    return this.table.length;
  }

  /**
   * Reads the next batch of `consumer` (releasing the previous one). Returns `NativeStatus.OK`
   * with the batch in place, or the status (`RING_EMPTY`, `PEER_CLOSED`, a corruption status...).
   * Grows the arrays and retries when one frame needs more room than they have.
   *
   * @throws TypeError when the consumer refuses the arrays (a bug).
   */
  read(consumer: NativeRingConsumer, maxBytes = 16 * 2 ** 20): number {
    if (this.boundTo !== consumer) this.bind(consumer);
    for (;;) {
      this.view = null;
      const r = consumer.readBatch(maxBytes);
      if (typeof r !== 'number') {
        this.accept(r);
        return NativeStatus.OK;
      }
      if (r !== NativeStatus.OUTPUT_TOO_SMALL || !this.grow()) return r;
      this.bind(consumer);
    }
  }

  /** Swaps the arrays for ones `end` decodes into, of the same capacities. */
  private bind(end: NativeBoundOutput): void {
    const o = end.bindOutput(
      this.epochs.length,
      this.headerIds.length / 2,
      this.strings.length / 2,
      this.frames.length / FRAME_WORDS,
    );
    this.summary = o.summary;
    this.frames = o.frames;
    this.envelopes = o.envelopes;
    this.epochs = o.epochs;
    this.headerIds = o.headers;
    this.strings = o.strings;
    this.boundTo = end;
  }

  /**
   * Verifies and decodes one frame held in JS memory (8-byte aligned), e.g. from gRPC. Returns the
   * status; on OK the accessors read it and payloads are views into `frame`.
   */
  decode(decoder: NativeFrameDecoder, frame: Uint8Array): number {
    if (this.boundTo !== decoder) this.bind(decoder);
    for (;;) {
      this.view = null;
      const s = decoder.decode(frame);
      if (s === NativeStatus.OK) {
        this.accept(frame);
        return s;
      }
      if (s !== NativeStatus.OUTPUT_TOO_SMALL || !this.grow()) return s;
      this.bind(decoder);
    }
  }

  /** Releases the current ring batch (its views detach); the next `read` would do it too. */
  release(consumer: NativeRingConsumer): void {
    this.view = null;
    consumer.release();
  }

  kind(i: number): Kind {
    return this.envelopes[i * ENVELOPE_WORDS]! & 0xff;
  }

  dataFormat(i: number): DataFormat {
    return (this.envelopes[i * ENVELOPE_WORDS]! >>> 8) & 0xff;
  }

  hops(i: number): number {
    return (this.envelopes[i * ENVELOPE_WORDS]! >>> 16) & 0xff;
  }

  repid(i: number): number {
    return this.envelopes[i * ENVELOPE_WORDS + 1]!;
  }

  /** A number up to 2^53 - 1, a bigint above (as src/envelope.ts `seqnrFromWire`). */
  seqnr(i: number): number | bigint {
    const lo = this.envelopes[i * ENVELOPE_WORDS + 2]!;
    const hi = this.envelopes[i * ENVELOPE_WORDS + 3]!;
    if (hi < TWO_POW_21) return hi * TWO_POW_32 + lo;
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  numEvents(i: number): number {
    return this.envelopes[i * ENVELOPE_WORDS + 4]!;
  }

  epoch(i: number): number {
    return this.epochs[i]!;
  }

  senderNode(i: number): string {
    return this.table[this.envelopes[i * ENVELOPE_WORDS + 5]!]!;
  }

  senderSimproc(i: number): string {
    return this.table[this.envelopes[i * ENVELOPE_WORDS + 6]!]!;
  }

  targetNode(i: number): string {
    return this.table[this.envelopes[i * ENVELOPE_WORDS + 7]!]!;
  }

  targetSimproc(i: number): string {
    return this.table[this.envelopes[i * ENVELOPE_WORDS + 8]!]!;
  }

  /** True when the envelope carries a data vector (events do). */
  hasData(i: number): boolean {
    return ((this.envelopes[i * ENVELOPE_WORDS]! >>> 24) & HAS_DATA) !== 0;
  }

  /** The payload as a view over the batch (zero copies; detached on release). */
  payload(i: number): Uint8Array {
    if (this.view === null) throw new TypeError('no batch: it was released, or none was read');
    const base = i * ENVELOPE_WORDS;
    // The constructor, not `view.subarray`: subarray looks up a species constructor first,
    // about 30 ns more per payload.
    return new Uint8Array(
      this.viewBuffer,
      this.viewBase + this.envelopes[base + 9]!,
      this.envelopes[base + 10]!,
    );
  }

  /** The payload copied into fresh memory: the one call for data kept past the batch. */
  copyPayload(i: number): Uint8Array {
    return this.payload(i).slice();
  }

  headerCount(i: number): number {
    return this.envelopes[i * ENVELOPE_WORDS + 12]!;
  }

  /** The headers as a fresh object with a null prototype (a shared frozen empty one when none). */
  headers(i: number): HeaderMap {
    const base = i * ENVELOPE_WORDS;
    const n = this.envelopes[base + 12]!;
    if (n === 0) return EMPTY_HEADERS;
    const first = this.envelopes[base + 11]!;
    const out = Object.create(null) as Record<string, string>;
    for (let h = 0; h < n; h++) {
      const pair = 2 * (first + h);
      out[this.table[this.headerIds[pair]!]!] = this.table[this.headerIds[pair + 1]!]!;
    }
    return out;
  }

  /** The reply-to address, or null. */
  replyTo(i: number): AddressRef | null {
    const base = i * ENVELOPE_WORDS;
    const node = this.envelopes[base + 13]!;
    if (node === NO_STRING) return null;
    return { node: this.table[node]!, simproc: this.table[this.envelopes[base + 14]!]! };
  }

  /** Index of the frame envelope `i` came in. */
  frameOf(i: number): number {
    return this.envelopes[i * ENVELOPE_WORDS + 15]!;
  }

  frameLane(f: number): Lane {
    return this.frames[f * FRAME_WORDS + 2]!;
  }

  frameFirstEnvelope(f: number): number {
    return this.frames[f * FRAME_WORDS]!;
  }

  frameEnvelopeCount(f: number): number {
    return this.frames[f * FRAME_WORDS + 1]!;
  }

  frameLinkSeq(f: number): bigint {
    const base = f * FRAME_WORDS;
    return (BigInt(this.frames[base + 6]!) << 32n) | BigInt(this.frames[base + 5]!);
  }

  frameAck(f: number): bigint {
    const base = f * FRAME_WORDS;
    return (BigInt(this.frames[base + 8]!) << 32n) | BigInt(this.frames[base + 7]!);
  }

  /** The sealed frame `f` as a view over the batch. */
  frameBytes(f: number): Uint8Array {
    const base = f * FRAME_WORDS;
    const offset = this.frames[base + 3]!;
    return this.view!.subarray(offset, offset + this.frames[base + 4]!);
  }

  /** Takes a decoded batch: its view and its new strings. */
  private accept(view: Uint8Array): void {
    const s = this.summary;
    if ((s[5]! & SUMMARY_STRINGS_RESET) !== 0) this.table.length = 0;
    if (s[4] !== this.table.length) {
      // The native table and ours disagree: a bug on one side, never peer input.
      throw new Error(`string table out of step: native ${s[4]}, reader ${this.table.length}`);
    }
    const n = s[3]!;
    for (let k = 0; k < n; k++) {
      const offset = this.strings[2 * k]!;
      this.table.push(
        this.decoder.decode(view.subarray(offset, offset + this.strings[2 * k + 1]!)),
      );
    }
    this.view = view;
    this.viewBuffer = view.buffer;
    this.viewBase = view.byteOffset;
  }

  /**
   * Grows the arrays to what the summary says one frame needs. False when they are big enough
   * already: the frame failed for another reason (a string table at its hard limit), and
   * retrying would loop.
   */
  private grow(): boolean {
    const s = this.summary;
    const envelopes = Math.max(s[6]!, this.epochs.length);
    const headers = Math.max(s[7]!, this.headerIds.length / 2);
    const strings = Math.max(s[8]!, this.strings.length / 2);
    if (
      envelopes === this.epochs.length &&
      headers === this.headerIds.length / 2 &&
      strings === this.strings.length / 2
    ) {
      return false;
    }
    this.envelopes = new Uint32Array(ENVELOPE_WORDS * envelopes);
    this.epochs = new Float64Array(envelopes);
    this.headerIds = new Uint32Array(2 * headers);
    this.strings = new Uint32Array(2 * strings);
    this.boundTo = null;
    return true;
  }
}
