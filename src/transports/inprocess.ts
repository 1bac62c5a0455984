/**
 * InProcessTransport: delivery to NodeControllers in the same process (SPEC A8).
 *
 * Messages are handed over by reference, never serialized, asynchronously in
 * batches (DeliveryQueue): FIFO per sender/target pair within each lane, promises
 * before queued events, never re-entrant into the sender's stack. A NodeController
 * pushes straight into the queue through `directRoute`; `sendEvent`/`sendPromise`
 * queue whole envelopes (other senders, and the viaWire mode below).
 *
 * With `viaWire: true` every envelope instead takes the full cross-process path in
 * memory — serialized by the NodeController, encoded into a FlatBuffers frame,
 * sealed and verified by the native addon, decoded — before it is queued. That
 * mode exists to check, in one process, that an application's data and headers
 * survive the trip they will take between processes.
 */

import { EventEmitter } from 'node:events';
import {
  decodeFrame,
  EventEnvelope,
  FrameEncoder,
  Lane,
  type Envelope,
  type PromiseEnvelope,
} from '../envelope.js';
import { LinkClosedError } from '../errors.js';
import { assertFrame, sealFrame } from '../native.js';
import { DeliveryQueue, type QueueLimits } from './delivery-queue.js';
import { LocalNodes } from './local-nodes.js';
import type { DirectRoute, LocalNode, Transport, TransportMetrics } from './transport.js';

/** Options of an InProcessTransport. */
export interface InProcessTransportOptions extends QueueLimits {
  /** Round-trip every envelope through the wire format (serialize, frame, verify). */
  viaWire?: boolean;
}

/** Same-process transport; see the file header. */
export class InProcessTransport extends EventEmitter implements Transport {
  readonly name = 'inprocess';
  readonly carriesObjects: boolean;
  private readonly nodes = new LocalNodes();
  private readonly queue: DeliveryQueue;
  private readonly encoder: FrameEncoder | null;
  private bytesSent = 0;
  private closed = false;

  constructor(options: InProcessTransportOptions = {}) {
    super();
    this.queue = new DeliveryQueue('inprocess', options);
    this.queue.on('drain', () => this.emit('drain'));
    this.carriesObjects = options.viaWire !== true;
    this.encoder = options.viaWire === true ? new FrameEncoder() : null;
  }

  get writable(): boolean {
    return this.queue.writable;
  }

  attach(node: LocalNode): void {
    this.nodes.attach(node);
  }

  detach(node: LocalNode): void {
    this.nodes.detach(node);
  }

  handlesNode(repid: number, node: string): boolean {
    return this.nodes.has(repid, node);
  }

  /** The queue and receiving node, unless envelopes must take the wire path (viaWire). */
  directRoute(repid: number, node: string): DirectRoute | null {
    if (this.encoder !== null || this.closed) return null;
    const sink = this.nodes.get(repid, node);
    return sink === undefined ? null : { queue: this.queue, sink };
  }

  sendEvent(env: EventEnvelope): void {
    const sink = this.sinkFor(env);
    const delivered = this.encoder === null ? env : (this.roundTrip(env) as EventEnvelope);
    this.queue.pushEvent(delivered, sink);
  }

  sendPromise(env: PromiseEnvelope): void {
    const sink = this.sinkFor(env);
    const delivered = this.encoder === null ? env : (this.roundTrip(env) as PromiseEnvelope);
    this.queue.pushPromise(delivered, sink);
  }

  flush(): Promise<void> {
    return this.queue.flushed();
  }

  metrics(): TransportMetrics {
    return {
      name: this.name,
      eventsSent: this.queue.eventsPushed,
      promisesSent: this.queue.promisesPushed,
      eventsDelivered: this.queue.eventsDelivered,
      promisesDelivered: this.queue.promisesDelivered,
      bytesSent: this.bytesSent,
      queued: this.queue.queued,
      backpressureEvents: this.queue.backpressureEvents,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.queue.close(new LinkClosedError(this.name, 'the transport was closed'));
    await this.queue.flushed();
  }

  private sinkFor(env: Envelope): LocalNode {
    if (this.closed) throw new LinkClosedError(this.name, 'the transport was closed');
    const sink = this.nodes.get(env.repid, env.targetNode);
    if (sink === undefined) {
      // The router only routes here nodes we handle; a detach in between lands here.
      throw new LinkClosedError(
        this.name,
        `node ${JSON.stringify(env.targetNode)} (repid ${env.repid}) is no longer in this process`,
      );
    }
    return sink;
  }

  /** Encodes, seals, verifies and decodes one envelope, as a cross-process link would. */
  private roundTrip(env: Envelope): Envelope {
    const lane = env instanceof EventEnvelope ? Lane.Event : Lane.Promise;
    const frame = this.encoder!.encode([env], lane, 0n, 0n);
    sealFrame(frame);
    assertFrame(frame, this.name);
    this.bytesSent += frame.length;
    let decoded: Envelope | undefined;
    decodeFrame(frame, (e) => {
      decoded = e;
    });
    return decoded!;
  }
}
