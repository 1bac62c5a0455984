import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Router } from '../../src/router.js';
import { UnknownNodeError } from '../../src/errors.js';
import type { Transport, TransportMetrics } from '../../src/transports/transport.js';
import type { EventEnvelope, PromiseEnvelope } from '../../src/envelope.js';

/** A real, minimal transport that handles a fixed node set and counts lookups. */
class FixedTransport extends EventEmitter implements Transport {
  readonly carriesObjects = false;
  writable = true;
  lookups = 0;
  readonly sent: (EventEnvelope | PromiseEnvelope)[] = [];
  constructor(
    readonly name: string,
    private readonly nodes: Set<string>,
  ) {
    super();
  }
  handlesNode(_repid: number, node: string): boolean {
    this.lookups++;
    return this.nodes.has(node);
  }
  sendEvent(env: EventEnvelope): void {
    this.sent.push(env);
  }
  sendPromise(env: PromiseEnvelope): void {
    this.sent.push(env);
  }
  async flush(): Promise<void> {}
  metrics(): TransportMetrics {
    return {
      name: this.name,
      eventsSent: 0,
      promisesSent: 0,
      eventsDelivered: 0,
      promisesDelivered: 0,
      bytesSent: 0,
      queued: 0,
      backpressureEvents: 0,
    };
  }
  async close(): Promise<void> {}
}

describe('Router', () => {
  it('asks transports in locality order and the first that handles the node wins', () => {
    const near = new FixedTransport('near', new Set(['a']));
    const far = new FixedTransport('far', new Set(['a', 'b']));
    const router = new Router({ transports: [near, far] });
    expect(router.transportNames()).toEqual(['near', 'far']);
    expect(router.resolve(0, 'a')).toBe(near);
    expect(router.resolve(0, 'b')).toBe(far);
  });

  it('caches decisions per (repid, node) until invalidated', () => {
    const t = new FixedTransport('t', new Set(['a']));
    const router = new Router({ transports: [t] });
    router.resolve(0, 'a');
    router.resolve(0, 'a');
    expect(t.lookups).toBe(1);
    router.resolve(1, 'a');
    expect(t.lookups).toBe(2);
    const v = router.version;
    router.invalidate();
    expect(router.version).toBe(v + 1);
    router.resolve(0, 'a');
    expect(t.lookups).toBe(3);
  });

  it('throws UnknownNodeError naming the node and the transports tried, and does not cache it', () => {
    const t = new FixedTransport('t', new Set());
    const router = new Router({ transports: [t] });
    expect(() => router.resolve(3, 'ghost')).toThrow(UnknownNodeError);
    expect(() => router.resolve(3, 'ghost')).toThrow(/"ghost" \(repid 3\); tried t/);
    expect(t.lookups).toBe(2);
  });

  it('is writable only when every transport is, and relays drain', () => {
    const t1 = new FixedTransport('t1', new Set());
    const t2 = new FixedTransport('t2', new Set());
    const router = new Router({ transports: [t1, t2] });
    let drains = 0;
    router.on('drain', () => drains++);
    t2.writable = false;
    expect(router.writable).toBe(false);
    t2.writable = true;
    t2.emit('drain');
    expect(router.writable).toBe(true);
    expect(drains).toBe(1);
  });

  it('rejects duplicate transport names and bad maxHops', () => {
    const t = new FixedTransport('t', new Set());
    expect(() => new Router({ transports: [t, new FixedTransport('t', new Set())] })).toThrow(
      /two transports/,
    );
    expect(() => new Router({ transports: [], maxHops: 256 })).toThrow(/maxHops/);
  });
});
