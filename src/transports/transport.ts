/**
 * The transport interface every link implements (SPEC A10, C4), and the
 * receiving-side interface transports deliver to.
 *
 * A Router holds an ordered list of transports and asks each, in locality order,
 * whether it handles a node (`handlesNode`, pure and I/O-free, SPEC S2). The first
 * that does carries every envelope for that node until the address book changes.
 *
 * Contract for implementations:
 * - `sendEvent`/`sendPromise` are synchronous and either accept the envelope (it
 *   will be delivered exactly once, in FIFO order per lane and per sender/target
 *   node pair) or throw without side effects (BackpressureError, LinkClosedError).
 * - Promises travel on their own lane and may overtake queued events (SPEC S5).
 * - `writable` turns false above the high-water mark; 'drain' is emitted when it
 *   turns true again.
 * - A transport whose `carriesObjects` is false only sees events whose `payload`
 *   holds the serialized data (the NodeController serializes first).
 */

import type { NodeRef } from '../address.js';
import type { DataFormat, EventEnvelope, Headers, PromiseEnvelope } from '../envelope.js';
import type { DeliveryQueue } from './delivery-queue.js';
import type { LocalNode } from './local-node.js';

/** Counters every transport reports; plain data. */
export interface TransportMetrics {
  readonly name: string;
  readonly eventsSent: number;
  readonly promisesSent: number;
  readonly eventsDelivered: number;
  readonly promisesDelivered: number;
  readonly bytesSent: number;
  /** Envelopes accepted but not yet handed over. */
  readonly queued: number;
  /** Times `writable` turned false. */
  readonly backpressureEvents: number;
}

export type { LocalNode } from './local-node.js';

/** A same-process hand-over: push into `queue` for `sink`, as the transport would. */
export interface DirectRoute {
  readonly queue: DeliveryQueue;
  readonly sink: LocalNode;
}

/** A link to the nodes it handles. */
export interface Transport {
  /** Short stable name used in metrics and errors (`inprocess`, `shm`, `grpc`). */
  readonly name: string;
  /** True when envelopes are handed over by reference and data is never serialized. */
  readonly carriesObjects: boolean;
  /** False above the outbound high-water mark; see 'drain'. */
  readonly writable: boolean;
  /** Whether this transport carries traffic for `node` of replication `repid`. Pure, no I/O. */
  handlesNode(repid: number, node: string): boolean;
  /** Accepts an event for delivery. @throws {BackpressureError} at the hard limit. */
  sendEvent(env: EventEnvelope): void;
  /** Accepts a promise for delivery. @throws {BackpressureError} at the hard limit. */
  sendPromise(env: PromiseEnvelope): void;
  /**
   * For transports that serialize what they carry: as `sendEvent` of a new envelope with
   * these fields (no hops yet), without the envelope object, which a framed link would
   * only stage and drop. Optional; the NodeController uses it when present.
   */
  sendEventFields?(
    repid: number,
    sender: NodeRef,
    targetNode: string,
    simproc: string,
    epoch: number,
    headers: Headers,
    payload: Uint8Array,
    dataFormat: DataFormat,
    replyTo: NodeRef | null,
  ): void;
  /**
   * For transports that hand envelopes to NodeControllers of this process: the queue and
   * the receiving node for (repid, node), so a sender can push straight into the queue
   * (the same effect as `sendEvent`, one lookup less per message). Optional; null when
   * envelopes must take the transport's own path.
   */
  directRoute?(repid: number, node: string): DirectRoute | null;
  /** Registers a NodeController of this process as a delivery target (optional). */
  attach?(node: LocalNode): void;
  /** Removes a registration made with `attach`. */
  detach?(node: LocalNode): void;
  /**
   * Sets where received envelopes for nodes not attached here go (a gateway's
   * forwarder), or null to report them as undeliverable again. Optional.
   */
  setFallback?(sink: LocalNode | null): void;
  /**
   * Stops reading from peers until `resumeInbound` (a gateway whose next link is full):
   * what they send waits in their outbound queues and links, so back-pressure reaches
   * the senders instead of a queue growing here. Optional; idempotent.
   */
  pauseInbound?(): void;
  /** Reverses `pauseInbound`. */
  resumeInbound?(): void;
  /** Resolves once everything accepted so far has been handed over. */
  flush(): Promise<void>;
  metrics(): TransportMetrics;
  /** Stops accepting sends; idempotent. */
  close(): Promise<void>;
  /** 'drain': writable again. 'error': a link failed or a peer sent bad data (a DiscoError). */
  on(event: 'drain', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  off(event: 'drain', listener: () => void): unknown;
  off(event: 'error', listener: (err: Error) => void): unknown;
}
