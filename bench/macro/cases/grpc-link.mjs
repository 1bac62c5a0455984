/**
 * NodeController events end to end through GrpcTransport between two processes on 127.0.0.1,
 * each a Server of the package with its own GrpcTransport (bench/macro/lib/grpc-node.mjs): the
 * case process hosts n1 (receiver), a forked peer (bench/macro/peers/grpc-link.mjs) hosts n0.
 *
 *   tput.grpc.link  one-way events of `size` bytes: sendEvent -> router -> GrpcTransport ->
 *                   gRPC stream -> GrpcTransport -> inbox of n1;
 *   rtt.grpc.link   one 64 B event n0 -> n1 and n1's answer back, one at a time.
 *
 * `reliability` on (the default link: sequence numbers, acks, resend buffer) or off
 * (`reliability: { enabled: false }`): the pair shows what the machinery costs. Throughput runs
 * are timed from n0's first send to n1's last delivery (one monotonic clock for both processes).
 */

import { fileURLToPath } from 'node:url';
import { startGrpcEnd, SIMPROC, ENDS } from '../lib/grpc-node.mjs';
import { Peer, now, uniqueCluster } from '../lib/peer.mjs';
import { acquire } from '../lib/shared.mjs';
import { ROUND_TRIP_WARM_OPS, warmedUp } from '../lib/warmup.mjs';
import { countsFor, ROUND_TRIP_COUNTS, sizeLabel } from '../lib/sizes.mjs';

const PEER = fileURLToPath(new URL('../peers/grpc-link.mjs', import.meta.url));
const REPLY_TARGET = `${ENDS.sender.node}/${SIMPROC}`;

const onOff = (reliability) => (reliability ? 'on' : 'off');

/**
 * Starts the receiver end here and the sender end in a peer, each told the other's port;
 * `state` is the receiver's run state its inbox updates (a run resets it). Cleans up on failure.
 */
async function startPair(reliability, tag) {
  const state = { expected: 0, received: 0, size: 0, bad: 0, done: null };
  const cluster = uniqueCluster();
  const receiver = await startGrpcEnd({ role: 'receiver', cluster, reliability });
  const small = new Uint8Array(64).fill(0x5a);
  receiver.controller.setInbox(SIMPROC, {
    onEvent(e) {
      if (e.epoch < 0) {
        receiver.controller.sendEvent(REPLY_TARGET, e.epoch, small);
        return;
      }
      if (e.epoch !== state.received || e.data.length !== state.size) state.bad++;
      if (++state.received === state.expected && state.done !== null) {
        const done = state.done;
        state.done = null;
        done(now());
      }
    },
    onPromise() {},
  });
  let peer;
  try {
    peer = await Peer.start(PEER, tag);
    const { port } = await peer.request('start', { cluster, reliability, port: receiver.port });
    receiver.connect(port);
    return { receiver, peer, state };
  } catch (err) {
    await peer?.close();
    await receiver.close();
    throw err;
  }
}

/**
 * Closes both ends at once, while each can still acknowledge what the other sent (an end whose
 * peer has gone waits for it until the link's deadline), then ends the peer process.
 */
async function stopPair({ receiver, peer }) {
  try {
    await Promise.all([peer.request('close'), receiver.close()]);
  } finally {
    await peer.close();
  }
}

/** A pair for one case; with `share` (smoke runs) one per reliability setting, reused. */
function acquirePair(reliability, share) {
  const tag = `grpc-link-${onOff(reliability)}`;
  return acquire(tag, share, () => startPair(reliability, tag), stopPair);
}

/** One-way throughput of `size`-byte events from n0 (peer) to n1 (this process). */
export function grpcLinkThroughputCase({ size, reliability = true, share = false, warm = false }) {
  return {
    name: `tput.grpc.link size=${sizeLabel(size)} reliability=${onOff(reliability)}`,
    bytesPerOp: size,
    async setup() {
      const { value: pair, release } = await acquirePair(reliability, share);
      const { receiver, peer, state } = pair;
      let bad = 0;
      return warmedUp(
        {
          bytesPerOp: size,
          ...countsFor(size),
          async run(count) {
            Object.assign(state, { expected: count, received: 0, size, bad: 0 });
            const finished = new Promise((resolve) => (state.done = resolve));
            const [{ t0 }, t1] = await Promise.all([
              peer.request('send', { count, size }),
              finished,
            ]);
            const err = receiver.failure();
            if (err !== undefined) throw err;
            bad += state.bad;
            return { seconds: (t1 - t0) / 1e9 };
          },
          check() {
            if (bad > 0) throw new Error(`${bad} events arrived out of order or with a wrong size`);
          },
          teardown: release,
        },
        warm,
      );
    },
  };
}

/** 64 B round trips n0 -> n1 -> n0 between the two processes, one at a time. */
export function grpcLinkRoundTripCase({ reliability = true, share = false, warm = false } = {}) {
  return {
    name: `rtt.grpc.link size=64B reliability=${onOff(reliability)}`,
    async setup() {
      const { value: pair, release } = await acquirePair(reliability, share);
      return warmedUp(
        {
          ...ROUND_TRIP_COUNTS,
          warmOps: ROUND_TRIP_WARM_OPS,
          run: (count) => pair.peer.request('roundTrips', { count }),
          teardown: release,
        },
        warm,
      );
    },
  };
}
