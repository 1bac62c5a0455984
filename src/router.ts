/**
 * Router: decides which transport carries traffic for a (repid, node) pair
 * (DESIGN §8, SPEC S2).
 *
 * Transports are asked in the order given — locality order: in-process, then
 * shared memory, then network — and the first whose `handlesNode` is true wins.
 * The decision is cached per (repid, node), so the hot path is two map lookups;
 * `invalidate()` (called when NodeControllers attach or detach, or the address
 * book changes) bumps `version` and clears the cache. Failed lookups are not
 * cached, so a node that appears later becomes reachable.
 *
 * The Router also aggregates flow control: it is writable when every transport is,
 * and emits 'drain' whenever one of them drains. Transport errors (a failed link,
 * a corrupt frame) are re-emitted as 'error'.
 */

import { EventEmitter } from 'node:events';
import { emitError, UnknownNodeError } from './errors.js';
import { tracerFor } from './trace.js';
import type { LocalNode, Transport, TransportMetrics } from './transports/transport.js';

const tracer = tracerFor('router');

/** Default bound on gateway hops before an envelope is refused (loops cannot persist). */
export const DEFAULT_MAX_HOPS = 8;

/** Options of a Router. */
export interface RouterOptions {
  /** Transports in locality order; the first that handles a node carries its traffic. */
  transports: readonly Transport[];
  /** Maximum gateway hops an envelope may take. Default 8. */
  maxHops?: number;
}

/** Routes (repid, node) pairs to transports; see the file header. */
export class Router extends EventEmitter {
  /** Maximum gateway hops an envelope may take. */
  readonly maxHops: number;
  private readonly transports: readonly Transport[];
  private readonly routes = new Map<number, Map<string, Transport>>();
  private routeVersion = 0;
  private closed = false;

  /** @throws {RangeError} when two transports share a name or maxHops is out of range. */
  constructor(options: RouterOptions) {
    super();
    const names = new Set<string>();
    for (const t of options.transports) {
      if (names.has(t.name)) throw new RangeError(`two transports are named ${t.name}`);
      names.add(t.name);
      t.on('drain', this.onTransportDrain);
      t.on('error', this.onTransportError);
    }
    this.transports = [...options.transports];
    this.maxHops = options.maxHops ?? DEFAULT_MAX_HOPS;
    if (!Number.isInteger(this.maxHops) || this.maxHops < 0 || this.maxHops > 255) {
      throw new RangeError(`maxHops must be an integer from 0 to 255, got ${this.maxHops}`);
    }
  }

  /** Increments whenever cached routes become invalid; callers cache against it. */
  get version(): number {
    return this.routeVersion;
  }

  /** Transport names in the order they are asked. */
  transportNames(): string[] {
    return this.transports.map((t) => t.name);
  }

  /** The transport named `name`, if this router has one. */
  transport(name: string): Transport | undefined {
    return this.transports.find((t) => t.name === name);
  }

  /**
   * The transport that carries traffic for `node` of replication `repid`.
   * @throws {UnknownNodeError} when no transport handles the node.
   */
  resolve(repid: number, node: string): Transport {
    let byNode = this.routes.get(repid);
    const cached = byNode?.get(node);
    if (cached !== undefined) return cached;
    for (const t of this.transports) {
      if (t.handlesNode(repid, node)) {
        if (byNode === undefined) {
          byNode = new Map();
          this.routes.set(repid, byNode);
        }
        byNode.set(node, t);
        if (tracer.enabled) tracer.log(`route repid=${repid} node=${node} -> ${t.name}`);
        return t;
      }
    }
    throw new UnknownNodeError(repid, node, this.transportNames());
  }

  /** Drops every cached route; call when the address book or attached nodes change. */
  invalidate(): void {
    if (tracer.enabled) tracer.log(`routes invalidated (version ${this.routeVersion + 1})`);
    this.routes.clear();
    this.routeVersion++;
  }

  /** Registers a NodeController of this process with every transport that delivers locally. */
  attach(node: LocalNode): void {
    for (const t of this.transports) t.attach?.(node);
    this.invalidate();
  }

  /** Reverses `attach`. */
  detach(node: LocalNode): void {
    for (const t of this.transports) t.detach?.(node);
    this.invalidate();
  }

  /** True when every transport is below its high-water mark. */
  get writable(): boolean {
    for (const t of this.transports) if (!t.writable) return false;
    return true;
  }

  /** Resolves once every transport has handed over what it had accepted. */
  async flush(): Promise<void> {
    await Promise.all(this.transports.map((t) => t.flush()));
  }

  /** Metrics of every transport, in routing order. */
  metrics(): TransportMetrics[] {
    return this.transports.map((t) => t.metrics());
  }

  /**
   * Closes every transport; idempotent. What a transport reports while it closes (messages
   * it could not hand over in time) still comes out as this Router's 'error'.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.transports) t.off('drain', this.onTransportDrain);
    try {
      await Promise.all(this.transports.map((t) => t.close()));
    } finally {
      for (const t of this.transports) t.off('error', this.onTransportError);
    }
  }

  private readonly onTransportDrain = (): void => {
    this.emit('drain');
  };

  /** Relays a transport's error; thrown asynchronously when nobody listens, never lost. */
  private readonly onTransportError = (err: Error): void => {
    emitError(this, err);
  };
}
