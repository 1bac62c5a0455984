/**
 * Plain @grpc/grpc-js for the gRPC baselines (bench/macro/cases/grpc-raw.mjs): one bidirectional
 * streaming method whose messages are raw bytes, with identity (de)serializers, so that nothing
 * but grpc-js and HTTP/2 sits between a write and its 'data' event. The channel keeps grpc-js's
 * defaults but one: retries are off (RAW_CHANNEL_OPTIONS). With them on, grpc-js keeps every
 * written message in a retry buffer until the call commits and trims that buffer with a copy per
 * write, which made one write per message about a quarter slower here; a link that resends by
 * itself has no use for it, so the baseline goes without.
 *
 * Packed messages (the hand-packed baseline): `batch` records of a 4-byte big-endian length and
 * the payload, back to back in one gRPC message; `countPacked` walks the lengths.
 */

import grpc from '@grpc/grpc-js';
import { rawBidiMethod } from '../../../dist/transports/grpc-service.js';

/** The one method: a bidi stream of raw byte messages. */
const METHOD_PATH = '/disco.bench.Raw/Stream';
const identity = (bytes) => bytes;
const SERVICE = { stream: rawBidiMethod(METHOD_PATH) };
/** Bytes of a packed record's length prefix. */
export const PREFIX_BYTES = 4;
/** Channel options of the raw client: grpc-js defaults, retries off (see the file header). */
export const RAW_CHANNEL_OPTIONS = { 'grpc.enable_retries': 0 };
/** Loopback: the benchmarks' two processes run on one machine (the issue's "two Applications"). */
export const LOOPBACK = '127.0.0.1';

/**
 * Starts a gRPC server on 127.0.0.1 with a port the OS picks; `onStream(call)` gets each
 * incoming bidi call (a grpc-js ServerDuplexStream). Resolves with `{ port, close }`.
 */
export async function startRawServer(onStream) {
  const server = new grpc.Server();
  server.addService(SERVICE, { stream: onStream });
  const port = await new Promise((resolve, reject) =>
    server.bindAsync(`${LOOPBACK}:0`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    port,
    close() {
      server.forceShutdown();
    },
  };
}

/**
 * Connects to the raw server at 127.0.0.1:`port` and opens one bidi call; resolves with
 * `{ call, close }` once the channel is ready (connection set-up is not part of any run).
 */
export async function openRawStream(port) {
  const client = new grpc.Client(
    `${LOOPBACK}:${port}`,
    grpc.credentials.createInsecure(),
    RAW_CHANNEL_OPTIONS,
  );
  await new Promise((resolve, reject) =>
    client.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())),
  );
  const call = client.makeBidiStreamRequest(METHOD_PATH, identity, identity);
  call.on('error', () => {
    // A cancelled call at close; a failure during a run shows as a missing answer.
  });
  return {
    call,
    close() {
      call.cancel();
      client.close();
    },
  };
}

/** A gRPC message of `batch` length-prefixed copies of `payload`. */
export function packedMessage(payload, batch) {
  const record = PREFIX_BYTES + payload.length;
  const out = Buffer.allocUnsafe(record * batch);
  for (let i = 0; i < batch; i++) {
    out.writeUInt32BE(payload.length, i * record);
    out.set(payload, i * record + PREFIX_BYTES);
  }
  return out;
}

/**
 * Records in one packed message, found by walking their length prefixes.
 * @throws {RangeError} when a record runs past the end of the message.
 */
export function countPacked(message) {
  let n = 0;
  for (let at = 0; at < message.length; n++) {
    const end = at + PREFIX_BYTES + message.readUInt32BE(at);
    if (end > message.length) throw new RangeError('packed record runs past its message');
    at = end;
  }
  return n;
}

/** Resolves at the stream's next 'drain', rejects if it fails first. */
export function drained(stream) {
  return new Promise((resolve, reject) => {
    const onError = (err) => {
      stream.off('drain', onDrain);
      reject(err);
    };
    const onDrain = () => {
      stream.off('error', onError);
      resolve();
    };
    stream.once('error', onError);
    stream.once('drain', onDrain);
  });
}
