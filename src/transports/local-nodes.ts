/**
 * The NodeControllers of this process, by (repid, node): where every transport
 * hands received envelopes. The Router attaches each controller to every
 * transport, so each transport keeps one of these registries.
 *
 * A gateway (src/runtime/gateway.ts) hosts no nodes; it sets a fallback sink that
 * receives every envelope for a node not attached here, and forwards it.
 */

import { EventEnvelope, type Envelope } from '../envelope.js';
import type { LocalNode } from './transport.js';

/** Registry of the LocalNodes of this process. */
export class LocalNodes {
  private readonly byRepid = new Map<number, Map<string, LocalNode>>();
  private last: LocalNode | null = null;
  private fallback: LocalNode | undefined = undefined;
  /** Envelopes handed over by `deliver`, for the owning transport's metrics. */
  eventsDelivered = 0;
  promisesDelivered = 0;

  /** Where envelopes for nodes not attached here go (a gateway's forwarder); null for none. */
  setFallback(sink: LocalNode | null): void {
    this.fallback = sink ?? undefined;
  }

  /** @throws {RangeError} when a node with the same (repid, name) is already attached. */
  attach(node: LocalNode): void {
    let byNode = this.byRepid.get(node.repid);
    if (byNode === undefined) {
      byNode = new Map();
      this.byRepid.set(node.repid, byNode);
    }
    if (byNode.has(node.nodeName)) {
      throw new RangeError(
        `node ${JSON.stringify(node.nodeName)} (repid ${node.repid}) is already attached in this process`,
      );
    }
    byNode.set(node.nodeName, node);
  }

  detach(node: LocalNode): void {
    const byNode = this.byRepid.get(node.repid);
    if (byNode?.get(node.nodeName) === node) byNode.delete(node.nodeName);
    if (this.last === node) this.last = null;
  }

  has(repid: number, node: string): boolean {
    return this.byRepid.get(repid)?.has(node) === true;
  }

  /**
   * The node, else the fallback sink, else undefined. Consecutive lookups of one node
   * cost a comparison.
   */
  get(repid: number, node: string): LocalNode | undefined {
    const last = this.last;
    if (last !== null && last.nodeName === node && last.repid === repid) return last;
    const found = this.byRepid.get(repid)?.get(node);
    if (found === undefined) return this.fallback;
    this.last = found;
    return found;
  }

  /**
   * Hands a received envelope to its node (or the fallback) and counts it.
   * @returns false when nothing here takes it: the caller reports it as undeliverable.
   */
  deliver(env: Envelope): boolean {
    const sink = this.get(env.repid, env.targetNode);
    if (sink === undefined) return false;
    if (env instanceof EventEnvelope) {
      this.eventsDelivered++;
      sink.deliverEvent(env);
    } else {
      this.promisesDelivered++;
      sink.deliverPromise(env);
    }
    return true;
  }
}
