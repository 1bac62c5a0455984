/**
 * Peer process of the GrpcTransport cases (bench/macro/cases/grpc-link.mjs): the sender end, node
 * n0 in Server s0 (bench/macro/lib/grpc-node.mjs).
 *
 *   start {cluster, reliability, port}  starts the end, points it at the receiver's `port`;
 *                                       { port } of its own listener
 *   send {count, size}                  sendEvent to n1/p `count` times with one `size`-byte
 *                                       payload, `burst` sends per event-loop turn, waiting for
 *                                       `drained()` when the link is above its high-water mark;
 *                                       { t0, t1 } (ns)
 *   roundTrips {count}                  `count` 64 B round trips n0 -> n1 -> n0, one at a time;
 *                                       { seconds, latency } (µs percentiles of a histogram)
 *   metrics                             the transport's counters
 *
 * Payloads are Uint8Arrays (raw bytes, not serialized); a payload is never changed once sent.
 * Epochs number the events of a run (the receiver checks their order); round trips use
 * negative epochs, which the receiver answers.
 */

import { createHistogram } from 'node:perf_hooks';
import { latencyOf } from '../../lib/stats.mjs';
import { payloadOf } from '../lib/frames.mjs';
import { ENDS, SIMPROC, startGrpcEnd } from '../lib/grpc-node.mjs';
import { now, serve } from '../lib/peer.mjs';

/** Bytes of payload sent per event-loop turn at most (as the NodeController shm cases). */
const BURST_BYTES = 1024 * 1024;
/** Sends per turn at most. */
const BURST_MAX = 4096;
const HISTOGRAM_OPTIONS = { lowest: 1, highest: 10e9, figures: 3 };
const TARGET = `${ENDS.receiver.node}/${SIMPROC}`;

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

let end = null;
const payloads = new Map();
const ping = {
  count: 0,
  got: 0,
  sentAt: 0,
  done: null,
  histogram: createHistogram(HISTOGRAM_OPTIONS),
};
const small = payloadOf(64);

function payload(size) {
  let p = payloads.get(size);
  if (p === undefined) {
    p = payloadOf(size);
    payloads.set(size, p);
  }
  return p;
}

function pingOnce() {
  ping.sentAt = now();
  end.controller.sendEvent(TARGET, -1 - ping.got, small);
}

function checkLink() {
  const err = end.failure();
  if (err !== undefined) throw err;
}

serve({
  async start({ cluster, reliability, port }) {
    end = await startGrpcEnd({ role: 'sender', cluster, reliability });
    end.connect(port);
    end.controller.setInbox(SIMPROC, {
      onEvent() {
        const t = now();
        ping.histogram.record(Math.max(1, t - ping.sentAt));
        if (++ping.got < ping.count) pingOnce();
        else ping.done?.(t);
      },
      onPromise() {},
    });
    return { port: end.port };
  },

  async send({ count, size }) {
    const n0 = end.controller;
    const bytes = payload(size);
    const burst = Math.max(1, Math.min(BURST_MAX, Math.floor(BURST_BYTES / size)));
    const t0 = now();
    for (let sent = 0; sent < count;) {
      const stop = Math.min(count, sent + burst);
      for (; sent < stop; sent++) n0.sendEvent(TARGET, sent, bytes);
      if (!n0.writable) await n0.drained();
      else await nextTurn();
      checkLink();
    }
    return { t0, t1: now() };
  },

  async roundTrips({ count }) {
    ping.histogram.reset();
    Object.assign(ping, { count, got: 0 });
    const finished = new Promise((resolve) => (ping.done = resolve));
    const start = now();
    pingOnce();
    const t = await finished;
    checkLink();
    return { seconds: (t - start) / 1e9, latency: latencyOf(ping.histogram) };
  },

  metrics() {
    return { transport: end.transport.metrics(), link: end.transport.linkMetrics?.() };
  },

  async close() {
    await end?.close();
    end = null;
    return {};
  },
});
