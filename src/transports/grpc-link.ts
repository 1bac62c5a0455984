/**
 * GrpcLink: the reliable outbound half of one directed gRPC link (this process → one
 * peer), DESIGN §6. GrpcTransport owns one per peer; nothing else uses it.
 *
 * ```
 *  push ─► OutboundQueue ─► writeFrame: link_seq, encode + seal ─► resend buffer ─► call.write
 *          (two lanes,       (one counter per link, both lanes;    (bounded bytes;   (slices of
 *           bounded)          native encoder, batch-frames.ts)      trimmed by acks)  ≤ chunkBytes)
 * ```
 *
 * Invariants:
 * - Frames leave in link_seq order on every call; a new call first resends every
 *   unacknowledged frame, in order, and only then takes new frames from the queue.
 * - A call counts as established when the receiver's first ack arrives (it acks at
 *   once on every new call), so a reconnecting link trims before it resends.
 * - Acks are cumulative; an ack above the last link_seq sent is a protocol error.
 * - `ready` is false while no call is established, the call holds WRITE_AHEAD_BYTES not
 *   yet written out or wants a 'drain', a resend is in progress, the resend buffer is
 *   full, or a short batching hold is on; frames then wait in the OutboundQueue
 *   (back-pressure as usual). The hold follows small frames only while it pays (see
 *   `maybeHold`).
 * - When no call has been established for `peerDeadlineMs`, the link fails with
 *   LinkClosedError counting every message not acknowledged (resend buffer + queue).
 *   A call the receiver ends with DATA_LOSS (it refused a frame) fails the link at
 *   once: resending the same bytes would be refused again.
 * - With reliability off there is no resend buffer and no acks; link_seq is 0, and a
 *   call that ends after frames went out fails the link (what it lost is unknown).
 */

import {
  Metadata,
  status as GrpcStatus,
  type ChannelCredentials,
  type ChannelOptions,
  type Client,
  type ClientDuplexStream,
  type StatusObject,
} from '@grpc/grpc-js';
import type { Lane } from '../envelope.js';
import type { BatchWriter } from '../native-batch.js';
import { DiscoError, FrameCorruptError, LinkClosedError } from '../errors.js';
import { tracerFor } from '../trace.js';
import { FrameReader, FrameWriter } from './batch-frames.js';
import { FrameStreamReader } from './frame-stream.js';
import {
  CLUSTER_METADATA_KEY,
  LINK_METHOD,
  LinkClient,
  MESSAGE_LEAD_BYTES,
  SENDER_METADATA_KEY,
  SESSION_METADATA_KEY,
} from './grpc-service.js';
import { OutboundQueue, type LinkChannel, type LinkLimits } from './outbound-queue.js';
import { ResendBuffer } from './resend-buffer.js';

const tracer = tracerFor('grpc');

/** A frame written after its link's `flushDelayMs` hold only when it is smaller than this. */
const SMALL_FRAME_BYTES = 64 * 1024;
/** While holds do not pay, one is tried again after this many quick small frames... */
const HOLD_PROBE_FRAMES = 16;
/** ...a number that doubles after each probe that did not pay, up to this. */
const HOLD_PROBE_MAX_FRAMES = 1024;
/**
 * A frame at most this much over chunkBytes goes as one message (within the send limit of
 * chunkBytes + 64 KiB, grpc-service.ts): an event of chunkBytes with its envelope is then
 * one message, not a full one and a sliver that the receiver has to copy back together.
 */
const CHUNK_SLACK_BYTES = 16 * 1024;
/**
 * Bytes a link hands to its call beyond what the call has written out. grpc-js asks for a
 * 'drain' only after 16 messages, which for large frames is 16 MiB held in its buffers and
 * so in the resend buffer too, kept alive long enough to cost full garbage collections; the
 * link waits for write callbacks instead once this much is outstanding.
 */
const WRITE_AHEAD_BYTES = 4 * 1024 * 1024;
/** Acks are empty frames: a peer announcing more is refused before it is buffered. */
const ACK_FRAME_MAX_BODY_BYTES = 4096;

/** Bytes handed to one call and not yet written out by it (per call: a new call starts at 0). */
interface WriteAhead {
  bytes: number;
}

/** What a link needs from its transport, resolved (defaults filled in). */
export interface GrpcLinkConfig {
  readonly cluster: string;
  readonly self: string;
  readonly session: string;
  readonly address: string;
  readonly credentials: ChannelCredentials;
  readonly channelOptions: ChannelOptions;
  readonly limits: LinkLimits | undefined;
  readonly reliable: boolean;
  readonly resendBufferBytes: number;
  readonly peerDeadlineMs: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly flushDelayMs: number;
  readonly chunkBytes: number;
}

/** Outbound counters of one link; plain data. */
export interface GrpcOutboundCounters {
  framesSent: number;
  bytesSent: number;
  resends: number;
  reconnects: number;
  unacknowledged: number;
  acked: number;
}

/** The reliable outbound link to one peer; see the file header. */
export class GrpcLink implements LinkChannel {
  readonly queue: OutboundQueue;
  readonly counters: GrpcOutboundCounters = {
    framesSent: 0,
    bytesSent: 0,
    resends: 0,
    reconnects: 0,
    unacknowledged: 0,
    acked: 0,
  };

  /** Bytes of frame memory reused after acks (FrameWriter). */
  get frameBytesReused(): number {
    return this.writer.reusedBytes;
  }

  /** Bytes written to calls, resends included. */
  get bytesSent(): number {
    return this.counters.bytesSent;
  }
  private readonly name: string;
  private readonly writer: FrameWriter;
  private readonly ackReader = new FrameReader();
  private readonly client: Client;
  private call: ClientDuplexStream<Buffer, Buffer> | null = null;
  private established = false;
  /** Date.now() since when no call has been established; -1 while one is. */
  private downSince = Date.now();
  private writeBlocked = false;
  /** Bytes handed to the current call and not yet written out by it. */
  private ahead: WriteAhead = { bytes: 0 };
  private readonly resend: ResendBuffer;
  private lastSeq = 0;
  private backoffMs: number;
  private lastStatus = 'no call was answered';
  private reconnectTimer: NodeJS.Timeout | null = null;
  private deadlineTimer: NodeJS.Timeout | null = null;
  private holdTimer: NodeJS.Timeout | null = null;
  /** Whether the last batching hold collected more than one message. */
  private batchingPays = true;
  private smallFramesUnheld = 0;
  private holdProbeFrames = HOLD_PROBE_FRAMES;
  private lastSmallFrameAt = 0;
  private failure: DiscoError | null = null;
  private closed = false;
  private settledWaiters: (() => void)[] = [];

  constructor(
    readonly peer: string,
    private readonly config: GrpcLinkConfig,
    private readonly report: (err: DiscoError) => void,
  ) {
    this.name = `grpc:${peer}`;
    this.writer = new FrameWriter(this.name, MESSAGE_LEAD_BYTES);
    // An acknowledged frame was read by the peer, so grpc-js is done with its bytes (retries
    // are off: it writes a message once): its memory may hold a later frame. Without acks,
    // frames are left to the garbage collector (a write callback can come before grpc-js has
    // written the message).
    const writer = this.writer;
    this.resend = new ResendBuffer((frame) => writer.release(frame));
    this.backoffMs = config.backoffInitialMs;
    this.queue = new OutboundQueue(`grpc link to ${peer}`, this, config.limits);
    this.queue.on('failed', (err: DiscoError) => this.fail(err));
    this.client = new LinkClient(config.address, config.credentials, config.channelOptions);
    this.armDeadline();
    this.openCall();
  }

  get ready(): boolean {
    return (
      this.established &&
      !this.writeBlocked &&
      this.ahead.bytes < WRITE_AHEAD_BYTES &&
      this.resend.caughtUp &&
      this.resend.bytes < this.config.resendBufferBytes &&
      this.holdTimer === null
    );
  }

  /**
   * A lone send goes at once while batching holds do not pay (request/response traffic)
   * or are off; a stream of sends keeps batching by the turn and the hold.
   */
  get writesAtOnce(): boolean {
    return this.config.flushDelayMs === 0 || !this.batchingPays;
  }

  writeBatch(lane: Lane, w: BatchWriter, count: number): boolean {
    const seq = this.config.reliable ? this.lastSeq + 1 : 0;
    const frame = this.writer.encodeBatch(lane, w, seq, 0);
    if (this.config.reliable) this.lastSeq = seq;
    this.counters.framesSent++;
    if (this.config.reliable) {
      this.resend.push(seq, frame, count);
      this.counters.unacknowledged += count;
      this.writePending();
    } else if (!this.writeOnCall(frame)) {
      this.writeBlocked = true;
    }
    if (this.config.flushDelayMs > 0 && frame.length < SMALL_FRAME_BYTES) this.maybeHold();
    return true;
  }

  /** Messages accepted and not acknowledged: in the resend buffer or still queued. */
  get unacknowledged(): number {
    return this.counters.unacknowledged + this.queue.queued;
  }

  /**
   * As `settled`, but gives up on a peer that looks gone: it also resolves once no call has
   * been established for `goneMs`. What is unacknowledged then stays in the link: delivered
   * if the peer comes back before the deadline, else counted in the LinkClosedError of the
   * deadline or of `close`.
   */
  async flush(goneMs: number): Promise<void> {
    const settled = this.settled().then(() => true);
    for (;;) {
      const down = this.downSince < 0 ? 0 : Date.now() - this.downSince;
      if (down >= goneMs) return;
      let timer: NodeJS.Timeout | undefined;
      const later = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), goneMs - down);
      });
      const done = await Promise.race([settled, later]);
      clearTimeout(timer);
      if (done) return;
    }
  }

  /** Resolves when everything accepted was acknowledged (written, when unreliable) or the link failed. */
  async settled(): Promise<void> {
    await this.queue.flushed();
    while (!this.isSettled()) {
      await new Promise<void>((resolve) => this.settledWaiters.push(resolve));
    }
  }

  /**
   * Waits up to `timeoutMs` for everything to be acknowledged (not at all for a peer gone
   * that long already), then ends the call; what is left is reported in a LinkClosedError
   * with its count. Idempotent.
   */
  async close(timeoutMs: number): Promise<void> {
    if (this.closed) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([this.flush(timeoutMs), timeout]);
    clearTimeout(timer);
    this.closed = true;
    if (this.failure === null) {
      const lost = this.unacknowledged;
      this.failure = new LinkClosedError(this.name, 'the transport was closed', lost);
      this.queue.fail(this.failure);
      if (lost > 0) this.report(this.failure);
    }
    this.shutdown();
  }

  private isSettled(): boolean {
    if (this.failure !== null) return true;
    if (this.queue.queued > 0) return false;
    return this.config.reliable ? this.resend.length === 0 : true;
  }

  private wakeSettled(): void {
    if (this.settledWaiters.length === 0 || !this.isSettled()) return;
    const waiters = this.settledWaiters;
    this.settledWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /**
   * After a small frame, decides whether the next one waits `flushDelayMs` so that
   * sends spread over several turns share a frame. A hold that collected at most one
   * message only added latency (request/response traffic): holds then stop, and are
   * tried again after HOLD_PROBE_FRAMES small frames in quick succession, then after
   * twice as many each time a probe did not pay (up to HOLD_PROBE_MAX_FRAMES), so that
   * round trips shorter than the hold rarely wait for one.
   */
  private maybeHold(): void {
    if (this.holdTimer !== null) return;
    const now = Date.now();
    const quick = now - this.lastSmallFrameAt <= this.config.flushDelayMs;
    this.lastSmallFrameAt = now;
    if (!this.batchingPays) {
      if (!quick || ++this.smallFramesUnheld < this.holdProbeFrames) return;
      this.smallFramesUnheld = 0;
    }
    this.holdTimer = setTimeout(() => {
      this.holdTimer = null;
      const probing = !this.batchingPays;
      this.batchingPays = this.queue.queued > 1;
      if (this.batchingPays) this.holdProbeFrames = HOLD_PROBE_FRAMES;
      else if (probing) {
        this.holdProbeFrames = Math.min(this.holdProbeFrames * 2, HOLD_PROBE_MAX_FRAMES);
      }
      this.queue.resume();
    }, this.config.flushDelayMs);
  }

  private openCall(): void {
    const md = new Metadata({ waitForReady: true });
    md.set(CLUSTER_METADATA_KEY, this.config.cluster);
    md.set(SENDER_METADATA_KEY, this.config.self);
    md.set(SESSION_METADATA_KEY, this.config.session);
    const call = this.client.makeBidiStreamRequest(
      LINK_METHOD.path,
      LINK_METHOD.requestSerialize,
      LINK_METHOD.responseDeserialize,
      md,
      {},
    );
    this.call = call;
    this.established = false;
    this.writeBlocked = false;
    this.ahead = { bytes: 0 };
    this.resend.rewind();
    const reader = new FrameStreamReader(this.name, ACK_FRAME_MAX_BODY_BYTES, MESSAGE_LEAD_BYTES);
    call.on('data', (chunk: Buffer) => {
      if (this.call !== call) return;
      try {
        reader.push(chunk, (frame) => this.onAckFrame(frame));
      } catch (err) {
        this.protocolError(err);
      }
    });
    call.on('drain', () => {
      if (this.call !== call) return;
      this.writeBlocked = false;
      this.writePending();
      this.queue.resume();
    });
    call.on('error', () => {
      // The 'status' that follows carries the same information and drives the reconnect.
    });
    call.on('status', (s: StatusObject) => this.onCallEnded(call, s));
  }

  private onAckFrame(frame: Uint8Array): void {
    const r = this.ackReader;
    r.read(frame, this.name);
    if (r.count !== 0) throw new FrameCorruptError(this.name, 'an ack frame carries envelopes');
    const ack = r.ack;
    if (ack > this.lastSeq) {
      throw new FrameCorruptError(
        this.name,
        `ack ${ack} is beyond the last link_seq sent (${this.lastSeq})`,
      );
    }
    const acked = this.resend.trim(ack);
    this.counters.unacknowledged -= acked;
    this.counters.acked += acked;
    if (!this.established) this.onEstablished();
    else this.queue.resume();
    this.wakeSettled();
  }

  private onEstablished(): void {
    this.established = true;
    this.downSince = -1;
    this.backoffMs = this.config.backoffInitialMs;
    if (this.deadlineTimer !== null) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    if (tracer.enabled) tracer.log(`${this.name}: established, resending ${this.resend.length}`);
    this.resend.rewind();
    this.writePending();
    this.queue.resume();
  }

  /** Writes frames not yet written on this call, in order, while the call takes them. */
  private writePending(): void {
    if (!this.established || this.call === null) return;
    while (!this.writeBlocked && this.ahead.bytes < WRITE_AHEAD_BYTES) {
      const next = this.resend.next();
      if (next === null) break;
      if (next.resend) this.counters.resends++;
      if (!this.writeOnCall(next.frame)) this.writeBlocked = true;
    }
  }

  /**
   * Writes one frame (behind its message lead), in slices of at most chunkBytes when it is
   * larger than chunkBytes + CHUNK_SLACK_BYTES; false when the call wants a 'drain'. Only the
   * first slice carries the lead: the receiver expects one where a frame starts.
   */
  private writeOnCall(frame: Buffer): boolean {
    const call = this.call!;
    const chunk = this.config.chunkBytes;
    this.counters.bytesSent += frame.length;
    if (frame.length <= MESSAGE_LEAD_BYTES + chunk + CHUNK_SLACK_BYTES) {
      return this.writeCounted(call, frame);
    }
    let ok = true;
    for (let at = 0; at < frame.length;) {
      const end = Math.min((at === 0 ? MESSAGE_LEAD_BYTES : at) + chunk, frame.length);
      ok = this.writeCounted(call, frame.subarray(at, end));
      at = end;
    }
    return ok;
  }

  /** One call.write, counted in `ahead` until the call has written it out. */
  private writeCounted(call: ClientDuplexStream<Buffer, Buffer>, bytes: Buffer): boolean {
    const ahead = this.ahead;
    const n = bytes.length;
    ahead.bytes += n;
    return call.write(bytes, () => this.onWritten(ahead, n));
  }

  /** A write of `n` bytes left the call: below WRITE_AHEAD_BYTES, the link takes frames again. */
  private onWritten(ahead: WriteAhead, n: number): void {
    const before = ahead.bytes;
    ahead.bytes = before - n;
    if (ahead !== this.ahead || before < WRITE_AHEAD_BYTES || ahead.bytes >= WRITE_AHEAD_BYTES) {
      return;
    }
    this.writePending();
    this.queue.resume();
  }

  private onCallEnded(call: ClientDuplexStream<Buffer, Buffer>, s: StatusObject): void {
    if (this.call !== call) return;
    this.call = null;
    if (this.downSince < 0) this.downSince = Date.now();
    this.established = false;
    this.lastStatus = `${GrpcStatus[s.code] ?? s.code}: ${s.details}`;
    if (this.closed || this.failure !== null) return;
    if (tracer.enabled) tracer.log(`${this.name}: call ended (${this.lastStatus})`);
    if (!this.config.reliable && this.counters.framesSent > 0) {
      // Without acks nobody knows what the broken call delivered: say so instead of guessing.
      this.fail(
        new LinkClosedError(
          this.name,
          `the call ended (${this.lastStatus}) and reliability is off: frames in flight may be lost`,
          this.queue.queued,
        ),
      );
      return;
    }
    if (s.code === GrpcStatus.DATA_LOSS) {
      // The receiver refused one of our frames; resending the same bytes cannot succeed.
      this.fail(
        new LinkClosedError(
          this.name,
          `the peer rejected a frame (${s.details})`,
          this.unacknowledged,
        ),
      );
      return;
    }
    this.armDeadline();
    const delay = this.backoffMs * (0.5 + Math.random() / 2);
    this.backoffMs = Math.min(this.backoffMs * 2, this.config.backoffMaxMs);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.failure !== null || this.closed) return;
      this.counters.reconnects++;
      this.openCall();
    }, delay);
  }

  private armDeadline(): void {
    if (this.deadlineTimer !== null) return;
    this.deadlineTimer = setTimeout(() => {
      this.deadlineTimer = null;
      if (this.established) return;
      this.fail(
        new LinkClosedError(
          this.name,
          `no call to ${this.config.address} was established for ${this.config.peerDeadlineMs} ms ` +
            `(last status ${this.lastStatus}); check that the peer runs and is reachable`,
          this.unacknowledged,
        ),
      );
    }, this.config.peerDeadlineMs);
  }

  /** Bad bytes from the peer on our own call: report, then fail the link (it cannot be trusted). */
  private protocolError(err: unknown): void {
    const e = err instanceof DiscoError ? err : new FrameCorruptError(this.name, String(err));
    this.report(e);
    this.fail(
      new LinkClosedError(this.name, `the peer sent bad data: ${e.message}`, this.unacknowledged),
    );
  }

  /** Fails the link for good: later sends throw `err`, which is reported once. */
  private fail(err: DiscoError): void {
    if (this.failure !== null) return;
    this.failure = err;
    this.queue.fail(err);
    this.report(err);
    this.shutdown();
  }

  private shutdown(): void {
    for (const t of [this.reconnectTimer, this.deadlineTimer, this.holdTimer]) {
      if (t !== null) clearTimeout(t);
    }
    this.reconnectTimer = this.deadlineTimer = this.holdTimer = null;
    this.resend.clear();
    const call = this.call;
    this.call = null;
    if (call !== null) {
      if (this.closed) call.end();
      else call.cancel();
    }
    this.client.close();
    this.wakeSettled();
  }
}
