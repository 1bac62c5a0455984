/**
 * Sealed frames in JS memory through the native batch encoder and decoder, for links over
 * a byte stream (gRPC). The FlatBuffers work is native, as on the shared-memory rings:
 *
 * ```
 *  send:    Envelope ─► BatchWriter (staging) ─► NativeBatchEncoder ─► sealed frame (checksum)
 *  receive: sealed frame ─► NativeFrameDecoder (verify, then decode) ─► BatchReader ─► Envelope
 * ```
 *
 * Invariants:
 * - Every frame is sealed with its checksum (byte streams keep it; only ring records skip it)
 *   and carries its own link_seq and ack, so the bytes can be kept and written again on a
 *   later call.
 * - Nothing is read before the native verifier has passed the whole frame: a frame that
 *   fails throws FrameCorruptError naming the peer, and nothing of it is delivered.
 * - The string tables are a conversation between one writer and its encoder (one reader and
 *   its decoder) in this process only; the wire carries whole strings, so any decoder reads
 *   any frame, whatever came before it.
 * Owned by one GrpcLink (FrameWriter and FrameReader for acks) or one GrpcInbound.
 */

import type { NodeRef } from '../address.js';
import { EventEnvelope, Lane, PromiseEnvelope, type Envelope } from '../envelope.js';
import {
  createBatchEncoder,
  createFrameDecoder,
  encodeBatchInto,
  frameStatusError,
  NativeStatus,
  type NativeBatchEncoder,
  type NativeFrameDecoder,
} from '../native.js';
import { BatchReader, BatchWriter, Kind, type DataFormat } from '../native-batch.js';

const TWO_POW_32 = 2 ** 32;
/** Sender nodes (and simprocs per node) cached; past it a cache starts afresh. */
const SENDER_CACHE_NODES = 4096;

/**
 * Bytes of the blocks a FrameWriter cuts frames from. Creating a JS buffer per frame cost
 * more than building a one-envelope frame, so frames are slices of a shared block. A block
 * is never written twice: a frame kept for resending keeps its block alive. A link releases
 * frames in order, and the rest of a block given up for a frame that did not fit is shorter
 * than that frame, so what it holds is at most twice its frames' bytes plus two blocks.
 */
export const FRAME_BLOCK_BYTES = 256 * 1024;
/** A block with less room than this left is replaced before the next frame. */
const FRAME_BLOCK_MIN_ROOM = 4096;

/** Builds sealed frames of envelopes; one per link. */
export class FrameWriter {
  /** For `encode` (acks, envelope arrays); made on first use, as links stage elsewhere. */
  private writer: BatchWriter | null = null;
  private encoder: NativeBatchEncoder | null = null;
  /**
   * The encoders of batches staged by a link's OutboundQueue, one per lane: each lane's writer
   * keeps its own string table, so each talks to its own encoder. Made on first use.
   */
  private laneEncoders: NativeBatchEncoder[] | null = null;
  private block: Buffer = Buffer.allocUnsafeSlow(FRAME_BLOCK_BYTES);
  private blockUsed = 0;

  /**
   * @param link - named in errors.
   * @param leadBytes - zero bytes in front of every frame returned (part of the returned
   *   buffer; the frame itself stays 8-byte aligned): a message stream's lead
   *   (FrameStreamReader's `messageLeadBytes`). At most 8.
   */
  constructor(
    private readonly link: string,
    private readonly leadBytes = 0,
  ) {
    if (!(Number.isInteger(leadBytes) && leadBytes >= 0 && leadBytes <= 8)) {
      throw new RangeError(`leadBytes ${leadBytes} is not an integer from 0 to 8`);
    }
  }

  /**
   * The sealed frame of `envelopes[start..end)`, behind `leadBytes` zero bytes: the frame
   * 8-byte aligned, in memory no later frame reuses (a slice of a block, or memory of its own
   * when larger than a block's room).
   * @throws MessageTooLargeError above FRAME_MAX_BODY_BYTES.
   */
  encode(
    lane: Lane,
    linkSeq: number,
    ack: number,
    envelopes: readonly Envelope[],
    start: number,
    end: number,
  ): Buffer {
    const w = (this.writer ??= new BatchWriter());
    w.begin(lane, linkSeq, ack);
    try {
      for (let i = start; i < end; i++) stageEnvelope(w, envelopes[i]!);
      return this.seal(w, (this.encoder ??= createBatchEncoder()));
    } finally {
      w.begin(lane); // drops the references to large payloads
    }
  }

  /**
   * The sealed frame of the batch `w` staged (the writer of an OutboundQueue's `lane`), numbered
   * `linkSeq` and acknowledging `ack`; as `encode`. A lane's writer must always come with its
   * lane: the lane picks the encoder that holds the writer's string table.
   */
  encodeBatch(lane: Lane, w: BatchWriter, linkSeq: number, ack: number): Buffer {
    w.setLink(linkSeq, ack);
    const encoders = (this.laneEncoders ??= [createBatchEncoder(), createBatchEncoder()]);
    return this.seal(w, encoders[lane]!);
  }

  private seal(w: BatchWriter, encoder: NativeBatchEncoder): Buffer {
    const lead = this.leadBytes;
    // The frame starts at the first multiple of 8 that leaves room for the lead before it.
    let at = (this.blockUsed + lead + 7) & ~7;
    if (FRAME_BLOCK_BYTES - at < FRAME_BLOCK_MIN_ROOM) {
      this.block = Buffer.allocUnsafeSlow(FRAME_BLOCK_BYTES);
      this.blockUsed = 0;
      at = (lead + 7) & ~7;
    }
    let r: Uint8Array | number;
    try {
      r = encodeBatchInto(encoder, w.finish(), w.payloads, this.block, at, this.link);
    } catch (err) {
      w.resetStrings(); // the encoder may have taken this batch's strings: start both afresh
      throw err;
    }
    if (typeof r !== 'number') {
      // Too large for what is left of the block: the next frame starts a new one, so that a
      // run of frames this size does not go to memory of its own one by one.
      if (r.length < FRAME_BLOCK_BYTES) this.blockUsed = FRAME_BLOCK_BYTES;
      return withLead(r, lead);
    }
    this.blockUsed = (at + r + 7) & ~7;
    this.block.fill(0, at - lead, at);
    return this.block.subarray(at - lead, at + r);
  }
}

/**
 * `frame` (in memory of its own) behind `lead` zero bytes, written into the unused bytes the
 * encoder leaves in front of such a frame (at least 8, NativeBatchEncoder.encode): the frame
 * is not copied.
 */
function withLead(frame: Uint8Array, lead: number): Buffer {
  const out = Buffer.from(frame.buffer, frame.byteOffset - lead, frame.length + lead);
  out.fill(0, 0, lead);
  return out;
}

/** Verifies and decodes sealed frames; one per receiving end. */
export class FrameReader {
  private readonly reader = new BatchReader();
  private readonly decoder: NativeFrameDecoder = createFrameDecoder();
  private readonly senders = new SenderRefs();

  /**
   * Verifies `frame` (one whole sealed frame, 8-byte aligned) and decodes it; the accessors
   * then read it, until the next `read`. Payloads are views over `frame`.
   * @throws FrameCorruptError naming `peer` when the frame fails verification.
   */
  read(frame: Uint8Array, peer: string): void {
    // A plain view: `subarray` of a Buffer (each payload view) builds a Buffer, which costs more.
    const bytes = new Uint8Array(frame.buffer, frame.byteOffset, frame.length);
    const status = this.reader.decode(this.decoder, bytes);
    if (status !== NativeStatus.OK) throw frameStatusError(status, peer);
  }

  /** Envelopes in the frame read last. */
  get count(): number {
    return this.reader.envelopeCount;
  }

  /** link_seq of the frame read last (below 2^53 on any link of ours). */
  get linkSeq(): number {
    const f = this.reader.frames;
    return f[6]! * TWO_POW_32 + f[5]!;
  }

  /** ack of the frame read last. */
  get ack(): number {
    const f = this.reader.frames;
    return f[8]! * TWO_POW_32 + f[7]!;
  }

  /** Envelope `i` of the frame read last, as a new object. */
  envelope(i: number): Envelope {
    return envelopeAt(this.reader, i, this.senders);
  }
}

/**
 * One frozen sender object per (node, simproc), so decoded envelopes share them and no
 * sender is allocated per envelope. Names come from a peer: past SENDER_CACHE_NODES
 * entries a level starts afresh, so a peer naming ever new senders cannot grow it.
 */
export class SenderRefs {
  private readonly byNode = new Map<string, Map<string, NodeRef>>();
  // The last answer: the envelopes of a batch mostly share a sender, and a decoder hands out
  // one string object per name, so two comparisons usually replace two Map lookups.
  private lastNode = '';
  private lastSimproc = '';
  private lastRef: NodeRef | null = null;

  get(node: string, simproc: string): NodeRef {
    if (node === this.lastNode && simproc === this.lastSimproc && this.lastRef !== null) {
      return this.lastRef;
    }
    const ref = this.lookup(node, simproc);
    this.lastNode = node;
    this.lastSimproc = simproc;
    this.lastRef = ref;
    return ref;
  }

  private lookup(node: string, simproc: string): NodeRef {
    if (this.byNode.size >= SENDER_CACHE_NODES) this.byNode.clear();
    let bySimproc = this.byNode.get(node);
    if (bySimproc === undefined) {
      bySimproc = new Map();
      this.byNode.set(node, bySimproc);
    }
    let ref = bySimproc.get(simproc);
    if (ref === undefined) {
      if (bySimproc.size >= SENDER_CACHE_NODES) bySimproc.clear();
      ref = Object.freeze({ node, simproc });
      bySimproc.set(simproc, ref);
    }
    return ref;
  }
}

/** Envelope `i` of the batch `r` holds, as a new object; payloads are views into the batch. */
export function envelopeAt(r: BatchReader, i: number, senders: SenderRefs): Envelope {
  const sender = senders.get(r.senderNode(i), r.senderSimproc(i));
  if (r.kind(i) === Kind.Promise) {
    return new PromiseEnvelope(
      r.repid(i),
      sender,
      r.targetNode(i),
      r.targetSimproc(i),
      r.seqnr(i),
      r.epoch(i),
      r.numEvents(i),
      r.hops(i),
    );
  }
  return new EventEnvelope(
    r.repid(i),
    sender,
    r.targetNode(i),
    r.targetSimproc(i),
    r.epoch(i),
    r.headers(i),
    undefined,
    r.payload(i),
    r.dataFormat(i) as DataFormat,
    r.hops(i),
    r.replyTo(i),
  );
}

/**
 * Stages one envelope into `w` (the batch the native encoder builds a frame from).
 * @throws {TypeError} for an event without its serialized payload.
 */
export function stageEnvelope(w: BatchWriter, env: Envelope): void {
  const s = env.sender;
  if (env instanceof EventEnvelope) {
    if (env.payload === null) throw new TypeError('event envelope has no serialized payload');
    w.addEvent(
      env.repid,
      s.node,
      s.simproc,
      env.targetNode,
      env.simproc,
      env.epoch,
      env.headers,
      env.payload,
      env.dataFormat,
      env.hops,
      env.replyTo,
    );
  } else {
    w.addPromise(
      env.repid,
      s.node,
      s.simproc,
      env.targetNode,
      env.simproc,
      env.epoch,
      env.seqnr,
      env.numEvents,
      env.hops,
    );
  }
}
