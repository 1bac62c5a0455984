/**
 * The outbound half of a framed link (Unix socket, shared-memory ring, gRPC stream):
 * two bounded lanes batched into frames once per event-loop turn (DESIGN §4, §7).
 *
 * - Sends append to the promise lane or the event lane; a `setImmediate` pump then
 *   hands the channel whole frames, promise lane first, so promises overtake queued
 *   events but never each other, and each lane stays FIFO. A channel that asks for it
 *   (`writesAtOnce`) gets a send that finds the link idle (nothing queued, no pump
 *   pending) at once, inside `push`; the order is the same, since nothing waits.
 * - A send is staged at once: its fields go straight into its lane's BatchWriter (the
 *   staging layout the native encoder builds a frame from), with no envelope object
 *   kept (`pushEvent`) and no second pass at the pump. Each lane has its own writer,
 *   and so its own string table, since the lanes' batches are written out of staging
 *   order. What cannot join the staged batch (it is full while the channel cannot
 *   take it) waits as envelope objects behind it, and is staged when the batch has
 *   left; so the staged batch always holds the oldest messages of its lane.
 * - The framed transports call `flushNow()` after delivering a received batch or frame:
 *   answers sent from inboxes meanwhile leave then, together, not at the pump.
 * - A frame takes up to `maxFrameEnvelopes` envelopes or `maxFrameBytes` (estimated),
 *   whichever comes first; a single larger envelope goes alone. A full staged batch is
 *   written at once when the channel can take it.
 * - The channel says when it cannot take more (`ready === false`, or a batch refused:
 *   socket buffer or ring full); messages then wait here. Above the high-water marks
 *   (bytes or count) `writable` is false, and 'drain' is emitted when the pump brings
 *   the queue back under them. At a hard limit a send throws BackpressureError and
 *   queues nothing. An event larger than the byte limit is still accepted when the
 *   event lane is empty, so no message is refused for its size alone. Promises (small,
 *   urgent) are refused only at the message limit, so a large queued event never
 *   blocks them.
 * - `fail(err)` (peer dead, link closed) makes every later push throw `err`, releases
 *   `flushed()` waiters, and returns how many accepted envelopes were never handed to
 *   the channel, for the owner to report. A channel whose `writeBatch` throws fails
 *   the link the same way, with 'failed' emitted for the owner to report.
 */

import { EventEmitter } from 'node:events';
import type { NodeRef } from '../address.js';
import {
  DataFormat,
  EventEnvelope,
  Lane,
  PromiseEnvelope,
  type Envelope,
  type Headers,
} from '../envelope.js';
import { BackpressureError, LinkClosedError, type DiscoError } from '../errors.js';
import { BatchWriter } from '../native-batch.js';
import { stageEnvelope } from './batch-frames.js';
import type { TransportMetrics } from './transport.js';

/** Bounds and batching of a link's outbound queue. */
export interface LinkLimits {
  /** Queued bytes above which `writable` is false. Default 16 MiB. */
  highWaterMarkBytes?: number;
  /** Queued bytes at which sends throw BackpressureError. Default 256 MiB. */
  hardLimitBytes?: number;
  /** Queued messages above which `writable` is false. Default 65536. */
  highWaterMarkMessages?: number;
  /** Queued messages at which sends throw BackpressureError. Default 1048576. */
  hardLimitMessages?: number;
  /** Most envelopes in one frame. Default 4096. */
  maxFrameEnvelopes?: number;
  /** Estimated bytes after which a frame is closed. Default 1 MiB. */
  maxFrameBytes?: number;
}

/** Where an OutboundQueue puts frames. */
export interface LinkChannel {
  /** False while the channel cannot take another frame; it calls `resume()` when it can. */
  readonly ready: boolean;
  /**
   * True when a send that finds the queue empty and no pump pending may be written at
   * once, inside `push` (request/response traffic: no turn to wait for). Sends later in
   * the same turn still wait for the pump and share a frame. Absent means false.
   */
  readonly writesAtOnce?: boolean;
  /**
   * Writes the batch `writer` has staged (`count` envelopes of `lane`; `writer.finish()`
   * gives the staging layout) as one frame. Returns true when it took the batch, false when
   * it is full: the queue then keeps the batch, may add to it, and offers it again after
   * `resume()`. The writer is the lane's for the queue's whole life, so its string table is
   * a conversation with whatever encoder the channel uses for that lane.
   */
  writeBatch(lane: Lane, writer: BatchWriter, count: number): boolean;
}

const DEFAULTS: Required<LinkLimits> = {
  highWaterMarkBytes: 16 * 1024 * 1024,
  hardLimitBytes: 256 * 1024 * 1024,
  highWaterMarkMessages: 64 * 1024,
  hardLimitMessages: 1024 * 1024,
  maxFrameEnvelopes: 4096,
  maxFrameBytes: 1024 * 1024,
};

/** Initial staging bytes of a promise lane's writer. */
const PROMISE_STAGING_BYTES = 4096;

/** Fixed per-envelope overhead assumed by the byte accounting (strings, table, vtable). */
const ENVELOPE_OVERHEAD_BYTES = 96;

/** Estimated frame bytes of one envelope, as the byte limits count them. */
export function estimateBytes(env: Envelope): number {
  if (env instanceof EventEnvelope) {
    return ENVELOPE_OVERHEAD_BYTES + (env.payload === null ? 0 : env.payload.length);
  }
  return ENVELOPE_OVERHEAD_BYTES;
}

/** Fills in defaults and checks that each high-water mark is at most its hard limit. */
export function resolveLinkLimits(limits: LinkLimits = {}): Required<LinkLimits> {
  const r = { ...DEFAULTS, ...limits };
  for (const [k, v] of Object.entries(r)) {
    if (!Number.isSafeInteger(v) || v < 1)
      throw new RangeError(`${k} must be a positive integer, got ${v}`);
  }
  if (r.highWaterMarkBytes > r.hardLimitBytes || r.highWaterMarkMessages > r.hardLimitMessages) {
    throw new RangeError('a high-water mark is above its hard limit');
  }
  return r;
}

/** One lane: the batch staged in its writer, then what waits behind it as envelopes. */
class LaneQueue {
  /** Its staging buffer starts small for promises (few, small) and grows as needed. */
  readonly writer: BatchWriter;
  /** Envelopes staged in `writer`'s batch: the lane's oldest, written before `items`. */
  staged = 0;
  /** Estimated bytes of the staged envelopes. */
  stagedBytes = 0;
  /** Accepted while the staged batch was full and the channel could not take it. */
  items: (Envelope | undefined)[] = [];
  head = 0;

  constructor(readonly lane: Lane) {
    this.writer = new BatchWriter(lane === Lane.Promise ? PROMISE_STAGING_BYTES : undefined);
    this.writer.begin(lane);
  }

  get length(): number {
    return this.staged + this.items.length - this.head;
  }

  /** True while nothing waits behind the staged batch: a send may join it. */
  get stagesNext(): boolean {
    return this.head === this.items.length;
  }

  /** The staged batch has left: the writer starts the next one. */
  written(): void {
    this.staged = 0;
    this.stagedBytes = 0;
    this.writer.begin(this.lane);
  }

  /** Drops taken items from the front once they are most of the array. */
  compact(): void {
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  /** Forgets everything: the link failed. */
  clear(): void {
    this.items = [];
    this.head = 0;
    this.staged = 0;
    this.stagedBytes = 0;
    this.writer.resetStrings(); // whatever the encoder holds of this batch is gone with it
    this.writer.begin(this.lane);
  }
}

/** Two-lane bounded outbound queue of one link; see the file header. */
export class OutboundQueue extends EventEmitter {
  readonly limits: Required<LinkLimits>;
  private readonly lanes = [new LaneQueue(Lane.Promise), new LaneQueue(Lane.Event)]; // by Lane
  private readonly events = this.lanes[Lane.Event]!;
  /** Messages queued in both lanes (their lengths' sum, kept: a send reads it). */
  private count = 0;
  private queuedBytes = 0;
  private scheduled = false;
  private blocked = false;
  private failure: DiscoError | null = null;
  private waiters: (() => void)[] = [];
  framesWritten = 0;
  envelopesWritten = 0;
  backpressureEvents = 0;

  constructor(
    private readonly name: string,
    private readonly channel: LinkChannel,
    limits?: LinkLimits,
  ) {
    super();
    this.limits = resolveLinkLimits(limits);
  }

  /** Messages accepted and not yet handed to the channel. */
  get queued(): number {
    return this.count;
  }

  get bytes(): number {
    return this.queuedBytes;
  }

  /**
   * False while above a high-water mark. A failed link is writable: waiting would never
   * end, and a send fails at once with the link's error instead.
   */
  get writable(): boolean {
    return (
      this.queuedBytes <= this.limits.highWaterMarkBytes &&
      this.queued <= this.limits.highWaterMarkMessages
    );
  }

  /**
   * Accepts an envelope for its lane (an event must carry its serialized `payload`).
   * @throws {BackpressureError} at a hard limit; the link's failure once it has failed;
   *   TypeError for an event without a payload.
   */
  push(env: Envelope): void {
    if (env instanceof EventEnvelope) {
      if (env.payload === null) throw new TypeError('event envelope has no serialized payload');
      this.pushEvent(
        env.repid,
        env.sender,
        env.targetNode,
        env.simproc,
        env.epoch,
        env.headers,
        env.payload,
        env.dataFormat,
        env.hops,
        env.replyTo,
        env,
      );
    } else {
      this.pushPromise(env);
    }
  }

  /**
   * Accepts an event from its fields: staged at once, without an envelope object unless it
   * has to wait behind a full batch (`env`, when the caller has one, is then kept as it is).
   * @throws as `push`; RangeError when the batch would define more strings than allowed.
   */
  pushEvent(
    repid: number,
    sender: NodeRef,
    targetNode: string,
    simproc: string,
    epoch: number,
    headers: Headers,
    payload: Uint8Array,
    dataFormat: DataFormat,
    hops: number,
    replyTo: NodeRef | null,
    env: EventEnvelope | null = null,
  ): void {
    const size = ENVELOPE_OVERHEAD_BYTES + payload.length;
    const q = this.events;
    const staged = this.stages(q, size);
    this.admit(q, size);
    if (staged) {
      // An add that throws leaves the batch whole (BatchWriter), so the send fails alone.
      q.writer.addEvent(
        repid,
        sender.node,
        sender.simproc,
        targetNode,
        simproc,
        epoch,
        headers,
        payload,
        dataFormat,
        hops,
        replyTo,
      );
      q.staged++;
      q.stagedBytes += size;
    } else {
      q.items.push(
        env ??
          new EventEnvelope(
            repid,
            sender,
            targetNode,
            simproc,
            epoch,
            headers,
            undefined,
            payload,
            dataFormat,
            hops,
            replyTo,
          ),
      );
    }
    this.accepted(Lane.Event, size);
  }

  /** Accepts a promise; staged at once as `pushEvent`. @throws as `push`. */
  pushPromise(env: PromiseEnvelope): void {
    const size = ENVELOPE_OVERHEAD_BYTES;
    const q = this.lanes[Lane.Promise]!;
    const staged = this.stages(q, size);
    this.admit(q, size);
    if (staged) {
      stageEnvelope(q.writer, env);
      q.staged++;
      q.stagedBytes += size;
    } else {
      q.items.push(env);
    }
    this.accepted(Lane.Promise, size);
  }

  /**
   * The checks before a message of `size` bytes joins `q`. Only events are refused for
   * bytes: promises are small and urgent.
   */
  private admit(q: LaneQueue, size: number): void {
    if (this.failure !== null) throw this.failure;
    const limits = this.limits;
    if (this.count >= limits.hardLimitMessages) {
      throw new BackpressureError(this.name, limits.hardLimitMessages, 'messages');
    }
    if (q === this.events && this.queuedBytes + size > limits.hardLimitBytes && q.length > 0) {
      throw new BackpressureError(this.name, limits.hardLimitBytes, 'bytes');
    }
  }

  /**
   * True when a message of `size` bytes is to join the staged batch of `q`: nothing waits
   * behind the batch, and it has room (a batch that is full is written first when the
   * channel can take it, promises first as at the pump, so the message starts the next).
   * Called before `admit`, which then sees what that write left, or the link's failure.
   */
  private stages(q: LaneQueue, size: number): boolean {
    if (!q.stagesNext) return false;
    if (this.fits(q, size)) return true;
    // Frames only: 'drain' and flushed() waiters wait for the pump, so no listener runs (and
    // sends) in the middle of this send.
    this.writeFrames();
    return q.staged === 0 && this.failure === null;
  }

  /** A message of `size` bytes joined `lane`. */
  private accepted(lane: Lane, size: number): void {
    const limits = this.limits;
    const bytes = (this.queuedBytes += size);
    const count = this.count++;
    if (
      !this.blocked &&
      (bytes > limits.highWaterMarkBytes || count + 1 > limits.highWaterMarkMessages)
    ) {
      this.blocked = true;
      this.backpressureEvents++;
    }
    const idle = !this.scheduled && count === 0;
    this.schedule(); // later sends of this turn wait for the pump
    if (idle && this.channel.writesAtOnce === true && this.channel.ready) this.write(lane);
  }

  /** True when a message of `size` bytes fits the staged batch of `q`. */
  private fits(q: LaneQueue, size: number): boolean {
    return (
      q.staged === 0 ||
      (q.staged < this.limits.maxFrameEnvelopes &&
        q.stagedBytes + size <= this.limits.maxFrameBytes)
    );
  }

  /** The channel can take frames again. */
  resume(): void {
    this.schedule();
  }

  /**
   * Resolves when everything accepted so far has been handed to the channel, or the
   * link has failed (what it lost is counted in the failure, which the owner reports).
   */
  flushed(): Promise<void> {
    if (this.failure !== null || this.queued === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * As `flushed()`, waiting at most `timeoutMs` (a link closing while its peer may not read):
   * resolves with how many messages are still queued then, 0 when all were handed over.
   */
  async flushedWithin(timeoutMs: number): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([this.flushed(), timedOut]);
    clearTimeout(timer);
    return this.failure === null ? this.queued : 0;
  }

  /**
   * Fails the link: later pushes throw `err`, `flushed()` waiters resolve (the owner reports `err`).
   * @returns how many accepted envelopes were never handed to the channel (they are dropped here
   *   and accounted for in the error the caller reports).
   */
  fail(err: DiscoError): number {
    if (this.failure !== null) return 0;
    this.failure = err;
    const lost = this.count;
    for (const lane of this.lanes) lane.clear();
    this.count = 0;
    this.queuedBytes = 0;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
    if (this.blocked) {
      this.blocked = false;
      this.emit('drain'); // wakes drained() waiters; their next send gets `err`
    }
    return lost;
  }

  private schedule(): void {
    if (this.scheduled || this.failure !== null) return;
    this.scheduled = true;
    setImmediate(this.pump);
  }

  /**
   * Writes what is queued now rather than at the pump, as one frame per lane where it fits:
   * a transport calls it when it has handed a received batch to its nodes, so that what
   * their inboxes sent in answer leaves together and at once, not a turn of the event loop
   * later (a reader that polls may keep the loop for many round trips before it yields).
   * The pump stays scheduled: later sends of this turn still wait for it, or for the next
   * `flushNow`.
   */
  flushNow(): void {
    if (this.queued > 0) this.writeQueued();
  }

  private readonly pump = (): void => {
    this.scheduled = false;
    this.writeQueued();
  };

  private writeQueued(): void {
    this.writeFrames();
    if (this.failure !== null) return;
    if (this.queued === 0) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const resolve of waiters) resolve();
    }
    if (this.blocked && this.writable) {
      this.blocked = false;
      this.emit('drain');
    }
  }

  /** Hands the channel frames, promise lane first, while it takes them. */
  private writeFrames(): void {
    while (this.failure === null && this.channel.ready && this.count > 0) {
      const lane = this.lanes[Lane.Promise]!.length > 0 ? Lane.Promise : Lane.Event;
      if (!this.write(lane)) break; // the channel is full; it calls resume()
    }
  }

  /**
   * Offers the channel one frame of `lane`; returns false when it did not take it or threw.
   * A channel that throws cannot be trusted with the rest: the link fails, the process
   * lives on.
   */
  private write(lane: Lane): boolean {
    try {
      return this.writeOne(lane);
    } catch (err) {
      const cause = err instanceof Error ? err.message : String(err);
      const failure = new LinkClosedError(
        this.name,
        `writing a frame failed: ${cause}`,
        this.queued,
      );
      this.fail(failure);
      this.emit('failed', failure);
      return false;
    }
  }

  /**
   * Stages what waits behind the staged batch of `lane` as far as the frame's limits allow,
   * then offers the batch to the channel; returns false when the channel did not take it.
   */
  private writeOne(lane: Lane): boolean {
    const q = this.lanes[lane]!;
    while (q.head < q.items.length) {
      const env = q.items[q.head]!;
      const size = estimateBytes(env);
      if (!this.fits(q, size)) break;
      stageEnvelope(q.writer, env);
      q.items[q.head++] = undefined;
      q.staged++;
      q.stagedBytes += size;
    }
    q.compact();
    const count = q.staged;
    if (count === 0) return true;
    if (!this.channel.writeBatch(lane, q.writer, count)) return false;
    this.queuedBytes -= q.stagedBytes;
    this.count -= count;
    q.written();
    this.framesWritten++;
    this.envelopesWritten += count;
    return true;
  }
}

/** Counts of a transport, to which `linkTransportMetrics` adds what its links hold. */
export interface TransportCounts {
  readonly eventsSent: number;
  readonly promisesSent: number;
  readonly eventsDelivered: number;
  readonly promisesDelivered: number;
}

/**
 * The metrics of a transport whose traffic goes through one OutboundQueue per peer:
 * its own counts plus the queued messages, bytes and back-pressure events of its links.
 */
export function linkTransportMetrics(
  name: string,
  counts: TransportCounts,
  links: Iterable<{ readonly queue: OutboundQueue; readonly bytesSent: number }>,
): TransportMetrics {
  let queued = 0;
  let bytesSent = 0;
  let backpressureEvents = 0;
  for (const l of links) {
    queued += l.queue.queued;
    bytesSent += l.bytesSent;
    backpressureEvents += l.queue.backpressureEvents;
  }
  return {
    name,
    eventsSent: counts.eventsSent,
    promisesSent: counts.promisesSent,
    eventsDelivered: counts.eventsDelivered,
    promisesDelivered: counts.promisesDelivered,
    bytesSent,
    queued,
    backpressureEvents,
  };
}
