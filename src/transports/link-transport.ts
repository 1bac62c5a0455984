/**
 * What the framed transports (Unix socket, shared-memory ring, gRPC) have in common: the
 * NodeControllers of this process they deliver to, one link per peer with its
 * OutboundQueue, the counts, and the way a send finds its link.
 *
 * - `locate(repid, node)` names the peer that hosts a node (pure, as the transports'
 *   options say); a run of sends to one node reuses the link found for the first.
 * - A link is made on the first send to its peer (`createLink`), and its queue's 'drain'
 *   becomes the transport's.
 * - Once `closing` is set, sends throw LinkClosedError; each subclass closes its links
 *   in its own way.
 */

import { EventEmitter } from 'node:events';
import type { NodeRef } from '../address.js';
import type { DataFormat, Envelope, EventEnvelope, Headers, PromiseEnvelope } from '../envelope.js';
import { emitError, LinkClosedError, UndeliverableError, type DiscoError } from '../errors.js';
import { LocalNodes } from './local-nodes.js';
import { linkTransportMetrics, type OutboundQueue } from './outbound-queue.js';
import type { LocalNode, TransportMetrics } from './transport.js';

/**
 * Default time a closing framed transport waits for its peers to take what is queued (its
 * `closeTimeoutMs` option) before it reports the rest as LinkClosedError.
 */
export const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;

/** A link as LinkTransport keeps it: its queue and what it has written. */
export interface TransportLink {
  readonly queue: OutboundQueue;
  readonly bytesSent: number;
}

/** The shared half of a framed transport; see the file header. */
export abstract class LinkTransport<L extends TransportLink> extends EventEmitter {
  abstract readonly name: string;
  readonly carriesObjects = false;
  protected readonly nodes = new LocalNodes();
  protected readonly links = new Map<string, L>();
  /** Set when `close()` starts: later sends throw LinkClosedError. */
  protected closing = false;
  private eventsSent = 0;
  private promisesSent = 0;
  // The link of the last send and the (repid, node) it went to.
  private lastLink: L | null = null;
  private lastRepid = -1;
  private lastNode = '';

  /**
   * @param locate - the peer hosting (repid, node), or undefined when another transport's. Pure.
   * @param self - this process's own peer name, which `locate` may return for its own nodes.
   */
  constructor(
    private readonly locate: (repid: number, node: string) => string | undefined,
    private readonly self: string,
  ) {
    super();
  }

  /** False while any link is above its high-water mark. */
  get writable(): boolean {
    for (const link of this.links.values()) if (!link.queue.writable) return false;
    return true;
  }

  attach(node: LocalNode): void {
    this.nodes.attach(node);
  }

  detach(node: LocalNode): void {
    this.nodes.detach(node);
  }

  setFallback(sink: LocalNode | null): void {
    this.nodes.setFallback(sink);
  }

  handlesNode(repid: number, node: string): boolean {
    const peer = this.locate(repid, node);
    return peer !== undefined && peer !== this.self;
  }

  /** @throws {BackpressureError} at the link's hard limit; {LinkClosedError} once it failed. */
  sendEvent(env: EventEnvelope): void {
    this.linkTo(env.repid, env.targetNode).queue.push(env);
    this.eventsSent++;
  }

  /** As `sendEvent`, from the fields: staged in the link's queue with no envelope object. */
  sendEventFields(
    repid: number,
    sender: NodeRef,
    targetNode: string,
    simproc: string,
    epoch: number,
    headers: Headers,
    payload: Uint8Array,
    dataFormat: DataFormat,
    replyTo: NodeRef | null,
  ): void {
    this.linkTo(repid, targetNode).queue.pushEvent(
      repid,
      sender,
      targetNode,
      simproc,
      epoch,
      headers,
      payload,
      dataFormat,
      0,
      replyTo,
    );
    this.eventsSent++;
  }

  /** @throws {BackpressureError} at the link's hard limit; {LinkClosedError} once it failed. */
  sendPromise(env: PromiseEnvelope): void {
    this.linkTo(env.repid, env.targetNode).queue.pushPromise(env);
    this.promisesSent++;
  }

  /** Emits `err` as 'error', or throws it asynchronously when nobody listens. */
  reportError(err: DiscoError): void {
    emitError(this, err);
  }

  /**
   * Hands a received envelope to its node here; one that no node here takes is reported as
   * UndeliverableError, `where` saying where it was received (e.g. "by uds endpoint 0.1").
   */
  deliverReceived(env: Envelope, where: string): void {
    if (!this.nodes.deliver(env)) {
      this.reportError(
        new UndeliverableError(
          `${env.targetNode}/${env.simproc}`,
          `node is not hosted ${where} (repid ${env.repid})`,
        ),
      );
    }
  }

  /**
   * Writes what every link has queued now (OutboundQueue.flushNow): called after a received
   * batch was delivered, so that answers sent from inboxes do not wait for the pump.
   */
  flushQueued(): void {
    for (const link of this.links.values()) link.queue.flushNow();
  }

  /** Resolves when every link has handed what it accepted so far to its channel. */
  async flush(): Promise<void> {
    await Promise.all([...this.links.values()].map((l) => l.queue.flushed()));
  }

  metrics(): TransportMetrics {
    const counts = {
      eventsSent: this.eventsSent,
      promisesSent: this.promisesSent,
      eventsDelivered: this.nodes.eventsDelivered,
      promisesDelivered: this.nodes.promisesDelivered,
    };
    return linkTransportMetrics(this.name, counts, this.links.values());
  }

  /** A new link to `peer` (the first send to it). */
  protected abstract createLink(peer: string): L;

  /** The link a send to (repid, node) goes by, made on first use. @throws {LinkClosedError}. */
  protected linkTo(repid: number, node: string): L {
    if (this.closing) throw new LinkClosedError(this.name, 'the transport was closed');
    if (node === this.lastNode && repid === this.lastRepid) return this.lastLink!;
    const peer = this.locate(repid, node);
    if (peer === undefined) {
      throw new LinkClosedError(this.name, `node ${JSON.stringify(node)} is no longer routed here`);
    }
    let link = this.links.get(peer);
    if (link === undefined) {
      link = this.createLink(peer);
      link.queue.on('drain', () => this.emit('drain'));
      this.links.set(peer, link);
    }
    this.lastLink = link;
    this.lastRepid = repid;
    this.lastNode = node;
    return link;
  }
}
