/**
 * The raw shared-memory ring between two processes, without a transport on top: the case
 * process creates the rings and reads; a forked peer (bench/macro/peers/ring.mjs) writes.
 *
 *   tput.ring.frame  one writeFrame per prebuilt sealed frame of `batch` events (a cycle of
 *                    frames with distinct epochs): batch=1 is one boundary crossing per message;
 *                    a larger batch writes the very bytes tput.uds.concat writes, so the ring
 *                    and the socket carry the same frames and only the reading differs;
 *   tput.ring.batch  one writeBatch per `batch` messages of a prebuilt staging layout: the
 *                    addon builds the FlatBuffers frame in the ring slot, copying each payload
 *                    once (what ShmTransport does per batch, minus the JS staging);
 *   rtt.ring         64 B ping-pong over two rings, each side answering as soon as its reader
 *                    (ShmTransport's RingReader) hands it the message, with the idle strategy
 *                    and doorbell under test on both consumers (spinNs: polling window after
 *                    traffic, 0 = a reader that always sleeps; spinMode: polls all the time).
 *
 * The reader reads batches with BatchReader (the addon verifies and decodes every frame) and
 * checks the epochs; a run ends when the last message has been read.
 */

import { createHistogram } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createRing, ringSegmentName, unlinkRing } from '../../../dist/native.js';
import { RING_POLL_NS } from '../../../dist/transports/ring-reader.js';
import { latencyOf } from '../../lib/stats.mjs';
import { payloadOf, sealedFrames } from '../lib/frames.mjs';
import { Peer, now, uniqueCluster } from '../lib/peer.mjs';
import { RingReceiver, RingSender } from '../lib/ring-ends.mjs';
import { countsFor, ROUND_TRIP_COUNTS, sizeLabel } from '../lib/sizes.mjs';
import { ROUND_TRIP_WARM_OPS, warmedUp } from '../lib/warmup.mjs';

const PEER = fileURLToPath(new URL('../peers/ring.mjs', import.meta.url));
/** Frames a 'frame' producer cycles through, fewer for large ones (64 MiB of frames at most). */
const FRAME_CYCLE_MAX = 256;
const FRAME_CYCLE_BYTES = 64 * 1024 * 1024;
/** Ring capacity of the round-trip cases (one small message in flight). */
const RTT_RING_BYTES = 1024 * 1024;
/** Latency histogram range: 1 ns to 10 s, 3 significant figures. */
const HISTOGRAM_OPTIONS = { lowest: 1, highest: 10e9, figures: 3 };

function frameCycle(frameBytes) {
  return Math.max(1, Math.min(FRAME_CYCLE_MAX, Math.floor(FRAME_CYCLE_BYTES / frameBytes)));
}

/** Creates rings that this process unlinks on teardown, or at exit if teardown never runs. */
function ownRings(names, bytes) {
  const unlinkAll = () => {
    for (const name of names) {
      try {
        unlinkRing(name);
      } catch {
        // Gone already.
      }
    }
  };
  process.once('exit', unlinkAll);
  for (const name of names) createRing(name, bytes);
  return () => {
    process.off('exit', unlinkAll);
    unlinkAll();
  };
}

/** The rejection of a run: the first failure of either side. */
function runFailure() {
  let reject = () => {};
  const promise = new Promise((_, r) => (reject = r));
  promise.catch(() => {});
  return { promise, reject };
}

/**
 * One-way throughput of `size`-byte messages: `mode` 'frame' (a writeFrame per prebuilt frame
 * of `batch` messages) or 'batch' (a writeBatch per `batch` messages), through a ring of
 * `ringBytes`.
 */
export function ringThroughputCase({ size, mode, batch = 1, ringBytes }) {
  const params = `size=${sizeLabel(size)} batch=${batch} ring=${sizeLabel(ringBytes)}`;
  const cycle = frameCycle(size * batch);
  const period = mode === 'frame' ? cycle * batch : batch;
  return {
    name: `tput.ring.${mode} ${params}`,
    bytesPerOp: size,
    async setup() {
      const ring = ringSegmentName(uniqueCluster(), 0, 1);
      const release = ownRings([ring], ringBytes);
      const state = { expected: 0, received: 0, epoch: 0, bad: 0, done: null, failure: null };
      const receiver = new RingReceiver(
        ring,
        undefined,
        (reader) => {
          const n = reader.envelopeCount;
          let epoch = state.epoch;
          for (let i = 0; i < n; i++) {
            if (reader.epoch(i) !== epoch) state.bad++;
            epoch = epoch + 1 === period ? 0 : epoch + 1;
          }
          state.epoch = epoch;
          state.received += n;
          if (state.received >= state.expected && state.done !== null) {
            const done = state.done;
            state.done = null;
            done(now());
          }
        },
        (err) => state.failure?.reject(err),
      );
      let peer;
      try {
        peer = await Peer.start(PEER, 'producer');
        await peer.request('producer', { ring, size, mode, batch, cycle });
      } catch (err) {
        await peer?.close();
        receiver.close();
        release();
        throw err;
      }
      return {
        bytesPerOp: size,
        ...countsFor(size, batch),
        async run(count) {
          Object.assign(state, { expected: count, received: 0, epoch: 0 });
          state.failure = runFailure();
          const finished = new Promise((resolve) => (state.done = resolve));
          const produced = peer.request('produce', { count });
          const [{ t0 }, t1] = await Promise.race([
            Promise.all([produced, finished]),
            state.failure.promise,
          ]);
          if (state.received !== count) {
            throw new Error(`read ${state.received} messages, expected ${count}`);
          }
          return { seconds: (t1 - t0) / 1e9 };
        },
        check() {
          if (state.bad > 0) throw new Error(`${state.bad} messages out of order`);
        },
        async teardown() {
          try {
            await peer.request('close');
          } finally {
            await peer.close();
            receiver.close();
            release();
          }
        },
      };
    },
  };
}

function doorbellLabel(doorbell) {
  const kind = doorbell.doorbell ?? 'futex';
  if (doorbell.spinMode === true) return `doorbell=${kind} spinMode=1`;
  return `doorbell=${kind} spinNs=${doorbell.spinNs ?? RING_POLL_NS}`;
}

/**
 * 64 B ping-pong over two rings with `doorbell` (RingDoorbellOptions) on both consumers: this
 * process writes, the peer answers from its doorbell callback, this process records the time
 * from write to answer and writes the next. `warm`: warm up first (bench/macro/lib/warmup.mjs).
 */
export function ringRoundTripCase(doorbell, { warm = false } = {}) {
  return {
    name: `rtt.ring size=64B ${doorbellLabel(doorbell)}`,
    async setup() {
      const cluster = uniqueCluster();
      const there = ringSegmentName(cluster, 0, 1);
      const back = ringSegmentName(cluster, 1, 0);
      const release = ownRings([there, back], RTT_RING_BYTES);
      const cycle = FRAME_CYCLE_MAX;
      const frames = sealedFrames(payloadOf(64), 1, cycle);
      const histogram = createHistogram(HISTOGRAM_OPTIONS);
      const state = { count: 0, got: 0, sent: 0, sentAt: 0, done: null, failure: null };
      let sender = null;
      let receiver = null;
      let peer;
      const send = () => {
        state.sentAt = now();
        const done = sender.writeFrame(frames[state.sent++ % cycle]);
        if (done !== true) done.catch((err) => state.failure?.reject(err));
        receiver?.expectTraffic();
      };
      try {
        peer = await Peer.start(PEER, 'echo');
        await peer.request('echo', { inRing: there, outRing: back, doorbell, cycle });
        sender = new RingSender(there);
        receiver = new RingReceiver(
          back,
          doorbell,
          (reader) => {
            const t = now();
            for (let i = reader.envelopeCount; i > 0; i--) {
              histogram.record(Math.max(1, t - state.sentAt));
              state.got++;
            }
            if (state.got < state.count) send();
            else if (state.done !== null) {
              const done = state.done;
              state.done = null;
              done(t);
            }
          },
          (err) => state.failure?.reject(err),
        );
      } catch (err) {
        receiver?.close();
        sender?.close();
        await peer?.close();
        release();
        throw err;
      }
      const instance = {
        ...ROUND_TRIP_COUNTS,
        warmOps: ROUND_TRIP_WARM_OPS,
        async run(count) {
          histogram.reset();
          Object.assign(state, { count, got: 0 });
          state.failure = runFailure();
          const finished = new Promise((resolve) => (state.done = resolve));
          const start = now();
          send();
          const end = await Promise.race([finished, state.failure.promise]);
          return { seconds: (end - start) / 1e9, latency: latencyOf(histogram) };
        },
        async teardown() {
          receiver.close();
          sender.close();
          try {
            await peer.request('close');
          } finally {
            await peer.close();
            release();
          }
        },
      };
      return warmedUp(instance, warm);
    },
  };
}
