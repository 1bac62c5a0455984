/**
 * The bytes the macro benchmarks move: staging layouts for `writeBatch`, sealed frames for
 * `writeFrame` and for the Unix-socket baselines, built once per case with the package's own
 * BatchWriter and native encoder (dist/), so every link carries the same framing.
 *
 * Every message is one event from n0/p to n1/p whose payload is `size` bytes. Its epoch is its
 * index in the repeating unit (a staged batch, or the cycle of prebuilt frames): receivers check
 * that epochs run 0, 1, ... period - 1, 0, 1, ...
 *
 * String ids: a writer and its encoder define the four strings (n0, p, n1, p) in their first
 * batch only. The first staging (or frame) of a sequence therefore carries the definitions and a
 * string-table reset, and the ones after it refer to the ids: a stream that starts with the
 * first and repeats a later one is valid for a decoder that sees it from the start, as a long
 * running link would be.
 */

import { BatchWriter, Lane } from '../../../dist/native-batch.js';
import { createBatchEncoder, encodeBatch, FRAME_HEADER_BYTES } from '../../../dist/native.js';

export { FRAME_HEADER_BYTES };

/** Event fields every benchmark message has. */
const SENDER = { node: 'n0', simproc: 'p' };
const TARGET = { node: 'n1', simproc: 'p' };
const DATA_FORMAT_RAW = 0;

/** Most bytes of payload a batch of the batched cases carries (the links' own frame limit). */
export const BATCH_BYTES_MAX = 1024 * 1024;
/** Most messages in one batch. */
export const BATCH_MESSAGES_MAX = 256;

/** Messages per batch for `size`-byte payloads: 256, fewer once a batch would pass 1 MiB. */
export function batchFor(size) {
  return Math.max(1, Math.min(BATCH_MESSAGES_MAX, Math.floor(BATCH_BYTES_MAX / size)));
}

/** A payload of `size` bytes in its own ArrayBuffer (a structured clone copies all of it). */
export function payloadOf(size, fill = 0x5a) {
  const bytes = new Uint8Array(new ArrayBuffer(size));
  bytes.fill(fill);
  return bytes;
}

function addEvents(writer, payload, count, firstEpoch) {
  for (let i = 0; i < count; i++) {
    writer.addEvent(
      0,
      SENDER.node,
      SENDER.simproc,
      TARGET.node,
      TARGET.simproc,
      firstEpoch + i,
      null,
      payload,
      DATA_FORMAT_RAW,
      0,
      null,
    );
  }
}

/**
 * Two staging layouts of `batch` events of `payload`: `first` defines the strings, `next`
 * refers to them. Write `first` once, then `next` as often as wanted. Each comes with the
 * external payloads `writeBatch` needs (payloads of 4 KiB and more travel by reference).
 */
export function stagingPair(payload, batch) {
  const writer = new BatchWriter();
  const take = () => {
    writer.begin(Lane.Event);
    addEvents(writer, payload, batch, 0);
    return { staging: writer.finish().slice(), payloads: [...writer.payloads] };
  };
  const first = take();
  const next = take();
  return { first, next };
}

/**
 * Sealed frames: `count` frames of `batch` events each, encoded in sequence by one encoder, so
 * only frame 0 defines the strings. Frame k's events have epochs k * batch .. (k + 1) * batch - 1.
 */
export function sealedFrames(payload, batch, count) {
  const writer = new BatchWriter();
  const encoder = createBatchEncoder();
  const frames = [];
  for (let k = 0; k < count; k++) {
    writer.begin(Lane.Event);
    addEvents(writer, payload, batch, k * batch);
    frames.push(encodeBatch(encoder, writer.finish(), writer.payloads, 'bench'));
  }
  return frames;
}

/**
 * Counts sealed frames in a byte stream split anywhere (a socket's chunks) by their header
 * alone: the Unix-socket baselines delimit frames, they do not verify or decode them.
 */
export class FrameCounter {
  frames = 0;
  bytes = 0;
  #header = new Uint8Array(FRAME_HEADER_BYTES);
  #headerView = new DataView(this.#header.buffer);
  #headerHave = 0;
  #bodyLeft = 0;

  /** Takes one chunk; returns the frames it completed. */
  push(chunk) {
    const before = this.frames;
    const n = chunk.length;
    this.bytes += n;
    let at = 0;
    while (at < n) {
      if (this.#bodyLeft > 0) {
        const take = Math.min(this.#bodyLeft, n - at);
        this.#bodyLeft -= take;
        at += take;
        if (this.#bodyLeft === 0) this.frames++;
        continue;
      }
      if (this.#headerHave === 0 && n - at >= FRAME_HEADER_BYTES) {
        // Whole header in this chunk: read it in place.
        const body =
          chunk[at + 4] | (chunk[at + 5] << 8) | (chunk[at + 6] << 16) | (chunk[at + 7] << 24);
        at += FRAME_HEADER_BYTES;
        this.#startBody(body >>> 0);
        continue;
      }
      const take = Math.min(FRAME_HEADER_BYTES - this.#headerHave, n - at);
      this.#header.set(chunk.subarray(at, at + take), this.#headerHave);
      this.#headerHave += take;
      at += take;
      if (this.#headerHave === FRAME_HEADER_BYTES) {
        this.#headerHave = 0;
        this.#startBody(this.#headerView.getUint32(4, true));
      }
    }
    return this.frames - before;
  }

  #startBody(bodyBytes) {
    if (bodyBytes === 0) this.frames++;
    else this.#bodyLeft = bodyBytes;
  }
}
