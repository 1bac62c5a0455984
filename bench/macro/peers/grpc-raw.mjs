/**
 * Peer process of the raw gRPC baselines (bench/macro/cases/grpc-raw.mjs): the client end of one
 * bidi call to the case process's server on 127.0.0.1.
 *
 *   producer {port, size, mode, batch}  opens the call; mode 'write': one gRPC message per
 *                                       `size`-byte payload; mode 'packed': one message of
 *                                       `batch` length-prefixed payloads per `batch` messages
 *   produce {count}                     writes `count` payloads, waiting for 'drain' whenever
 *                                       write() returns false; { t0, t1 } (ns)
 *   pinger {port}                       opens the call for the round trips
 *   pairPinger {port}                   as pinger, and also listens: answers come back on a
 *                                       call the case process opens to this peer's server
 *                                       (one call per direction, as GrpcTransport links);
 *                                       { port } of that server
 *   roundTrips {count}                  `count` 64 B round trips, one at a time: the server
 *                                       echoes each message (or sends it back on its own
 *                                       call, after pairPinger); { seconds, latency } (µs)
 *   close                               ends the call (a shared peer then serves the next case)
 */

import { createHistogram } from 'node:perf_hooks';
import { latencyOf } from '../../lib/stats.mjs';
import { drained, openRawStream, packedMessage, startRawServer } from '../lib/grpc-raw.mjs';
import { payloadOf } from '../lib/frames.mjs';
import { now, serve } from '../lib/peer.mjs';

const HISTOGRAM_OPTIONS = { lowest: 1, highest: 10e9, figures: 3 };

let stream = null;
let plan = null;
/**
 * pairPinger's server, and a promise of the call on which answers arrive, once the case
 * process has opened it (null: answers come on `stream`).
 */
let pairServer = null;
let answers = null;

async function produceWrites(call, count) {
  const { message } = plan;
  for (let sent = 0; sent < count; sent++) {
    if (!call.write(message)) await drained(call);
  }
}

async function producePacked(call, count) {
  const { message, batch } = plan;
  for (let sent = 0; sent < count; sent += batch) {
    if (!call.write(message)) await drained(call);
  }
}

serve({
  async producer({ port, size, mode, batch }) {
    const payload = Buffer.from(payloadOf(size).buffer);
    plan = { mode, batch, message: mode === 'packed' ? packedMessage(payload, batch) : payload };
    stream?.close();
    stream = await openRawStream(port);
    return { messageBytes: plan.message.length };
  },

  async produce({ count }) {
    if (plan.mode === 'packed' && count % plan.batch !== 0) {
      throw new RangeError(`count ${count} is not a multiple of the batch ${plan.batch}`);
    }
    const t0 = now();
    if (plan.mode === 'packed') await producePacked(stream.call, count);
    else await produceWrites(stream.call, count);
    return { t0, t1: now() };
  },

  async pinger({ port }) {
    pairServer?.close();
    pairServer = null;
    answers = null;
    stream?.close();
    stream = await openRawStream(port);
    return {};
  },

  async pairPinger({ port }) {
    stream?.close();
    stream = await openRawStream(port);
    pairServer?.close();
    let opened;
    answers = new Promise((resolve) => (opened = resolve));
    pairServer = await startRawServer((call) => {
      call.on('error', () => {
        // The case process cancelling at teardown.
      });
      opened(call);
    });
    return { port: pairServer.port };
  },

  async roundTrips({ count }) {
    const { call } = stream;
    const replies = answers === null ? call : await answers;
    const message = Buffer.from(payloadOf(64).buffer);
    const histogram = createHistogram(HISTOGRAM_OPTIONS);
    return new Promise((resolve, reject) => {
      let got = 0;
      let sentAt = 0;
      const start = now();
      const send = () => {
        sentAt = now();
        call.write(message);
      };
      const onData = () => {
        const t = now();
        histogram.record(Math.max(1, t - sentAt));
        if (++got < count) {
          send();
          return;
        }
        replies.off('data', onData);
        call.off('error', onError);
        resolve({ seconds: (t - start) / 1e9, latency: latencyOf(histogram) });
      };
      const onError = (err) => {
        replies.off('data', onData);
        reject(err);
      };
      replies.on('data', onData);
      call.once('error', onError);
      send();
    });
  },

  close() {
    stream?.close();
    stream = null;
    pairServer?.close();
    pairServer = null;
    answers = null;
    return {};
  },
});
