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

describe('FrameStreamReader over a message stream (a lead before each frame)', () => {
  const LEAD = 3;
  /** `bytes` 5 bytes into a buffer of its own, behind `lead`, as grpc-js hands a message over. */
  function asReceived(bytes: Uint8Array, lead = LEAD): Uint8Array {
    const host = new Uint8Array(5 + lead + bytes.length);
    host.set(bytes, 5 + lead);
    return host.subarray(5);
  }

  it('reads a frame that fills a message in place, without copying it', () => {
    const f = frame(4, 100);
    const msg = asReceived(f);
    const out: Uint8Array[] = [];
    new FrameStreamReader('peer', undefined, LEAD).push(msg, (x) => out.push(x));
    expect(out).toHaveLength(1);
    expect(out[0]!.buffer).toBe(msg.buffer); // a view of the message, not a copy
    expect(out[0]!.byteOffset).toBe(8);
    expect(() => assertFrame(out[0]!, 'peer')).not.toThrow();
  });

  it('expects the lead only where a frame starts: a sliced frame and then a whole one', () => {
    const big = frame(5, 3000);
    const small = frame(6, 10);
    const reader = new FrameStreamReader('peer', undefined, LEAD);
    const out: Uint8Array[] = [];
    reader.push(asReceived(big.subarray(0, 1000)), (x) => out.push(x));
    reader.push(asReceived(big.subarray(1000, 2000), 0), (x) => out.push(x));
    reader.push(asReceived(big.subarray(2000), 0), (x) => out.push(x));
    reader.push(asReceived(small), (x) => out.push(x));
    expect(out.map((x) => Buffer.from(x))).toEqual([Buffer.from(big), Buffer.from(small)]);
    expect(reader.bufferedBytes).toBe(0);
  });

  it('rejects a message that starts a frame without its zero lead, naming the peer', () => {
    const f = frame(7, 10);
    const reader = () => new FrameStreamReader('p3', undefined, LEAD);
    expect(() => reader().push(asReceived(f, 0), () => {})).toThrow(FrameCorruptError);
    expect(() => reader().push(asReceived(f, 0), () => {})).toThrow(
      /p3: a message that starts a frame must open with 3 zero bytes/,
    );
    const dirty = asReceived(f);
    dirty[1] = 1;
    expect(() => reader().push(dirty, () => {})).toThrow(/must open with 3 zero bytes/);
    expect(() => reader().push(new Uint8Array(2), () => {})).toThrow(/3 zero bytes/);
  });
});
