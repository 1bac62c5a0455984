import { closeSync, openSync, readdirSync, writeSync } from 'node:fs';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Server } from '../../../src/runtime/server.js';
import { Router } from '../../../src/router.js';
import { seqEvent } from '../../fixtures/grpc/recording-node.js';
import { loadTopology } from '../../../src/topology.js';
import { machineServerIds, sameMachineLocator, serverId } from '../../../src/runtime/endpoints.js';
import { ShmTransport, ringName } from '../../../src/transports/shm.js';
import { createRing, unlinkRing, type RingDoorbellOptions } from '../../../src/native.js';
import { MAX_NUM_EVENTS } from '../../../src/arguments.js';
import { BackpressureError, FrameCorruptError, LinkClosedError } from '../../../src/errors.js';
import { answerTwice, RecordingInbox, until } from '../helpers.js';
import type { LinkLimits } from '../../../src/transports/outbound-queue.js';

let seq = 0;

interface MachineOptions {
  ringBytes?: number;
  limits?: LinkLimits;
  doorbell?: RingDoorbellOptions;
  closeTimeoutMs?: number;
}

/**
 * Servers of one machine, all in this process, with a real shared-memory ring for every
 * ordered pair of them (removed when the test ends, pass or fail). `make(name)` builds one
 * Server and its ShmTransport, reading its inbound rings unless told not to; `transport(name)`
 * the ShmTransport alone.
 */
function machine(servers: Record<string, string[]>, options: MachineOptions = {}) {
  const cluster = `shm-test-${process.pid}-${++seq}`;
  const topology = loadTopology({
    cluster,
    simprocs: ['p'],
    machines: [
      {
        name: 'm',
        servers: Object.entries(servers).map(([name, nodes]) => ({ name, nodes })),
      },
    ],
  });
  const ids = machineServerIds(topology, 'm');
  const rings: string[] = [];
  for (const from of ids)
    for (const to of ids) if (from !== to) rings.push(ringName(cluster, from, to));
  for (const r of rings) createRing(r, options.ringBytes ?? 1 << 20);
  onTestFinished(() => {
    // Also after a failed assertion: no test leaves segments in /dev/shm.
    for (const r of rings) unlinkRing(r);
  });
  const transport = (name: string, open = true) => {
    const shm = new ShmTransport({
      cluster,
      self: serverId(topology, 'm', name),
      peers: ids,
      locate: sameMachineLocator(topology, 'm', name, 'id'),
      limits: options.limits,
      ...(options.doorbell !== undefined ? { doorbell: options.doorbell } : {}),
      ...(options.closeTimeoutMs !== undefined ? { closeTimeoutMs: options.closeTimeoutMs } : {}),
    });
    if (open) shm.open();
    return shm;
  };
  const make = (name: string, open = true) => {
    const shm = transport(name, open);
    return { server: new Server({ topology, machine: 'm', server: name, transports: [shm] }), shm };
  };
  return { cluster, rings, make, transport };
}

/** Two Servers of one machine in this process, linked by real shared-memory rings. */
function pair(
  ringBytes = 1 << 20,
  limits?: LinkLimits,
  openB = true,
  doorbell?: RingDoorbellOptions,
) {
  const m = machine({ A: ['a1', 'a2'], B: ['b1'] }, { ringBytes, limits, doorbell });
  const A = m.make('A');
  const B = m.make('B', openB);
  const { rings, cluster } = m;
  const cleanup = async () => {
    await A.server.close();
    await B.server.close();
    for (const r of rings) unlinkRing(r);
    rings.length = 0;
    expect(readdirSync('/dev/shm').filter((f) => f.includes(cluster))).toEqual([]);
  };
  return { A, B, cleanup, rings, cluster };
}

describe('ShmTransport', () => {
  it('stops reading while paused: what is sent waits in the ring, then arrives in order', async () => {
    const { A, B, cleanup } = pair();
    const inbox = new RecordingInbox();
    B.server.controller('b1').setInbox('p', inbox);
    B.shm.pauseInbound();
    const a1 = A.server.controller('a1');
    for (let i = 0; i < 500; i++) a1.sendEvent('b1/p', i, i);
    await A.server.flush(); // written into the ring
    await new Promise((r) => setTimeout(r, 100));
    expect(inbox.events).toHaveLength(0);
    B.shm.resumeInbound();
    await until(() => inbox.events.length === 500);
    expect(inbox.events.map((e) => e.data)).toEqual([...Array(500).keys()]);
    await cleanup();
  });

  it('writes what an inbox sent in answer once the batch is delivered, not at the pump', async () => {
    const { A, B, cleanup } = pair();
    const back = new RecordingInbox();
    A.server.controller('a1').setInbox('p', back);
    const seen = answerTwice(B.server.controller('b1'), 'a1/p', () => B.shm.metrics().queued);
    A.server.controller('a1').sendEvent('b1/p', 0, 'ping');
    await until(() => back.events.length === 2);
    expect(seen.queuedAfterDelivery).toBe(0);
    expect(back.events.map((e) => e.epoch)).toEqual([1, 2]);
    await cleanup();
  });

  it('writes a send that finds the link idle at once, and batches the rest of the turn', async () => {
    const { A, B, cleanup } = pair();
    const inbox = new RecordingInbox();
    B.server.controller('b1').setInbox('p', inbox);
    const a1 = A.server.controller('a1');
    const queued = () => A.shm.metrics().queued;
    a1.sendEvent('b1/p', 0, 'alone');
    expect(queued()).toBe(0); // in the ring already, not waiting for the pump
    a1.sendEvent('b1/p', 1, 'second');
    a1.sendEvent('b1/p', 2, 'third');
    expect(queued()).toBe(2); // the same turn: queued for one frame
    await until(() => inbox.events.length === 3);
    expect(inbox.events.map((e) => e.data)).toEqual(['alone', 'second', 'third']);
    await cleanup();
  });

  it('sends each of interleaved sends to its own Server, with its own sender', async () => {
    // Sends alternate between targets on two other Servers and between two senders: a link
    // or sender remembered from the previous send must never serve the next one by mistake.
    const m = machine({ A: ['a1', 'a2'], B: ['b1', 'b2'], C: ['c1'] });
    const servers = ['A', 'B', 'C'].map((name) => m.make(name).server);
    // Closed however the test ends: a failed assertion must not leave readers polling.
    onTestFinished(() => Promise.all(servers.map((s) => s.close())).then(() => undefined));
    const [A, B, C] = servers as [Server, Server, Server];
    const inboxes = {
      b1: new RecordingInbox(),
      b2: new RecordingInbox(),
      c1: new RecordingInbox(),
    };
    B.controller('b1').setInbox('p', inboxes.b1);
    B.controller('b2').setInbox('p', inboxes.b2);
    C.controller('c1').setInbox('p', inboxes.c1);
    const senders = [A.controller('a1'), A.controller('a2')];
    const targets = ['b1', 'c1', 'c1', 'b2', 'b1', 'b1', 'c1', 'b2'] as const;
    const n = 400;
    for (let i = 0; i < n; i++) {
      senders[(i >> 1) % 2]!.sendEvent(
        `${targets[i % targets.length]}/p`,
        i,
        new Uint8Array([i & 0xff]),
      );
      if (i % 37 === 0) await new Promise((resolve) => setImmediate(resolve)); // some frames of one
    }
    const expected = (node: string) =>
      Array.from({ length: n }, (_, i) => i).filter((i) => targets[i % targets.length] === node);
    await until(() => Object.values(inboxes).reduce((k, b) => k + b.events.length, 0) === n);
    for (const [node, inbox] of Object.entries(inboxes)) {
      expect(inbox.events.map((e) => e.epoch)).toEqual(expected(node));
      for (const e of inbox.events) {
        expect(e.sender).toEqual({ node: (e.epoch >> 1) % 2 === 0 ? 'a1' : 'a2', simproc: 'p' });
      }
    }
  });

  it('reports what a close could not hand over through the Router, not as an uncaught throw', async () => {
    // B never reads its ring: A's close waits closeTimeoutMs, then counts what is left and
    // reports it while the Router is closing.
    const m = machine({ A: ['a1'], B: ['b1'] }, { ringBytes: 64 * 1024, closeTimeoutMs: 50 });
    const shm = m.transport('A');
    const router = new Router({ transports: [shm] });
    const errors: Error[] = [];
    router.on('error', (err: Error) => errors.push(err));
    for (let i = 0; i < 2000; i++) shm.sendEvent(seqEvent('a1', 'b1', i, 1024)); // 2 MiB
    await router.close();
    const lost = errors.find((e): e is LinkClosedError => e instanceof LinkClosedError);
    expect(lost?.message).toContain('closed before the peer read everything');
    expect(lost!.unacknowledged).toBeGreaterThan(0);
    expect(lost!.unacknowledged).toBeLessThan(2000);
  });

  it('closes a Server within closeTimeoutMs when a peer never reads, counting what is left', async () => {
    const m = machine({ A: ['a1'], B: ['b1'] }, { ringBytes: 64 * 1024, closeTimeoutMs: 50 });
    const A = m.make('A').server;
    m.make('B', false);
    const errors: Error[] = [];
    A.on('error', (err: Error) => errors.push(err));
    const a1 = A.controller('a1');
    for (let i = 0; i < 2000; i++) a1.sendEvent('b1/p', i, new Uint8Array(1024)); // 2 MiB
    await A.close();
    const lost = errors.find((e): e is LinkClosedError => e instanceof LinkClosedError);
    expect(lost?.message).toContain('closed before the peer read everything');
    expect(lost!.unacknowledged).toBeGreaterThan(0);
  });

  it('carries events and promises between Servers with every field intact', async () => {
    const { A, B, cleanup } = pair();
    const inbox = new RecordingInbox();
    B.server.controller('b1').setInbox('p', inbox);
    const a1 = A.server.controller('a1');
    a1.sendEvent('b1/p', 1.5, { x: [1, 2], m: new Map([[1, 2]]) }, { k: 'v' });
    a1.sendEvent('b1/p', 2.5, new Uint8Array([7, 8, 9]));
    a1.sendPromise('b1/p', 2n ** 64n - 1n, 1.5, MAX_NUM_EVENTS);
    expect(a1.metrics().sentVia).toEqual({ shm: { events: 2, promises: 1 } });
    const copies: number[][] = [];
    const seen = inbox.onEvent.bind(inbox);
    inbox.onEvent = (e) => {
      if (e.data instanceof Uint8Array) copies.push([...e.data]); // views live only during the call
      seen(e);
    };
    await until(() => inbox.order.length === 3);
    // The first event found the link idle and left at once; the promise lane goes before the
    // events queued with it, so the promise overtakes the second event.
    expect(inbox.order).toEqual(['e', 'p', 'e']);
    expect(inbox.events[0]!.data).toEqual({ x: [1, 2], m: new Map([[1, 2]]) });
    expect({ ...inbox.events[0]!.headers }).toEqual({ k: 'v' });
    expect(copies).toEqual([[7, 8, 9]]);
    expect(inbox.events[0]!.sender).toEqual({ node: 'a1', simproc: 'p' });
    expect(inbox.promises[0]!.seqnr).toBe(2n ** 64n - 1n);
    expect(inbox.promises[0]!.numEvents).toBe(MAX_NUM_EVENTS);
    await cleanup();
  });

  it('detaches received byte views once the batch is released', async () => {
    const { A, B, cleanup } = pair();
    const inbox = new RecordingInbox();
    B.server.controller('b1').setInbox('p', inbox);
    A.server.controller('a1').sendEvent('b1/p', 0, new Uint8Array([1, 2, 3]));
    await until(() => inbox.events.length === 1);
    const kept = inbox.events[0]!.data as Uint8Array;
    expect(kept.byteLength).toBe(0); // detached: no stale read of reused shared memory
    expect(() => kept.buffer.slice(0)).toThrow(/detached/);
    await cleanup();
  });

  it('hands over intact the raw bytes it held for a simproc that had no inbox yet', async () => {
    const { A, B, cleanup } = pair();
    const b1 = B.server.controller('b1');
    A.server.controller('a1').sendEvent('b1/p', 0, new Uint8Array([4, 5, 6]));
    await until(() => b1.metrics().heldMessages === 1);
    // The ring batch the event came in is released by now: a held view would be detached.
    const inbox = new RecordingInbox();
    b1.setInbox('p', inbox);
    await until(() => inbox.events.length === 1);
    expect([...(inbox.events[0]!.data as Uint8Array)]).toEqual([4, 5, 6]);
    await cleanup();
  });

  it('keeps FIFO and exactly-once for 50,000 events through a small ring that fills up', async () => {
    const { A, B, cleanup } = pair(1 << 16);
    const got: Record<string, number[]> = { a1: [], a2: [] };
    let promises = 0;
    B.server.controller('b1').setInbox('p', {
      onEvent: (e) =>
        got[e.sender.node]!.push(
          new DataView((e.data as Uint8Array).buffer, (e.data as Uint8Array).byteOffset).getUint32(
            0,
            true,
          ),
        ),
      onPromise: () => promises++,
    });
    const senders = [A.server.controller('a1'), A.server.controller('a2')];
    const total = 50_000;
    let sentPromises = 0;
    const payload = new Uint8Array(64);
    for (let i = 0; i < total; i++) {
      const s = senders[i % 2]!;
      if (!s.writable) await s.drained();
      new DataView(payload.buffer).setUint32(0, i, true);
      s.sendEvent('b1/p', i, payload.slice());
      if (i % 1000 === 999) s.sendPromise('b1/p', sentPromises++, i, 500);
    }
    await until(() => got.a1!.length + got.a2!.length >= total && promises >= sentPromises, 30_000);
    for (const [node, first] of [
      ['a1', 0],
      ['a2', 1],
    ] as const) {
      const seq = got[node]!;
      expect(seq).toHaveLength(total / 2);
      for (let i = 0; i < seq.length; i++) {
        if (seq[i] !== first + 2 * i) throw new Error(`${node}: got ${seq[i]} at ${i}`);
      }
    }
    expect(promises).toBe(sentPromises);
    await cleanup();
  });

  it('moves a 64 MiB event through a 1 MiB ring in chunks, intact', async () => {
    const { A, B, cleanup } = pair(1 << 20);
    let sum = -1;
    let length = -1;
    B.server.controller('b1').setInbox('p', {
      onEvent: (e) => {
        const d = e.data as Uint8Array;
        length = d.length;
        let s = 0;
        for (let i = 0; i < d.length; i += 4096) s = (s + d[i]!) | 0;
        sum = s;
      },
      onPromise: () => {},
    });
    const big = new Uint8Array(64 * 1024 * 1024);
    let expected = 0;
    for (let i = 0; i < big.length; i += 4096) {
      big[i] = (i / 4096) & 0xff;
      expected = (expected + big[i]!) | 0;
    }
    A.server.controller('a1').sendEvent('b1/p', 0, big);
    await until(() => length >= 0, 60_000);
    expect(length).toBe(big.length);
    expect(sum).toBe(expected);
    await cleanup();
  });

  it('closes a ring whose records were corrupted with FrameCorruptError naming it, and stays up', async () => {
    const { A, B, cleanup, cluster } = pair(1 << 16, undefined, false);
    const errors: Error[] = [];
    B.server.on('error', (e) => errors.push(e));
    const inbox = new RecordingInbox();
    B.server.controller('b1').setInbox('p', inbox);
    const a1 = A.server.controller('a1');
    a1.sendEvent('b1/p', 0, new Uint8Array(256).fill(1));
    await a1.flush(); // the frame is in the ring; B does not read yet
    // Scribble over the data area of the A -> B ring (after its 4096-byte header).
    const fd = openSync(`/dev/shm/${ringName(cluster, '0.0', '0.1')}`, 'r+');
    // Keep the 16-byte record header, so the record is read, and ruin everything after it.
    writeSync(fd, new Uint8Array(2048).fill(0x5a), 0, 2048, 4096 + 16);
    closeSync(fd);
    B.shm.open();
    await until(() => errors.length > 0);
    expect(errors[0]).toBeInstanceOf(FrameCorruptError);
    expect(errors[0]!.message).toMatch(/ring disco\.shm-test-\d+-\d+\.0\.0-0\.1/);
    expect(inbox.events).toHaveLength(0); // nothing unverified was delivered
    await cleanup();
  });

  it('bounds memory when the consumer stalls: unwritable, then BackpressureError, nothing dropped', async () => {
    const { A, B, cleanup } = pair(
      1 << 16,
      { highWaterMarkBytes: 1 << 20, hardLimitBytes: 4 << 20 },
      false,
    );
    const a1 = A.server.controller('a1');
    const payload = new Uint8Array(1000);
    let accepted = 0;
    let refused: unknown = null;
    for (let i = 0; i < 100_000 && refused === null; i++) {
      try {
        a1.sendEvent('b1/p', i, payload);
        accepted++;
      } catch (err) {
        refused = err;
      }
      if (i % 256 === 0) await new Promise((r) => setImmediate(r)); // let the pump fill the ring
    }
    expect(refused).toBeInstanceOf(BackpressureError);
    expect(a1.writable).toBe(false);
    const shm = a1.metrics().transports.find((t) => t.name === 'shm')!;
    // Accepted = in the ring + queued, and the queue never passed its byte limit.
    expect(shm.queued).toBeGreaterThan(0);
    expect(shm.queued * 1000).toBeLessThanOrEqual(4 << 20);
    expect(shm.eventsSent).toBe(accepted);
    // The consumer wakes up: every accepted event arrives, none is lost.
    let received = 0;
    B.server.controller('b1').setInbox('p', { onEvent: () => received++, onPromise: () => {} });
    B.shm.open();
    await until(() => received === accepted, 30_000);
    await cleanup();
  });

  it.each(['futex', 'pipe'] as const)('wakes the receiver with the %s doorbell', async (kind) => {
    const { A, B, cleanup } = pair(1 << 16, undefined, true, { doorbell: kind });
    let received = 0;
    B.server.controller('b1').setInbox('p', { onEvent: () => received++, onPromise: () => {} });
    const a1 = A.server.controller('a1');
    for (let round = 0; round < 20; round++) {
      // Let the receiver go to sleep between bursts, so each burst needs a wake-up.
      await new Promise((r) => setTimeout(r, 5));
      for (let i = 0; i < 50; i++) a1.sendEvent('b1/p', i, new Uint8Array(8));
    }
    await until(() => received === 1000, 20_000);
    await cleanup();
  });
});
