/**
 * In-process delivery: `sendEvent` / `sendPromise` on one NodeController until the
 * receiving inbox has seen the whole batch, against a bare EventEmitter of the same
 * event object in the same run (the goal: at least a fifth of its messages/s).
 *
 * Every batch is `BATCH` sends in one synchronous loop; delivery is asynchronous (one
 * setImmediate per batch, DESIGN §7), so those cases run in benchmark.js deferred
 * mode and one timed operation ends when the inbox has counted the last message.
 * Routes: `n0->n1` crosses the InProcessTransport between two controllers of one
 * Server; `self` is a node sending to itself (the controller's own queue).
 *
 * `n0->n1..n8` sends to eight nodes in turn, so caches of the last target do not help.
 *
 * References besides the baseline: EventEmitter with a fresh event object per emit
 * (a send allocates its envelope; the baseline reuses one object), the same delivery
 * deferred by one setImmediate per batch (the floor of any asynchronous hand-over),
 * and a round trip n0 -> n1 -> n0 with latency percentiles against two bare
 * setImmediate hops.
 */

import { EventEmitter } from 'node:events';
import { createHistogram } from 'node:perf_hooks';
import { EMPTY_HEADERS, Server } from '../../dist/index.js';

const BATCH = 10_000;
/** Receivers of the fan-out case. */
const FAN_OUT = 8;
const SIMPROC = 'p';
/** The goal of the issue: in-process messages/s at least this fraction of EventEmitter's. */
const GOAL_RATIO = 0.2;
const EE_BASELINE = `eventemitter.emit batch=${BATCH} listeners=1`;
/** Latency histogram range: 1 ns to 10 s, 3 significant figures. */
const HISTOGRAM_OPTIONS = { lowest: 1, highest: 10e9, figures: 3 };

export const suite = {
  name: 'inprocess',
  title: 'in-process sendEvent -> onEvent against EventEmitter',
  notes: [
    `One op = ${BATCH} sends and their delivery to the target inbox, or one round trip.`,
    'EventEmitter: one listener, synchronous, the same prebuilt event object every time',
    '(event=fresh: a new object per emit, kept by the listener, as an inbox keeps events).',
  ],
};

/** The data every event carries: passed by reference in-process, never copied. */
const DATA = Object.freeze({ cell: 42, value: 1.5 });

/**
 * Ends a deferred op once the current delivery callback and its batch have returned.
 * Resolving inside the inbox would start the next op's sends inside the previous
 * batch's delivery loop, with that batch still referenced (more live objects for the
 * scavenger): the benchmark would then measure its own nesting, not the transport.
 */
function finish(deferred) {
  queueMicrotask(() => deferred.resolve());
}

function expect(ok, what) {
  if (!ok) throw new Error(`benchmark check failed: ${what}`);
}

/**
 * A Server with nodes n0 and n1 whose inbox for `p` on `receiverNode` finishes the
 * current op once it has seen `state.expected` messages.
 */
function deliveryFixture(receiverNode) {
  const server = Server.standalone({ nodes: 2, simprocs: [SIMPROC] });
  const state = { seen: 0, expected: 0, delivered: 0, done: null };
  const onMessage = () => {
    if (++state.seen !== state.expected) return;
    state.delivered += state.seen;
    finish(state.done);
  };
  server.controller(receiverNode).setInbox(SIMPROC, { onEvent: onMessage, onPromise: onMessage });
  return { server, state, sender: server.controller('n0') };
}

/** A deferred case: `BATCH` calls of `send(controller, target, i)`, then wait for all. */
function sendCase(kind, route, send) {
  const receiver = route === 'self' ? 'n0' : 'n1';
  return {
    name: `inprocess.${kind} batch=${BATCH} route=${route}`,
    baseline: EE_BASELINE,
    goal: kind === 'sendEvent' && route !== 'self' ? GOAL_RATIO : undefined,
    messagesPerOp: BATCH,
    setup() {
      const { server, state, sender } = deliveryFixture(receiver);
      const target = `${route === 'self' ? 'self' : receiver}/${SIMPROC}`;
      const fn = (deferred) => {
        state.seen = 0;
        state.expected = BATCH;
        state.done = deferred;
        for (let i = 0; i < BATCH; i++) send(sender, target, i);
      };
      return {
        defer: true,
        fn,
        check: () =>
          expect(state.delivered > 0 && state.delivered % BATCH === 0, `${state.delivered}`),
        teardown: () => server.close(),
      };
    },
  };
}

function eventEmitterCases() {
  const event = {
    repid: 0,
    sender: Object.freeze({ node: 'n0', simproc: SIMPROC }),
    simproc: SIMPROC,
    epoch: 1,
    headers: EMPTY_HEADERS,
    data: DATA,
  };
  return [
    {
      name: EE_BASELINE,
      messagesPerOp: BATCH,
      setup() {
        const ee = new EventEmitter();
        let seen = 0;
        ee.on('event', () => void seen++);
        const fn = () => {
          for (let i = 0; i < BATCH; i++) ee.emit('event', event);
        };
        return { fn, check: () => expect(seen > 0 && seen % BATCH === 0, `${seen}`) };
      },
    },
    {
      name: `eventemitter.emit batch=${BATCH} listeners=1 event=fresh`,
      baseline: EE_BASELINE,
      messagesPerOp: BATCH,
      setup() {
        const ee = new EventEmitter();
        let seen = 0;
        // Keeping the last event makes it escape, as an event queue's inbox would:
        // otherwise V8 may inline the listener and never allocate the object.
        let last = null;
        ee.on('event', (e) => {
          last = e;
          seen++;
        });
        const { repid, sender, simproc, headers, data } = event;
        const fn = () => {
          for (let i = 0; i < BATCH; i++) {
            ee.emit('event', { repid, sender, simproc, epoch: i, headers, data });
          }
        };
        const check = () => expect(last !== null && seen % BATCH === 0, `${seen}`);
        return { fn, check };
      },
    },
    {
      name: `eventemitter.emit+setImmediate batch=${BATCH} listeners=1`,
      baseline: EE_BASELINE,
      messagesPerOp: BATCH,
      setup() {
        const ee = new EventEmitter();
        const queue = [];
        let deferred = null;
        let seen = 0;
        ee.on('event', () => {
          if (++seen === BATCH) finish(deferred);
        });
        const deliver = () => {
          for (let i = 0; i < queue.length; i++) ee.emit('event', queue[i]);
          queue.length = 0;
        };
        const fn = (d) => {
          deferred = d;
          seen = 0;
          for (let i = 0; i < BATCH; i++) queue.push(event);
          setImmediate(deliver);
        };
        return { defer: true, fn };
      },
    },
  ];
}

/** n0 sends to n1, whose inbox answers n0; one op ends when the answer arrives. */
function roundTripCases() {
  const floor = 'setimmediate.roundtrip hops=2';
  return [
    {
      name: floor,
      setup() {
        const histogram = createHistogram(HISTOGRAM_OPTIONS);
        let deferred = null;
        let start = 0n;
        const back = () => {
          histogram.record(process.hrtime.bigint() - start);
          finish(deferred);
        };
        const there = () => setImmediate(back);
        const fn = (d) => {
          deferred = d;
          start = process.hrtime.bigint();
          setImmediate(there);
        };
        return { defer: true, fn, histogram };
      },
    },
    {
      name: 'inprocess.sendEvent roundtrip route=n0->n1->n0',
      baseline: floor,
      setup() {
        const server = Server.standalone({ nodes: 2, simprocs: [SIMPROC] });
        const histogram = createHistogram(HISTOGRAM_OPTIONS);
        const n0 = server.controller('n0');
        const n1 = server.controller('n1');
        let deferred = null;
        let start = 0n;
        const ignore = () => {};
        n1.setInbox(SIMPROC, {
          onEvent: (e) => n1.sendEvent('n0/p', e.epoch, e.data),
          onPromise: ignore,
        });
        n0.setInbox(SIMPROC, {
          onEvent: () => {
            histogram.record(process.hrtime.bigint() - start);
            finish(deferred);
          },
          onPromise: ignore,
        });
        const fn = (d) => {
          deferred = d;
          start = process.hrtime.bigint();
          n0.sendEvent('n1/p', 1, DATA);
        };
        return { defer: true, fn, histogram, teardown: () => server.close() };
      },
    },
  ];
}

/** n0 sends to n1 ... n<FAN_OUT> in turn, so no cache of the last target or sink helps. */
function fanOutCase() {
  return {
    name: `inprocess.sendEvent batch=${BATCH} route=n0->n1..n${FAN_OUT}`,
    baseline: EE_BASELINE,
    messagesPerOp: BATCH,
    setup() {
      const server = Server.standalone({ nodes: FAN_OUT + 1, simprocs: [SIMPROC] });
      const state = { seen: 0, delivered: 0, done: null };
      const onMessage = () => {
        if (++state.seen !== BATCH) return;
        state.delivered += state.seen;
        finish(state.done);
      };
      const targets = [];
      for (let n = 1; n <= FAN_OUT; n++) {
        server.controller(`n${n}`).setInbox(SIMPROC, { onEvent: onMessage, onPromise: onMessage });
        targets.push(`n${n}/${SIMPROC}`);
      }
      const sender = server.controller('n0');
      const fn = (deferred) => {
        state.seen = 0;
        state.done = deferred;
        for (let i = 0; i < BATCH; i++) sender.sendEvent(targets[i % FAN_OUT], i, DATA);
      };
      return {
        defer: true,
        fn,
        check: () =>
          expect(state.delivered > 0 && state.delivered % BATCH === 0, `${state.delivered}`),
        teardown: () => server.close(),
      };
    },
  };
}

/** The cases of this suite, baseline first. */
export function cases() {
  const event = (c, target, i) => c.sendEvent(target, i, DATA);
  const promise = (c, target, i) => c.sendPromise(target, i, i, 1);
  const [baseline, freshEmit, deferredEmit] = eventEmitterCases();
  return [
    baseline,
    sendCase('sendEvent', 'n0->n1', event),
    sendCase('sendEvent', 'self', event),
    sendCase('sendPromise', 'n0->n1', promise),
    sendCase('sendPromise', 'self', promise),
    fanOutCase(),
    freshEmit,
    deferredEmit,
    ...roundTripCases(),
  ];
}
