/**
 * The asynchronous, batched hand-over used for same-process delivery (DESIGN §7).
 *
 * Sends append to one of two lanes; one `setImmediate` per batch then hands every
 * queued promise over, then every queued event. So:
 * - delivery is never re-entrant into the sender's stack;
 * - within a lane, order is the order of sends (FIFO for every sender/target pair);
 * - a promise queued in the same batch as earlier events is handed over first (SPEC S5);
 * - sends made by inboxes during a batch go into the next batch, and the event loop
 *   gets a turn in between (timers and I/O are not starved by a busy simulation).
 *
 * The queue is bounded by message count: above `highWaterMark` it is not writable
 * and emits 'drain' once a batch brings it back under; at `hardLimit` a send throws
 * BackpressureError and nothing is queued.
 *
 * Layout: a lane holds its messages in columns (target, event data or promise seqnr,
 * epoch, promise count) and a list of runs: consecutive messages with the same sender
 * and headers share one run. A send between two NodeControllers (`pushLocalEvent`)
 * so stores three values, and the object its inbox receives (InProcessEvent) is built
 * when the batch is handed over: a whole batch is never live as objects when the
 * scavenger runs, and an event the inbox drops dies young. Envelopes a transport queues whole (`pushEvent`) take the same lanes, so
 * order holds across both kinds of push. The lanes are double-buffered and keep their
 * arrays between batches (setting an array's length to 0 would free its backing store,
 * which the next batch would then grow again from nothing).
 */

import { EventEmitter } from 'node:events';
import type { NodeRef } from '../address.js';
import {
  InProcessEvent,
  InProcessPromise,
  type EventEnvelope,
  type Headers,
  type IncomingEvent,
  type IncomingPromise,
  type PromiseEnvelope,
  type Seqnr,
} from '../envelope.js';
import { BackpressureError } from '../errors.js';
import type { LocalNode } from './local-node.js';

/** Default count above which the queue reports `writable === false`. */
export const DEFAULT_HIGH_WATER_MARK_MESSAGES = 64 * 1024;
/** Default count at which sends throw BackpressureError. */
export const DEFAULT_HARD_LIMIT_MESSAGES = 1024 * 1024;
/** Lane arrays longer than this are dropped after a batch that used under a quarter of them. */
const LANE_KEEP_ENTRIES = 64 * 1024;

/** Bounds of a DeliveryQueue, in messages. */
export interface QueueLimits {
  /** Above this many queued messages, `writable` is false. Default 65536. */
  highWaterMark?: number;
  /** At this many queued messages, sends throw BackpressureError. Default 1048576. */
  hardLimit?: number;
}

/** Resolves limits with defaults and checks that they make sense. */
export function resolveLimits(limits: QueueLimits | undefined): Required<QueueLimits> {
  const highWaterMark = limits?.highWaterMark ?? DEFAULT_HIGH_WATER_MARK_MESSAGES;
  const hardLimit = limits?.hardLimit ?? Math.max(DEFAULT_HARD_LIMIT_MESSAGES, highWaterMark);
  if (!Number.isInteger(highWaterMark) || highWaterMark < 1) {
    throw new RangeError(`highWaterMark must be a positive integer, got ${highWaterMark}`);
  }
  if (!Number.isInteger(hardLimit) || hardLimit < highWaterMark) {
    throw new RangeError(`hardLimit must be an integer >= highWaterMark, got ${hardLimit}`);
  }
  return { highWaterMark, hardLimit };
}

/** A LocalNode that also takes the in-process message objects: a NodeController. */
export interface InProcessSink extends LocalNode {
  deliverEvent(env: IncomingEvent): void;
  deliverPromise(env: IncomingPromise): void;
}

/**
 * A same-process route from one sending node to one simproc of `sink`: a send along
 * it is a push of its fields into `queue`. The sender caches one per target.
 */
export class LocalTarget {
  constructor(
    readonly queue: DeliveryQueue,
    readonly sink: InProcessSink,
    readonly simproc: string,
    /** The sender's replication; in-process routes never cross replications. */
    readonly repid: number,
  ) {}
}

/**
 * Consecutive messages of a lane with the same sender and headers (in-process sends),
 * or envelopes queued whole (`sender` null).
 */
class Run {
  constructor(
    readonly sender: NodeRef | null,
    readonly headers: Headers | null,
    /** Index of the run's first message. */
    readonly start: number,
  ) {}
}

/**
 * One lane of a batch, in columns. Message i goes to `targets[i]` (a LocalTarget, or
 * the LocalNode of an envelope queued whole) and is `items[i]` (event data, a
 * promise's seqnr, or the envelope), `epochs[i]` and, for promises, `counts[i]`
 * (numEvents). Senders and headers rarely change between sends, so they are kept per
 * run rather than per message.
 */
class Lane {
  items: unknown[] = [];
  targets: (LocalTarget | LocalNode | undefined)[] = [];
  epochs: number[] = [];
  counts: number[] = [];
  runs: (Run | undefined)[] = [];
  length = 0;
  runCount = 0;
  last: Run | null = null;

  /** Appends a message; it starts a new run unless sender and headers are the previous ones. */
  add(
    target: LocalTarget | LocalNode,
    sender: NodeRef | null,
    headers: Headers | null,
    item: unknown,
    epoch: number,
  ): number {
    const n = this.length;
    const run = this.last;
    if (run === null || run.sender !== sender || run.headers !== headers) {
      this.startRun(new Run(sender, headers, n));
    }
    this.targets[n] = target;
    this.items[n] = item;
    this.epochs[n] = epoch;
    this.length = n + 1;
    return n;
  }

  /** End (exclusive) of run `r`. */
  end(r: number): number {
    return r + 1 < this.runCount ? this.runs[r + 1]!.start : this.length;
  }

  /** Forgets the messages; keeps the arrays unless they are much larger than the batch was. */
  clear(): void {
    const n = this.length;
    if (this.items.length > LANE_KEEP_ENTRIES && n * 4 < this.items.length) {
      this.items = [];
      this.targets = [];
      this.epochs = [];
      this.counts = [];
      this.runs = [];
    } else {
      // The hand-over dropped the references to messages; runs are few.
      this.runs.fill(undefined, 0, this.runCount);
    }
    this.length = 0;
    this.runCount = 0;
    this.last = null;
  }

  private startRun(run: Run): void {
    this.runs[this.runCount++] = run;
    this.last = run;
  }
}

/** Two-lane, batched, bounded queue of messages bound for LocalNodes of this process. */
export class DeliveryQueue extends EventEmitter {
  private promises = new Lane();
  private events = new Lane();
  private sparePromises = new Lane();
  private spareEvents = new Lane();
  private scheduled = false;
  private blocked = false;
  /** A push while `queued` is below this needs no other check (see `admit`). */
  private fastLimit = 0;
  private waiters: (() => void)[] = [];
  private closedWith: Error | null = null;
  private readonly highWaterMark: number;
  private readonly hardLimit: number;
  /** Messages queued and not yet handed over. */
  queued = 0;
  promisesPushed = 0;
  eventsPushed = 0;
  promisesDelivered = 0;
  eventsDelivered = 0;
  backpressureEvents = 0;

  constructor(
    private readonly name: string,
    limits?: QueueLimits,
  ) {
    super();
    const resolved = resolveLimits(limits);
    this.highWaterMark = resolved.highWaterMark;
    this.hardLimit = resolved.hardLimit;
  }

  /** False while more than `highWaterMark` messages wait. */
  get writable(): boolean {
    return this.queued <= this.highWaterMark;
  }

  /**
   * Queues an event from one NodeController to another (or itself); the sink receives
   * an InProcessEvent. @throws {BackpressureError} at the hard limit.
   */
  pushLocalEvent(
    target: LocalTarget,
    sender: NodeRef,
    epoch: number,
    headers: Headers,
    data: unknown,
  ): void {
    this.admit();
    this.eventsPushed++;
    this.events.add(target, sender, headers, data, epoch);
  }

  /** Queues a promise between NodeControllers; see `pushLocalEvent`. */
  pushLocalPromise(
    target: LocalTarget,
    sender: NodeRef,
    seqnr: Seqnr,
    epoch: number,
    numEvents: number,
  ): void {
    this.admit();
    this.promisesPushed++;
    const lane = this.promises;
    lane.counts[lane.add(target, sender, null, seqnr, epoch)] = numEvents;
  }

  /** Queues an event envelope, handed to `sink` as it is. @throws {BackpressureError} at the hard limit. */
  pushEvent(env: EventEnvelope, sink: LocalNode): void {
    this.admit();
    this.eventsPushed++;
    this.events.add(sink, null, null, env, env.epoch);
  }

  /** Queues a promise envelope, handed to `sink` as it is. @throws {BackpressureError} at the hard limit. */
  pushPromise(env: PromiseEnvelope, sink: LocalNode): void {
    this.admit();
    this.promisesPushed++;
    const lane = this.promises;
    lane.counts[lane.add(sink, null, null, env, env.epoch)] = env.numEvents;
  }

  /** Resolves after the batch that hands over everything queued now. */
  flushed(): Promise<void> {
    if (this.queued === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Makes later pushes throw `err`; what is queued is still handed over. */
  close(err: Error): void {
    this.closedWith = err;
    this.fastLimit = 0;
  }

  /**
   * Counts a message in, or throws having changed nothing. One comparison while a batch
   * is scheduled and the count is below the next mark: `fastLimit` is 0 when no batch
   * is scheduled or the queue is closed, else the count at which the state changes.
   */
  private admit(): void {
    const queued = this.queued;
    if (queued >= this.fastLimit) this.admitSlowly(queued);
    this.queued = queued + 1;
  }

  private admitSlowly(queued: number): void {
    if (this.closedWith !== null) throw this.closedWith;
    if (queued >= this.hardLimit) {
      throw new BackpressureError(this.name, this.hardLimit, 'messages');
    }
    if (queued + 1 > this.highWaterMark && !this.blocked) {
      this.blocked = true;
      this.backpressureEvents++;
    }
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.runBatch);
    }
    this.refreshFastLimit();
  }

  private refreshFastLimit(): void {
    if (!this.scheduled || this.closedWith !== null) this.fastLimit = 0;
    else this.fastLimit = this.blocked ? this.hardLimit : this.highWaterMark;
  }

  private readonly runBatch = (): void => {
    this.scheduled = false;
    this.fastLimit = 0;
    const promises = this.promises;
    const events = this.events;
    this.promises = this.sparePromises;
    this.events = this.spareEvents;
    // Waiters that arrive during the hand-over wait for the next batch.
    const waiters = this.waiters;
    const waiting = waiters.length;
    if (waiting !== 0) this.waiters = [];

    // Sinks never throw (LocalNode contract), so no try/catch is needed here.
    for (let r = 0; r < promises.runCount; r++) deliverPromises(promises, r);
    for (let r = 0; r < events.runCount; r++) deliverEvents(events, r);

    this.queued -= promises.length + events.length;
    this.promisesDelivered += promises.length;
    this.eventsDelivered += events.length;
    promises.clear();
    events.clear();
    this.sparePromises = promises;
    this.spareEvents = events;

    for (let i = 0; i < waiting; i++) waiters[i]!();
    if (this.blocked && this.queued <= this.highWaterMark) {
      this.blocked = false;
      this.refreshFastLimit();
      this.emit('drain');
    } else {
      this.refreshFastLimit();
    }
  };
}

/** Hands run `r` of an event lane to its sinks. */
function deliverEvents(lane: Lane, r: number): void {
  const run = lane.runs[r]!;
  const end = lane.end(r);
  const { items, targets } = lane;
  const sender = run.sender;
  if (sender === null) {
    for (let i = run.start; i < end; i++) {
      const env = items[i] as EventEnvelope;
      const sink = targets[i] as LocalNode;
      items[i] = targets[i] = undefined;
      sink.deliverEvent(env);
    }
    return;
  }
  const headers = run.headers!;
  const epochs = lane.epochs;
  for (let i = run.start; i < end; i++) {
    const t = targets[i] as LocalTarget;
    const data = items[i];
    // The lane drops its references as it goes (user data can be large); the arrays stay.
    items[i] = targets[i] = undefined;
    t.sink.deliverEvent(new InProcessEvent(t.repid, sender, t.simproc, epochs[i]!, headers, data));
  }
}

/** Hands run `r` of a promise lane to its sinks. */
function deliverPromises(lane: Lane, r: number): void {
  const run = lane.runs[r]!;
  const end = lane.end(r);
  const { items, targets } = lane;
  const sender = run.sender;
  if (sender === null) {
    for (let i = run.start; i < end; i++) {
      const env = items[i] as PromiseEnvelope;
      const sink = targets[i] as LocalNode;
      items[i] = targets[i] = undefined;
      sink.deliverPromise(env);
    }
    return;
  }
  const { epochs, counts } = lane;
  for (let i = run.start; i < end; i++) {
    const t = targets[i] as LocalTarget;
    const seqnr = items[i] as Seqnr;
    items[i] = targets[i] = undefined;
    t.sink.deliverPromise(
      new InProcessPromise(t.repid, sender, t.simproc, seqnr, epochs[i]!, counts[i]!),
    );
  }
}
