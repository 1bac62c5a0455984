import { describe, expect, it } from 'vitest';
import { Server } from '../../src/runtime/server.js';
import {
  BackpressureError,
  InvalidArgumentError,
  InvalidTargetError,
  SerializationError,
  UndeliverableError,
  UnknownNodeError,
} from '../../src/errors.js';
import { MAX_NUM_EVENTS } from '../../src/arguments.js';
import { EventEnvelope, PromiseEnvelope } from '../../src/envelope.js';
import type { LocalNode } from '../../src/transports/transport.js';
import { RecordingInbox, until } from './helpers.js';

function twoNodes(simprocs = ['physics', 'render']) {
  const server = Server.standalone({ nodes: ['a', 'b'], simprocs });
  const a = server.controller('a');
  const b = server.controller('b');
  const inboxA = new RecordingInbox();
  const inboxB = new RecordingInbox();
  for (const s of simprocs) {
    a.setInbox(s, inboxA);
    b.setInbox(s, inboxB);
  }
  return { server, a, b, inboxA, inboxB };
}

describe('NodeController sending and receiving', () => {
  it('delivers an event to the target simproc with sender, epoch, headers and data', async () => {
    const { a, inboxB, server } = twoNodes();
    a.activeSimproc = 'render';
    const data = { x: 1 };
    a.sendEvent('b/physics', 2.5, data, { kind: 'hit' });
    await a.flush();
    expect(inboxB.events).toHaveLength(1);
    const e = inboxB.events[0]!;
    expect(e.sender).toEqual({ node: 'a', simproc: 'render' });
    expect(e.simproc).toBe('physics');
    expect(e.epoch).toBe(2.5);
    expect(e.headers).toEqual({ kind: 'hit' });
    expect(e.data).toBe(data); // by reference: never serialized in-process
    expect(e.repid).toBe(0);
    await server.close();
  });

  it('delivers promises with full-range seqnr and numEvents', async () => {
    const { a, inboxB, server } = twoNodes();
    a.sendPromise('b/physics', 7, 1, MAX_NUM_EVENTS);
    a.sendPromise('b/physics', 2n ** 64n - 1n, 1, 0);
    a.sendPromise('b/physics', 2 ** 60, 1, 3);
    await a.flush();
    expect(inboxB.promises.map((p) => p.seqnr)).toEqual([7, 2n ** 64n - 1n, 2n ** 60n]);
    expect(inboxB.promises[0]!.numEvents).toBe(MAX_NUM_EVENTS);
    await server.close();
  });

  it('resolves "self" to the sending node and never delivers synchronously', async () => {
    const { a, inboxA, server } = twoNodes();
    a.sendEvent('self/physics', 1, 'hello');
    a.sendPromise('self/render', 1, 1, 1);
    expect(inboxA.order).toEqual([]); // not re-entrant into the sender's stack
    await a.flush();
    expect(inboxA.events[0]!.data).toBe('hello');
    expect(inboxA.events[0]!.sender.node).toBe('a');
    expect(inboxA.promises).toHaveLength(1);
    expect(a.metrics().sentVia).toEqual({ local: { events: 1, promises: 1 } });
    await server.close();
  });

  it('sends to its own name like "self"', async () => {
    const { a, inboxA, server } = twoNodes();
    a.sendEvent('a/physics', 1, 1);
    await a.flush();
    expect(inboxA.events).toHaveLength(1);
    expect(a.metrics().sentVia.local?.events).toBe(1);
    await server.close();
  });

  it('hands promises over before events queued earlier in the same batch', async () => {
    const { a, inboxB, server } = twoNodes();
    a.sendEvent('b/physics', 1, 'e1');
    a.sendEvent('b/physics', 1, 'e2');
    a.sendPromise('b/physics', 1, 1, 2);
    await a.flush();
    expect(inboxB.order).toEqual(['p', 'e', 'e']);
    await server.close();
  });

  it('keeps FIFO order per sender/target pair for 100,000 events with interleaved promises', async () => {
    const server = Server.standalone({ nodes: ['s1', 's2', 't'], simprocs: ['q'] });
    const inbox = new RecordingInbox();
    server.controller('t').setInbox('q', inbox);
    const senders = [server.controller('s1'), server.controller('s2')];
    for (const s of senders) s.setInbox('q', new RecordingInbox());
    const total = 100_000;
    let seq = 0;
    for (let i = 0; i < total; i++) {
      const s = senders[i % 2]!;
      if (!s.writable) await s.drained();
      s.sendEvent('t/q', i, i);
      if (i % 100 === 99) s.sendPromise('t/q', seq++, i, 100);
    }
    await until(() => inbox.events.length === total && inbox.promises.length === seq);
    for (const node of ['s1', 's2']) {
      const got = inbox.events.filter((e) => e.sender.node === node).map((e) => e.data as number);
      expect(got).toHaveLength(total / 2);
      for (let i = 1; i < got.length; i++) {
        if (got[i]! <= got[i - 1]!) throw new Error(`events from ${node} reordered at ${i}`);
      }
      const seqs = inbox.promises
        .filter((p) => p.sender.node === node)
        .map((p) => p.seqnr as number);
      for (let i = 1; i < seqs.length; i++) expect(seqs[i]!).toBeGreaterThan(seqs[i - 1]!);
    }
    await server.close();
  });

  it('holds messages for a simproc without an inbox and hands them over in order later', async () => {
    const server = Server.standalone({ nodes: ['a', 'b'], simprocs: ['p'] });
    const a = server.controller('a');
    const b = server.controller('b');
    a.sendEvent('b/p', 1, 'first');
    a.sendPromise('b/p', 1, 1, 2);
    a.sendEvent('b/p', 1, 'second');
    await a.flush();
    expect(b.metrics().heldMessages).toBe(3);
    const inbox = new RecordingInbox();
    b.setInbox('p', inbox);
    a.sendEvent('b/p', 1, 'third'); // must not overtake the held ones
    await until(() => inbox.events.length === 3);
    expect(inbox.events.map((e) => e.data)).toEqual(['first', 'second', 'third']);
    expect(inbox.promises).toHaveLength(1);
    expect(b.metrics().heldMessages).toBe(0);
    await server.close();
  });

  it('reports, rather than silently drops, messages beyond maxHeldMessages', async () => {
    const server = Server.standalone({ nodes: ['a'], simprocs: ['p'] });
    const a = server.controller('a');
    // A controller with a tiny hold limit on the same router.
    const { NodeController } = await import('../../src/node-controller.js');
    const c = new NodeController({
      nodeName: 'c',
      simprocs: ['p'],
      router: server.router,
      maxHeldMessages: 1,
    });
    const errors: unknown[] = [];
    c.on('error', (e) => errors.push(e));
    a.sendEvent('c/p', 1, 1);
    a.sendEvent('c/p', 1, 2);
    await a.flush();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(UndeliverableError);
    await c.close();
    await server.close();
  });

  it('hands an in-process inbox exactly the fields of ReceivedEvent and ReceivedPromise', async () => {
    const { a, inboxB, server } = twoNodes();
    a.sendEvent('b/physics', 1, 'x');
    a.sendPromise('b/render', 2, 3, 4);
    await a.flush();
    expect(Object.keys(inboxB.events[0]!).sort()).toEqual(
      ['data', 'epoch', 'headers', 'repid', 'sender', 'simproc'].sort(),
    );
    expect(Object.keys(inboxB.promises[0]!).sort()).toEqual(
      ['epoch', 'numEvents', 'repid', 'sender', 'seqnr', 'simproc'].sort(),
    );
    await server.close();
  });

  it('re-resolves a target sent to repeatedly once the routes change', async () => {
    const { a, b, inboxB, server } = twoNodes(['p']);
    for (let i = 0; i < 3; i++) a.sendEvent('b/p', i, i);
    await a.flush();
    expect(inboxB.events).toHaveLength(3);
    await b.close(); // detaches b: the router's routes change
    expect(() => a.sendEvent('b/p', 3, 3)).toThrow(UnknownNodeError);
    expect(a.metrics().eventsSent).toBe(3);
    await server.close();
  });

  it('hands a LocalNode that is not a NodeController whole envelopes', async () => {
    const server = Server.standalone({ nodes: ['a'], simprocs: ['p'] });
    const got: unknown[] = [];
    const foreign: LocalNode = {
      repid: 0,
      nodeName: 'z',
      deliverEvent: (env) => void got.push(env),
      deliverPromise: (env) => void got.push(env),
    };
    server.router.attach(foreign);
    const a = server.controller('a');
    a.sendEvent('z/p', 1, 'to z');
    a.sendPromise('z/p', 1, 1, 1);
    await a.flush();
    expect(got).toHaveLength(2);
    expect(got[0]).toBeInstanceOf(PromiseEnvelope);
    expect(got[1]).toBeInstanceOf(EventEnvelope);
    expect((got[1] as EventEnvelope).targetNode).toBe('z');
    expect((got[1] as EventEnvelope).data).toBe('to z');
    server.router.detach(foreign);
    await server.close();
  });

  it("reports an inbox's exception as 'error' and still delivers the rest of the batch", async () => {
    const { a, b, inboxB, server } = twoNodes(['p']);
    const errors: unknown[] = [];
    b.on('error', (e) => errors.push(e));
    b.setInbox('p', {
      onEvent: (e) => {
        if (e.data === 'boom') throw new Error('inbox failed');
        inboxB.onEvent(e);
      },
      onPromise: (p) => inboxB.onPromise(p),
    });
    a.sendEvent('b/p', 1, 'ok1');
    a.sendEvent('b/p', 1, 'boom');
    a.sendEvent('b/p', 1, 'ok2');
    await a.flush();
    expect(inboxB.events.map((e) => e.data)).toEqual(['ok1', 'ok2']);
    expect((errors[0] as Error).message).toBe('inbox failed');
    await server.close();
  });
});

describe('NodeController replyTo and reply()', () => {
  it('carries a reply address in process and answers to it, else to the sender', async () => {
    const server = Server.standalone({ nodes: ['a', 'b', 'c'], simprocs: ['p', 'q'] });
    const [a, b, c] = ['a', 'b', 'c'].map((n) => server.controller(n));
    const inboxes = ['a', 'b', 'c'].map((n) => {
      const inbox = new RecordingInbox();
      server.controller(n).setInbox('p', inbox);
      server.controller(n).setInbox('q', inbox);
      return inbox;
    });
    a!.sendEvent('b/p', 1, 'ask', undefined, { replyTo: 'c/q' });
    a!.sendEvent('b/p', 2, 'plain');
    await server.flush();
    const [asked, plain] = inboxes[1]!.events;
    expect(asked!.replyTo).toEqual({ node: 'c', simproc: 'q' });
    expect(plain!.replyTo ?? null).toBeNull();
    b!.reply(asked!, 3, 'to c');
    b!.reply(plain!, 4, 'to a');
    await server.flush();
    expect(inboxes[2]!.events.map((e) => [e.simproc, e.data])).toEqual([['q', 'to c']]);
    expect(inboxes[0]!.events.map((e) => [e.simproc, e.data])).toEqual([['p', 'to a']]);
    void c;
  });

  it('resolves "self" in a reply address and refuses a malformed one', () => {
    const server = Server.standalone({ nodes: ['a', 'b'], simprocs: ['p'] });
    const a = server.controller('a');
    expect(() => a.sendEvent('b/p', 1, 'x', undefined, { replyTo: 'nope' })).toThrow(
      InvalidTargetError,
    );
    expect(() => a.sendEvent('b/p', 1, 'x', undefined, { replyTo: 'b/zz' })).toThrow(
      InvalidTargetError,
    );
    a.sendEvent('b/p', 1, 'x', undefined, { replyTo: 'self/p' });
  });

  it('keeps the reply address across the wire format', async () => {
    const server = Server.standalone({
      nodes: ['a', 'b'],
      simprocs: ['p'],
      inProcess: { viaWire: true },
    });
    const inbox = new RecordingInbox();
    server.controller('b').setInbox('p', inbox);
    server.controller('a').sendEvent('b/p', 1, 'x', undefined, { replyTo: 'self/p' });
    await server.flush();
    expect(inbox.events[0]!.replyTo).toEqual({ node: 'a', simproc: 'p' });
  });
});

describe('NodeController argument validation', () => {
  const { a, server } = twoNodes(['physics']);
  const bad: [string, () => void, new (...args: never[]) => Error, RegExp][] = [
    ['target without "/"', () => a.sendEvent('bphysics', 1, 0), InvalidTargetError, /missing "\/"/],
    [
      'target with two "/"',
      () => a.sendEvent('b/physics/x', 1, 0),
      InvalidTargetError,
      /more than one/,
    ],
    ['empty node', () => a.sendEvent('/physics', 1, 0), InvalidTargetError, /empty node/],
    [
      'unknown simproc',
      () => a.sendEvent('b/render', 1, 0),
      InvalidTargetError,
      /unknown simproc "render"/,
    ],
    [
      'non-string target',
      () => a.sendEvent(42 as never, 1, 0),
      InvalidTargetError,
      /expected a string/,
    ],
    ['unknown node', () => a.sendEvent('zz/physics', 1, 0), UnknownNodeError, /"zz"/],
    ['NaN epoch', () => a.sendEvent('b/physics', NaN, 0), InvalidArgumentError, /epoch NaN/],
    [
      'infinite epoch',
      () => a.sendPromise('b/physics', 1, Infinity, 1),
      InvalidArgumentError,
      /epoch Infinity/,
    ],
    [
      'string epoch',
      () => a.sendEvent('b/physics', '1' as never, 0),
      InvalidArgumentError,
      /epoch "1"/,
    ],
    [
      'negative seqnr',
      () => a.sendPromise('b/physics', -1, 1, 1),
      InvalidArgumentError,
      /seqnr -1/,
    ],
    [
      'fractional seqnr',
      () => a.sendPromise('b/physics', 1.5, 1, 1),
      InvalidArgumentError,
      /seqnr 1.5/,
    ],
    [
      'seqnr 2^64',
      () => a.sendPromise('b/physics', 2n ** 64n, 1, 1),
      InvalidArgumentError,
      /seqnr 18446744073709551616n/,
    ],
    [
      'seqnr 2^64 as number',
      () => a.sendPromise('b/physics', 2 ** 64, 1, 1),
      InvalidArgumentError,
      /seqnr/,
    ],
    [
      'negative numEvents',
      () => a.sendPromise('b/physics', 1, 1, -1),
      InvalidArgumentError,
      /numEvents -1/,
    ],
    [
      'numEvents 2^32',
      () => a.sendPromise('b/physics', 1, 1, 2 ** 32),
      InvalidArgumentError,
      /numEvents 4294967296/,
    ],
    [
      'fractional numEvents',
      () => a.sendPromise('b/physics', 1, 1, 0.5),
      InvalidArgumentError,
      /numEvents 0.5/,
    ],
    [
      'non-string header',
      () => a.sendEvent('b/physics', 1, 0, { n: 1 } as never),
      InvalidArgumentError,
      /headers\["n"\] 1/,
    ],
    [
      'null headers',
      () => a.sendEvent('b/physics', 1, 0, null as never),
      InvalidArgumentError,
      /headers null/,
    ],
  ];

  it.each(bad)('rejects %s with a clear error, sending nothing', (_name, call, type, message) => {
    const before = a.metrics();
    expect(call).toThrow(type);
    expect(call).toThrow(message);
    const after = a.metrics();
    expect(after.eventsSent).toBe(before.eventsSent);
    expect(after.promisesSent).toBe(before.promisesSent);
    expect(after.transports[0]!.queued).toBe(0);
  });

  it('rejects a non-string target whose string form names a target already sent to', () => {
    a.sendEvent('b/physics', 1, 0);
    a.sendEvent('b/physics', 1, 0);
    const lookalike = { toString: () => 'b/physics' };
    expect(() => a.sendEvent(lookalike as never, 1, 0)).toThrow(InvalidTargetError);
    expect(() => a.sendEvent(['b/physics'] as never, 1, 0)).toThrow(InvalidTargetError);
  });

  it('accepts the edges of every domain', async () => {
    expect(() => a.sendPromise('b/physics', 0, -1e300, 0)).not.toThrow();
    expect(() =>
      a.sendPromise('b/physics', Number.MAX_SAFE_INTEGER, 0, MAX_NUM_EVENTS),
    ).not.toThrow();
    expect(() => a.sendPromise('b/physics', 2n ** 64n - 1n, 0, 0)).not.toThrow();
    expect(() => a.sendEvent('b/physics', 0, undefined, {})).not.toThrow();
    await server.close();
  });

  it('rejects an activeSimproc that is not one of the simprocs', () => {
    expect(() => {
      a.activeSimproc = 'nope';
    }).toThrow(InvalidArgumentError);
  });
});

describe('NodeController back-pressure', () => {
  it('turns unwritable above the high-water mark, throws at the hard limit, and drains', async () => {
    const server = Server.standalone({
      nodes: ['a', 'b'],
      simprocs: ['p'],
      inProcess: { highWaterMark: 10, hardLimit: 20 },
    });
    const a = server.controller('a');
    const inbox = new RecordingInbox();
    server.controller('b').setInbox('p', inbox);
    for (let i = 0; i < 10; i++) a.sendEvent('b/p', 1, i);
    expect(a.writable).toBe(true);
    a.sendEvent('b/p', 1, 10);
    expect(a.writable).toBe(false);
    for (let i = 11; i < 20; i++) a.sendEvent('b/p', 1, i);
    expect(() => a.sendEvent('b/p', 1, 'over')).toThrow(BackpressureError);
    expect(() => a.sendPromise('b/p', 1, 1, 1)).toThrow(BackpressureError);
    expect(a.metrics().eventsSent).toBe(20);
    let drainEvents = 0;
    a.on('drain', () => drainEvents++);
    await a.drained();
    expect(a.writable).toBe(true);
    expect(drainEvents).toBe(1);
    await a.flush();
    expect(inbox.events.map((e) => e.data)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    await server.close();
  });

  it('bounds the local queue for sends to itself too', async () => {
    const server = Server.standalone({ nodes: ['a'], simprocs: ['p'] });
    const { NodeController } = await import('../../src/node-controller.js');
    const c = new NodeController({
      nodeName: 'c',
      simprocs: ['p'],
      router: server.router,
      localQueue: { highWaterMark: 2, hardLimit: 3 },
      inboxes: { p: new RecordingInbox() },
    });
    c.sendEvent('self/p', 1, 1);
    c.sendEvent('self/p', 1, 2);
    c.sendEvent('self/p', 1, 3);
    expect(c.writable).toBe(false);
    expect(() => c.sendEvent('self/p', 1, 4)).toThrow(BackpressureError);
    await c.drained();
    expect(c.writable).toBe(true);
    await c.close();
    await server.close();
  });
});

describe('NodeController across the wire format (viaWire)', () => {
  it('serializes once, frames, verifies and delivers a faithful copy', async () => {
    const server = Server.standalone({
      nodes: ['a', 'b'],
      simprocs: ['p'],
      inProcess: { viaWire: true },
    });
    const a = server.controller('a');
    const inbox = new RecordingInbox();
    server.controller('b').setInbox('p', inbox);
    const data = {
      map: new Map([[1, 'one']]),
      set: new Set(['x']),
      date: new Date(0),
      big: 2n ** 70n,
      f64: new Float64Array([1.5, -2]),
      nested: [{ a: [1, 2, 3] }],
    };
    const raw = new Uint8Array([1, 2, 3, 250]);
    a.sendEvent('b/p', 0.25, data, { h: 'v', ü: 'ß' });
    a.sendEvent('b/p', 0.5, raw);
    a.sendPromise('b/p', 2n ** 64n - 1n, 0.25, MAX_NUM_EVENTS);
    await a.flush();
    expect(inbox.order).toEqual(['p', 'e', 'e']);
    expect(inbox.events[0]!.data).toEqual(data);
    expect(inbox.events[0]!.data).not.toBe(data);
    expect({ ...inbox.events[0]!.headers }).toEqual({ h: 'v', ü: 'ß' });
    expect(inbox.events[1]!.data).toBeInstanceOf(Uint8Array);
    expect([...(inbox.events[1]!.data as Uint8Array)]).toEqual([1, 2, 3, 250]);
    expect(inbox.promises[0]!.seqnr).toBe(2n ** 64n - 1n);
    expect(inbox.promises[0]!.numEvents).toBe(MAX_NUM_EVENTS);
    expect(inbox.events[0]!.sender).toEqual({ node: 'a', simproc: 'p' });
    expect(a.metrics().bytesSerialized).toBeGreaterThan(raw.length);
    await server.close();
  });

  it('fails the whole send, queuing nothing, when data cannot be serialized', async () => {
    const server = Server.standalone({
      nodes: ['a', 'b'],
      simprocs: ['p'],
      inProcess: { viaWire: true },
    });
    const a = server.controller('a');
    expect(() => a.sendEvent('b/p', 1, { f: () => 1 })).toThrow(SerializationError);
    expect(a.metrics().eventsSent).toBe(0);
    expect(a.metrics().transports[0]!.queued).toBe(0);
    await server.close();
  });
});
