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
 * BackpressureError and nothing is queued. Lanes are double-buffered arrays, so a
 * steady stream allocates nothing per batch.
 */

import { EventEmitter } from 'node:events';
import type { EventEnvelope, PromiseEnvelope } from '../envelope.js';
import { BackpressureError } from '../errors.js';
import type { LocalNode } from './transport.js';

/** Default count above which the queue reports `writable === false`. */
export const DEFAULT_HIGH_WATER_MARK_MESSAGES = 64 * 1024;
/** Default count at which sends throw BackpressureError. */
export const DEFAULT_HARD_LIMIT_MESSAGES = 1024 * 1024;

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

/** Two-lane, batched, bounded queue of envelopes bound for LocalNodes of this process. */
export class DeliveryQueue extends EventEmitter {
  private promises: PromiseEnvelope[] = [];
  private promiseSinks: LocalNode[] = [];
  private events: EventEnvelope[] = [];
  private eventSinks: LocalNode[] = [];
  private sparePromises: PromiseEnvelope[] = [];
  private sparePromiseSinks: LocalNode[] = [];
  private spareEvents: EventEnvelope[] = [];
  private spareEventSinks: LocalNode[] = [];
  private scheduled = false;
  private blocked = false;
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

  /** Queues an event for `sink`. @throws {BackpressureError} at the hard limit. */
  pushEvent(env: EventEnvelope, sink: LocalNode): void {
    this.admit();
    this.eventsPushed++;
    this.events.push(env);
    this.eventSinks.push(sink);
  }

  /** Queues a promise for `sink`. @throws {BackpressureError} at the hard limit. */
  pushPromise(env: PromiseEnvelope, sink: LocalNode): void {
    this.admit();
    this.promisesPushed++;
    this.promises.push(env);
    this.promiseSinks.push(sink);
  }

  /** Resolves after the batch that hands over everything queued now. */
  flushed(): Promise<void> {
    if (this.queued === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Makes later pushes throw `err`; what is queued is still handed over. */
  close(err: Error): void {
    this.closedWith = err;
  }

  private admit(): void {
    if (this.closedWith !== null) throw this.closedWith;
    if (this.queued >= this.hardLimit) {
      throw new BackpressureError(this.name, this.hardLimit, 'messages');
    }
    this.queued++;
    if (this.queued > this.highWaterMark && !this.blocked) {
      this.blocked = true;
      this.backpressureEvents++;
    }
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.runBatch);
    }
  }

  private readonly runBatch = (): void => {
    this.scheduled = false;
    const promises = this.promises;
    const promiseSinks = this.promiseSinks;
    const events = this.events;
    const eventSinks = this.eventSinks;
    this.promises = this.sparePromises;
    this.promiseSinks = this.sparePromiseSinks;
    this.events = this.spareEvents;
    this.eventSinks = this.spareEventSinks;
    const waiters = this.waiters;
    this.waiters = [];

    // Sinks never throw (LocalNode contract), so no try/catch is needed here.
    for (let i = 0; i < promises.length; i++) promiseSinks[i]!.deliverPromise(promises[i]!);
    for (let i = 0; i < events.length; i++) eventSinks[i]!.deliverEvent(events[i]!);

    const handed = promises.length + events.length;
    this.queued -= handed;
    this.promisesDelivered += promises.length;
    this.eventsDelivered += events.length;
    promises.length = 0;
    promiseSinks.length = 0;
    events.length = 0;
    eventSinks.length = 0;
    this.sparePromises = promises;
    this.sparePromiseSinks = promiseSinks;
    this.spareEvents = events;
    this.spareEventSinks = eventSinks;

    for (const resolve of waiters) resolve();
    if (this.blocked && this.queued <= this.highWaterMark) {
      this.blocked = false;
      this.emit('drain');
    }
  };
}
