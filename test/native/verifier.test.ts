/**
 * The native frame verifier through src/native.ts: status mirror, corrupt input (every truncation
 * and every single-byte flip), batches, argument checks, and loading in a worker thread.
 *
 * scripts/native-sanitize.sh runs this file against the AddressSanitizer build, where fresh
 * exact-size copies make any read past a frame's end fail the run.
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, it, vi } from 'vitest';

import { FrameCorruptError, InvalidArgumentError } from '../../src/errors.js';
import {
  FRAME_ALIGNMENT_BYTES,
  FRAME_HEADER_BYTES,
  FRAME_LAYOUT_VERSION,
  FRAME_MAX_BODY_BYTES,
  FRAME_MIN_BYTES,
  NATIVE_PATH_ENV,
  NativeStatus,
  type NativeStatusName,
  assertFrame,
  loadNative,
  nativeAddonPath,
  nativeStatusName,
  sealFrame,
  verifyBatch,
  verifyFrame,
} from '../../src/native.js';

const WORKER_DEADLINE_MS = 20_000;

function sampleFrame(): Uint8Array {
  return loadNative().testing.buildSampleFrame();
}

/** A copy in a fresh ArrayBuffer of exactly `bytes.length` bytes (aligned, nothing after it). */
function exactCopy(bytes: Uint8Array): Uint8Array {
  return bytes.slice();
}

function corruptReason(bytes: Uint8Array): string {
  try {
    assertFrame(bytes, 'test peer');
  } catch (err) {
    expect(err).toBeInstanceOf(FrameCorruptError);
    const corrupt = err as FrameCorruptError;
    expect(corrupt.peer).toBe('test peer');
    expect(corrupt.code).toBe('ERR_FRAME_CORRUPT');
    return corrupt.reason;
  }
  throw new Error('assertFrame accepted a corrupt frame');
}

describe('native status codes', () => {
  it('mirrors the addon statusCodes exactly in NativeStatus', () => {
    const native = loadNative();
    expect({ ...native.statusCodes }).toStrictEqual({ ...NativeStatus });
    for (const [name, code] of Object.entries(NativeStatus)) {
      expect(native.statusName(code)).toBe(name);
      expect(native.statusMessage(code)).not.toBe('');
    }
  });

  it('mirrors the frame constants of native/frame.h', () => {
    expect(loadNative().frameLayout).toStrictEqual({
      version: FRAME_LAYOUT_VERSION,
      headerBytes: FRAME_HEADER_BYTES,
      minFrameBytes: FRAME_MIN_BYTES,
      alignmentBytes: FRAME_ALIGNMENT_BYTES,
      maxBodyBytes: FRAME_MAX_BODY_BYTES,
    });
  });

  it('reports the versions it was built with, V8 headers matching the running Node', () => {
    // V8's version as Node reports it may carry a suffix: 11.3.244.8-node.38.
    const v8 = /^\d+\.\d+\.\d+\.\d+/.exec(process.versions.v8)![0];
    expect(loadNative().versions).toStrictEqual({
      flatbuffers: '2.0.8',
      napi: 8,
      layout: FRAME_LAYOUT_VERSION,
      v8Headers: v8,
    });
  });

  it('names codes outside the list UNKNOWN', () => {
    const pastTheEnd = Object.keys(NativeStatus).length;
    for (const code of [-1, pastTheEnd, 1.5, Number.NaN, 2 ** 40]) {
      expect(nativeStatusName(code)).toBe('UNKNOWN');
    }
    expect(loadNative().statusName('3' as unknown as number)).toBe('UNKNOWN');
  });

  it('freezes the exported tables', () => {
    const native = loadNative();
    expect(Object.isFrozen(native.statusCodes)).toBe(true);
    expect(Object.isFrozen(native.versions)).toBe(true);
    expect(Object.isFrozen(native.frameLayout)).toBe(true);
  });
});

describe('verifyFrame and assertFrame', () => {
  it('accepts the sample frame built by C++', () => {
    const frame = sampleFrame();
    expect(frame.length % FRAME_ALIGNMENT_BYTES).toBe(0);
    expect(verifyFrame(frame)).toBe(NativeStatus.OK);
    expect(() => assertFrame(frame, 'test peer')).not.toThrow();
    expect(verifyFrame(Buffer.from(frame))).toBe(NativeStatus.OK);
  });

  it('rejects every truncation of a valid frame', () => {
    const frame = sampleFrame();
    for (let n = 0; n < frame.length; n++) {
      const truncated = exactCopy(frame.subarray(0, n));
      const status = verifyFrame(truncated);
      if (status === NativeStatus.OK) throw new Error(`truncation to ${n} bytes verified`);
      const expected: NativeStatusName = n < FRAME_MIN_BYTES ? 'TOO_SHORT' : 'BAD_LENGTH';
      expect(status).toBe(NativeStatus[expected]);
      expect(corruptReason(truncated)).toMatch(new RegExp(`^${expected}: `));
    }
  });

  it('rejects every single-byte flip of a valid frame', () => {
    const frame = sampleFrame();
    const seen = new Set<string>();
    for (let i = 0; i < frame.length; i++) {
      const flipped = exactCopy(frame);
      flipped[i] = flipped[i]! ^ 0xff;
      const status = verifyFrame(flipped);
      if (status === NativeStatus.OK) throw new Error(`flipping byte ${i} verified`);
      const reason = corruptReason(flipped);
      expect(reason.startsWith(`${nativeStatusName(status)}: `)).toBe(true);
      seen.add(nativeStatusName(status));
    }
    expect([...seen].sort()).toStrictEqual(['BAD_LENGTH', 'BAD_MAGIC', 'CHECKSUM_MISMATCH']);
  });

  it('rejects a frame whose header length disagrees with its size', () => {
    const frame = exactCopy(sampleFrame());
    new DataView(frame.buffer).setUint32(4, 0xffff_fff0, true);
    expect(verifyFrame(frame)).toBe(NativeStatus.BAD_LENGTH);
  });

  it('rejects a body with a foreign file identifier even when sealed', () => {
    const frame = exactCopy(sampleFrame());
    frame.set([0x58, 0x58, 0x58, 0x58], FRAME_HEADER_BYTES + 4);
    sealFrame(frame);
    expect(verifyFrame(frame)).toBe(NativeStatus.BAD_IDENTIFIER);
  });

  it('rejects a sealed body the FlatBuffers verifier refuses', () => {
    const frame = new Uint8Array(FRAME_MIN_BYTES);
    frame.set([0xf0, 0xff, 0x00, 0x00, 0x44, 0x53, 0x43, 0x4f], FRAME_HEADER_BYTES);
    sealFrame(frame);
    expect(verifyFrame(frame)).toBe(NativeStatus.VERIFY_FAILED);
    expect(corruptReason(frame)).toMatch(/^VERIFY_FAILED: /);
  });

  it('rejects a frame that does not start at an 8-byte aligned address', () => {
    const frame = sampleFrame();
    const backing = new ArrayBuffer(frame.length + FRAME_ALIGNMENT_BYTES);
    for (let shift = 1; shift < FRAME_ALIGNMENT_BYTES; shift++) {
      const view = new Uint8Array(backing, shift, frame.length);
      view.set(frame);
      expect(verifyFrame(view)).toBe(NativeStatus.BAD_ALIGNMENT);
    }
  });

  it('treats a view of a detached buffer as empty instead of reading it', () => {
    const frame = exactCopy(sampleFrame());
    const buffer = frame.buffer as ArrayBuffer;
    structuredClone(buffer, { transfer: [buffer] });
    expect(frame.length).toBe(0);
    expect(verifyFrame(frame)).toBe(NativeStatus.TOO_SHORT);
  });
});

describe('sealFrame', () => {
  it('writes the same header C++ wrote for the same body', () => {
    const original = sampleFrame();
    const frame = exactCopy(original);
    frame.fill(0, 0, FRAME_HEADER_BYTES);
    expect(verifyFrame(frame)).toBe(NativeStatus.BAD_MAGIC);
    sealFrame(frame);
    expect(frame).toStrictEqual(original);
  });

  it('refuses a buffer with no room for a body', () => {
    expect(() => sealFrame(new Uint8Array(FRAME_MIN_BYTES - 1))).toThrow(InvalidArgumentError);
    expect(loadNative().sealFrame(new Uint8Array(3))).toBe(NativeStatus.TOO_SHORT);
  });
});

describe('verifyBatch', () => {
  function batchOf(count: number): { buf: Uint8Array; spans: Uint32Array } {
    const frame = sampleFrame();
    const buf = new Uint8Array(frame.length * count);
    const spans = new Uint32Array(count * 2);
    for (let i = 0; i < count; i++) {
      buf.set(frame, i * frame.length);
      spans[2 * i] = i * frame.length;
      spans[2 * i + 1] = frame.length;
    }
    return { buf, spans };
  }

  it('reports a status per span and counts the good frames', () => {
    const { buf, spans } = batchOf(4);
    buf[spans[4]! + FRAME_HEADER_BYTES + 7]! ^= 0x01; // third frame's body
    buf[spans[6]!] = 0; // fourth frame's magic
    const out = new Int32Array(4).fill(-1);
    expect(verifyBatch(buf, spans, out)).toBe(2);
    expect([...out]).toStrictEqual([
      NativeStatus.OK,
      NativeStatus.OK,
      NativeStatus.CHECKSUM_MISMATCH,
      NativeStatus.BAD_MAGIC,
    ]);
  });

  it('accepts an empty batch and a longer out array', () => {
    const out = new Int32Array(3).fill(-1);
    expect(verifyBatch(new Uint8Array(0), new Uint32Array(0), out)).toBe(0);
    expect([...out]).toStrictEqual([-1, -1, -1]);
  });

  it('rejects spans outside the buffer without reading them', () => {
    const { buf, spans } = batchOf(1);
    const end = buf.length;
    const outside = new Uint32Array(
      [
        [0, end + 1], // one byte past the end
        [end, 1], // starts at the end
        [0xffff_ffff, 0xffff_ffff], // offset + length overflows 32 bits
        [end - 8, 16], // straddles the end
        [end, 0], // empty, at the end: in bounds, too short
      ].flat(),
    );
    const out = new Int32Array(5);
    expect(verifyBatch(exactCopy(buf), outside, out)).toBe(0);
    expect([...out]).toStrictEqual([
      NativeStatus.INVALID_ARGUMENT,
      NativeStatus.INVALID_ARGUMENT,
      NativeStatus.INVALID_ARGUMENT,
      NativeStatus.INVALID_ARGUMENT,
      NativeStatus.TOO_SHORT,
    ]);
    expect(verifyBatch(buf, spans, new Int32Array(1))).toBe(1);
  });

  it('verifies frames at unaligned offsets as BAD_ALIGNMENT', () => {
    const frame = sampleFrame();
    const buf = new Uint8Array(frame.length + 4);
    buf.set(frame, 4);
    const out = new Int32Array(1);
    expect(verifyBatch(buf, new Uint32Array([4, frame.length]), out)).toBe(0);
    expect(out[0]).toBe(NativeStatus.BAD_ALIGNMENT);
  });
});

describe('argument checks', () => {
  const native = () => loadNative();

  it('throws TypeError for a frame that is not a Uint8Array', () => {
    const bad: unknown[] = [
      undefined,
      null,
      'frame',
      42,
      {},
      [1, 2, 3],
      new Uint16Array(8),
      new ArrayBuffer(8),
    ];
    for (const value of bad) {
      expect(() => native().verifyFrame(value as Uint8Array)).toThrow(TypeError);
      expect(() => native().sealFrame(value as Uint8Array)).toThrow(TypeError);
      expect(() => native().testing.describeFrame(value as Uint8Array)).toThrow(TypeError);
      expect(() => assertFrame(value as Uint8Array, 'p')).toThrow(TypeError);
    }
    expect(() => (native().verifyFrame as () => number)()).toThrow(
      /verifyFrame: frame must be a Uint8Array/,
    );
  });

  it('throws TypeError for batch arguments of the wrong type or size', () => {
    const buf = new Uint8Array(64);
    const spans = new Uint32Array(4);
    const out = new Int32Array(2);
    expect(() => verifyBatch(buf, new Int32Array(4) as unknown as Uint32Array, out)).toThrow(
      TypeError,
    );
    expect(() => verifyBatch(buf, spans, new Uint32Array(2) as unknown as Int32Array)).toThrow(
      TypeError,
    );
    expect(() => verifyBatch([] as unknown as Uint8Array, spans, out)).toThrow(
      /buf must be a Uint8Array/,
    );
    expect(() => verifyBatch(buf, new Uint32Array(3), out)).toThrow(/odd/);
    expect(() => verifyBatch(buf, spans, new Int32Array(1))).toThrow(/out has 1 slots for 2 spans/);
  });

  it('throws TypeError when out shares memory with buf or spans', () => {
    const memory = new ArrayBuffer(256);
    const buf = new Uint8Array(memory, 0, 128);
    const spans = new Uint32Array(memory, 128, 4);
    expect(() => verifyBatch(buf, spans, new Int32Array(memory, 64, 2))).toThrow(/share memory/);
    expect(() => verifyBatch(buf, spans, new Int32Array(memory, 136, 2))).toThrow(/share memory/);
    expect(verifyBatch(buf, spans, new Int32Array(memory, 160, 2))).toBe(0);
  });

  it('describes only frames that verify', () => {
    const frame = exactCopy(sampleFrame());
    frame[0] = 0;
    expect(() => native().testing.describeFrame(frame)).toThrow(/^BAD_MAGIC: /);
  });
});

describe('loading', () => {
  it('loads the addon inside worker threads', async () => {
    const path = nativeAddonPath();
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.path);
      const frame = addon.testing.buildSampleFrame();
      const broken = frame.slice();
      broken[0] = 0;
      parentPort.postMessage({
        ok: addon.verifyFrame(frame),
        broken: addon.verifyFrame(broken),
        codes: { ...addon.statusCodes },
      });
    `;
    const runWorker = () =>
      new Promise<{ ok: number; broken: number; codes: Record<string, number> }>(
        (resolve, reject) => {
          const worker = new Worker(code, { eval: true, workerData: { path } });
          const deadline = setTimeout(() => {
            void worker.terminate();
            reject(new Error(`worker did not answer within ${WORKER_DEADLINE_MS} ms`));
          }, WORKER_DEADLINE_MS);
          worker.once('message', (message) => {
            clearTimeout(deadline);
            void worker.terminate().then(() => resolve(message));
          });
          worker.once('error', (err) => {
            clearTimeout(deadline);
            reject(err);
          });
        },
      );
    const results = await Promise.all([runWorker(), runWorker()]);
    for (const result of results) {
      expect(result).toStrictEqual({
        ok: NativeStatus.OK,
        broken: NativeStatus.BAD_MAGIC,
        codes: { ...NativeStatus },
      });
    }
    // The main thread's instance is unaffected by the workers' environments coming and going.
    expect(verifyFrame(sampleFrame())).toBe(NativeStatus.OK);
  });

  it('reports a missing build as NativeUnavailableError naming the path', async () => {
    const previous = process.env[NATIVE_PATH_ENV];
    process.env[NATIVE_PATH_ENV] = '/nonexistent/disco_native.node';
    try {
      vi.resetModules();
      const fresh = await import('../../src/native.js');
      const freshErrors = await import('../../src/errors.js');
      expect(() => fresh.loadNative()).toThrow(freshErrors.NativeUnavailableError);
      expect(() => fresh.assertFrame(new Uint8Array(0), 'p')).toThrow(
        /\/nonexistent\/disco_native\.node/,
      );
    } finally {
      if (previous === undefined) delete process.env[NATIVE_PATH_ENV];
      else process.env[NATIVE_PATH_ENV] = previous;
      vi.resetModules();
    }
  });
});
