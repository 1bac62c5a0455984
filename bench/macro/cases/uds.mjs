/**
 * Baselines over a Unix-domain stream socket between two processes, carrying the same sealed
 * frames as the ring: the case process listens and reads, a forked peer
 * (bench/macro/peers/uds.mjs) connects and writes.
 *
 *   tput.uds.write   one socket.write per message (a one-event frame), `batch` writes corked
 *                    into one writev;
 *   tput.uds.concat  one write per `batch` messages: the very bytes of tput.ring.batch (one
 *                    frame of `batch` events), the strongest batching a plain socket gets;
 *   rtt.uds          64 B ping-pong: one one-event frame each way.
 *
 * The reader delimits frames by their headers and counts them; it neither verifies nor decodes
 * them (the ring's reader does both), so the baselines do less work than the ring per byte.
 */

import { createServer } from 'node:net';
import { createHistogram } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { latencyOf } from '../../lib/stats.mjs';
import { FrameCounter, payloadOf, sealedFrames } from '../lib/frames.mjs';
import { Peer, now, uniqueSocketPath } from '../lib/peer.mjs';
import { countsFor, ROUND_TRIP_COUNTS, sizeLabel } from '../lib/sizes.mjs';
import { ROUND_TRIP_WARM_OPS, warmedUp } from '../lib/warmup.mjs';

const PEER = fileURLToPath(new URL('../peers/uds.mjs', import.meta.url));
/** Latency histogram range: 1 ns to 10 s, 3 significant figures. */
const HISTOGRAM_OPTIONS = { lowest: 1, highest: 10e9, figures: 3 };

/** Listens on a fresh abstract socket; resolves with the server and a promise of the first connection. */
async function listen() {
  const path = uniqueSocketPath();
  const server = createServer();
  const connection = new Promise((resolve) => server.once('connection', resolve));
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  return { path, server, connection };
}

/** Starts the peer with `request`, accepting its connection; cleans up on failure. */
async function connectPeer(tag, cmd, args) {
  const { path, server, connection } = await listen();
  let peer;
  try {
    peer = await Peer.start(PEER, tag);
    const [, socket] = await Promise.all([peer.request(cmd, { ...args, path }), connection]);
    server.close();
    return { peer, socket };
  } catch (err) {
    server.close();
    await peer?.close();
    throw err;
  }
}

function runFailure(socket) {
  let reject = () => {};
  const promise = new Promise((_, r) => (reject = r));
  promise.catch(() => {});
  const onError = (err) => reject(err);
  const onClose = () => reject(new Error('the peer closed the socket'));
  socket.on('error', onError);
  socket.on('close', onClose);
  return {
    promise,
    dispose() {
      socket.off('error', onError);
      socket.off('close', onClose);
    },
  };
}

/**
 * One-way throughput of `size`-byte messages: `mode` 'write' (a write per message, `batch`
 * corked together) or 'concat' (a write per `batch` messages).
 */
export function udsThroughputCase({ size, mode, batch }) {
  return {
    name: `tput.uds.${mode} size=${sizeLabel(size)} batch=${batch}`,
    bytesPerOp: size,
    async setup() {
      const { peer, socket } = await connectPeer(`uds-${mode}`, 'producer', { size, mode, batch });
      const perFrame = mode === 'write' ? 1 : batch;
      const counter = new FrameCounter();
      const state = { expected: 0, received: 0, done: null };
      socket.on('data', (chunk) => {
        state.received += counter.push(chunk) * perFrame;
        if (state.received >= state.expected && state.done !== null) {
          const done = state.done;
          state.done = null;
          done(now());
        }
      });
      return {
        bytesPerOp: size,
        ...countsFor(size, mode === 'concat' ? batch : 1),
        async run(count) {
          Object.assign(state, { expected: count, received: 0 });
          const failure = runFailure(socket);
          const finished = new Promise((resolve) => (state.done = resolve));
          try {
            const [{ t0 }, t1] = await Promise.race([
              Promise.all([peer.request('produce', { count }), finished]),
              failure.promise,
            ]);
            if (state.received !== count) {
              throw new Error(`read ${state.received} messages, expected ${count}`);
            }
            return { seconds: (t1 - t0) / 1e9 };
          } finally {
            failure.dispose();
          }
        },
        async teardown() {
          socket.destroy();
          await peer.close();
        },
      };
    },
  };
}

/**
 * 64 B ping-pong over one Unix socket: this process writes a frame, the peer answers one.
 * `warm`: warm up first (bench/macro/lib/warmup.mjs).
 */
export function udsRoundTripCase({ warm = false } = {}) {
  return {
    name: 'rtt.uds size=64B',
    async setup() {
      const { peer, socket } = await connectPeer('uds-echo', 'echo', {});
      const frame = sealedFrames(payloadOf(64), 1, 2)[1];
      const histogram = createHistogram(HISTOGRAM_OPTIONS);
      const counter = new FrameCounter();
      const state = { count: 0, got: 0, sentAt: 0, done: null };
      const send = () => {
        state.sentAt = now();
        socket.write(frame);
      };
      socket.on('data', (chunk) => {
        const t = now();
        for (let n = counter.push(chunk); n > 0; n--) {
          histogram.record(Math.max(1, t - state.sentAt));
          state.got++;
        }
        if (state.got < state.count) send();
        else if (state.done !== null) {
          const done = state.done;
          state.done = null;
          done(t);
        }
      });
      const instance = {
        ...ROUND_TRIP_COUNTS,
        warmOps: ROUND_TRIP_WARM_OPS,
        async run(count) {
          histogram.reset();
          Object.assign(state, { count, got: 0 });
          const failure = runFailure(socket);
          const finished = new Promise((resolve) => (state.done = resolve));
          const start = now();
          send();
          try {
            const end = await Promise.race([finished, failure.promise]);
            return { seconds: (end - start) / 1e9, latency: latencyOf(histogram) };
          } finally {
            failure.dispose();
          }
        },
        async teardown() {
          socket.destroy();
          await peer.close();
        },
      };
      return warmedUp(instance, warm);
    },
  };
}
