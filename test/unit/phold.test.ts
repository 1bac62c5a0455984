import { describe, expect, it } from 'vitest';
import type { EventEnvelope } from '../../src/envelope.js';
import { InvalidArgumentError, TimeoutError } from '../../src/errors.js';
import type { Server } from '../../src/runtime/server.js';
import { checkConservation, type ReplicationTally } from '../../src/demo/conservation.js';
import { EventHeap } from '../../src/demo/event-heap.js';
import { runPhold, type PholdProgress, type PholdResult } from '../../src/demo/phold.js';
import { PholdProtocolError } from '../../src/demo/phold-node.js';
import {
  decodePayload,
  PayloadEncoder,
  PAYLOAD_SLAB_BYTES,
  WindowClock,
} from '../../src/demo/phold-payload.js';
import { Prng } from '../../src/demo/prng.js';

const small = { nodes: 6, eventsPerNode: 200 } as const;

/** Invariants every finished run must satisfy, whatever its options. */
function expectConsistent(result: PholdResult): void {
  const { nodes, eventsPerNode } = result.options;
  expect(result.conservation).toEqual({ ok: true, problems: [] });
  expect(result.eventsHandled).toBeGreaterThan(0);
  expect(result.eventsSent).toBe(result.eventsHandled);
  for (const rep of result.replications) {
    expect(rep.windows).toBeGreaterThan(0);
    expect(rep.promisesSent).toBe(rep.windows * nodes * nodes);
    expect(rep.eventsSent).toBe(rep.eventsHandled);
    expect(rep.inFlight).toBe(0);
    expect(rep.pending).toBe(nodes * eventsPerNode);
    expect(rep.nodes.reduce((s, n) => s + n.handled, 0)).toBe(rep.eventsHandled);
    expect(rep.nodes.map((n) => n.windows)).toEqual(rep.nodes.map(() => rep.windows));
  }
  const routes = Object.values(result.sentVia);
  expect(routes.reduce((s, r) => s + r.events, 0)).toBe(result.eventsSent);
  expect(routes.reduce((s, r) => s + r.promises, 0)).toBe(result.promisesSent);
  expect(result.sentVia['inprocess']?.events ?? 0).toBe(result.remoteEvents);
}

function handledPerNode(result: PholdResult): number[][] {
  return result.replications.map((r) => r.nodes.map((n) => n.handled));
}

describe('runPhold', () => {
  it('runs an end-time-bounded simulation whose conservation check holds', async () => {
    const result = await runPhold({ ...small, endTime: 40 });
    expectConsistent(result);
    expect(result.replications[0]!.windows).toBe(40);
    expect(result.replications[0]!.simTime).toBe(40);
    expect(result.options.duration).toBeNull();
    expect(result.processes).toBe(1);
    const inprocess = result.transports.find((t) => t.name === 'inprocess');
    expect(inprocess?.eventsDelivered).toBe(result.remoteEvents);
  });

  it('stops a wall-clock-bounded run with every node on the same window', async () => {
    const result = await runPhold({ ...small, duration: 0.5 });
    expectConsistent(result);
    expect(result.options.endTime).toBeNull();
  });

  it('gives identical counts for two runs with the same seed', async () => {
    const options = { ...small, endTime: 30, seed: 42 };
    const first = await runPhold(options);
    const second = await runPhold(options);
    expect(second.eventsHandled).toBe(first.eventsHandled);
    expect(handledPerNode(second)).toEqual(handledPerNode(first));
    expect(second.remoteEvents).toBe(first.remoteEvents);
    const other = await runPhold({ ...options, seed: 43 });
    expect(handledPerNode(other)).not.toEqual(handledPerNode(first));
  });

  it('runs several replications side by side, each independently seeded', async () => {
    const result = await runPhold({ ...small, replications: 3, endTime: 20 });
    expectConsistent(result);
    expect(result.replications.map((r) => r.repid)).toEqual([0, 1, 2]);
    const [a, b] = handledPerNode(result);
    expect(a).not.toEqual(b);
  });

  it('keeps conservation through the wire codec with byte payloads', async () => {
    const result = await runPhold({ ...small, endTime: 15, viaWire: true, payload: 64 });
    expectConsistent(result);
    const inprocess = result.transports.find((t) => t.name === 'inprocess');
    expect(inprocess?.bytesSent).toBeGreaterThan(result.remoteEvents * 64);
  });

  it('handles the extremes of the remote fraction and a single node', async () => {
    const local = await runPhold({ ...small, remote: 0, endTime: 10 });
    expectConsistent(local);
    expect(local.remoteEvents).toBe(0);
    const remote = await runPhold({ ...small, remote: 1, endTime: 10 });
    expectConsistent(remote);
    expect(remote.remoteEvents).toBe(remote.eventsSent);
    const alone = await runPhold({ nodes: 1, eventsPerNode: 50, endTime: 10 });
    expectConsistent(alone);
  });

  it('reports progress and ends with a complete report', async () => {
    const reports: PholdProgress[] = [];
    await runPhold(
      { ...small, endTime: 20 },
      { onProgress: (p) => reports.push(p), progressIntervalMs: 1 },
    );
    const last = reports.at(-1)!;
    expect(last.fraction).toBe(1);
    expect(last.windows).toBe(20);
    expect(last.simTime).toBe(20);
    expect(last.eventsHandled).toBeGreaterThan(0);
  });

  it('ends early, flushed and checked, when its signal aborts', async () => {
    const stop = new AbortController();
    const result = await runPhold(
      { ...small, duration: 60 },
      {
        onProgress: (p) => {
          if (p.windows >= 5) stop.abort();
        },
        progressIntervalMs: 1,
        signal: stop.signal,
      },
    );
    expectConsistent(result);
    expect(result.replications[0]!.windows).toBeGreaterThanOrEqual(5);
  });

  it('aborts at once, unchecked, when its cancel signal fires', async () => {
    const cancel = new AbortController();
    const err: unknown = await runPhold(
      { ...small, duration: 60 },
      {
        onProgress: (p) => {
          if (p.windows >= 3) cancel.abort(new Error('second Ctrl-C'));
        },
        progressIntervalMs: 1,
        cancel: cancel.signal,
      },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe('second Ctrl-C');
  });

  /** Makes the n1 controller of replication 0 mishandle its 50th incoming event. */
  function faultyDelivery(fault: 'duplicate' | 'drop'): (server: Server) => void {
    return (server) => {
      const controller = server.controller('n1');
      const deliver = controller.deliverEvent.bind(controller);
      let seen = 0;
      controller.deliverEvent = (env: EventEnvelope): void => {
        seen++;
        if (seen === 50 && fault === 'drop') return;
        deliver(env);
        if (seen === 50) deliver(env);
      };
    };
  }

  it('fails when a transport delivers an event twice', async () => {
    const err: unknown = await runPhold(
      { ...small, endTime: 40 },
      { onServer: faultyDelivery('duplicate') },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PholdProtocolError);
    expect((err as Error).message).toMatch(
      /^n1: n\d (sent more than the \d+ events it promised|promised \d+ events for window \d+ but sent more)/,
    );
  });

  it('fails with a report of who waits for whom when an event is lost', async () => {
    const err: unknown = await runPhold(
      { ...small, endTime: 40 },
      { onServer: faultyDelivery('drop'), stallTimeoutMs: 300 },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as Error).message).toMatch(
      /n1 waits for window \d+ from n\d \(promised \d+, received \d+\)/,
    );
  });

  it.each([
    [{ remote: 2 }, /invalid remote 2: expected a value that must be between 0 and 1/],
    [{ nodes: 0 }, /invalid nodes 0/],
    [{ payload: 5 }, /invalid payload 5/],
    [{ lookahead: 0 }, /invalid lookahead 0/],
    [{ endTime: Number.NaN }, /invalid endTime NaN/],
  ])('rejects %j before starting', async (options, message) => {
    await expect(runPhold(options)).rejects.toThrow(InvalidArgumentError);
    await expect(runPhold(options)).rejects.toThrow(message);
  });
});

describe('checkConservation', () => {
  const consistent = (): ReplicationTally => ({
    repid: 0,
    population: 10,
    handled: 7,
    pending: 10,
    pairs: [
      { sender: 'n0', target: 'n1', sent: 4, received: 4, promised: 4 },
      { sender: 'n1', target: 'n0', sent: 3, received: 3, promised: 3 },
    ],
  });

  it('accepts a consistent tally', () => {
    expect(checkConservation([consistent()])).toEqual({ ok: true, problems: [] });
  });

  it('reports a pair whose promises do not add up to the events received', () => {
    const tally = consistent();
    const broken = { ...tally, pairs: [tally.pairs[0]!, { ...tally.pairs[1]!, promised: 2 }] };
    const report = checkConservation([broken]);
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual(['repid 0: n1 -> n0: promised 2 events in total, received 3']);
  });

  it('reports a lost event as a broken pair and a broken population', () => {
    const tally = consistent();
    const lost = {
      ...tally,
      pending: 9,
      pairs: [{ ...tally.pairs[0]!, received: 3, promised: 4 }, tally.pairs[1]!],
    };
    const report = checkConservation([lost]);
    expect(report.ok).toBe(false);
    expect(report.problems).toContain('repid 0: n0 -> n1: promised 4 events in total, received 3');
    expect(report.problems).toContain('repid 0: n0 -> n1: sent 4 events, received 3 after flush');
    expect(report.problems.join('\n')).not.toMatch(/population/);
    const vanished = { ...tally, pending: 9 };
    expect(checkConservation([vanished]).problems).toEqual([
      'repid 0: population 10 is not intact: 9 pending + 0 in flight = 9',
    ]);
  });

  it('reports handled events that scheduled no successor', () => {
    const report = checkConservation([{ ...consistent(), handled: 8 }]);
    expect(report.problems).toEqual([
      'repid 0: handled 8 events but sent 7; each handled event must schedule exactly one new event',
    ]);
  });

  it('fails on problems the nodes noticed even when the counts agree', () => {
    const report = checkConservation(
      [consistent()],
      ['n1: promise seqnr 3 from n0 does not follow 3'],
    );
    expect(report).toEqual({
      ok: false,
      problems: ['n1: promise seqnr 3 from n0 does not follow 3'],
    });
  });
});

describe('model building blocks', () => {
  it('draws the same sequence for the same seed and stream, another for another stream', () => {
    const draw = (rng: Prng): number[] => Array.from({ length: 8 }, () => rng.nextUint32());
    expect(draw(new Prng(7, 0, 1))).toEqual(draw(new Prng(7, 0, 1)));
    expect(draw(new Prng(7, 0, 1))).not.toEqual(draw(new Prng(7, 0, 2)));
    const rng = new Prng(0);
    for (let i = 0; i < 1000; i++) {
      const u = rng.next();
      expect(u).toBeGreaterThanOrEqual(0);
      expect(u).toBeLessThan(1);
      expect(rng.exponential(2)).toBeGreaterThanOrEqual(0);
    }
  });

  it('pops pending events by timestamp, then by id', () => {
    const heap = new EventHeap();
    const input: [number, number][] = [
      [3, 1],
      [1, 9],
      [2, 4],
      [1, 2],
      [5, 0],
      [2, 3],
    ];
    for (const [ts, id] of input) heap.push(ts, id, 0);
    const out = { ts: 0, id: 0, hops: 0 };
    const order: [number, number][] = [];
    while (heap.size > 0) {
      heap.popInto(out);
      order.push([out.ts, out.id]);
    }
    expect(order).toEqual([
      [1, 2],
      [1, 9],
      [2, 3],
      [2, 4],
      [3, 1],
      [5, 0],
    ]);
    expect(heap.peekTs()).toBe(Number.POSITIVE_INFINITY);
  });

  it('round-trips both payload shapes, including byte views at an offset', () => {
    const out = { id: 0, window: 0, hops: 0 };
    expect(decodePayload(new PayloadEncoder(0).encode(5, 6, 7), out)).toBe(true);
    expect(out).toEqual({ id: 5, window: 6, hops: 7 });
    const bytes = new PayloadEncoder(16).encode(0xfffffffe, 123456, 9) as Uint8Array;
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    expect(decodePayload(shifted.subarray(3), out)).toBe(true);
    expect(out).toEqual({ id: 0xfffffffe, window: 123456, hops: 9 });
    expect(decodePayload(new Uint8Array(4), out)).toBe(false);
    expect(decodePayload('nope', out)).toBe(false);
  });

  it('cuts byte payloads from slabs without handing out overlapping bytes', () => {
    const size = 1000;
    const encoder = new PayloadEncoder(size);
    const views = Array.from(
      { length: Math.ceil((3 * PAYLOAD_SLAB_BYTES) / size) },
      (_, i) => encoder.encode(i, 0, 0) as Uint8Array,
    );
    const out = { id: 0, window: 0, hops: 0 };
    views.forEach((view, i) => {
      expect(view.length).toBe(size);
      decodePayload(view, out);
      expect(out.id).toBe(i);
    });
    const big = new PayloadEncoder(PAYLOAD_SLAB_BYTES + 1).encode(1, 2, 3) as Uint8Array;
    expect(big.length).toBe(PAYLOAD_SLAB_BYTES + 1);
  });

  it('puts window boundaries where the products of the width put them', () => {
    const clock = new WindowClock(0.1);
    const misplaced: number[] = [];
    for (let k = 0; k < 10_000; k++) {
      if (clock.of(clock.start(k)) !== k) misplaced.push(k);
      if (clock.of(clock.start(k + 1) - 1e-12) !== k) misplaced.push(k);
    }
    expect(misplaced).toEqual([]);
  });
});
