import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { Server } from '../../../src/runtime/server.js';
import { loadTopology } from '../../../src/topology.js';
import { sameMachineLocator, serverEndpoint } from '../../../src/runtime/endpoints.js';
import { UnixSocketTransport } from '../../../src/transports/unix-socket.js';
import { FrameCorruptError, LinkClosedError, PeerDeadError } from '../../../src/errors.js';
import { MAX_NUM_EVENTS } from '../../../src/arguments.js';
import { answerTwice, RecordingInbox, until } from '../helpers.js';

let clusterSeq = 0;

/** Two Servers of one machine in this process, linked by real Unix sockets. */
async function pair(
  limits?: ConstructorParameters<typeof UnixSocketTransport>[0]['limits'],
  closeTimeoutMs?: number,
) {
  const cluster = `uds-test-${process.pid}-${++clusterSeq}`;
  const topology = loadTopology({
    cluster,
    simprocs: ['p', 'q'],
    replications: 2,
    machines: [
      {
        name: 'm',
        servers: [
          { name: 'A', nodes: ['a1', 'a2'] },
          { name: 'B', nodes: ['b1'] },
        ],
      },
    ],
  });
  const make = async (name: string) => {
    const uds = new UnixSocketTransport({
      endpoint: serverEndpoint(topology, 'm', name),
      locate: sameMachineLocator(topology, 'm', name),
      limits,
      connectTimeoutMs: 2000,
      ...(closeTimeoutMs !== undefined ? { closeTimeoutMs } : {}),
    });
    await uds.listen();
    return { server: new Server({ topology, machine: 'm', server: name, transports: [uds] }), uds };
  };
  const A = await make('A');
  const B = await make('B');
  return { A, B, topology };
}

describe('UnixSocketTransport', () => {
  it('carries events and promises between Servers with every field intact', async () => {
    const { A, B } = await pair();
    const inbox = new RecordingInbox();
    const b1 = B.server.controller('b1', 1);
    b1.setInbox('q', inbox);
    const a1 = A.server.controller('a1', 1);
    a1.activeSimproc = 'q';
    a1.sendEvent('b1/q', 1.5, { x: [1, 2], m: new Map([[1, 2]]) }, { k: 'v' });
    a1.sendEvent('b1/q', 2.5, new Uint8Array([7, 8, 9]));
    a1.sendPromise('b1/q', 2n ** 64n - 1n, 1.5, MAX_NUM_EVENTS);
    expect(a1.metrics().sentVia).toEqual({ uds: { events: 2, promises: 1 } });
    await until(() => inbox.order.length === 3);
    expect(inbox.order).toEqual(['p', 'e', 'e']);
    expect(inbox.events[0]!.data).toEqual({ x: [1, 2], m: new Map([[1, 2]]) });
    expect({ ...inbox.events[0]!.headers }).toEqual({ k: 'v' });
    expect([...(inbox.events[1]!.data as Uint8Array)]).toEqual([7, 8, 9]);
    expect(inbox.events[0]!.sender).toEqual({ node: 'a1', simproc: 'q' });
    expect(inbox.events[0]!.repid).toBe(1);
    expect(inbox.promises[0]!.seqnr).toBe(2n ** 64n - 1n);
    await A.server.close();
    await B.server.close();
  });

  it('carries events larger than a frame block, and small ones around them, byte for byte', async () => {
    // 64 B and 5 KiB (passed by reference to the encoder) share frames; 300 KiB and 3 MiB
    // frames are larger than the blocks small frames are cut from.
    const { A, B } = await pair();
    const inbox = new RecordingInbox();
    const copies: Uint8Array[] = [];
    const seen = inbox.onEvent.bind(inbox);
    inbox.onEvent = (e) => {
      copies.push((e.data as Uint8Array).slice());
      seen(e);
    };
    B.server.controller('b1').setInbox('p', inbox);
    const a1 = A.server.controller('a1');
    const sizes = [64, 5 * 1024, 300 * 1024, 64, 3 * 1024 * 1024, 5 * 1024];
    const payloads = sizes.map((n, k) => {
      const p = new Uint8Array(n);
      for (let i = 0; i < n; i++) p[i] = (i * 7 + k) & 0xff;
      return p;
    });
    payloads.forEach((p, k) => a1.sendEvent('b1/p', k, p));
    await until(() => inbox.events.length === sizes.length);
    expect(inbox.events.map((e) => e.epoch)).toEqual(sizes.map((_, k) => k));
    expect(copies.map((c) => c.length)).toEqual(sizes);
    copies.forEach((c, k) => expect(Buffer.compare(c, payloads[k]!), `event ${k}`).toBe(0));
    await A.server.close();
    await B.server.close();
  });

  it('writes a send that finds a connected link idle at once, and batches the rest of the turn', async () => {
    const { A, B } = await pair();
    const inbox = new RecordingInbox();
    B.server.controller('b1').setInbox('p', inbox);
    const a1 = A.server.controller('a1');
    a1.sendEvent('b1/p', 0, 'connects');
    await until(() => inbox.events.length === 1);
    await A.server.flush();
    a1.sendEvent('b1/p', 1, 'alone');
    expect(A.uds.metrics().queued).toBe(0); // on the socket already, not waiting for the pump
    a1.sendEvent('b1/p', 2, 'second');
    expect(A.uds.metrics().queued).toBe(1);
    await until(() => inbox.events.length === 3);
    expect(inbox.events.map((e) => e.data)).toEqual(['connects', 'alone', 'second']);
    await A.server.close();
    await B.server.close();
  });

  it('writes what an inbox sent in answer once the frame is delivered, not at the pump', async () => {
    const { A, B } = await pair();
    const back = new RecordingInbox();
    A.server.controller('a1').setInbox('p', back);
    const b1 = B.server.controller('b1');
    b1.sendEvent('a1/p', 0, 'connects'); // B's link to A is connected before the test proper
    await until(() => back.events.length === 1);
    await B.server.flush();
    const seen = answerTwice(b1, 'a1/p', () => B.uds.metrics().queued);
    A.server.controller('a1').sendEvent('b1/p', 0, 'ping');
    await until(() => back.events.length === 3);
    expect(seen.queuedAfterDelivery).toBe(0);
    expect(back.events.map((e) => e.epoch)).toEqual([0, 1, 2]);
    await A.server.close();
    await B.server.close();
  });

  it('routes same-server nodes in-process and other-server nodes over the socket', async () => {
    const { A, B } = await pair();
    for (const c of [...A.server.controllers(), ...B.server.controllers()]) {
      c.setInbox('p', new RecordingInbox());
    }
    const a1 = A.server.controller('a1');
    a1.sendEvent('a2/p', 0, 1);
    a1.sendEvent('b1/p', 0, 1);
    a1.sendEvent('self/p', 0, 1);
    expect(a1.metrics().sentVia).toEqual({
      inprocess: { events: 1, promises: 0 },
      uds: { events: 1, promises: 0 },
      local: { events: 1, promises: 0 },
    });
    await A.server.close();
    await B.server.close();
  });

  it('keeps FIFO and exactly-once for 50,000 events from two senders with interleaved promises', async () => {
    const { A, B } = await pair();
    const inbox = new RecordingInbox();
    B.server.controller('b1').setInbox('p', inbox);
    const senders = [A.server.controller('a1'), A.server.controller('a2')];
    const total = 50_000;
    let promises = 0;
    for (let i = 0; i < total; i++) {
      const s = senders[i % 2]!;
      if (!s.writable) await s.drained();
      s.sendEvent('b1/p', i, new Uint8Array(new Uint32Array([i]).buffer));
      if (i % 1000 === 999) {
        s.sendPromise('b1/p', promises++, i, 500);
      }
    }
    await until(() => inbox.events.length >= total && inbox.promises.length >= promises, 30_000);
    expect(inbox.events).toHaveLength(total);
    expect(inbox.promises).toHaveLength(promises);
    for (const node of ['a1', 'a2']) {
      const seq = inbox.events
        .filter((e) => e.sender.node === node)
        .map((e) => new Uint32Array((e.data as Uint8Array).slice().buffer)[0]!);
      expect(seq).toHaveLength(total / 2);
      for (let i = 1; i < seq.length; i++) {
        if (seq[i]! !== seq[i - 1]! + 2) throw new Error(`${node}: ${seq[i - 1]} then ${seq[i]}`);
      }
    }
    await A.server.close();
    await B.server.close();
  });

  it('applies back-pressure at the link: unwritable above the mark, BackpressureError at the limit', async () => {
    const { A, B } = await pair({ highWaterMarkMessages: 100, hardLimitMessages: 200 });
    B.server.controller('b1').setInbox('p', new RecordingInbox());
    const a1 = A.server.controller('a1');
    for (let i = 0; i < 200; i++) a1.sendEvent('b1/p', i, i);
    expect(a1.writable).toBe(false);
    expect(() => a1.sendEvent('b1/p', 0, 0)).toThrow(/outbound queue of uds link/);
    await a1.drained();
    expect(a1.writable).toBe(true);
    await A.server.close();
    await B.server.close();
  });

  it('closes within closeTimeoutMs when the peer stops reading, counting what it did not take', async () => {
    const { A, B } = await pair(undefined, 100);
    B.uds.pauseInbound(); // the socket buffers fill, then A's queue holds the rest
    const errors: Error[] = [];
    A.server.on('error', (err: Error) => errors.push(err));
    const a1 = A.server.controller('a1');
    const payload = new Uint8Array(64 * 1024);
    for (let i = 0; i < 200; i++) a1.sendEvent('b1/p', i, payload); // 12.5 MiB
    await A.server.close();
    const lost = errors.find((e): e is LinkClosedError => e instanceof LinkClosedError);
    expect(lost?.message).toContain('closed before the peer read everything');
    // Frames the socket took but could not send are lost with it: counted in bytes.
    expect(lost?.message).toMatch(/and \d+ bytes of frames written to the socket but not sent/);
    expect(lost!.unacknowledged).toBeGreaterThan(0);
    expect(lost!.unacknowledged).toBeLessThan(200);
    await B.server.close();
  });

  it('fails a link whose peer never listens with LinkClosedError counting what was queued', async () => {
    const { A, B } = await pair();
    await B.server.close(); // B stops listening before A ever connects
    const errors: Error[] = [];
    A.server.on('error', (e) => errors.push(e));
    const a1 = A.server.controller('a1');
    a1.sendEvent('b1/p', 0, 1);
    a1.sendEvent('b1/p', 0, 2);
    await until(() => errors.length > 0, 10_000);
    expect(errors[0]).toBeInstanceOf(LinkClosedError);
    expect((errors[0] as LinkClosedError).unacknowledged).toBe(2);
    expect(() => a1.sendEvent('b1/p', 0, 3)).toThrow(LinkClosedError);
    await A.server.close();
  });

  it('reports a peer that goes away as PeerDeadError', async () => {
    const { A, B } = await pair();
    B.server.controller('b1').setInbox('p', new RecordingInbox());
    const errors: Error[] = [];
    A.server.on('error', (e) => errors.push(e));
    const a1 = A.server.controller('a1');
    a1.sendEvent('b1/p', 0, 1);
    await a1.flush();
    await B.uds.close(); // closes B's side of every connection
    await until(() => errors.length > 0);
    expect(errors[0]).toBeInstanceOf(PeerDeadError);
    await A.server.close();
    await B.server.close();
  });

  it('closes a connection that sends a corrupt frame, naming the peer, and stays up', async () => {
    const { B } = await pair();
    const errors: Error[] = [];
    B.server.on('error', (e) => errors.push(e));
    const sock = connect(`\0${B.uds.endpoint}`);
    await new Promise((r) => sock.once('connect', r));
    const junk = new Uint8Array(64).fill(0xab);
    sock.write(junk);
    await until(() => errors.length > 0);
    expect(errors[0]).toBeInstanceOf(FrameCorruptError);
    expect((errors[0] as Error).message).toMatch(/uds:disco\..*#1: bad frame magic/);
    await new Promise((r) => sock.once('close', r));
    await B.server.close();
  });
});
