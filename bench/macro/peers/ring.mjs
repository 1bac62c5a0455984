/**
 * Peer process of the raw ring cases (bench/macro/cases/ring.mjs).
 *
 *   producer {ring, size, mode, batch, cycle}  opens the producer end and builds what it writes:
 *                                              mode 'frame': `cycle` sealed frames of `batch`
 *                                              events, one writeFrame each; mode 'batch': staged
 *                                              batches of `batch` events, one writeBatch each
 *   produce {count}                            writes `count` messages; { t0, t1 } (ns)
 *   echo {inRing, outRing, doorbell}           answers every message read from inRing with one
 *                                              64 B frame on outRing, as soon as it is read
 *   close                                      closes every ring end
 */

import { payloadOf, sealedFrames, stagingPair } from '../lib/frames.mjs';
import { now, serve } from '../lib/peer.mjs';
import { RingReceiver, RingSender } from '../lib/ring-ends.mjs';

let sender = null;
let receiver = null;
let plan = null;
let failure = null;

function checkFailure() {
  if (failure !== null) throw failure;
}

async function produceFrames(count) {
  const { frames, batch } = plan;
  const cycle = frames.length;
  const writes = count / batch;
  for (let i = 0; i < writes; i++) {
    const done = sender.writeFrame(frames[i % cycle]);
    if (done !== true) await done;
  }
}

async function produceBatches(count) {
  const { first, next, batch } = plan;
  const batches = count / batch;
  for (let b = 0; b < batches; b++) {
    const { staging, payloads } = b === 0 ? first : next;
    const done = sender.writeBatch(staging, payloads);
    if (done !== true) await done;
  }
}

serve({
  producer({ ring, size, mode, batch, cycle }) {
    sender = new RingSender(ring);
    const payload = payloadOf(size);
    plan =
      mode === 'frame'
        ? { mode, batch, frames: sealedFrames(payload, batch, cycle) }
        : { mode, batch, ...stagingPair(payload, batch) };
    return { maxContentBytes: sender.producer.maxContentBytes };
  },

  async produce({ count }) {
    checkFailure();
    if (count % plan.batch !== 0) {
      throw new RangeError(`count ${count} is not a multiple of the batch ${plan.batch}`);
    }
    const t0 = now();
    if (plan.mode === 'frame') await produceFrames(count);
    else await produceBatches(count);
    return { t0, t1: now() };
  },

  echo({ inRing, outRing, doorbell, cycle }) {
    sender = new RingSender(outRing);
    const frames = sealedFrames(payloadOf(64), 1, cycle);
    let sent = 0;
    receiver = new RingReceiver(
      inRing,
      doorbell,
      (reader) => {
        for (let i = reader.envelopeCount; i > 0; i--) {
          const done = sender.writeFrame(frames[sent++ % cycle]);
          if (done !== true) done.catch((err) => (failure = err));
        }
        receiver?.expectTraffic();
      },
      (err) => (failure = err),
    );
    return {};
  },

  close() {
    receiver?.close();
    sender?.close();
    receiver = null;
    sender = null;
    checkFailure();
    return {};
  },
});
