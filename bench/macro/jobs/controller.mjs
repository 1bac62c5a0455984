/**
 * The job the controller cases (bench/macro/cases/controller.mjs) run in both Server processes
 * of an Application: node n0 lives in Server s0, node n1 in Server s1, and the link between the
 * two processes is whatever the Application was given (shared-memory rings or Unix sockets).
 *
 * Requests from the case process (job messages, answered with `{ run, ... }`):
 *   expect {run, count, size}  s1: count the next `count` events; answers `{ run, done: ns }`
 *                              after the last (and `{ run, armed }` at once)
 *   send {run, count, size}    s0: sendEvent to n1/p `count` times with one `size`-byte payload,
 *                              `burst` sends per event-loop turn, waiting for `drained()` when a
 *                              queue is above its high-water mark; answers `{ run, t0, t1 }`
 *   ping {run, count}          s0: `count` round trips n0 -> n1 -> n0, one at a time; answers
 *                              `{ run, seconds, latency }` (µs percentiles of a histogram)
 *   quit                       ends the job
 *
 * n1 answers every event whose epoch is negative (the round trips) with a 64 B event of its own.
 * Payloads are Uint8Arrays (sent as raw bytes, not serialized); the sender never changes one it
 * has sent. Epochs number the events, and n1 checks their order.
 */

import { createHistogram } from 'node:perf_hooks';
import { latencyOf } from '../../lib/stats.mjs';
import { now } from '../lib/peer.mjs';

const SIMPROC = 'p';
/** Bytes of payload sent per event-loop turn at most (the links batch once per turn). */
const BURST_BYTES = 1024 * 1024;
/** Sends per turn at most (the links' default frame holds 4096 envelopes). */
const BURST_MAX = 4096;
const HISTOGRAM_OPTIONS = { lowest: 1, highest: 10e9, figures: 3 };

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

function sender(ctx, n0) {
  const payloads = new Map();
  const payloadOf = (size) => {
    let p = payloads.get(size);
    if (p === undefined) {
      p = new Uint8Array(size).fill(0x5a);
      payloads.set(size, p);
    }
    return p;
  };
  const histogram = createHistogram(HISTOGRAM_OPTIONS);
  const ping = { count: 0, got: 0, sentAt: 0, done: null };
  const small = payloadOf(64);
  const pingOnce = () => {
    ping.sentAt = now();
    n0.sendEvent(`n1/${SIMPROC}`, -1 - ping.got, small);
  };
  n0.setInbox(SIMPROC, {
    onEvent() {
      const t = now();
      histogram.record(Math.max(1, t - ping.sentAt));
      if (++ping.got < ping.count) pingOnce();
      else ping.done?.(t);
    },
    onPromise() {},
  });
  return {
    async send({ run, count, size }) {
      const payload = payloadOf(size);
      const burst = Math.max(1, Math.min(BURST_MAX, Math.floor(BURST_BYTES / size)));
      const target = `n1/${SIMPROC}`;
      const t0 = now();
      for (let sent = 0; sent < count;) {
        const end = Math.min(count, sent + burst);
        for (; sent < end; sent++) n0.sendEvent(target, sent, payload);
        if (!n0.writable) await n0.drained();
        else await nextTurn();
      }
      ctx.send({ run, t0, t1: now() });
    },
    async ping({ run, count }) {
      histogram.reset();
      Object.assign(ping, { count, got: 0 });
      const finished = new Promise((resolve) => (ping.done = resolve));
      const start = now();
      pingOnce();
      const end = await finished;
      ctx.send({ run, seconds: (end - start) / 1e9, latency: latencyOf(histogram) });
    },
  };
}

function receiver(ctx, n1) {
  const state = { run: 0, expected: 0, received: 0, size: 0, bad: 0 };
  const small = new Uint8Array(64).fill(0x5a);
  n1.setInbox(SIMPROC, {
    onEvent(e) {
      if (e.epoch < 0) {
        n1.sendEvent(`n0/${SIMPROC}`, e.epoch, small);
        return;
      }
      if (e.epoch !== state.received || e.data.length !== state.size) state.bad++;
      if (++state.received === state.expected) {
        ctx.send({ run: state.run, done: now(), bad: state.bad });
      }
    },
    onPromise() {},
  });
  return {
    expect({ run, count, size }) {
      Object.assign(state, { run, expected: count, received: 0, size, bad: 0 });
      ctx.send({ run, armed: true });
    },
  };
}

export async function runJob(ctx) {
  const { server, signal } = ctx;
  const role =
    server.name === 's0'
      ? sender(ctx, server.controller('n0'))
      : receiver(ctx, server.controller('n1'));
  let quit;
  const finished = new Promise((resolve, reject) => {
    quit = resolve;
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
  ctx.onMessage((msg) => {
    if (msg.cmd === 'quit') {
      quit();
      return;
    }
    const handler = role[msg.cmd];
    if (handler === undefined) {
      ctx.send({ run: msg.run, error: `server ${server.name} has no request ${msg.cmd}` });
      return;
    }
    Promise.resolve(handler(msg)).catch((err) =>
      ctx.send({ run: msg.run, error: err instanceof Error ? err.stack : String(err) }),
    );
  });
  await finished;
  return { server: server.name, metrics: server.metrics() };
}
