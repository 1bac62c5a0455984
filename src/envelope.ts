/**
 * Envelopes: what the NodeController hands to a transport and what an inbox receives.
 *
 * In-process delivery passes these objects by reference, never serialized; an
 * envelope that leaves the process is written into a FlatBuffers `Frame`
 * (schemas/envelope.fbs) by the codec at the bottom of this file. The envelope
 * classes are monomorphic (every field set in the constructor, in one order) since
 * one is allocated per send on the hot path.
 *
 * Invariants:
 * - `seqnr` is a number when it is at most `Number.MAX_SAFE_INTEGER`, otherwise a
 *   bigint below 2^64. Both sides normalise the same way, so a receiver sees the same
 *   type whatever link the promise took. `<`/`>` compare numbers with bigints correctly.
 * - An `EventEnvelope` has either `data` (in-process) or `payload` bytes (from the
 *   wire); the NodeController turns `payload` back into `data` before an inbox sees it.
 * - The codec decodes only frames that passed the native verifier (src/native.ts).
 */

import * as flatbuffers from 'flatbuffers';
import type { NodeRef } from './address.js';
import {
  Address as WireAddress,
  DataFormat,
  Envelope as WireEnvelope,
  EnvelopeExtra as WireEnvelopeExtra,
  EnvelopeHead as WireEnvelopeHead,
  PackedHead as WirePackedHead,
  Frame as WireFrame,
  Header as WireHeader,
  Kind,
  Lane,
} from './generated/envelope_generated.js';
import { FrameCorruptError } from './errors.js';
import { FRAME_HEADER_BYTES } from './native.js';
import { NameReader, NameWriter } from './wire-names.js';

export { DataFormat, Kind as EnvelopeKind, Lane, FRAME_HEADER_BYTES };

/** A promise sequence number: a number up to 2^53 - 1, a bigint above (below 2^64). */
export type Seqnr = number | bigint;

/** Header map carried by an event. Values are strings. */
export type Headers = Readonly<Record<string, string>>;

/** The shared empty header map (frozen): events sent without headers carry this one. */
export const EMPTY_HEADERS: Headers = Object.freeze(Object.create(null) as Record<string, string>);

/** An event as an inbox receives it. */
export interface ReceivedEvent {
  readonly repid: number;
  /** The node and simproc that sent it (the sender's `activeSimproc`). */
  readonly sender: NodeRef;
  /** The target simproc on the receiving node. */
  readonly simproc: string;
  readonly epoch: number;
  readonly headers: Headers;
  /** The data as sent: the same object in-process, a faithful copy across processes. */
  readonly data: unknown;
  /** Where answers go when the sender named an address (`sendEvent` option `replyTo`). */
  readonly replyTo?: NodeRef | null;
}

/** A promise as an inbox receives it. */
export interface ReceivedPromise {
  readonly repid: number;
  readonly sender: NodeRef;
  readonly simproc: string;
  readonly seqnr: Seqnr;
  readonly epoch: number;
  /** Promised number of events; 2^32 - 1 marks a pre-promise. */
  readonly numEvents: number;
}

/** An event on its way; also the object an in-process inbox receives. */
export class EventEnvelope implements ReceivedEvent {
  constructor(
    readonly repid: number,
    readonly sender: NodeRef,
    readonly targetNode: string,
    readonly simproc: string,
    readonly epoch: number,
    readonly headers: Headers,
    /** The user's data; `undefined` until decoded when the envelope came off the wire. */
    public data: unknown,
    /** Serialized data while the envelope crosses a process boundary, else null. */
    public payload: Uint8Array | null,
    public dataFormat: DataFormat,
    /** Gateways crossed so far. */
    public hops: number,
    readonly replyTo: NodeRef | null,
  ) {}
}

/** A promise on its way; also the object an in-process inbox receives. */
export class PromiseEnvelope implements ReceivedPromise {
  constructor(
    readonly repid: number,
    readonly sender: NodeRef,
    readonly targetNode: string,
    readonly simproc: string,
    readonly seqnr: Seqnr,
    readonly epoch: number,
    readonly numEvents: number,
    public hops: number,
  ) {}
}

/** Either kind of envelope. */
export type Envelope = EventEnvelope | PromiseEnvelope;

/**
 * The event an inbox receives from a sender in this process: only the fields of
 * ReceivedEvent (the wire-capable EventEnvelope has five more). The DeliveryQueue
 * builds it when it hands the event over, from the fields it queued, so a queued
 * event is not an object yet and the object an inbox drops dies young.
 */
export class InProcessEvent implements ReceivedEvent {
  constructor(
    readonly repid: number,
    readonly sender: NodeRef,
    readonly simproc: string,
    readonly epoch: number,
    readonly headers: Headers,
    readonly data: unknown,
  ) {}
}

/** The promise an inbox receives from a sender in this process; see InProcessEvent. */
export class InProcessPromise implements ReceivedPromise {
  constructor(
    readonly repid: number,
    readonly sender: NodeRef,
    readonly simproc: string,
    readonly seqnr: Seqnr,
    readonly epoch: number,
    readonly numEvents: number,
  ) {}
}

/** What a NodeController may be handed: an envelope from a link, or an in-process message. */
export type IncomingEvent = EventEnvelope | InProcessEvent;
export type IncomingPromise = PromiseEnvelope | InProcessPromise;

const MAX_SAFE_BIGINT = BigInt(Number.MAX_SAFE_INTEGER);

/** Normalises a wire seqnr: a number when it is exactly representable, else the bigint. */
export function seqnrFromWire(value: bigint): Seqnr {
  return value <= MAX_SAFE_BIGINT ? Number(value) : value;
}

/** The Builder's write cursor; not in its public typings, needed to copy payloads in one `set`. */
interface BuilderInternals {
  space: number;
}

/** A ByteBuffer's bytes; not settable through its public typings. */
interface ByteBufferInternals {
  bytes_: Uint8Array;
}

/**
 * Writes batches of envelopes as one FlatBuffers `Frame` of `Envelope` tables (body
 * identifier "DSCO"; the native encoders write packed "DSC2" frames, and `decodeFrame`
 * reads both). Reuses its Builder and the
 * UTF-8 bytes of the node and simproc names it has seen (src/wire-names.ts), so
 * encoding allocates little more than the output buffer. One encoder per link, not
 * shared.
 */
export class FrameEncoder {
  private readonly builder: flatbuffers.Builder;
  private readonly names: NameWriter;
  /** Envelope offsets of the frame being built; kept between frames. */
  private readonly offsets: number[] = [];

  constructor(initialBytes = 64 * 1024) {
    this.builder = new flatbuffers.Builder(initialBytes);
    this.names = new NameWriter(this.builder);
  }

  /**
   * Encodes `envelopes[start, end)` into a new buffer: `FRAME_HEADER_BYTES` zero bytes (for
   * the native `sealFrame`) followed by the FlatBuffers body. Events must carry
   * `payload` bytes (the NodeController serializes before a wire transport sees them).
   * The buffer is 8-byte aligned, as `assertFrame` requires.
   *
   * @throws {TypeError} when an event has no payload.
   */
  encode(
    envelopes: readonly Envelope[],
    lane: Lane,
    linkSeq: bigint,
    ack: bigint,
    start = 0,
    end = envelopes.length,
  ): Uint8Array {
    const b = this.builder;
    b.clear();
    this.names.startFrame();
    const offsets = this.offsets;
    const count = end - start;
    for (let i = 0; i < count; i++) offsets[i] = this.writeEnvelope(envelopes[start + i]!);
    WireFrame.startEnvelopesVector(b, count);
    for (let i = count - 1; i >= 0; i--) b.addOffset(offsets[i]!);
    const list = b.endVector();
    // A frame of Envelope tables (body identifier "DSCO"): the packed fields stay absent.
    const frame = WireFrame.createFrame(b, linkSeq, ack, lane, list, this.names.vector(), 0, 0, 0);
    WireFrame.finishFrameBuffer(b, frame);
    const body = b.asUint8Array();
    // Not zero-filled (the body overwrites all but the header) and 8-byte aligned: Node
    // aligns every allocation from its Buffer pool to 8 bytes, larger ones are fresh.
    const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
    out.fill(0, 0, FRAME_HEADER_BYTES);
    out.set(body, FRAME_HEADER_BYTES);
    return out;
  }

  private writeEnvelope(env: Envelope): number {
    const b = this.builder;
    const names = this.names;
    // Names, headers, data and reply-to are written before the table is started.
    const senderNode = names.index(env.sender.node);
    const senderSimproc = names.index(env.sender.simproc);
    const targetNode = names.index(env.targetNode);
    const targetSimproc = names.index(env.simproc);
    if (env instanceof PromiseEnvelope) {
      WireEnvelope.startEnvelope(b);
      WireEnvelope.addHead(
        b,
        WireEnvelopeHead.createEnvelopeHead(
          b,
          env.epoch,
          BigInt(env.seqnr),
          env.repid,
          env.numEvents,
          senderNode,
          senderSimproc,
          targetNode,
          targetSimproc,
          Kind.Promise,
          DataFormat.Raw,
          env.hops,
        ),
      );
      return WireEnvelope.endEnvelope(b);
    }
    if (env.payload === null) throw new TypeError('event envelope has no serialized payload');
    const headers = this.writeHeaders(env.headers);
    const data = this.writeBytes(env.payload);
    const replyTo =
      env.replyTo === null
        ? 0
        : WireAddress.createAddress(
            b,
            b.createSharedString(env.replyTo.node),
            b.createSharedString(env.replyTo.simproc),
          );
    WireEnvelope.startEnvelope(b);
    WireEnvelope.addHead(
      b,
      WireEnvelopeHead.createEnvelopeHead(
        b,
        env.epoch,
        0n,
        env.repid,
        0,
        senderNode,
        senderSimproc,
        targetNode,
        targetSimproc,
        Kind.Event,
        env.dataFormat,
        env.hops,
      ),
    );
    if (headers !== 0) WireEnvelope.addHeaders(b, headers);
    WireEnvelope.addData(b, data);
    if (replyTo !== 0) WireEnvelope.addReplyTo(b, replyTo);
    return WireEnvelope.endEnvelope(b);
  }

  private writeHeaders(headers: Headers): number {
    const keys = Object.keys(headers);
    if (keys.length === 0) return 0;
    const b = this.builder;
    const offsets = keys.map((k) =>
      WireHeader.createHeader(b, b.createSharedString(k), b.createSharedString(headers[k]!)),
    );
    return WireEnvelope.createHeadersVector(b, offsets);
  }

  /** A byte vector in one `set`: the generated helper copies byte by byte. */
  private writeBytes(bytes: Uint8Array): number {
    const b = this.builder;
    b.startVector(1, bytes.length, 8);
    const internals = b as unknown as BuilderInternals;
    internals.space -= bytes.length;
    b.dataBuffer().bytes().set(bytes, internals.space);
    return b.endVector();
  }
}

/** The link-level fields of a decoded frame. */
export interface FrameInfo {
  readonly linkSeq: bigint;
  readonly ack: bigint;
  readonly lane: Lane;
  readonly count: number;
}

const nameReader = new NameReader();
const NO_BYTES = new Uint8Array(0);
/**
 * The ByteBuffer decodeFrame reads through, kept between calls: flatbuffers allocates a
 * TextDecoder with every ByteBuffer. Null while a call uses it (a nested call makes its own).
 */
let spareByteBuffer: flatbuffers.ByteBuffer | null = new flatbuffers.ByteBuffer(NO_BYTES);
/** The sender of the previous envelope decoded: senders repeat, so they are shared (frozen). */
let lastSender: NodeRef = Object.freeze({ node: '', simproc: '' });

function readAddress(node: string | null, simproc: string | null): NodeRef {
  // The verifier enforces `required` fields; the fallback only satisfies the types.
  return { node: node ?? '', simproc: simproc ?? '' };
}

/** The current frame's names, by index (reused between calls). */
const frameNames: string[] = [];

function senderOf(node: string, simproc: string): NodeRef {
  // Names come from the NameReader, so a repeated sender compares by pointer.
  if (node !== lastSender.node || simproc !== lastSender.simproc) {
    lastSender = Object.freeze({ node, simproc });
  }
  return lastSender;
}

function readHeaders(env: WireEnvelope | WireEnvelopeExtra): Headers {
  const n = env.headersLength();
  if (n === 0) return EMPTY_HEADERS;
  const headers = Object.create(null) as Record<string, string>;
  const h = new WireHeader();
  for (let i = 0; i < n; i++) {
    env.headers(i, h);
    headers[h.key() ?? ''] = h.value() ?? '';
  }
  return headers;
}

/**
 * Decodes a frame of either kind (packed "DSC2" or tables "DSCO", native/frame.h) that has
 * passed `assertFrame` (src/native.ts). Event data stays
 * in `payload` as a view over `frame` (no copy); the NodeController deserializes it.
 * Names are decoded about once (src/wire-names.ts), and consecutive envelopes from one
 * sender share one frozen `sender` object. `frame` may be reused once this returns.
 *
 * @param frame - the whole sealed frame, header included.
 * @param onEnvelope - called once per envelope, in frame order.
 * @param peer - who sent the frame, for errors.
 * @throws FrameCorruptError, before any envelope is handed over, when an envelope names an
 *   index outside the frame's names or an unknown kind or data format, or (packed) has
 *   unknown flags or a payload outside the frame's data, or when extras are out of
 *   envelope order (the verifier checks offsets and sizes, not these values).
 */
export function decodeFrame(
  frame: Uint8Array,
  onEnvelope: (env: Envelope) => void,
  peer = 'a peer',
): FrameInfo {
  // A plain Uint8Array view: `subarray` of a Buffer builds a Buffer, which costs more.
  const body = new Uint8Array(
    frame.buffer,
    frame.byteOffset + FRAME_HEADER_BYTES,
    frame.length - FRAME_HEADER_BYTES,
  );
  const bb = spareByteBuffer;
  if (bb === null) return decodeBody(new flatbuffers.ByteBuffer(body), onEnvelope, peer, []);
  spareByteBuffer = null;
  (bb as unknown as ByteBufferInternals).bytes_ = body;
  bb.setPosition(0);
  const names = frameNames;
  try {
    return decodeBody(bb, onEnvelope, peer, names);
  } finally {
    // Holds no frame between calls.
    (bb as unknown as ByteBufferInternals).bytes_ = NO_BYTES;
    names.length = 0;
    spareByteBuffer = bb;
  }
}

/** Vtable offset (4 + 2 × field id, schemas/envelope.fbs) of Frame.names. */
const FRAME_NAMES_FIELD = 12;

/**
 * The first field of `h` (either kind of head: the same accessors) the verifier cannot check
 * that is out of range, or null.
 */
function badHeadField(h: WireEnvelopeHead | WirePackedHead, names: number): string | null {
  if (h.senderNode() >= names) return 'sender node';
  if (h.senderSimproc() >= names) return 'sender simproc';
  if (h.targetNode() >= names) return 'target node';
  if (h.targetSimproc() >= names) return 'target simproc';
  if (h.kind() > Kind.Control) return 'kind';
  if (h.dataFormat() > DataFormat.Serialized) return 'data format';
  return null;
}

/** Checks what the verifier does not: name indices and enum values; throws for the first bad one. */
function checkHeads(root: WireFrame, count: number, names: number, peer: string): void {
  const w = new WireEnvelope();
  const h = new WireEnvelopeHead();
  for (let i = 0; i < count; i++) {
    const bad = badHeadField(root.envelopes(i, w)!.head(h)!, names);
    if (bad !== null) throw new FrameCorruptError(peer, `envelope ${i} has an invalid ${bad}`);
  }
}

/** The promise of head `h` (either kind of frame: the same accessors). */
function promiseOf(
  h: WireEnvelopeHead | WirePackedHead,
  sender: NodeRef,
  targetNode: string,
  simproc: string,
): PromiseEnvelope {
  return new PromiseEnvelope(
    h.repid(),
    sender,
    targetNode,
    simproc,
    seqnrFromWire(h.seqnr()),
    h.epoch(),
    h.numEvents(),
    h.hops(),
  );
}

/** The event of head `h` (either kind of frame) with the parts outside the head. */
function eventOf(
  h: WireEnvelopeHead | WirePackedHead,
  sender: NodeRef,
  targetNode: string,
  simproc: string,
  headers: Headers,
  payload: Uint8Array,
  replyTo: NodeRef | null,
): EventEnvelope {
  return new EventEnvelope(
    h.repid(),
    sender,
    targetNode,
    simproc,
    h.epoch(),
    headers,
    undefined,
    payload,
    h.dataFormat(),
    h.hops(),
    replyTo,
  );
}

/** PackedHead.flags: the envelope has data (native/frame.h kPackedHasData). */
const PACKED_HAS_DATA = 1;
/** Body identifier of a packed frame (native/frame.h kPackedFrameIdentifier). */
const PACKED_IDENTIFIER = 'DSC2';

/** As badHeadField, and the flags and payload range of a packed head (`data` of `dataBytes`). */
function badPackedField(h: WirePackedHead, names: number, dataBytes: number): string | null {
  const bad = badHeadField(h, names);
  if (bad !== null) return bad;
  const flags = h.flags();
  if ((flags & ~PACKED_HAS_DATA) !== 0) return 'flags';
  const inRange =
    (flags & PACKED_HAS_DATA) !== 0
      ? h.dataOffset() + h.dataLength() <= dataBytes
      : h.dataOffset() === 0 && h.dataLength() === 0;
  return inRange ? null : 'payload range';
}

/**
 * Checks what the verifier does not in a packed frame: name indices, enum values, flags,
 * payload ranges inside `data`, and extras naming envelopes in order; throws for the first
 * bad one.
 */
function checkPacked(root: WireFrame, count: number, names: number, peer: string): void {
  const h = new WirePackedHead();
  const dataBytes = root.dataLength();
  for (let i = 0; i < count; i++) {
    root.heads(i, h);
    const bad = badPackedField(h, names, dataBytes);
    if (bad !== null) throw new FrameCorruptError(peer, `envelope ${i} has an invalid ${bad}`);
  }
  const extra = new WireEnvelopeExtra();
  let previous = -1;
  for (let j = 0; j < root.extrasLength(); j++) {
    const of = root.extras(j, extra)!.envelope();
    if (of <= previous || of >= count) {
      throw new FrameCorruptError(peer, `extra ${j} names envelope ${of} out of order`);
    }
    previous = of;
  }
}

/** Whether the body in `bytes` is a packed frame (its identifier; the verifier checked it). */
function isPacked(bytes: flatbuffers.ByteBuffer): boolean {
  return bytes.__has_identifier(PACKED_IDENTIFIER);
}

/** The envelopes of a packed frame (checked by checkPacked), handed over in order. */
function decodePacked(
  root: WireFrame,
  count: number,
  onEnvelope: (env: Envelope) => void,
  names: string[],
): void {
  const h = new WirePackedHead();
  const extra = new WireEnvelopeExtra();
  const replyTo = new WireAddress();
  const data = root.dataArray() ?? new Uint8Array(0);
  const extras = root.extrasLength();
  let nextExtra = 0;
  let extraOf = extras > 0 ? root.extras(0, extra)!.envelope() : -1;
  for (let i = 0; i < count; i++) {
    root.heads(i, h);
    const sender = senderOf(names[h.senderNode()]!, names[h.senderSimproc()]!);
    const targetNode = names[h.targetNode()]!;
    const simproc = names[h.targetSimproc()]!;
    const hasExtra = extraOf === i;
    let headers: Headers = EMPTY_HEADERS;
    let reply: NodeRef | null = null;
    if (hasExtra) {
      headers = readHeaders(extra);
      const r = extra.replyTo(replyTo);
      reply = r === null ? null : readAddress(r.node(), r.simproc());
      nextExtra++;
      extraOf = nextExtra < extras ? root.extras(nextExtra, extra)!.envelope() : -1;
    }
    if (h.kind() === Kind.Promise) {
      onEnvelope(promiseOf(h, sender, targetNode, simproc));
      continue;
    }
    const start = h.dataOffset();
    const payload = data.subarray(start, start + h.dataLength());
    onEnvelope(eventOf(h, sender, targetNode, simproc, headers, payload, reply));
  }
}

function decodeBody(
  bytes: flatbuffers.ByteBuffer,
  onEnvelope: (env: Envelope) => void,
  peer: string,
  names: string[],
): FrameInfo {
  const root = WireFrame.getRootAsFrame(bytes);
  const packed = isPacked(bytes);
  const count = packed ? root.headsLength() : root.envelopesLength();
  const vector = root.bb!.__offset(root.bb_pos, FRAME_NAMES_FIELD);
  // Required: the verifier has checked it is there.
  nameReader.readVector(bytes, root.bb!.__vector(root.bb_pos + vector) - 4, names);
  if (packed) {
    checkPacked(root, count, names.length, peer);
    decodePacked(root, count, onEnvelope, names);
    return { linkSeq: root.linkSeq(), ack: root.ack(), lane: root.lane(), count };
  }
  checkHeads(root, count, names.length, peer);
  const w = new WireEnvelope();
  const h = new WireEnvelopeHead();
  const replyTo = new WireAddress();
  for (let i = 0; i < count; i++) {
    root.envelopes(i, w);
    w.head(h);
    const sender = senderOf(names[h.senderNode()]!, names[h.senderSimproc()]!);
    const targetNode = names[h.targetNode()]!;
    const simproc = names[h.targetSimproc()]!;
    if (h.kind() === Kind.Promise) {
      onEnvelope(promiseOf(h, sender, targetNode, simproc));
      continue;
    }
    const r = w.replyTo(replyTo);
    const reply = r === null ? null : readAddress(r.node(), r.simproc());
    const payload = w.dataArray() ?? new Uint8Array(0);
    onEnvelope(eventOf(h, sender, targetNode, simproc, readHeaders(w), payload, reply));
  }
  return { linkSeq: root.linkSeq(), ack: root.ack(), lane: root.lane(), count };
}
