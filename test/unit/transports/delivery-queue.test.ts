import { describe, expect, it } from 'vitest';
import {
  EMPTY_HEADERS,
  EventEnvelope,
  InProcessEvent,
  InProcessPromise,
  PromiseEnvelope,
  DataFormat,
  type IncomingEvent,
  type IncomingPromise,
} from '../../../src/envelope.js';
import { BackpressureError, LinkClosedError } from '../../../src/errors.js';
import {
  DeliveryQueue,
  LocalTarget,
  type InProcessSink,
} from '../../../src/transports/delivery-queue.js';

/** A sink that records what it is handed, in order. */
class RecordingSink implements InProcessSink {
  readonly got: (IncomingEvent | IncomingPromise)[] = [];
  constructor(
    readonly nodeName: string,
    readonly repid = 0,
  ) {}
  deliverEvent(env: IncomingEvent): void {
    this.got.push(env);
  }
  deliverPromise(env: IncomingPromise): void {
    this.got.push(env);
  }
}

const alice = Object.freeze({ node: 'a', simproc: 'p' });
const bob = Object.freeze({ node: 'b', simproc: 'p' });

function envelope(data: unknown): EventEnvelope {
  return new EventEnvelope(
    0,
    alice,
    't',
    'p',
    1,
    EMPTY_HEADERS,
    data,
    null,
    DataFormat.Raw,
    0,
    null,
  );
}

describe('DeliveryQueue', () => {
  it('builds in-process events and promises at hand-over, promises first, each lane in order', async () => {
    const q = new DeliveryQueue('test');
    const sink = new RecordingSink('t', 3);
    const target = new LocalTarget(q, sink, 'p', 3);
    const headers = { k: 'v' };
    q.pushLocalEvent(target, alice, 1.5, EMPTY_HEADERS, 'e1');
    q.pushLocalEvent(target, bob, 2, headers, 'e2');
    q.pushLocalPromise(target, alice, 2n ** 64n - 1n, 3, 7);
    q.pushLocalEvent(target, bob, 4, headers, 'e3');
    expect(sink.got).toEqual([]); // never synchronous
    await q.flushed();
    expect(sink.got.map((m) => m.constructor)).toEqual([
      InProcessPromise,
      InProcessEvent,
      InProcessEvent,
      InProcessEvent,
    ]);
    expect({ ...sink.got[0] }).toEqual({
      repid: 3,
      sender: alice,
      simproc: 'p',
      seqnr: 2n ** 64n - 1n,
      epoch: 3,
      numEvents: 7,
    });
    expect({ ...sink.got[1] }).toEqual({
      repid: 3,
      sender: alice,
      simproc: 'p',
      epoch: 1.5,
      headers: EMPTY_HEADERS,
      data: 'e1',
    });
    const later = sink.got.slice(2) as InProcessEvent[];
    expect(later.map((e) => [e.sender, e.headers, e.epoch, e.data])).toEqual([
      [bob, headers, 2, 'e2'],
      [bob, headers, 4, 'e3'],
    ]);
  });

  it('keeps one order across envelopes queued whole and in-process sends, per sink', async () => {
    const q = new DeliveryQueue('test');
    const s1 = new RecordingSink('s1');
    const s2 = new RecordingSink('s2');
    const t1 = new LocalTarget(q, s1, 'p', 0);
    const t2 = new LocalTarget(q, s2, 'p', 0);
    const whole = envelope('w1');
    q.pushLocalEvent(t1, alice, 1, EMPTY_HEADERS, 'l1');
    q.pushEvent(whole, s1);
    q.pushLocalEvent(t2, alice, 1, EMPTY_HEADERS, 'x1');
    q.pushLocalEvent(t1, alice, 1, EMPTY_HEADERS, 'l2');
    const wholePromise = new PromiseEnvelope(0, alice, 's1', 'p', 1, 1, 1, 0);
    q.pushPromise(wholePromise, s1);
    await q.flushed();
    expect(s1.got[0]).toBe(wholePromise);
    expect(s1.got[2]).toBe(whole);
    expect(s1.got.map((m) => (m as IncomingEvent).data)).toEqual([undefined, 'l1', 'w1', 'l2']);
    expect(s2.got.map((m) => (m as IncomingEvent).data)).toEqual(['x1']);
  });

  it('reuses its lanes batch after batch without mixing messages up', async () => {
    const q = new DeliveryQueue('test');
    const sink = new RecordingSink('t');
    const target = new LocalTarget(q, sink, 'p', 0);
    for (let batch = 0; batch < 3; batch++) {
      const n = batch === 1 ? 5 : 100; // a short batch between long ones
      for (let i = 0; i < n; i++)
        q.pushLocalEvent(target, alice, i, EMPTY_HEADERS, `${batch}:${i}`);
      await q.flushed();
      const got = sink.got.splice(0).map((m) => (m as IncomingEvent).data);
      expect(got).toEqual(Array.from({ length: n }, (_, i) => `${batch}:${i}`));
    }
  });

  it('queues sends made during a hand-over for the next batch', async () => {
    const q = new DeliveryQueue('test');
    const order: string[] = [];
    let waitedForNext: Promise<void> | null = null;
    const sink: InProcessSink = {
      nodeName: 't',
      repid: 0,
      deliverEvent: (env) => {
        order.push(String(env.data));
        if (env.data === 'first') {
          q.pushLocalEvent(target, alice, 1, EMPTY_HEADERS, 'from inbox');
          waitedForNext = q.flushed().then(() => void order.push('flushed'));
        }
      },
      deliverPromise: () => {},
    };
    const target = new LocalTarget(q, sink, 'p', 0);
    q.pushLocalEvent(target, alice, 1, EMPTY_HEADERS, 'first');
    q.pushLocalEvent(target, alice, 1, EMPTY_HEADERS, 'second');
    await q.flushed();
    expect(order).toEqual(['first', 'second']);
    await waitedForNext;
    expect(order).toEqual(['first', 'second', 'from inbox', 'flushed']);
  });

  it('is unwritable above the high-water mark, refuses at the hard limit, and drains', async () => {
    const q = new DeliveryQueue('test', { highWaterMark: 3, hardLimit: 5 });
    const sink = new RecordingSink('t');
    const target = new LocalTarget(q, sink, 'p', 0);
    let drains = 0;
    q.on('drain', () => drains++);
    for (let i = 0; i < 3; i++) q.pushLocalEvent(target, alice, i, EMPTY_HEADERS, i);
    expect(q.writable).toBe(true);
    q.pushLocalPromise(target, alice, 0, 0, 1);
    expect(q.writable).toBe(false);
    q.pushEvent(envelope(4), sink);
    expect(() => q.pushLocalEvent(target, alice, 5, EMPTY_HEADERS, 5)).toThrow(BackpressureError);
    expect(() => q.pushLocalPromise(target, alice, 1, 0, 1)).toThrow(BackpressureError);
    expect(q.queued).toBe(5);
    expect(q.backpressureEvents).toBe(1);
    await q.flushed();
    expect(sink.got).toHaveLength(5);
    expect(q.writable).toBe(true);
    expect(drains).toBe(1);
    expect(q.eventsPushed).toBe(4);
    expect(q.promisesPushed).toBe(1);
    expect(q.eventsDelivered).toBe(4);
    expect(q.promisesDelivered).toBe(1);
    q.pushLocalEvent(target, alice, 6, EMPTY_HEADERS, 6); // writable again: accepted
    await q.flushed();
    expect(sink.got).toHaveLength(6);
  });

  it('after close, refuses new messages and still hands over what was queued', async () => {
    const q = new DeliveryQueue('test');
    const sink = new RecordingSink('t');
    const target = new LocalTarget(q, sink, 'p', 0);
    q.pushLocalEvent(target, alice, 1, EMPTY_HEADERS, 'kept');
    q.close(new LinkClosedError('test', 'closed'));
    expect(() => q.pushLocalEvent(target, alice, 1, EMPTY_HEADERS, 'late')).toThrow(
      LinkClosedError,
    );
    expect(q.queued).toBe(1);
    await q.flushed();
    expect(sink.got.map((m) => (m as IncomingEvent).data)).toEqual(['kept']);
  });
});
