/**
 * Peer process of the Unix-domain socket baselines (bench/macro/cases/uds.mjs): connects to the
 * case process's socket and writes the same sealed frames the ring carries.
 *
 *   producer {path, size, mode, batch}  connects; mode 'write': one sealed one-event frame per
 *                                       write, `batch` writes corked into one writev; mode
 *                                       'concat': one write of a `batch`-event frame (the bytes
 *                                       of the ring's batched case) per `batch` messages
 *   produce {count}                     writes `count` messages; { t0, t1 } (ns)
 *   echo {path}                         connects and answers every 64 B frame with one
 *   close                               ends the connection
 */

import { connect } from 'node:net';
import { FrameCounter, payloadOf, sealedFrames } from '../lib/frames.mjs';
import { now, serve } from '../lib/peer.mjs';

let socket = null;
let plan = null;

function connectTo(path) {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

function drained() {
  return new Promise((resolve, reject) => {
    const onError = (err) => reject(err);
    socket.once('error', onError);
    socket.once('drain', () => {
      socket.off('error', onError);
      resolve();
    });
  });
}

async function produceWrites(count) {
  const { frame, batch } = plan;
  for (let sent = 0; sent < count;) {
    const n = Math.min(batch, count - sent);
    socket.cork();
    let ok = true;
    for (let i = 0; i < n; i++) ok = socket.write(frame);
    socket.uncork();
    sent += n;
    if (!ok) await drained();
  }
}

async function produceConcat(count) {
  const { frame, batch } = plan;
  for (let sent = 0; sent < count; sent += batch) {
    if (!socket.write(frame)) await drained();
  }
}

serve({
  async producer({ path, size, mode, batch }) {
    // Frame 1 of the sequence: the bytes a running link sends (strings defined earlier).
    plan = {
      mode,
      batch,
      frame: sealedFrames(payloadOf(size), mode === 'write' ? 1 : batch, 2)[1],
    };
    socket = await connectTo(path);
    return { frameBytes: plan.frame.length };
  },

  async produce({ count }) {
    if (plan.mode === 'concat' && count % plan.batch !== 0) {
      throw new RangeError(`count ${count} is not a multiple of the batch ${plan.batch}`);
    }
    const t0 = now();
    if (plan.mode === 'write') await produceWrites(count);
    else await produceConcat(count);
    return { t0, t1: now() };
  },

  async echo({ path }) {
    const reply = sealedFrames(payloadOf(64), 1, 2)[1];
    socket = await connectTo(path);
    const counter = new FrameCounter();
    socket.on('data', (chunk) => {
      for (let n = counter.push(chunk); n > 0; n--) socket.write(reply);
    });
    return {};
  },

  close() {
    socket?.destroy();
    socket = null;
    return {};
  },
});
