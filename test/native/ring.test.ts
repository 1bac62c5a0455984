/**
 * The shared-memory ring through src/native.ts in one process: segments (create, open, unlink,
 * mode, names, stale cleanup), ring ends (statuses, reserve/commit, full and empty, views detached
 * on release, idempotent close, misuse), wake-ups through both doorbells, a corrupted live
 * segment, and the addon in a worker thread. Every test uses its own cluster and leaves nothing
 * in /dev/shm.
 *
 * scripts/native-sanitize.sh runs this file against the AddressSanitizer build.
 */
import { spawn } from 'node:child_process';
import { openSync, closeSync, readSync, statSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';

import {
  FrameCorruptError,
  InvalidArgumentError,
  LinkClosedError,
  PeerDeadError,
} from '../../src/errors.js';
import { BatchReader } from '../../src/native-batch.js';
import {
  NativeStatus,
  RING_HEADER_BYTES,
  RING_LAYOUT_VERSION,
  RING_MAX_CAPACITY_BYTES,
  RING_MAX_MESSAGE_BYTES,
  RING_MIN_CAPACITY_BYTES,
  RING_RECORD_HEADER_BYTES,
  RingEvent,
  type RingEventCode,
  SEGMENT_NAME_MAX_BYTES,
  clusterSegmentPrefix,
  createRing,
  loadNative,
  openRingConsumer,
  openRingProducer,
  removeStaleRings,
  ringSegmentName,
  ringStatusError,
  unlinkRing,
} from '../../src/native.js';
import { leftovers, ringName, testCluster, waitFor } from './ring-helpers.js';

const DEADLINE_MS = 5_000;

function cluster(what: string): string {
  const c = testCluster(what);
  return c;
}

function sampleFrame(): Uint8Array {
  return loadNative().testing.buildSampleFrame();
}

/** A ring with both ends open in this process; `events` collects what each end reports. */
function pair(what: string, capacity = RING_MIN_CAPACITY_BYTES, doorbell?: 'futex' | 'pipe') {
  const name = ringName(cluster(what));
  createRing(name, capacity);
  const events = { producer: [] as RingEventCode[], consumer: [] as RingEventCode[] };
  const producer = openRingProducer(name, (e) => events.producer.push(e));
  const consumer = openRingConsumer(name, (e) => events.consumer.push(e), {
    doorbell: doorbell ?? 'futex',
  });
  const close = () => {
    producer.close();
    consumer.close();
    unlinkRing(name);
  };
  return { name, producer, consumer, events, close };
}

describe('ring segments', () => {
  it('mirrors the ring layout constants of the addon', () => {
    expect(loadNative().ringLayout).toStrictEqual({
      version: RING_LAYOUT_VERSION,
      headerBytes: RING_HEADER_BYTES,
      minCapacity: RING_MIN_CAPACITY_BYTES,
      maxCapacity: RING_MAX_CAPACITY_BYTES,
      recordHeaderBytes: RING_RECORD_HEADER_BYTES,
      maxMessageBytes: RING_MAX_MESSAGE_BYTES,
      maxNameBytes: SEGMENT_NAME_MAX_BYTES,
    });
  });

  it('creates a 0600 segment of header plus capacity, refuses a second, unlinks it', () => {
    const name = ringName(cluster('create'));
    createRing(name, 1 << 17);
    const st = statSync(`/dev/shm/${name}`);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.size).toBe(RING_HEADER_BYTES + (1 << 17));
    expect(() => createRing(name, 1 << 17)).toThrow(LinkClosedError);
    expect(() => createRing(name, 1 << 17)).toThrow(/SEGMENT_EXISTS/);
    expect(unlinkRing(name)).toBe(true);
    expect(unlinkRing(name)).toBe(false);
  });

  it('validates names and capacities', () => {
    const c = cluster('names');
    expect(() => ringSegmentName(c, 'a/b', 1)).toThrow(InvalidArgumentError);
    expect(() => ringSegmentName(c, 'x'.repeat(200), 1)).toThrow(InvalidArgumentError);
    expect(() => clusterSegmentPrefix('')).toThrow(InvalidArgumentError);
    expect(() => clusterSegmentPrefix('a.b')).toThrow(InvalidArgumentError);
    for (const bad of ['', '.hidden', 'a/b', 'a b', 'ä', 'x'.repeat(201), '../x']) {
      expect(() => createRing(bad, 1 << 16)).toThrow(InvalidArgumentError);
    }
    const name = ringName(c);
    for (const capacity of [0, 1000, (1 << 16) + 8, 3 << 20, 2 ** 33]) {
      expect(() => createRing(name, capacity)).toThrow(InvalidArgumentError);
    }
    for (const capacity of [1.5, -1, Number.NaN, Infinity]) {
      expect(() => createRing(name, capacity)).toThrow(TypeError);
    }
    expect(() => loadNative().ringCreate(42 as unknown as string, 1 << 16)).toThrow(TypeError);
    expect(leftovers(c)).toEqual([]);
  });

  it('opens only existing, well-formed rings and each end once', () => {
    const c = cluster('open');
    const name = ringName(c);
    expect(() => openRingProducer(name, () => {})).toThrow(/SEGMENT_NOT_FOUND/);
    createRing(name, 1 << 16);
    const producer = openRingProducer(name, () => {});
    const consumer = openRingConsumer(name, () => {});
    expect(() => openRingProducer(name, () => {})).toThrow(/ROLE_TAKEN/);
    expect(() => openRingConsumer(name, () => {})).toThrow(/ROLE_TAKEN/);
    producer.close();
    consumer.close();
    expect(() => openRingProducer(name, () => {})).toThrow(/PEER_CLOSED/);
    unlinkRing(name);
    // A file that is not a ring.
    const fd = openSync(`/dev/shm/${name}`, 'wx', 0o600);
    writeSync(fd, Buffer.alloc(8192, 7));
    closeSync(fd);
    expect(() => openRingConsumer(name, () => {})).toThrow(/BAD_SEGMENT/);
    unlinkRing(name);
  });

  it('removes the segments of a dead creator, and only those', async () => {
    const c = cluster('stale');
    const live = ringName(c, 'live', 0);
    createRing(live, 1 << 16);
    const dead = ringName(c, 'dead', 0);
    // A creator that exits without unlinking (a crashed Application).
    const code = `require(${JSON.stringify(nativePath())}).ringCreate(${JSON.stringify(dead)}, 65536)`;
    const child = spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
    await new Promise((resolve) => child.on('exit', resolve));
    expect(leftovers(c).sort()).toEqual([dead, live].sort());
    expect(removeStaleRings(clusterSegmentPrefix(c))).toBe(1);
    expect(leftovers(c)).toEqual([live]);
    expect(removeStaleRings(clusterSegmentPrefix(c))).toBe(0);
    unlinkRing(live);
    expect(() => removeStaleRings('a/b')).toThrow(InvalidArgumentError);
  });

  it('reports this process identity', () => {
    const id = loadNative().processIdentity();
    expect(id.pid).toBe(process.pid);
    expect(id.startTicks).toBeGreaterThan(0);
  });
});

function nativePath(): string {
  return process.env.DISCO_NATIVE_PATH !== undefined && process.env.DISCO_NATIVE_PATH !== ''
    ? process.env.DISCO_NATIVE_PATH
    : fileURLToPath(new URL('../../build/Release/disco_native.node', import.meta.url));
}

describe('ring ends', () => {
  it('reads back frames in order and detaches each batch view on release', () => {
    const r = pair('order');
    const reader = new BatchReader();
    expect(reader.read(r.consumer)).toBe(NativeStatus.RING_EMPTY);
    const frame = sampleFrame();
    for (let i = 0; i < 3; i++) expect(r.producer.writeFrame(frame)).toBe(NativeStatus.OK);
    expect(reader.read(r.consumer)).toBe(NativeStatus.OK);
    expect(reader.frameCount).toBe(3);
    expect(reader.envelopeCount).toBe(6);
    const view = reader.view!;
    const payload = reader.payload(0);
    expect(Array.from(payload)).toEqual([
      0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x44, 0x53, 0x43, 0x4f, 0x00,
    ]);
    const kept = reader.copyPayload(0);
    reader.release(r.consumer);
    expect(view.byteLength).toBe(0);
    expect(payload.byteLength).toBe(0);
    expect(() => payload.slice()).toThrow(TypeError);
    expect(() => payload.subarray(1)).toThrow(TypeError);
    expect(() => new Uint8Array(payload)).toThrow(TypeError);
    expect(payload[0]).toBeUndefined();
    expect(kept.length).toBe(11);
    expect(reader.read(r.consumer)).toBe(NativeStatus.RING_EMPTY);
    r.close();
  });

  it('gives every batch a buffer of its own, through the wrap, detached by release or the next read', () => {
    const r = pair('spare');
    const reader = new BatchReader();
    const frame = sampleFrame();
    expect(r.producer.writeFrame(frame)).toBe(NativeStatus.OK);
    expect(reader.read(r.consumer)).toBe(NativeStatus.OK);
    const expected = Array.from(reader.copyPayload(0));
    reader.release(r.consumer);
    const buffers = new Set<ArrayBufferLike>();
    let previous: Uint8Array | null = null;
    // Enough frames to wrap the smallest ring several times.
    const rounds = Math.ceil((4 * RING_MIN_CAPACITY_BYTES) / frame.length);
    for (let i = 0; i < rounds; i++) {
      expect(r.producer.writeFrame(frame)).toBe(NativeStatus.OK);
      expect(reader.read(r.consumer)).toBe(NativeStatus.OK);
      const payload = reader.payload(0);
      expect(Array.from(payload)).toEqual(expected);
      // A payload read through its buffer and offset, as code that keeps views must.
      expect(new Uint8Array(payload.buffer, payload.byteOffset, payload.length)[2]).toBe(0x7f);
      expect(buffers.has(payload.buffer)).toBe(false);
      buffers.add(payload.buffer);
      if (previous !== null) expect(previous.byteLength).toBe(0);
      previous = payload;
      // Every other batch is left to the next read to release.
      if (i % 2 === 0) {
        reader.release(r.consumer);
        expect(payload.byteLength).toBe(0);
        expect(() => payload.slice()).toThrow(TypeError);
      }
    }
    expect(r.producer.writeFrame(frame)).toBe(NativeStatus.OK);
    expect(reader.read(r.consumer)).toBe(NativeStatus.OK);
    const last = reader.view!;
    r.consumer.close();
    expect(last.byteLength).toBe(0);
    expect(r.producer.writeFrame(frame)).toBe(NativeStatus.PEER_CLOSED);
    r.close();
  });

  it('decodes into the arrays bindOutput allocated, and grows them', () => {
    const r = pair('bind');
    expect(() => r.consumer.readBatch(1 << 20)).toThrow(/bindOutput/);
    expect(() => r.consumer.bindOutput(0, 0, 0, 1)).toThrow(TypeError);
    const frame = sampleFrame();
    for (let i = 0; i < 3; i++) expect(r.producer.writeFrame(frame)).toBe(NativeStatus.OK);
    // Room for one envelope: the reader grows (binding new arrays) until a frame fits.
    const reader = new BatchReader({ envelopes: 1, frames: 1 });
    expect(reader.read(r.consumer)).toBe(NativeStatus.OK);
    expect(reader.envelopeCount).toBe(2);
    expect(reader.epochs.length).toBeGreaterThanOrEqual(2);
    const first = reader.epoch(0);
    expect(reader.frameCount).toBe(1);
    // The same frame again, into arrays bound by hand (its strings are known by now).
    const o = r.consumer.bindOutput(4, 4, 4, 1);
    expect(typeof r.consumer.readBatch(1 << 20)).not.toBe('number');
    expect(o.summary[1]).toBe(2);
    expect(o.summary[3]).toBe(0);
    expect(o.epochs[0]).toBe(first);
    r.consumer.release();
    r.close();
  });

  it('fills up, says RING_FULL, and wakes the producer when space frees', async () => {
    const r = pair('full');
    const frame = sampleFrame();
    let writes = 0;
    let s: number = NativeStatus.OK;
    while ((s = r.producer.writeFrame(frame)) === NativeStatus.OK) writes += 1;
    expect(s).toBe(NativeStatus.RING_FULL);
    expect(writes).toBeGreaterThan(10);
    expect(r.producer.freeBytes()).toBeLessThan(frame.length + RING_RECORD_HEADER_BYTES);
    r.producer.notifyWhenWritable(frame.length + RING_RECORD_HEADER_BYTES);
    const reader = new BatchReader({ frames: 4 });
    expect(reader.read(r.consumer)).toBe(NativeStatus.OK);
    reader.release(r.consumer);
    await waitFor(() => r.events.producer.includes(RingEvent.READY), DEADLINE_MS, 'READY');
    expect(r.producer.writeFrame(frame)).toBe(NativeStatus.OK);
    r.close();
  });

  it('commits a frame written by JS straight into a reserved record', () => {
    const r = pair('reserve');
    const frame = sampleFrame();
    const slot = r.producer.reserve(frame.length);
    if (typeof slot === 'number') throw new Error(`reserve: ${slot}`);
    expect(slot.length).toBe(frame.length);
    slot.set(frame);
    expect(r.producer.commit(frame.length)).toBe(NativeStatus.OK);
    expect(slot.byteLength).toBe(0);
    expect(r.producer.commit(frame.length)).toBe(NativeStatus.INVALID_ARGUMENT);
    expect(r.producer.reserve(r.producer.maxContentBytes + 1)).toBe(NativeStatus.TOO_LARGE);
    const abandoned = r.producer.reserve(64) as Uint8Array;
    r.producer.abandon();
    expect(abandoned.byteLength).toBe(0);
    const reader = new BatchReader();
    expect(reader.read(r.consumer)).toBe(NativeStatus.OK);
    expect(reader.frameCount).toBe(1);
    expect(reader.frameLinkSeq(0)).toBe(2n ** 63n + 1n);
    r.close();
  });

  it('closes idempotently and answers CLOSED afterwards', () => {
    const r = pair('close');
    const reader = new BatchReader();
    r.producer.writeFrame(sampleFrame());
    expect(reader.read(r.consumer)).toBe(NativeStatus.OK);
    const view = reader.view!;
    r.consumer.close();
    expect(view.byteLength).toBe(0);
    r.consumer.close();
    expect(r.consumer.closed).toBe(true);
    expect(reader.read(r.consumer)).toBe(NativeStatus.CLOSED);
    expect(r.consumer.checkPeer()).toBe(NativeStatus.CLOSED);
    expect(r.producer.writeFrame(sampleFrame())).toBe(NativeStatus.PEER_CLOSED);
    r.producer.close();
    r.producer.close();
    expect(r.producer.closed).toBe(true);
    expect(r.producer.writeFrame(sampleFrame())).toBe(NativeStatus.CLOSED);
    expect(r.producer.reserve(8)).toBe(NativeStatus.CLOSED);
    expect(r.producer.flush()).toBe(NativeStatus.CLOSED);
    r.close();
  });

  it('reports PEER_CLOSED once the producer closed and everything was read', () => {
    const r = pair('peer-closed');
    r.producer.writeFrame(sampleFrame());
    r.producer.close();
    const reader = new BatchReader();
    expect(reader.read(r.consumer)).toBe(NativeStatus.OK);
    expect(reader.read(r.consumer)).toBe(NativeStatus.PEER_CLOSED);
    r.close();
  });

  it('refuses misuse with TypeError and never crashes', () => {
    const r = pair('misuse');
    const native = loadNative();
    expect(() => new (native.RingProducer as unknown as new () => unknown)()).toThrow(TypeError);
    expect(() => new (native.RingConsumer as unknown as new () => unknown)()).toThrow(TypeError);
    const writeFrame = native.RingProducer.prototype.writeFrame as (f: Uint8Array) => number;
    expect(() => writeFrame.call(r.consumer, sampleFrame())).toThrow(TypeError);
    expect(() => writeFrame.call({}, sampleFrame())).toThrow(TypeError);
    expect(() => r.producer.writeFrame('x' as unknown as Uint8Array)).toThrow(TypeError);
    expect(() => r.producer.writeBatch(new Uint8Array(8), [1] as unknown as Uint8Array[])).toThrow(
      TypeError,
    );
    expect(r.producer.writeBatch(new Uint8Array(8))).toBe(NativeStatus.BAD_BATCH);
    expect(() => r.producer.reserve(-1)).toThrow(TypeError);
    expect(() => r.producer.notifyWhenWritable(Number.NaN)).toThrow(TypeError);
    expect(() => r.producer.keepAlive(1 as unknown as boolean)).toThrow(TypeError);
    r.consumer.keepAlive(true);
    r.consumer.keepAlive(false);
    const a = new Uint32Array(64);
    expect(() => r.consumer.readBatch(a, a, a, new Float64Array(4), a, a, 1 << 20)).toThrow(
      /share memory/,
    );
    expect(() =>
      r.consumer.readBatch(
        new Uint32Array(1),
        new Uint32Array(9),
        new Uint32Array(16),
        new Float64Array(1),
        new Uint32Array(2),
        new Uint32Array(2),
        1,
      ),
    ).toThrow(TypeError);
    expect(() => openRingConsumer(r.name, 'x' as unknown as () => void)).toThrow(TypeError);
    expect(() => openRingConsumer(r.name, () => {}, { doorbell: 'smoke' as 'pipe' })).toThrow(
      TypeError,
    );
    expect(() => openRingConsumer(r.name, () => {}, { livenessMs: 500 })).toThrow(TypeError);
    r.close();
  });

  it('turns statuses into the error classes of DESIGN §9', () => {
    expect(ringStatusError(NativeStatus.PEER_DEAD, 'r')).toBeInstanceOf(PeerDeadError);
    expect(ringStatusError(NativeStatus.ROLE_ABANDONED, 'r')).toBeInstanceOf(PeerDeadError);
    expect(ringStatusError(NativeStatus.CORRUPT_RECORD, 'r')).toBeInstanceOf(FrameCorruptError);
    expect(ringStatusError(NativeStatus.CHECKSUM_MISMATCH, 'r')).toBeInstanceOf(FrameCorruptError);
    expect(ringStatusError(NativeStatus.BAD_NAME, 'r')).toBeInstanceOf(InvalidArgumentError);
    expect(ringStatusError(NativeStatus.ROLE_TAKEN, 'r')).toBeInstanceOf(LinkClosedError);
    expect(ringStatusError(NativeStatus.ROLE_TAKEN, 'ring-x').message).toContain('ring-x');
  });
});

describe('wake-ups', () => {
  for (const doorbell of ['futex', 'pipe'] as const) {
    it(`wakes a sleeping consumer through the ${doorbell} doorbell for every burst`, async () => {
      const r = pair(`wake-${doorbell}`, RING_MIN_CAPACITY_BYTES, doorbell);
      const reader = new BatchReader();
      let frames = 0;
      const drain = () => {
        let s: number;
        while ((s = reader.read(r.consumer)) === NativeStatus.OK) frames += reader.frameCount;
        expect(s).toBe(NativeStatus.RING_EMPTY);
      };
      let socket: Socket | null = null;
      if (doorbell === 'pipe') {
        const fd = r.consumer.doorbellFd();
        expect(fd).toBeGreaterThanOrEqual(0);
        socket = new Socket({ fd, readable: true, writable: false });
        socket.on('data', drain);
      } else {
        expect(r.consumer.doorbellFd()).toBe(-1);
      }
      drain();
      const frame = sampleFrame();
      for (let burst = 1; burst <= 20; burst++) {
        for (let i = 0; i < (burst % 3) + 1; i++)
          expect(r.producer.writeFrame(frame)).toBe(NativeStatus.OK);
        const expected = frames + (burst % 3) + 1;
        await waitFor(
          () => {
            if (doorbell === 'futex' && r.events.consumer.length > 0) {
              r.events.consumer.length = 0;
              drain();
            }
            return frames === expected;
          },
          DEADLINE_MS,
          `burst ${burst}`,
        );
      }
      socket?.destroy();
      r.close();
    });
  }

  for (const doorbell of ['futex', 'pipe'] as const) {
    it(`polls without the addon and arms only when asked (${doorbell})`, async () => {
      const r = pair(`poll-${doorbell}`, RING_MIN_CAPACITY_BYTES, doorbell);
      const socket =
        doorbell === 'pipe'
          ? new Socket({ fd: r.consumer.doorbellFd(), readable: true, writable: false })
          : null;
      let rung = 0;
      socket?.on('data', () => (rung += 1));
      const words = r.consumer.pollWords();
      const news = () =>
        Atomics.load(words.tail, 0) !== words.readPosition[0] ||
        Atomics.load(words.tail, 1) !== words.readPosition[1] ||
        Atomics.load(words.producerClosed, 0) !== 0;
      const reader = new BatchReader();
      r.consumer.autoArm(false);
      expect(news()).toBe(false);
      expect(reader.read(r.consumer)).toBe(NativeStatus.RING_EMPTY);
      const frame = sampleFrame();
      expect(r.producer.writeFrame(frame)).toBe(NativeStatus.OK);
      expect(news()).toBe(true);
      expect(words.tail[0]).toBe(r.consumer.state().tail);
      // Records wait: arm() arms nothing and says so.
      expect(r.consumer.arm()).toBe(NativeStatus.OK);
      expect(reader.read(r.consumer)).toBe(NativeStatus.OK);
      reader.release(r.consumer);
      expect(news()).toBe(false);
      expect(words.readPosition[0]).toBe(r.consumer.state().head);
      // Empty: armed; the next record rings the doorbell.
      expect(r.consumer.arm()).toBe(NativeStatus.RING_EMPTY);
      expect(r.producer.writeFrame(frame)).toBe(NativeStatus.OK);
      await waitFor(
        () => (doorbell === 'pipe' ? rung : r.events.consumer.length) > 0,
        DEADLINE_MS,
        'the doorbell',
      );
      expect(reader.read(r.consumer)).toBe(NativeStatus.OK);
      expect(reader.read(r.consumer)).toBe(NativeStatus.RING_EMPTY);
      // Taken back: armed and disarmed, then armed again, the doorbell still rings.
      expect(r.consumer.arm()).toBe(NativeStatus.RING_EMPTY);
      r.consumer.disarm();
      const before = doorbell === 'pipe' ? rung : r.events.consumer.length;
      expect(r.consumer.arm()).toBe(NativeStatus.RING_EMPTY);
      expect(r.producer.writeFrame(frame)).toBe(NativeStatus.OK);
      await waitFor(
        () => (doorbell === 'pipe' ? rung : r.events.consumer.length) > before,
        DEADLINE_MS,
        'the doorbell after a disarm',
      );
      expect(() => r.consumer.autoArm(1 as unknown as boolean)).toThrow(TypeError);
      r.producer.close();
      expect(news()).toBe(true); // the producer's close is news too
      socket?.destroy();
      r.close();
    });
  }
});

describe('untrusted peer', () => {
  it('reports a corrupted record of a live segment as a status and keeps the process up', () => {
    const r = pair('corrupt');
    const frame = sampleFrame();
    expect(r.producer.writeFrame(frame)).toBe(NativeStatus.OK);
    expect(r.producer.writeFrame(frame)).toBe(NativeStatus.OK);
    // Flip the top byte of the FlatBuffers root offset of the second record's frame (the body
    // starts after the 16-byte frame header), through the file. Ring records carry no checksum
    // (native/frame.h ring_verify_options): it is the verifier that must catch a bad structure.
    const fd = openSync(`/dev/shm/${r.name}`, 'r+');
    const recordBytes = Math.ceil((RING_RECORD_HEADER_BYTES + frame.length) / 8) * 8;
    const at = RING_HEADER_BYTES + recordBytes + RING_RECORD_HEADER_BYTES + 16 + 3;
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, at);
    b[0] = b[0]! ^ 0x5a;
    writeSync(fd, b, 0, 1, at);
    // And a record length far past the end, further on.
    closeSync(fd);
    const reader = new BatchReader();
    expect(reader.read(r.consumer)).toBe(NativeStatus.OK);
    expect(reader.frameCount).toBe(1);
    const s = reader.read(r.consumer);
    expect(s).toBe(NativeStatus.VERIFY_FAILED);
    expect(ringStatusError(s, r.name)).toBeInstanceOf(FrameCorruptError);
    expect(reader.read(r.consumer)).toBe(s);
    r.close();
  });

  it('reports a record length running past the ring as CORRUPT_RECORD', () => {
    const r = pair('corrupt-length');
    expect(r.producer.writeFrame(sampleFrame())).toBe(NativeStatus.OK);
    const fd = openSync(`/dev/shm/${r.name}`, 'r+');
    const length = Buffer.alloc(4);
    length.writeUInt32LE(0xfffffff8);
    writeSync(fd, length, 0, 4, RING_HEADER_BYTES);
    closeSync(fd);
    expect(new BatchReader().read(r.consumer)).toBe(NativeStatus.CORRUPT_RECORD);
    r.close();
  });
});

describe('worker threads', () => {
  it('loads the addon and runs a ring inside a worker thread', async () => {
    const name = ringName(cluster('worker'));
    const source = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.path);
      let status = addon.ringCreate(workerData.name, 8 << 20);
      const p = addon.openRingProducer(workerData.name, () => {});
      const c = addon.openRingConsumer(workerData.name, () => {});
      status += p.writeFrame(addon.testing.buildSampleFrame());
      const a = () => new Uint32Array(1024);
      const view = c.readBatch(new Uint32Array(9), a(), a(), new Float64Array(64), a(), a(), 1 << 20);
      // A slot of 1 MiB or more is made through V8's API, in this worker's isolate.
      const slot = p.reserve(2 << 20);
      const large = slot instanceof Uint8Array && slot.length === 2 << 20;
      if (large) slot[slot.length - 1] = 7;
      p.close(); c.close();
      status += addon.ringUnlink(workerData.name);
      parentPort.postMessage({ status, ok: view instanceof Uint8Array, large });
    `;
    const worker = new Worker(source, { eval: true, workerData: { path: nativePath(), name } });
    const result = await new Promise<{ status: number; ok: boolean; large: boolean }>(
      (resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      },
    );
    await worker.terminate();
    expect(result).toEqual({ status: 0, ok: true, large: true });
  });

  it('cleans up ring ends a worker leaves open when it ends', async () => {
    const name = ringName(cluster('worker-open'));
    createRing(name, 1 << 16);
    const source = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.path);
      globalThis.keep = [addon.openRingProducer(workerData.name, () => {})];
      parentPort.postMessage('open');
    `;
    const worker = new Worker(source, { eval: true, workerData: { path: nativePath(), name } });
    await new Promise((resolve) => worker.once('message', resolve));
    await worker.terminate();
    // The cleanup hook closed the producer end: a consumer sees it closed.
    const consumer = openRingConsumer(name, () => {});
    expect(new BatchReader().read(consumer)).toBe(NativeStatus.PEER_CLOSED);
    consumer.close();
    unlinkRing(name);
  });
});
