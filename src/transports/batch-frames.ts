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
  FRAME_MAX_BODY_BYTES,
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
 * Bytes of the blocks a FrameWriter cuts small frames from. Creating a JS buffer per frame
 * cost more than building a one-envelope frame, so frames are built straight into a shared
 * block, from its end down.
 */
export const FRAME_BLOCK_BYTES = 256 * 1024;
/** A block with less room than this left is replaced before the next frame. */
const FRAME_BLOCK_MIN_ROOM = 4096;
/** Bytes at the start of a block no frame takes: room for the lead of the lowest frame. */
const BLOCK_FLOOR = 8;
/** A batch whose estimated frame is larger than this gets a block of its own. */
const LARGE_FRAME_BYTES = FRAME_BLOCK_BYTES / 2;
/** Large blocks are sized in steps of this. */
const LARGE_BLOCK_STEP = 64 * 1024;
/**
 * Room a large frame is given above its batch's bytes: the native encoder needs the frame's
 * bound there, about 100 bytes per envelope over the staged ones (more with headers), plus its
 * names. When a frame needs more, it is built in memory of its own instead, which is only
 * slower. A 1 MiB event gets a block of 1 MiB + 64 KiB.
 */
const LARGE_FRAME_SLACK_BYTES = 16 * 1024;
const LARGE_FRAME_SLACK_PER_ENVELOPE = 160;
/** Released blocks a writer keeps for reuse: small ones... */
export const FREE_SMALL_BLOCKS = 8;
/** ...and bytes of large ones. */
export const FREE_LARGE_BYTES = 16 * 1024 * 1024;
/** A free large block is reused for a frame that needs at least this fraction of it. */
const LARGE_REUSE_MIN_FILL = 0.5;

/** A block of frame memory: how many frames cut from it are live, and whether it takes more. */
interface Block {
  readonly bytes: Buffer;
  /** A block of its own for one large frame (else one small frames share). */
  readonly large: boolean;
  live: number;
  open: boolean;
}

/**
 * Builds sealed frames of envelopes; one per link.
 *
 * Memory: frames are cut from blocks (small ones share a block of FRAME_BLOCK_BYTES, a large
 * one has a block of its own). A block is written again only after every frame cut from it was
 * handed back with `release` and it is full: a link releases a frame once no one can read it
 * any more (a reliable link, when the peer acknowledged it). A frame never released keeps its
 * block from being reused, and garbage collection frees it as before. Reusing blocks spares the
 * allocation, and above all the garbage collections that megabytes of short-lived buffers held
 * until their ack cause. At most FREE_SMALL_BLOCKS small blocks and FREE_LARGE_BYTES of large
 * ones wait for reuse; what a link holds in frames is bounded by its resend buffer.
 */
export class FrameWriter {
  /** For `encode` (acks, envelope arrays); made on first use, as links stage elsewhere. */
  private writer: BatchWriter | null = null;
  private encoder: NativeBatchEncoder | null = null;
  /**
   * The encoders of batches staged by a link's OutboundQueue, one per lane: each lane's writer
   * keeps its own string table, so each talks to its own encoder. Made on first use.
   */
  private laneEncoders: NativeBatchEncoder[] | null = null;
  /** The block small frames are cut from, and where the next one ends (8-byte aligned). */
  private block: Block;
  private top: number;
  /** The block of each frame's memory, for `release`. */
  private readonly blocks = new WeakMap<ArrayBufferLike, Block>();
  private readonly freeSmall: Block[] = [];
  private readonly freeLarge: Block[] = [];
  private freeLargeBytes = 0;
  private reused = 0;

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
    this.block = this.newBlock(FRAME_BLOCK_BYTES, false);
    this.top = FRAME_BLOCK_BYTES;
  }

  /** Bytes of blocks taken again from the free lists. */
  get reusedBytes(): number {
    return this.reused;
  }

  /** Blocks waiting for reuse: small ones, and bytes of large ones. */
  get freeMemory(): { readonly smallBlocks: number; readonly largeBytes: number } {
    return { smallBlocks: this.freeSmall.length, largeBytes: this.freeLargeBytes };
  }

  /**
   * The sealed frame of `envelopes[start..end)`, behind `leadBytes` zero bytes: the frame
   * 8-byte aligned, in memory no later frame reuses until it is released.
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

  /**
   * Hands back a frame this writer returned, once nothing will read it again (nor a write
   * still in progress): its memory may then hold a later frame. At most once per frame.
   */
  release(frame: Uint8Array): void {
    const block = this.blocks.get(frame.buffer);
    if (block === undefined) return; // memory of its own: the garbage collector's
    if (--block.live === 0 && !block.open) this.recycle(block);
  }

  private seal(w: BatchWriter, encoder: NativeBatchEncoder): Buffer {
    const lead = this.leadBytes;
    const estimate = w.byteLength;
    let block: Block;
    let end: number;
    const oversize = estimate > FRAME_MAX_BODY_BYTES;
    if (oversize) {
      // Too large for any frame: the encoder refuses it (MessageTooLargeError) before it
      // allocates anything, so no block is made for it either.
      block = this.block;
      end = BLOCK_FLOOR;
    } else if (estimate > LARGE_FRAME_BYTES) {
      block = this.largeBlock(
        estimate + LARGE_FRAME_SLACK_BYTES + LARGE_FRAME_SLACK_PER_ENVELOPE * w.count + BLOCK_FLOOR,
      );
      end = block.bytes.length;
    } else {
      if (this.top - BLOCK_FLOOR < FRAME_BLOCK_MIN_ROOM) this.nextSmallBlock();
      block = this.block;
      end = this.top;
    }
    let r: Uint8Array | number;
    try {
      r = encodeBatchInto(
        encoder,
        w.finish(),
        w.payloads,
        block.bytes,
        BLOCK_FLOOR,
        end,
        this.link,
      );
    } catch (err) {
      if (block.large) this.recycle(block);
      w.resetStrings(); // the encoder may have taken this batch's strings: start both afresh
      throw err;
    }
    if (typeof r !== 'number') {
      // Its bound did not fit: built in memory of its own. After a small frame the next one
      // starts a new block, so that a run of frames this size does not go the same way (an
      // oversize estimate was given no room at all: the small block is not at fault).
      if (block.large) this.recycle(block);
      else if (!oversize) this.nextSmallBlock();
      return withLead(r, lead);
    }
    const from = r - lead;
    const bytes = block.bytes;
    for (let i = from; i < r; i++) bytes[i] = 0;
    block.live++;
    if (block === this.block) this.top = from & ~7;
    return bytes.subarray(from, end);
  }

  private newBlock(bytes: number, large: boolean): Block {
    const block: Block = { bytes: Buffer.allocUnsafeSlow(bytes), large, live: 0, open: !large };
    this.blocks.set(block.bytes.buffer, block);
    return block;
  }

  /** Closes the current small block (it is reused once its frames are released). */
  private nextSmallBlock(): void {
    const old = this.block;
    old.open = false;
    if (old.live === 0) this.recycle(old);
    const reused = this.freeSmall.pop();
    if (reused !== undefined) {
      reused.open = true;
      this.reused += FRAME_BLOCK_BYTES;
    }
    this.block = reused ?? this.newBlock(FRAME_BLOCK_BYTES, false);
    this.top = FRAME_BLOCK_BYTES;
  }

  /**
   * A block of its own for one large frame, of at least `need` bytes: the smallest free one
   * that it fills at least half, else a new one.
   */
  private largeBlock(need: number): Block {
    const free = this.freeLarge;
    let best = -1;
    for (let i = 0; i < free.length; i++) {
      const n = free[i]!.bytes.length;
      if (n >= need && n * LARGE_REUSE_MIN_FILL <= need) {
        if (best < 0 || n < free[best]!.bytes.length) best = i;
      }
    }
    if (best >= 0) {
      const block = free[best]!;
      free[best] = free[free.length - 1]!;
      free.pop();
      this.freeLargeBytes -= block.bytes.length;
      this.reused += block.bytes.length;
      return block;
    }
    return this.newBlock(Math.ceil(need / LARGE_BLOCK_STEP) * LARGE_BLOCK_STEP, true);
  }

  /** A block with no live frame: kept for reuse while the free lists have room. */
  private recycle(block: Block): void {
    if (!block.large) {
      if (this.freeSmall.length < FREE_SMALL_BLOCKS) this.freeSmall.push(block);
      return;
    }
    if (this.freeLargeBytes + block.bytes.length > FREE_LARGE_BYTES) return;
    this.freeLarge.push(block);
    this.freeLargeBytes += block.bytes.length;
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
