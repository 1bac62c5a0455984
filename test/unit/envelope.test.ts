import { describe, expect, it } from 'vitest';
import {
  DataFormat,
  EMPTY_HEADERS,
  EventEnvelope,
  FRAME_HEADER_BYTES,
  FrameEncoder,
  Lane,
  PromiseEnvelope,
  decodeFrame,
  seqnrFromWire,
  type Envelope,
} from '../../src/envelope.js';

const sender = { node: 'n1', simproc: 'physics' };

function event(data: Uint8Array, headers = EMPTY_HEADERS): EventEnvelope {
  return new EventEnvelope(
    3,
    sender,
    'n2',
    'render',
    1.25,
    headers,
    undefined,
    data,
    DataFormat.Serialized,
    2,
    { node: 'n9', simproc: 'physics' },
  );
}

function decodeAll(frame: Uint8Array): { envs: Envelope[]; info: ReturnType<typeof decodeFrame> } {
  const envs: Envelope[] = [];
  const info = decodeFrame(frame, (e) => envs.push(e));
  return { envs, info };
}

describe('FrameEncoder and decodeFrame', () => {
  it('round-trips events and promises with every field, in order', () => {
    const enc = new FrameEncoder(64);
    const payload = new Uint8Array(5000).map((_, i) => i & 0xff);
    const frame = enc.encode(
      [
        event(payload, { a: '1', ключ: 'значение' }),
        new PromiseEnvelope(3, sender, 'n2', 'render', 2n ** 64n - 1n, -0.5, 2 ** 32 - 1, 1),
        new PromiseEnvelope(3, sender, 'n2', 'render', 42, 7, 0, 0),
      ],
      Lane.Event,
      99n,
      7n,
    );
    expect(frame.subarray(0, FRAME_HEADER_BYTES).every((b) => b === 0)).toBe(true);
    const { envs, info } = decodeAll(frame);
    expect(info).toEqual({ linkSeq: 99n, ack: 7n, lane: Lane.Event, count: 3 });
    const e = envs[0] as EventEnvelope;
    expect(e).toBeInstanceOf(EventEnvelope);
    expect(e.repid).toBe(3);
    expect(e.sender).toEqual(sender);
    expect(e.targetNode).toBe('n2');
    expect(e.simproc).toBe('render');
    expect(e.epoch).toBe(1.25);
    expect({ ...e.headers }).toEqual({ a: '1', ключ: 'значение' });
    expect(Buffer.compare(e.payload!, payload)).toBe(0);
    expect(e.dataFormat).toBe(DataFormat.Serialized);
    expect(e.hops).toBe(2);
    expect(e.replyTo).toEqual({ node: 'n9', simproc: 'physics' });
    const p = envs[1] as PromiseEnvelope;
    expect(p.seqnr).toBe(2n ** 64n - 1n);
    expect(p.numEvents).toBe(2 ** 32 - 1);
    expect(p.epoch).toBe(-0.5);
    expect(p.hops).toBe(1);
    expect((envs[2] as PromiseEnvelope).seqnr).toBe(42);
  });

  it('decodes event data as a view into the frame, 8-byte aligned within the body', () => {
    const enc = new FrameEncoder();
    const frame = enc.encode([event(new Uint8Array([1, 2, 3]))], Lane.Event, 0n, 0n);
    const e = decodeAll(frame).envs[0] as EventEnvelope;
    expect(e.payload!.buffer).toBe(frame.buffer);
    expect((e.payload!.byteOffset - frame.byteOffset - FRAME_HEADER_BYTES) % 8).toBe(0);
  });

  it('reuses its builder across frames without leaking state between them', () => {
    const enc = new FrameEncoder(16);
    const big = enc.encode([event(new Uint8Array(100_000))], Lane.Event, 1n, 0n);
    const small = enc.encode([event(new Uint8Array([9]))], Lane.Event, 2n, 0n);
    expect(small.length).toBeLessThan(big.length);
    expect([...(decodeAll(small).envs[0] as EventEnvelope).payload!]).toEqual([9]);
  });

  it('returns frames 8-byte aligned with a zeroed header, whatever was allocated before', () => {
    const enc = new FrameEncoder();
    for (const size of [1, 3, 7, 13, 100, 5000]) {
      Buffer.allocUnsafe(size); // moves Node's Buffer pool to an odd offset
      const frame = enc.encode([event(new Uint8Array(size).fill(7))], Lane.Event, 0n, 0n);
      expect(frame.byteOffset % 8).toBe(0);
      expect(frame.subarray(0, FRAME_HEADER_BYTES).every((b) => b === 0)).toBe(true);
      const e = decodeAll(frame).envs[0] as EventEnvelope;
      expect(e.payload!.every((b) => b === 7)).toBe(true);
    }
  });

  it('writes and reads back many distinct names, alternating within a frame and across frames', () => {
    const enc = new FrameEncoder();
    const name = (i: number) => `node-${i}-${'ü'.repeat(i % 5)}`;
    // More distinct names than an encoder keeps, and some longer than the decoder keeps.
    for (let round = 0; round < 3; round++) {
      const envs = Array.from(
        { length: 1500 },
        (_, i) =>
          new PromiseEnvelope(
            0,
            { node: name(i), simproc: i % 2 === 0 ? 'a' : 'x'.repeat(70 + (i % 3)) },
            name((i * 7 + round) % 1500),
            i % 3 === 0 ? 'p' : 'q',
            i,
            0,
            1,
            0,
          ),
      );
      const got = decodeAll(enc.encode(envs, Lane.Promise, 0n, 0n)).envs as PromiseEnvelope[];
      expect(got.map((e) => [e.sender.node, e.sender.simproc, e.targetNode, e.simproc])).toEqual(
        envs.map((e) => [e.sender.node, e.sender.simproc, e.targetNode, e.simproc]),
      );
    }
  });

  it('decodes names afresh when a buffer is reused for a frame with other names', () => {
    const frameOf = (node: string) =>
      new FrameEncoder().encode(
        [new PromiseEnvelope(0, { node, simproc: 'p' }, node, 'p', 1, 0, 1, 0)],
        Lane.Promise,
        0n,
        0n,
      );
    // Same length, first and last byte: the names share a slot of the decoder's cache.
    const first = frameOf('n1x');
    const second = frameOf('n2x');
    expect(second.length).toBe(first.length);
    const reused = new Uint8Array(first.length);
    reused.set(first);
    expect((decodeAll(reused).envs[0] as PromiseEnvelope).sender.node).toBe('n1x');
    reused.set(second); // same layout, other bytes, as a ring slot that was written again
    const e = decodeAll(reused).envs[0] as PromiseEnvelope;
    expect([e.sender.node, e.targetNode]).toEqual(['n2x', 'n2x']);
  });

  it('decodes a frame from inside the callback of another', () => {
    const enc = new FrameEncoder();
    const outer = enc.encode(
      [event(new Uint8Array([1])), event(new Uint8Array([2]))],
      Lane.Event,
      1n,
      0n,
    );
    const inner = new FrameEncoder().encode(
      [new PromiseEnvelope(0, { node: 'zz', simproc: 'q' }, 'yy', 'q', 5, 0, 1, 0)],
      Lane.Promise,
      2n,
      0n,
    );
    const seen: string[] = [];
    decodeFrame(outer, (e) => {
      decodeFrame(inner, (i) => seen.push(`${i.sender.node}>${i.targetNode}`));
      seen.push(`${e.sender.node}>${e.targetNode}:${(e as EventEnvelope).payload![0]}`);
    });
    expect(seen).toEqual(['zz>yy', 'n1>n2:1', 'zz>yy', 'n1>n2:2']);
  });

  it('refuses to encode an event that was not serialized', () => {
    const e = new EventEnvelope(
      0,
      sender,
      'n2',
      'render',
      0,
      EMPTY_HEADERS,
      {},
      null,
      DataFormat.Raw,
      0,
      null,
    );
    expect(() => new FrameEncoder().encode([e], Lane.Event, 0n, 0n)).toThrow(
      /no serialized payload/,
    );
  });

  it('normalises wire seqnrs to numbers when exact', () => {
    expect(seqnrFromWire(5n)).toBe(5);
    expect(seqnrFromWire(BigInt(Number.MAX_SAFE_INTEGER))).toBe(Number.MAX_SAFE_INTEGER);
    expect(seqnrFromWire(BigInt(Number.MAX_SAFE_INTEGER) + 1n)).toBe(2n ** 53n);
  });
});
