/**
 * The outbound half of a framed link (Unix socket, shared-memory ring, gRPC stream):
 * two bounded lanes batched into frames once per event-loop turn (DESIGN §4, §7).
 *
 * - Sends append to the promise lane or the event lane; a `setImmediate` pump then
 *   hands the channel whole frames, promise lane first, so promises overtake queued
 *   events but never each other, and each lane stays FIFO. A channel that asks for it
 *   (`writesAtOnce`) gets a send that finds the link idle (nothing queued, no pump
 *   pending) at once, inside `push`; the order is the same, since nothing waits.
 * - The framed transports call `flushNow()` after delivering a received batch or frame:
 *   answers sent from inboxes meanwhile leave then, together, not at the pump.
 * - A frame takes up to `maxFrameEnvelopes` envelopes or `maxFrameBytes` (estimated),
 *   whichever comes first; a single larger envelope goes alone.
 * - The channel says when it cannot take more (`ready === false`: socket buffer or ring
 *   full); envelopes then wait here. Above the high-water marks (bytes or count)
 *   `writable` is false, and 'drain' is emitted when the pump brings the queue back
 *   under them. At a hard limit `push` throws BackpressureError and queues nothing.
 *   An event larger than the byte limit is still accepted when the event lane is
 *   empty, so no message is refused for its size alone. Promises (small, urgent) are
 *   refused only at the message limit, so a large queued event never blocks them.
 * - `fail(err)` (peer dead, link closed) makes every later push throw `err`, releases
 *   `flushed()` waiters, and returns how many accepted envelopes were never handed to
 *   the channel, for the owner to report. A channel whose `writeFrame` throws fails
 *   the link the same way, with 'failed' emitted for the owner to report.
 */

import { EventEmitter } from 'node:events';
import { EventEnvelope, Lane, type Envelope } from '../envelope.js';
import { BackpressureError, LinkClosedError, type DiscoError } from '../errors.js';
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
   * Writes a prefix of `envelopes[start, end)` of one lane as one frame and returns how
   * many it took (a ring may have room for fewer). Taking fewer than offered means the
   * channel is full: the queue keeps the rest, in order, until `resume()`.
   */
  writeFrame(lane: Lane, envelopes: readonly Envelope[], start: number, end: number): number;
}

const DEFAULTS: Required<LinkLimits> = {
  highWaterMarkBytes: 16 * 1024 * 1024,
  hardLimitBytes: 256 * 1024 * 1024,
  highWaterMarkMessages: 64 * 1024,
  hardLimitMessages: 1024 * 1024,
  maxFrameEnvelopes: 4096,
  maxFrameBytes: 1024 * 1024,
};

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

class LaneQueue {
  items: Envelope[] = [];
  head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(env: Envelope): void {
    this.items.push(env);
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
}

/** Two-lane bounded outbound queue of one link; see the file header. */
export class OutboundQueue extends EventEmitter {
  readonly limits: Required<LinkLimits>;
  private readonly lanes = [new LaneQueue(), new LaneQueue()]; // indexed by Lane
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
    return this.lanes[Lane.Promise]!.length + this.lanes[Lane.Event]!.length;
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
   * Accepts an envelope for its lane.
   * @throws {BackpressureError} at a hard limit; the link's failure once it has failed.
   */
  push(env: Envelope): void {
    if (this.failure !== null) throw this.failure;
    const limits = this.limits;
    let lane: Lane;
    let size = ENVELOPE_OVERHEAD_BYTES; // as estimateBytes(env), without a second type test
    if (env instanceof EventEnvelope) {
      lane = Lane.Event;
      if (env.payload !== null) size += env.payload.length;
    } else {
      lane = Lane.Promise;
    }
    const count = this.queued;
    if (count >= limits.hardLimitMessages) {
      throw new BackpressureError(this.name, limits.hardLimitMessages, 'messages');
    }
    const bytes = this.queuedBytes + size;
    if (lane === Lane.Event && bytes > limits.hardLimitBytes && this.lanes[lane]!.length > 0) {
      throw new BackpressureError(this.name, limits.hardLimitBytes, 'bytes');
    }
    this.lanes[lane]!.push(env);
    this.queuedBytes = bytes;
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
    const lost = this.queued;
    for (const lane of this.lanes) {
      lane.items = [];
      lane.head = 0;
    }
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
    while (this.failure === null && this.channel.ready && this.queued > 0) {
      const lane = this.lanes[Lane.Promise]!.length > 0 ? Lane.Promise : Lane.Event;
      if (!this.write(lane)) break; // the channel is full; it calls resume()
    }
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

  /**
   * Offers the channel one frame's worth of `lane`; returns false when it took less or
   * threw. A channel that throws cannot be trusted with the rest: the link fails, the
   * process lives on.
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

  /** Offers the channel one frame's worth of `lane`; returns false when it took less. */
  private writeOne(lane: Lane): boolean {
    const q = this.lanes[lane]!;
    const start = q.head;
    let end = start;
    let bytes = 0;
    const limit = Math.min(q.items.length, start + this.limits.maxFrameEnvelopes);
    if (
      limit === q.items.length &&
      this.lanes[lane === Lane.Event ? Lane.Promise : Lane.Event]!.length === 0 &&
      this.queuedBytes <= this.limits.maxFrameBytes
    ) {
      // All that is queued is this lane's and fits one frame: no need to size each envelope.
      end = limit;
      bytes = this.queuedBytes;
    }
    while (end < limit) {
      const size = estimateBytes(q.items[end]!);
      if (end > start && bytes + size > this.limits.maxFrameBytes) break;
      bytes += size;
      end++;
    }
    const taken = this.channel.writeFrame(lane, q.items, start, end);
    if (!Number.isInteger(taken) || taken < 0 || taken > end - start) {
      throw new RangeError(`channel took ${taken} of ${end - start} envelopes`);
    }
    if (taken === end - start) this.queuedBytes -= bytes;
    else for (let i = start; i < start + taken; i++) this.queuedBytes -= estimateBytes(q.items[i]!);
    q.head = start + taken;
    if (taken > 0) this.framesWritten++;
    this.envelopesWritten += taken;
    q.compact();
    return taken === end - start;
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
