/**
 * Baselines inside one process: a worker_threads MessagePort between two threads, and memcpy.
 *
 *   tput.port.postMessage  the main thread posts each payload (a Uint8Array in its own
 *                          ArrayBuffer) on a MessageChannel to a worker. No transfer list: the
 *                          structured clone copies the bytes, as the ring copies them once; a
 *                          transfer would move ownership instead and measure nothing comparable.
 *                          The worker acknowledges in groups; at most `window` payloads are in
 *                          flight, so memory stays bounded;
 *   tput.memcpy            TypedArray.set of the same block into another one (memmove), in one
 *                          thread: the ceiling any copying link can reach.
 *
 * MessagePort is two threads of one process, not two processes: the strongest in-box Node peer
 * for large messages, and the one the issue names.
 */

import { MessageChannel, Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { payloadOf } from '../lib/frames.mjs';
import { now } from '../lib/peer.mjs';
import { countsFor, sizeLabel } from '../lib/sizes.mjs';

const WORKER = fileURLToPath(new URL('../peers/port-worker.mjs', import.meta.url));
/** Bytes of payload in flight at most, and the bounds on the window in messages. */
const WINDOW_BYTES = 32 * 1024 * 1024;
const WINDOW_MIN = 2;
const WINDOW_MAX = 8192;

/** One-way throughput of `size`-byte payloads posted to a worker. */
export function portThroughputCase({ size }) {
  const window = Math.max(WINDOW_MIN, Math.min(WINDOW_MAX, Math.floor(WINDOW_BYTES / size)));
  const ackEvery = Math.max(1, window >> 2);
  return {
    name: `tput.port.postMessage size=${sizeLabel(size)} window=${window}`,
    bytesPerOp: size,
    async setup() {
      const { port1, port2 } = new MessageChannel();
      const worker = new Worker(WORKER, { workerData: { port: port2 }, transferList: [port2] });
      const exited = new Promise((resolve) => worker.once('exit', resolve));
      const state = { acked: 0, wake: null, done: null, fail: null, bad: 0 };
      port1.on('message', (msg) => {
        if (msg.done !== undefined) {
          state.bad += msg.bad;
          state.done?.(msg.done);
          return;
        }
        state.acked = msg.ack;
        const wake = state.wake;
        state.wake = null;
        wake?.();
      });
      worker.on('error', (err) => state.fail?.(err));
      const payload = payloadOf(size);
      const seq = new DataView(payload.buffer);
      return {
        bytesPerOp: size,
        ...countsFor(size),
        async run(count) {
          state.acked = 0;
          let failed;
          const failure = new Promise((_, reject) => (failed = reject));
          failure.catch(() => {});
          state.fail = failed;
          const finished = new Promise((resolve) => (state.done = resolve));
          port1.postMessage({ expect: count, size, ackEvery });
          const t0 = now();
          for (let sent = 0; sent < count; sent++) {
            while (sent - state.acked >= window) {
              await Promise.race([new Promise((resolve) => (state.wake = resolve)), failure]);
            }
            seq.setUint32(0, sent, true);
            port1.postMessage(payload);
          }
          const t1 = await Promise.race([finished, failure]);
          return { seconds: (t1 - t0) / 1e9 };
        },
        check() {
          if (state.bad > 0) throw new Error(`${state.bad} payloads arrived wrong`);
        },
        async teardown() {
          port1.close();
          await worker.terminate();
          await exited;
        },
      };
    },
  };
}

/** TypedArray.set of a `size`-byte block into another, `count` times. */
export function memcpyCase({ size }) {
  return {
    name: `tput.memcpy size=${sizeLabel(size)}`,
    bytesPerOp: size,
    setup() {
      const from = payloadOf(size);
      const to = new Uint8Array(size);
      return {
        bytesPerOp: size,
        ...countsFor(size),
        run(count) {
          const t0 = now();
          for (let i = 0; i < count; i++) {
            from[0] = i;
            to.set(from);
          }
          const t1 = now();
          if (to[0] !== ((count - 1) & 0xff)) throw new Error('the copy did not happen');
          return { seconds: (t1 - t0) / 1e9 };
        },
      };
    },
  };
}
