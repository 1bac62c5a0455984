/**
 * Gateway: one per machine of a multi-machine cluster, in the Application's process
 * (DESIGN §1, §6, §8). It holds the machine's gRPC links, so connections scale with
 * machines, not processes: the Servers of the machine reach every remote node
 * through it over their same-machine link (shared-memory rings, or Unix sockets).
 *
 *   Server ──ring──▶ gateway A ──gRPC──▶ gateway B ──ring──▶ Server
 *                     (forward)  ... ──▶ gateway C (forward further) ...
 *
 * - Forwarding: the gateway hosts no nodes. Each of its two transports gets a
 *   fallback sink (LocalNodes.setFallback) that receives every envelope and hands it
 *   to the next link: a Server of this machine (local transport) or the neighbour
 *   gateway on a shortest path to the target's machine (remote transport, src/mesh.ts).
 *   Every forward adds a hop; an envelope that already took `maxHops` hops is
 *   refused with UndeliverableError, so a loop cannot persist.
 * - Order: each link keeps FIFO per lane and forwarding is synchronous in arrival
 *   order, so FIFO per (sender node, target node) and lane holds end to end.
 * - Payloads that arrive over shared memory are views that die when the ring batch
 *   is released; the gateway copies them before queueing them on another link.
 * - Control messages between the Applications (start, job messages, results) are
 *   envelopes of the reserved replication CONTROL_REPID addressed to a machine's
 *   name; they take the same links and routes, in order with each other.
 * - Back-pressure: when the link an envelope went to is above its high-water mark,
 *   the gateway stops reading from both sides (`pauseInbound`) until that link
 *   drains, so a slow machine slows its senders instead of filling the gateway. What
 *   arrives while pausing takes effect still goes into the bounded queues.
 * - Nothing is dropped silently: a refused or unroutable envelope is emitted as
 *   'error' (UndeliverableError naming the target and why).
 */

import { EventEmitter } from 'node:events';
import { deserialize, serialize } from 'node:v8';
import {
  DataFormat,
  EMPTY_HEADERS,
  EventEnvelope,
  type PromiseEnvelope,
  type Envelope,
} from '../envelope.js';
import { emitError, UndeliverableError } from '../errors.js';
import { CONTROL_REPID } from '../mesh.js';
import { Router } from '../router.js';
import type { Topology } from '../topology.js';
import type { LocalNode, Transport, TransportMetrics } from '../transports/transport.js';
import { tracerFor } from '../trace.js';

const tracer = tracerFor('gateway');

export { CONTROL_REPID };
/** The simproc name control envelopes carry. */
export const CONTROL_SIMPROC = 'control';

/** Options of a Gateway. */
export interface GatewayOptions {
  readonly topology: Topology;
  /** The machine this gateway serves. */
  readonly machine: string;
  /** The link to this machine's Servers (handles their nodes; accepts a fallback sink). */
  readonly local: Transport;
  /** The links to neighbour gateways (handles remote nodes and machines' control names). */
  readonly remote: Transport;
}

/** Counters of one gateway. */
export interface GatewayMetrics {
  readonly forwardedEvents: number;
  readonly forwardedPromises: number;
  /** Envelopes refused (hop limit, no route, a link refusing them); each was reported. */
  readonly refused: number;
  readonly controlSent: number;
  readonly controlReceived: number;
  /** Times the gateway stopped reading because the next link was full. */
  readonly pauses: number;
  readonly transports: TransportMetrics[];
}

/** Receives what one transport delivers to the gateway and forwards it. */
class Forwarder implements LocalNode {
  readonly repid = -1;
  readonly nodeName = '(gateway)';

  constructor(
    private readonly gateway: Gateway,
    /** Payloads from this transport are views into memory released after delivery. */
    private readonly copyPayloads: boolean,
  ) {}

  deliverEvent(env: EventEnvelope): void {
    if (this.copyPayloads && env.payload !== null) env.payload = env.payload.slice();
    this.gateway.forward(env);
  }

  deliverPromise(env: PromiseEnvelope): void {
    this.gateway.forward(env);
  }
}

/** Forwards envelopes between a machine's Servers and other machines; see the file header. */
export class Gateway extends EventEmitter {
  readonly machine: string;
  readonly maxHops: number;
  private readonly router: Router;
  private readonly local: Transport;
  private readonly remote: Transport;
  private forwardedEvents = 0;
  private forwardedPromises = 0;
  private refused = 0;
  private controlSent = 0;
  private controlReceived = 0;
  private closed = false;
  private paused = false;
  /** Times the gateway stopped reading because a link was full. */
  private pauses = 0;
  private readonly controlSink: LocalNode;

  /** @throws {TypeError} when a transport cannot take a fallback sink. */
  constructor(options: GatewayOptions) {
    super();
    const { local, remote, topology, machine } = options;
    if (local.setFallback === undefined || remote.setFallback === undefined) {
      throw new TypeError('gateway transports must accept a fallback sink (setFallback)');
    }
    this.machine = machine;
    this.maxHops = topology.maxHops;
    this.local = local;
    this.remote = remote;
    this.router = new Router({ transports: [local, remote], maxHops: topology.maxHops });
    this.router.on('error', (err: Error) => this.report(err));
    this.router.on('drain', () => this.resumeIfWritable());
    // Shared-memory payloads are views into the ring, released once delivered.
    local.setFallback(new Forwarder(this, true));
    remote.setFallback(new Forwarder(this, false));
    this.controlSink = this.makeControlSink();
    remote.attach?.(this.controlSink);
  }

  /**
   * Sends a control message (any structured-cloneable value) to `machine`'s gateway.
   * @throws {UnknownNodeError} when no route leads there; BackpressureError or
   *   LinkClosedError from the link.
   */
  sendControl(machine: string, message: unknown): void {
    const env = new EventEnvelope(
      CONTROL_REPID,
      { node: this.machine, simproc: CONTROL_SIMPROC },
      machine,
      CONTROL_SIMPROC,
      0,
      EMPTY_HEADERS,
      undefined,
      serialize(message),
      DataFormat.Serialized,
      0,
      null,
    );
    this.router.resolve(CONTROL_REPID, machine).sendEvent(env);
    this.controlSent++;
  }

  /** Forwards one envelope a link delivered here (the Forwarders call it). */
  forward(env: Envelope): void {
    if (env.hops >= this.maxHops) {
      this.refuse(env, `it took ${env.hops} hops, the limit (maxHops) is ${this.maxHops}`);
      return;
    }
    env.hops++;
    try {
      const link = this.router.resolve(env.repid, env.targetNode);
      if (env instanceof EventEnvelope) {
        link.sendEvent(env);
        this.forwardedEvents++;
      } else {
        link.sendPromise(env);
        this.forwardedPromises++;
      }
      if (!link.writable && !this.paused) this.pause();
    } catch (err) {
      this.refuse(env, err instanceof Error ? err.message : String(err));
    }
  }

  /** Resolves once both links have handed over what they accepted. */
  flush(): Promise<void> {
    return this.router.flush();
  }

  metrics(): GatewayMetrics {
    return {
      forwardedEvents: this.forwardedEvents,
      forwardedPromises: this.forwardedPromises,
      refused: this.refused,
      controlSent: this.controlSent,
      controlReceived: this.controlReceived,
      pauses: this.pauses,
      transports: this.router.metrics(),
    };
  }

  /** Closes both links; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.remote.detach?.(this.controlSink);
    await this.router.close();
  }

  private pause(): void {
    this.paused = true;
    this.pauses++;
    this.local.pauseInbound?.();
    this.remote.pauseInbound?.();
  }

  private resumeIfWritable(): void {
    if (!this.paused || !this.router.writable) return;
    this.paused = false;
    this.local.resumeInbound?.();
    this.remote.resumeInbound?.();
  }

  private refuse(env: Envelope, reason: string): void {
    this.refused++;
    const target =
      env.repid === CONTROL_REPID
        ? `gateway ${env.targetNode}`
        : `${env.targetNode}/${env.simproc}`;
    this.report(new UndeliverableError(target, `gateway ${this.machine}: ${reason}`));
  }

  private report(err: Error): void {
    if (tracer.enabled) tracer.log(`error: ${err.message}`);
    emitError(this, err);
  }

  /** The sink of the control envelopes addressed to this machine. */
  private makeControlSink(): LocalNode {
    return {
      repid: CONTROL_REPID,
      nodeName: this.machine,
      deliverEvent: (env: EventEnvelope): void => {
        this.controlReceived++;
        let message: unknown;
        try {
          message = deserialize(env.payload ?? new Uint8Array(0));
        } catch (err) {
          this.report(
            new UndeliverableError(
              `gateway ${this.machine}`,
              `a control message from ${env.sender.node} does not deserialize: ${(err as Error).message}`,
            ),
          );
          return;
        }
        this.emit('control', env.sender.node, message);
      },
      deliverPromise: (env: PromiseEnvelope): void => {
        this.refuse(env, 'control messages are events, not promises');
      },
    };
  }
}
