/**
 * Worker thread of the MessagePort baseline (bench/macro/cases/port.mjs): receives payloads on
 * the port it is given, checks each one's length and sequence number, and acknowledges them in
 * groups so the sender can bound what is in flight.
 *
 * On the port: `{ expect, size, ackEvery }` starts a run; payloads (Uint8Array) follow; the
 * worker answers `{ ack: received }` every `ackEvery` payloads and `{ done: ns, bad }` after the
 * last one.
 */

import { workerData } from 'node:worker_threads';
import { now } from '../lib/peer.mjs';

const { port } = workerData;
let expected = 0;
let size = 0;
let ackEvery = 1;
let received = 0;
let bad = 0;

port.on('message', (msg) => {
  if (msg instanceof Uint8Array) {
    const seq = msg[0] | (msg[1] << 8) | (msg[2] << 16) | (msg[3] << 24);
    if (msg.length !== size || seq !== (received | 0)) bad++;
    received++;
    if (received === expected) port.postMessage({ done: now(), bad });
    else if (received % ackEvery === 0) port.postMessage({ ack: received });
    return;
  }
  ({ expect: expected, size, ackEvery } = msg);
  received = 0;
  bad = 0;
});
