/**
 * Micro benchmarks of the frame codec and the native frame checks (DESIGN §4, §12).
 *
 * For frames of N events (N = 1, 256) with payloads of S bytes (64, 4096):
 *   envelope.encode / envelope.decode   FrameEncoder.encode, decodeFrame (the TypeScript codec)
 *   batch.encode / batch.decode         FrameWriter.encode, FrameReader.read and an envelope
 *                                       object per event (the native codec the rings and
 *                                       gRPC links use), against the TypeScript codec
 *   frame.seal / frame.assert           native sealFrame, assertFrame (verify)
 * and for 256 one-event frames, one verifyBatch call against 256 assertFrame calls.
 *
 * Baselines of the same run: `native.noop` (one empty JS -> C++ call, the floor of
 * any native check) for seal and assert; JSON.stringify / JSON.parse of the same
 * envelopes for encode and decode, as a familiar reference. JSON carries the payload
 * as base64 (bytes have no JSON form), and its encode stops at the string (no UTF-8
 * step), which favours JSON slightly.
 */

import {
  DataFormat,
  EMPTY_HEADERS,
  EventEnvelope,
  FrameEncoder,
  Lane,
  decodeFrame,
} from '../../dist/index.js';
import { assertFrame, loadNative, sealFrame, verifyBatch } from '../../dist/native.js';
import { FrameReader, FrameWriter } from '../../dist/transports/batch-frames.js';

export const suite = {
  name: 'envelope',
  title: 'frame codec and native frame checks',
  notes: [
    'encode/decode vs JSON: the same envelopes, payload as base64 in JSON. seal/assert vs one',
    'empty native call. verifyBatch: 256 frames in one call vs one assertFrame call per frame.',
  ],
};

const EVENT_COUNTS = [1, 256];
const PAYLOAD_BYTES = [64, 4096];
/** Frames per verifyBatch call. */
const BATCH_FRAMES = 256;
/** verifyBatch wants every frame 8-byte aligned inside the buffer (native/frame.h). */
const FRAME_ALIGNMENT_BYTES = 8;
const SENDER = Object.freeze({ node: 'n0', simproc: 'physics' });
const PEER = 'bench';

/** Deterministic pseudo-random bytes, so runs encode identical frames. */
function payload(size, seed) {
  const bytes = new Uint8Array(size);
  let x = (Math.imul(seed, 2654435761) + 1) >>> 0;
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

/** `count` events n0/physics -> n1/physics with `size`-byte payloads, as a link sees them. */
function events(count, size) {
  return Array.from(
    { length: count },
    (_, i) =>
      new EventEnvelope(
        0,
        SENDER,
        'n1',
        'physics',
        i * 0.5,
        EMPTY_HEADERS,
        undefined,
        payload(size, i),
        DataFormat.Raw,
        0,
        null,
      ),
  );
}

/** A sealed frame of `envs`. */
function sealedFrame(envs) {
  const frame = new FrameEncoder().encode(envs, Lane.Event, 1n, 0n);
  sealFrame(frame);
  return frame;
}

function base64(bytes) {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** The JSON text a JSON codec would send for `envs`: same fields, payload in base64. */
function jsonEncode(envs) {
  const out = new Array(envs.length);
  for (let i = 0; i < envs.length; i++) {
    const e = envs[i];
    out[i] = {
      kind: 'event',
      repid: e.repid,
      sender: e.sender,
      targetNode: e.targetNode,
      simproc: e.simproc,
      epoch: e.epoch,
      headers: e.headers,
      data: base64(e.payload),
      dataFormat: e.dataFormat,
      hops: e.hops,
      replyTo: e.replyTo,
    };
  }
  return JSON.stringify({ linkSeq: '1', ack: '0', lane: Lane.Event, envelopes: out });
}

/** Parses `text` back into envelopes with their payload bytes, calling `onEnvelope` per one. */
function jsonDecode(text, onEnvelope) {
  const frame = JSON.parse(text);
  for (const e of frame.envelopes) {
    e.payload = Buffer.from(e.data, 'base64');
    onEnvelope(e);
  }
}

/** Fails the case when the work it timed did not happen. */
function expect(ok, what) {
  if (!ok) throw new Error(`benchmark fixture check failed: ${what}`);
}

/** FrameEncoder.encode against JSON.stringify of the same envelopes. */
function encodeCases(n, size) {
  const params = `events=${n} size=${size}`;
  const reference = `json.stringify ${params}`;
  return [
    {
      name: `envelope.encode ${params}`,
      baseline: reference,
      messagesPerOp: n,
      setup() {
        const envs = events(n, size);
        const encoder = new FrameEncoder();
        const probe = encoder.encode(envs, Lane.Event, 1n, 0n);
        sealFrame(probe);
        assertFrame(probe, PEER);
        return { bytesPerOp: probe.length, fn: () => encoder.encode(envs, Lane.Event, 1n, 0n) };
      },
    },
    {
      name: reference,
      messagesPerOp: n,
      setup() {
        const envs = events(n, size);
        return { bytesPerOp: jsonEncode(envs).length, fn: () => jsonEncode(envs) };
      },
    },
  ];
}

/** decodeFrame against JSON.parse (and base64 decoding) of the same envelopes. */
function decodeCases(n, size) {
  const params = `events=${n} size=${size}`;
  const reference = `json.parse ${params}`;
  return [
    {
      name: `envelope.decode ${params}`,
      baseline: reference,
      messagesPerOp: n,
      setup() {
        const frame = sealedFrame(events(n, size));
        let bytes = 0;
        const onEnvelope = (e) => void (bytes += e.payload.length);
        return {
          bytesPerOp: frame.length,
          fn: () => decodeFrame(frame, onEnvelope),
          check: () => expect(bytes > 0 && bytes % (n * size) === 0, `decoded ${bytes} B`),
        };
      },
    },
    {
      name: reference,
      messagesPerOp: n,
      setup() {
        const text = jsonEncode(events(n, size));
        let bytes = 0;
        const onEnvelope = (e) => void (bytes += e.payload.length);
        return {
          bytesPerOp: text.length,
          fn: () => jsonDecode(text, onEnvelope),
          check: () => expect(bytes > 0 && bytes % (n * size) === 0, `decoded ${bytes} B`),
        };
      },
    },
  ];
}

/** The native codec (FrameWriter, FrameReader) against the TypeScript codec of the same run. */
function nativeCodecCases(n, size) {
  const params = `events=${n} size=${size}`;
  return [
    {
      name: `batch.encode ${params}`,
      baseline: `envelope.encode ${params}`,
      messagesPerOp: n,
      setup() {
        const envs = events(n, size);
        const writer = new FrameWriter(PEER);
        const probe = writer.encode(Lane.Event, 1, 0, envs, 0, n);
        assertFrame(probe, PEER);
        return { bytesPerOp: probe.length, fn: () => writer.encode(Lane.Event, 1, 0, envs, 0, n) };
      },
    },
    {
      name: `batch.decode ${params}`,
      baseline: `envelope.decode ${params}`,
      messagesPerOp: n,
      setup() {
        const frame = new FrameWriter(PEER).encode(Lane.Event, 1, 0, events(n, size), 0, n);
        const reader = new FrameReader();
        let bytes = 0;
        return {
          bytesPerOp: frame.length,
          fn: () => {
            reader.read(frame, PEER);
            for (let i = 0; i < reader.count; i++) bytes += reader.envelope(i).payload.length;
          },
          check: () => expect(bytes > 0 && bytes % (n * size) === 0, `decoded ${bytes} B`),
        };
      },
    },
  ];
}

function nativeCases(n, size) {
  const params = `events=${n} size=${size}`;
  return [
    {
      name: `frame.seal ${params}`,
      baseline: 'native.noop',
      messagesPerOp: n,
      setup() {
        const frame = sealedFrame(events(n, size));
        return { bytesPerOp: frame.length, fn: () => sealFrame(frame) };
      },
    },
    {
      name: `frame.assert ${params}`,
      baseline: 'native.noop',
      messagesPerOp: n,
      setup() {
        const frame = sealedFrame(events(n, size));
        return { bytesPerOp: frame.length, fn: () => assertFrame(frame, PEER) };
      },
    },
  ];
}

/** `count` copies of one sealed frame laid out 8-byte aligned in one buffer, with their spans. */
function frameBatch(count, size) {
  const frame = sealedFrame(events(1, size));
  const stride = Math.ceil(frame.length / FRAME_ALIGNMENT_BYTES) * FRAME_ALIGNMENT_BYTES;
  const buf = new Uint8Array(stride * count);
  const spans = new Uint32Array(2 * count);
  const views = [];
  for (let i = 0; i < count; i++) {
    buf.set(frame, i * stride);
    spans[2 * i] = i * stride;
    spans[2 * i + 1] = frame.length;
    views.push(buf.subarray(i * stride, i * stride + frame.length));
  }
  return { buf, spans, views, bytes: frame.length * count };
}

function batchCases(size) {
  const params = `frames=${BATCH_FRAMES} events=1 size=${size}`;
  const loop = `frame.assert-each ${params}`;
  return [
    {
      name: loop,
      messagesPerOp: BATCH_FRAMES,
      setup() {
        const { views, bytes } = frameBatch(BATCH_FRAMES, size);
        const fn = () => {
          for (let i = 0; i < views.length; i++) assertFrame(views[i], PEER);
        };
        return { bytesPerOp: bytes, fn };
      },
    },
    {
      name: `frame.verifyBatch ${params}`,
      baseline: loop,
      messagesPerOp: BATCH_FRAMES,
      setup() {
        const { buf, spans, bytes } = frameBatch(BATCH_FRAMES, size);
        const out = new Int32Array(BATCH_FRAMES);
        expect(verifyBatch(buf, spans, out) === BATCH_FRAMES, 'every batched frame verifies');
        const fn = () => {
          if (verifyBatch(buf, spans, out) !== BATCH_FRAMES) throw new Error('a frame failed');
        };
        return { bytesPerOp: bytes, fn };
      },
    },
  ];
}

/** The cases of this suite, baselines first. */
export function cases() {
  const list = [
    {
      name: 'native.noop',
      setup() {
        const addon = loadNative();
        return { fn: () => addon.noop() };
      },
    },
  ];
  for (const n of EVENT_COUNTS) {
    for (const size of PAYLOAD_BYTES) {
      list.push(...encodeCases(n, size), ...decodeCases(n, size), ...nativeCodecCases(n, size));
    }
  }
  for (const n of EVENT_COUNTS)
    for (const size of PAYLOAD_BYTES) list.push(...nativeCases(n, size));
  for (const size of PAYLOAD_BYTES) list.push(...batchCases(size));
  return list;
}
