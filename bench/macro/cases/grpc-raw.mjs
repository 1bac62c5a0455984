/**
 * Baselines of the gRPC link: plain @grpc/grpc-js between two processes on 127.0.0.1, one bidi
 * call with identity serializers (bench/macro/lib/grpc-raw.mjs). The case process runs the gRPC
 * server (port chosen by the OS), a forked peer (bench/macro/peers/grpc-raw.mjs) is the client.
 *
 *   tput.grpc.raw.write   one gRPC message per `size`-byte payload, the client honouring
 *                         write()/'drain';
 *   tput.grpc.raw.packed  `batch` payloads hand-packed (4-byte length + bytes each) into one
 *                         message; the server walks the length prefixes to count them;
 *   rtt.grpc.raw          64 B ping-pong on one bidi call: the client writes, the server echoes.
 *   rtt.grpc.raw.pair     64 B ping-pong on two bidi calls, one per direction, each process the
 *                         client of one: the path GrpcTransport's links take (a diagnostic
 *                         baseline: what the link's call structure costs, before any code of
 *                         the link runs).
 *
 * Throughput runs are timed from the client's first write to the server's last message.
 */

import { fileURLToPath } from 'node:url';
import { countPacked, openRawStream, startRawServer } from '../lib/grpc-raw.mjs';
import { Peer, now } from '../lib/peer.mjs';
import { acquire } from '../lib/shared.mjs';
import { ROUND_TRIP_WARM_OPS, warmedUp } from '../lib/warmup.mjs';
import { countsFor, ROUND_TRIP_COUNTS, sizeLabel } from '../lib/sizes.mjs';

const PEER = fileURLToPath(new URL('../peers/grpc-raw.mjs', import.meta.url));

/**
 * A gRPC server here and the peer connected to it with `cmd` (its own process, or with `share`
 * the one consecutive smoke-run cases reuse). Resolves with the peer, the first incoming call,
 * the peer's `reply` to `cmd` and `stop()`, which ends the call, the server and (unless shared)
 * the peer.
 */
async function serverWithPeer(tag, share, onCall, cmd, args) {
  let first;
  const called = new Promise((resolve) => (first = resolve));
  const server = await startRawServer((call) => {
    onCall(call);
    first(call);
  });
  let acquired;
  try {
    acquired = await acquire(
      'grpc-raw',
      share,
      () => Peer.start(PEER, tag),
      (peer) => peer.close(),
    );
    const peer = acquired.value;
    const reply = await peer.request(cmd, { ...args, port: server.port });
    const stop = async () => {
      try {
        await peer.request('close');
      } finally {
        server.close();
        await acquired.release();
      }
    };
    return { peer, call: await called, stop, reply };
  } catch (err) {
    server.close();
    await acquired?.release();
    throw err;
  }
}

/** Rejects when `call` fails or ends before the run does. */
function callFailure(call) {
  let reject = () => {};
  const promise = new Promise((_, r) => (reject = r));
  promise.catch(() => {});
  const onError = (err) => reject(err);
  const onEnd = () => reject(new Error('the peer ended the call'));
  call.on('error', onError);
  call.on('end', onEnd);
  return {
    promise,
    dispose() {
      call.off('error', onError);
      call.off('end', onEnd);
    },
  };
}

/** One-way throughput of `size`-byte payloads: `mode` 'write' or 'packed' (`batch` per message). */
export function grpcRawThroughputCase({ size, mode, batch = 1, share = false, warm = false }) {
  const packed = mode === 'packed';
  return {
    name: `tput.grpc.raw.${mode} size=${sizeLabel(size)}${packed ? ` batch=${batch}` : ''}`,
    bytesPerOp: size,
    async setup() {
      const state = { expected: 0, received: 0, done: null };
      const onCall = (call) => {
        call.on('error', () => {
          // The client cancelling at teardown.
        });
        call.on('data', (message) => {
          state.received += packed ? countPacked(message) : 1;
          if (state.received >= state.expected && state.done !== null) {
            const done = state.done;
            state.done = null;
            done(now());
          }
        });
      };
      const { peer, call, stop } = await serverWithPeer(
        `grpc-raw-${mode}`,
        share,
        onCall,
        'producer',
        { size, mode, batch },
      );
      return warmedUp(
        {
          bytesPerOp: size,
          ...countsFor(size, packed ? batch : 1),
          async run(count) {
            Object.assign(state, { expected: count, received: 0 });
            const failure = callFailure(call);
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
          teardown: stop,
        },
        warm,
      );
    },
  };
}

/** 64 B ping-pong on one bidi call: the peer (client) writes, this process echoes. */
export function grpcRawRoundTripCase({ share = false, warm = false } = {}) {
  return {
    name: 'rtt.grpc.raw size=64B',
    async setup() {
      const onCall = (call) => {
        call.on('error', () => {
          // The client cancelling at teardown.
        });
        call.on('data', (message) => call.write(message));
      };
      const { peer, stop } = await serverWithPeer('grpc-raw-echo', share, onCall, 'pinger', {});
      return warmedUp(
        {
          ...ROUND_TRIP_COUNTS,
          warmOps: ROUND_TRIP_WARM_OPS,
          async run(count) {
            return peer.request('roundTrips', { count });
          },
          teardown: stop,
        },
        warm,
      );
    },
  };
}

/**
 * 64 B ping-pong on two calls: the peer's call to this process carries the pings, and this
 * process's call to the peer's server carries each ping back (see the file header).
 */
export function grpcRawPairRoundTripCase({ share = false, warm = false } = {}) {
  return {
    name: 'rtt.grpc.raw.pair size=64B',
    async setup() {
      let back = null;
      const onCall = (call) => {
        call.on('error', () => {
          // The client cancelling at teardown.
        });
        call.on('data', (message) => back.call.write(message));
      };
      const { peer, stop, reply } = await serverWithPeer(
        'grpc-raw-pair',
        share,
        onCall,
        'pairPinger',
        {},
      );
      try {
        back = await openRawStream(reply.port);
      } catch (err) {
        await stop();
        throw err;
      }
      return warmedUp(
        {
          ...ROUND_TRIP_COUNTS,
          warmOps: ROUND_TRIP_WARM_OPS,
          async run(count) {
            return peer.request('roundTrips', { count });
          },
          async teardown() {
            back.close();
            await stop();
          },
        },
        warm,
      );
    },
  };
}
