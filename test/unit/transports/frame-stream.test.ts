import { describe, expect, it } from 'vitest';
import { FRAME_MAGIC, FrameStreamReader } from '../../../src/transports/frame-stream.js';
import {
  DataFormat,
  EMPTY_HEADERS,
  EventEnvelope,
  FrameEncoder,
  Lane,
} from '../../../src/envelope.js';
import { assertFrame, sealFrame } from '../../../src/native.js';
import { FrameCorruptError } from '../../../src/errors.js';

function frame(n: number, size: number): Uint8Array {
  const e = new EventEnvelope(
    0,
    { node: 'a', simproc: 'p' },
    'b',
    'p',
    n,
    EMPTY_HEADERS,
    undefined,
    new Uint8Array(size).fill(n),
    DataFormat.Raw,
    0,
    null,
  );
  const f = new FrameEncoder().encode([e], Lane.Event, 0n, 0n);
  sealFrame(f);
  return f;
}

describe('FrameStreamReader', () => {
  const frames = [frame(1, 3), frame(2, 1000), frame(3, 0)];
  const stream = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of frames) {
    stream.set(f, at);
    at += f.length;
  }

  it('starts every frame with the native magic', () => {
    const f = frames[0]!;
    expect(new DataView(f.buffer, f.byteOffset).getUint32(0, true)).toBe(FRAME_MAGIC);
  });

  it('reassembles frames from any split of the stream, aligned and verifiable', () => {
    for (const step of [1, 3, 7, 16, 17, 1000, stream.length]) {
      const reader = new FrameStreamReader('peer');
      const out: Uint8Array[] = [];
      for (let i = 0; i < stream.length; i += step) {
        // Copy each chunk at an odd offset, as a socket may hand it over.
        const chunk = stream.subarray(i, i + step);
        const host = new Uint8Array(chunk.length + 1);
        host.set(chunk, 1);
        reader.push(host.subarray(1), (f) => out.push(f));
      }
      expect(out.map((f) => f.length)).toEqual(frames.map((f) => f.length));
      for (const f of out) {
        expect(f.byteOffset % 8).toBe(0);
        expect(() => assertFrame(f, 'peer')).not.toThrow();
      }
      expect(reader.bufferedBytes).toBe(0);
    }
  });

  it('rejects a bad magic and an oversized length as soon as the header is in', () => {
    const bad = stream.slice(0, 16);
    bad[0] ^= 0xff;
    expect(() => new FrameStreamReader('p9').push(bad, () => {})).toThrow(FrameCorruptError);
    expect(() => new FrameStreamReader('p9').push(bad, () => {})).toThrow(/p9: bad frame magic/);
    const huge = stream.slice(0, 16);
    new DataView(huge.buffer).setUint32(4, 0xffffffff, true);
    expect(() => new FrameStreamReader('p9').push(huge, () => {})).toThrow(
      /announces 4294967295 body bytes/,
    );
  });
});

describe('FrameStreamReader with Buffer chunks and a body limit', () => {
  it('copies a frame that sits at an unaligned offset of a Buffer chunk, so it verifies', () => {
    const f = frame(4, 10);
    const backing = Buffer.alloc(f.length + 3);
    backing.set(f, 3);
    const chunk = backing.subarray(3); // a Buffer view at an odd offset
    const out: Uint8Array[] = [];
    new FrameStreamReader('peer').push(chunk, (x) => out.push(x));
    expect(out).toHaveLength(1);
    expect(out[0]!.byteOffset % 8).toBe(0);
    expect(() => assertFrame(out[0]!, 'peer')).not.toThrow();
  });

  it('rejects a frame whose body is over the limit the caller gave', () => {
    const f = frame(5, 100);
    const reader = new FrameStreamReader('peer', 64);
    expect(() => reader.push(f, () => undefined)).toThrow(/over the limit of 64/);
    expect(() => new FrameStreamReader('peer', 4096).push(f, () => undefined)).not.toThrow();
  });
});
