/**
 * Batches through the ring: what BatchWriter stages comes out of BatchReader with every field
 * equal (events and promises, extreme numbers, headers, raw and serialized payloads, reply-to,
 * 1-byte to multi-MB payloads, a 64 MiB message in chunks), strings interned across batches and
 * reset past their soft limit, and the heap encoder and decoder that the gRPC link will use,
 * cross-checked with the TypeScript FlatBuffers codec.
 */
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';

import { decodeFrame, EMPTY_HEADERS, EventEnvelope, PromiseEnvelope } from '../../src/envelope.js';
import { InvalidArgumentError, MessageTooLargeError } from '../../src/errors.js';
import {
  type AddressRef,
  BATCH_ENVELOPE_FIXED_BYTES,
  BATCH_HEADER_BYTES,
  BatchReader,
  BatchWriter,
  DataFormat,
  Kind,
  Lane,
  STRING_SOFT_ENTRIES,
  batchLayoutMismatches,
} from '../../src/native-batch.js';
import {
  NativeStatus,
  RING_MIN_CAPACITY_BYTES,
  assertFrame,
  createBatchEncoder,
  createFrameDecoder,
  createRing,
  encodeBatch,
  encodeBatchInto,
  loadNative,
  openRingConsumer,
  openRingProducer,
  unlinkRing,
} from '../../src/native.js';
import {
  FRAME_BLOCK_BYTES,
  FREE_LARGE_BYTES,
  FREE_SMALL_BLOCKS,
  FrameWriter,
} from '../../src/transports/batch-frames.js';
import { ringName, testCluster } from './ring-helpers.js';

function ring(what: string, capacity: number) {
  const c = testCluster(what);
  const name = ringName(c);
  createRing(name, capacity);
  const producer = openRingProducer(name, () => {});
  const consumer = openRingConsumer(name, () => {});
  return {
    producer,
    consumer,
    close() {
      producer.close();
      consumer.close();
      unlinkRing(name);
    },
  };
}

/** What one envelope should read back as. */
interface Expected {
  kind: Kind;
  repid: number;
  senderNode: string;
  senderSimproc: string;
  targetNode: string;
  targetSimproc: string;
  epoch: number;
  seqnr: number | bigint;
  numEvents: number;
  hops: number;
  headers: Record<string, string>;
  data: Uint8Array | null;
  dataFormat: DataFormat;
  replyTo: AddressRef | null;
}

/** Counts this process's major garbage collections from now until `stop()`. */
function majorCollections(): { stop(): Promise<number> } {
  let count = 0;
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e.detail as { kind?: number } | undefined)?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) count++;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return {
    async stop() {
      // Entries are delivered asynchronously: give the observer a turn.
      await new Promise((resolve) => setTimeout(resolve, 50));
      observer.disconnect();
      return count;
    },
  };
}

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + seed) & 0xff;
  return b;
}

function event(over: Partial<Expected>): Expected {
  return {
    kind: Kind.Event,
    repid: 0,
    senderNode: 'n0',
    senderSimproc: 'source',
    targetNode: 'n1',
    targetSimproc: 'sink',
    epoch: 1.5,
    seqnr: 0,
    numEvents: 0,
    hops: 0,
    headers: {},
    data: bytes(8, 1),
    dataFormat: DataFormat.Raw,
    replyTo: null,
    ...over,
  };
}

function promise(over: Partial<Expected>): Expected {
  return { ...event({}), kind: Kind.Promise, data: null, ...over };
}

function stage(w: BatchWriter, list: readonly Expected[]): void {
  for (const e of list) {
    if (e.kind === Kind.Promise) {
      w.addPromise(
        e.repid,
        e.senderNode,
        e.senderSimproc,
        e.targetNode,
        e.targetSimproc,
        e.epoch,
        e.seqnr,
        e.numEvents,
        e.hops,
      );
    } else {
      const headers = Object.keys(e.headers).length === 0 ? null : e.headers;
      w.addEvent(
        e.repid,
        e.senderNode,
        e.senderSimproc,
        e.targetNode,
        e.targetSimproc,
        e.epoch,
        headers,
        e.data!,
        e.dataFormat,
        e.hops,
        e.replyTo,
      );
    }
  }
}

function readBack(r: BatchReader, first = 0): Expected[] {
  const out: Expected[] = [];
  for (let i = first; i < r.envelopeCount; i++) {
    out.push({
      kind: r.kind(i),
      repid: r.repid(i),
      senderNode: r.senderNode(i),
      senderSimproc: r.senderSimproc(i),
      targetNode: r.targetNode(i),
      targetSimproc: r.targetSimproc(i),
      epoch: r.epoch(i),
      seqnr: r.seqnr(i),
      numEvents: r.numEvents(i),
      hops: r.hops(i),
      headers: { ...r.headers(i) },
      data: r.hasData(i) ? r.copyPayload(i) : null,
      dataFormat: r.dataFormat(i),
      replyTo: r.replyTo(i),
    });
  }
  return out;
}

/** Field-by-field equality; payloads compared as buffers (a deep diff of MBs is too slow). */
function expectSame(got: readonly Expected[], want: readonly Expected[]): void {
  expect(got.length).toBe(want.length);
  const strip = (e: Expected) => ({ ...e, data: e.data === null ? null : e.data.length });
  expect(got.map(strip)).toStrictEqual(want.map(strip));
  for (let i = 0; i < want.length; i++) {
    const a = got[i]!.data;
    const b = want[i]!.data;
    if (a !== null && b !== null) expect(Buffer.compare(a, b), `payload ${i}`).toBe(0);
  }
}

const SAMPLES: readonly Expected[] = [
  promise({ repid: 7, seqnr: 2n ** 64n - 1n, numEvents: 2 ** 32 - 1, epoch: 1234.5678, hops: 3 }),
  promise({ seqnr: Number.MAX_SAFE_INTEGER, numEvents: 0, epoch: 0 }),
  promise({ seqnr: 2n ** 53n, numEvents: 1 }),
  event({
    senderNode: 'n7',
    senderSimproc: 'physics',
    targetNode: 'n2',
    targetSimproc: 'chemistry',
    headers: { 'trace-id': '4bf92f3577b34da6', unicode: 'grüße ✓ 日本', '': '' },
    data: new Uint8Array([0, 1, 0x7f, 0x80, 0xfe, 0xff]),
    dataFormat: DataFormat.Serialized,
    replyTo: { node: 'n2', simproc: 'ledger' },
    repid: 2 ** 32 - 1,
    hops: 255,
  }),
  event({ data: new Uint8Array(0), epoch: Number.POSITIVE_INFINITY }),
  event({ data: new Uint8Array([42]), epoch: Number.NaN }),
  event({ data: bytes(4095, 3), epoch: -1e300 }),
  event({ data: bytes(4096, 4), dataFormat: DataFormat.Serialized }),
  event({ data: bytes(3 * 2 ** 20 + 5, 5), headers: { k: 'v' } }),
];

describe('batch layout', () => {
  it('mirrors the addon batch layout constants', () => {
    expect(batchLayoutMismatches(loadNative().batchLayout)).toEqual([]);
    expect(BATCH_HEADER_BYTES).toBe(48);
    expect(BATCH_ENVELOPE_FIXED_BYTES).toBe(56);
  });

  it('passes large payloads by reference and small ones inline', () => {
    const w = new BatchWriter(64);
    w.begin(Lane.Event);
    stage(w, [event({ data: bytes(4096, 1) }), event({ data: bytes(10, 2) })]);
    expect(w.payloads).toHaveLength(1);
    expect(w.payloads[0]!.length).toBe(4096);
    expect(w.count).toBe(2);
    expect(w.finish().length).toBeLessThan(1024);
  });
});

describe('batches through a ring', () => {
  it('reads back every field of every envelope as staged', () => {
    const r = ring('fields', 16 * 2 ** 20);
    const w = new BatchWriter();
    const reader = new BatchReader();
    for (let round = 0; round < 3; round++) {
      w.begin(Lane.Event, 2n ** 63n + BigInt(round), 5n);
      stage(w, SAMPLES);
      expect(r.producer.writeBatch(w.finish(), w.payloads)).toBe(NativeStatus.OK);
      expect(reader.read(r.consumer)).toBe(NativeStatus.OK);
      expect(reader.frameCount).toBe(1);
      expect(reader.frameLinkSeq(0)).toBe(2n ** 63n + BigInt(round));
      expect(reader.frameAck(0)).toBe(5n);
      expect(reader.frameLane(0)).toBe(Lane.Event);
      expectSame(readBack(reader), SAMPLES);
      for (let i = 0; i < reader.envelopeCount; i++) {
        if (reader.hasData(i) && reader.payload(i).length > 0) {
          expect(reader.payload(i).byteOffset % 8).toBe(0);
        }
      }
      // Strings cross once: the second round defines none.
      expect(reader.summary[3]).toBe(round === 0 ? reader.stringCount : 0);
    }
    r.close();
  });

  it('reads a ring over 64 MiB through views that cost no garbage collection per batch', async () => {
    // V8 starts a full collection whenever its count of external memory grows by more than
    // 64 MiB at once; a batch view over the whole data area of a 128 MiB ring did so on every
    // batch. Batches of 1 MiB events travel the whole area twice, across its end, so reads
    // find the spare buffer's window short (near the end) as well as whole. Payloads are
    // checked in place (every batch) and copied out only now and then: copies are external
    // memory too, and would make collections of their own.
    const r = ring('large-ring', 128 * 2 ** 20);
    const w = new BatchWriter();
    const reader = new BatchReader();
    const payloads = [bytes(2 ** 20, 1), bytes(2 ** 20 + 24, 2), bytes(2 ** 20 - 40, 3)];
    const collections = majorCollections();
    const batches = 300;
    try {
      for (let b = 0; b < batches; b++) {
        w.begin(Lane.Event);
        const list = payloads.map((data, k) => event({ epoch: b * 3 + k, data }));
        stage(w, list);
        expect(r.producer.writeBatch(w.finish(), w.payloads)).toBe(NativeStatus.OK);
        expect(reader.read(r.consumer)).toBe(NativeStatus.OK);
        expect(reader.envelopeCount).toBe(3);
        for (let k = 0; k < 3; k++) {
          const got = reader.payload(k);
          const want = payloads[k]!;
          expect(reader.epoch(k)).toBe(b * 3 + k);
          expect(got.length).toBe(want.length);
          for (const at of [0, 1, want.length >> 1, want.length - 1]) {
            expect(got[at]).toBe(want[at]);
          }
        }
        if (b % 100 === 99) expectSame(readBack(reader), list);
        reader.release(r.consumer);
      }
    } finally {
      r.close();
    }
    expect(await collections.stop()).toBeLessThan(batches / 10);
  });

  it('sends a 64 MiB message through an 8 MiB ring in chunks', () => {
    const r = ring('chunked', 8 * 2 ** 20);
    const w = new BatchWriter();
    const reader = new BatchReader();
    const big = bytes(64 * 2 ** 20, 9);
    w.begin(Lane.Event, 1n);
    stage(w, [event({ data: big, replyTo: { node: 'a', simproc: 'b' } })]);
    expect(r.producer.writeBatch(w.finish(), w.payloads)).toBe(NativeStatus.WRITE_PENDING);
    expect(r.producer.pending).toBe(true);
    // FIFO: nothing overtakes the pending message.
    expect(r.producer.writeFrame(loadNative().testing.buildSampleFrame())).toBe(
      NativeStatus.RING_FULL,
    );
    let status: number = NativeStatus.RING_EMPTY;
    for (let i = 0; i < 10_000 && status !== NativeStatus.OK; i++) {
      status = reader.read(r.consumer);
      if (status === NativeStatus.RING_EMPTY) {
        const flushed = r.producer.flush();
        expect([NativeStatus.OK, NativeStatus.WRITE_PENDING]).toContain(flushed);
      }
    }
    expect(status).toBe(NativeStatus.OK);
    expect(reader.reassembled).toBe(true);
    expect(reader.envelopeCount).toBe(1);
    expect(Buffer.from(reader.payload(0)).equals(big)).toBe(true);
    expect(reader.replyTo(0)).toEqual({ node: 'a', simproc: 'b' });
    const view = reader.payload(0);
    reader.release(r.consumer);
    expect(view.byteLength).toBe(0);
    expect(r.producer.pending).toBe(false);
    r.close();
  });

  it('reads messages over 64 MiB, reassembled from chunks, without a collection per message', async () => {
    // V8 starts a full collection whenever its count of external memory grows by more than
    // 64 MiB at once: the view of each reassembled message over 64 MiB did so when it was
    // counted, whatever the process held (README, Shared-memory rings). The sender's payload is one
    // buffer, written again and again; only the receiver's views are new.
    const r = ring('huge-chunked', 4 * 2 ** 20);
    const w = new BatchWriter();
    const reader = new BatchReader();
    const big = bytes(66 * 2 ** 20, 5);
    const collections = majorCollections();
    const messages = 16;
    try {
      for (let m = 0; m < messages; m++) {
        w.begin(Lane.Event);
        stage(w, [event({ epoch: m, data: big })]);
        expect(r.producer.writeBatch(w.finish(), w.payloads)).toBe(NativeStatus.WRITE_PENDING);
        let status: number = NativeStatus.RING_EMPTY;
        while (status === NativeStatus.RING_EMPTY) {
          status = reader.read(r.consumer);
          if (status === NativeStatus.RING_EMPTY) r.producer.flush();
        }
        expect(status).toBe(NativeStatus.OK);
        expect(reader.reassembled).toBe(true);
        expect(reader.epoch(0)).toBe(m);
        const got = reader.payload(0);
        expect(got.length).toBe(big.length);
        for (const at of [0, 1, big.length >> 1, big.length - 1]) expect(got[at]).toBe(big[at]);
        reader.release(r.consumer);
        expect(got.byteLength).toBe(0); // detached at release, as every view
      }
    } finally {
      r.close();
    }
    // Counted, they started one for every second or third message here (7 and 8 of 16).
    expect(await collections.stop()).toBeLessThanOrEqual(1);
  });

  it('writes a chunked batch whose largest payload goes from its owner straight to the ring', () => {
    const r = ring('borrowed', RING_MIN_CAPACITY_BYTES);
    const w = new BatchWriter();
    const reader = new BatchReader();
    // The largest payload (borrowed, not copied into the heap) sits between envelopes whose
    // bytes are built into the heap: the chunks mix both.
    const list = [
      event({ data: bytes(100, 1) }),
      event({ data: bytes(300_000, 2), headers: { h: 'v' } }),
      event({ data: bytes(1_000_003, 3), replyTo: { node: 'r', simproc: 's' } }),
      promise({ seqnr: 8 }),
      event({ data: bytes(40_000, 4) }),
    ];
    w.begin(Lane.Event, 1n);
    stage(w, list);
    expect(r.producer.writeBatch(w.finish(), w.payloads)).toBe(NativeStatus.WRITE_PENDING);
    let status: number = NativeStatus.RING_EMPTY;
    for (let i = 0; i < 10_000 && status !== NativeStatus.OK; i++) {
      status = reader.read(r.consumer);
      if (status === NativeStatus.RING_EMPTY) r.producer.flush();
    }
    expect(status).toBe(NativeStatus.OK);
    expect(reader.reassembled).toBe(true);
    expectSame(readBack(reader), list);
    list.forEach((e, i) => {
      if (e.data !== null) expect(Buffer.from(reader.payload(i)).equals(e.data)).toBe(true);
    });
    reader.release(r.consumer);
    r.close();
  });

  it('closes the producer when a payload it still copies from is detached', () => {
    const r = ring('detached', RING_MIN_CAPACITY_BYTES);
    const w = new BatchWriter();
    const reader = new BatchReader();
    const big = bytes(2 ** 20, 5);
    w.begin(Lane.Event, 1n);
    stage(w, [event({ data: big })]);
    expect(r.producer.writeBatch(w.finish(), w.payloads)).toBe(NativeStatus.WRITE_PENDING);
    // Read what is in the ring, so that the producer has room for more chunks.
    expect(reader.read(r.consumer)).toBe(NativeStatus.RING_EMPTY);
    const buffer = big.buffer as ArrayBuffer;
    structuredClone(buffer, { transfer: [buffer] });
    expect(big.byteLength).toBe(0);
    expect(r.producer.flush()).toBe(NativeStatus.PAYLOAD_DETACHED);
    expect(r.producer.closed).toBe(true);
    // The consumer drops the part it has: the message is never delivered, not even in part.
    let status: number = NativeStatus.RING_EMPTY;
    for (let i = 0; i < 100 && status === NativeStatus.RING_EMPTY; i++) {
      status = reader.read(r.consumer);
    }
    expect(status).toBe(NativeStatus.PEER_CLOSED);
    expect(reader.envelopeCount).toBe(0);
    r.close();
  });

  it('retries a batch refused with RING_FULL, strings and all', () => {
    const r = ring('retry', RING_MIN_CAPACITY_BYTES);
    // One writer per lane of a producer end: the string ids are a conversation between the two.
    const w = new BatchWriter();
    const wp = new BatchWriter();
    const reader = new BatchReader();
    let filled: number = NativeStatus.OK;
    while (filled === NativeStatus.OK) {
      w.begin(Lane.Event);
      stage(w, [event({ data: bytes(64, 1) })]);
      filled = r.producer.writeBatch(w.finish(), w.payloads);
    }
    expect(filled).toBe(NativeStatus.RING_FULL);
    wp.begin(Lane.Promise, 9n);
    stage(wp, [promise({ senderNode: 'brand-new', seqnr: 3 })]);
    expect(r.producer.writeBatch(wp.finish(), wp.payloads)).toBe(NativeStatus.RING_FULL);
    while (reader.read(r.consumer) === NativeStatus.OK) {
      // drain the fillers
    }
    // More envelopes (and strings) join the refused batch before the retry.
    stage(wp, [promise({ senderNode: 'newer', seqnr: 4 })]);
    expect(r.producer.writeBatch(wp.finish(), wp.payloads)).toBe(NativeStatus.OK);
    expect(reader.read(r.consumer)).toBe(NativeStatus.OK);
    expect(readBack(reader).map((e) => [e.senderNode, e.seqnr])).toEqual([
      ['brand-new', 3],
      ['newer', 4],
    ]);
    r.close();
  });

  it('keeps a string table per lane, so the lanes may be written out of staging order', () => {
    const r = ring('lanes', 2 ** 20);
    const reader = new BatchReader();
    // A link stages each lane as it sends and writes the promise lane first: each lane's
    // writer numbers its own strings from 0, so one shared table would mix up the names.
    const we = new BatchWriter();
    const wp = new BatchWriter();
    const batch = (w: BatchWriter, lane: Lane, e: Expected) => {
      w.begin(lane);
      stage(w, [e]);
      expect(r.producer.writeBatch(w.finish(), w.payloads)).toBe(NativeStatus.OK);
    };
    batch(we, Lane.Event, event({ senderNode: 'event-sender', data: bytes(8, 1) }));
    batch(wp, Lane.Promise, promise({ senderNode: 'promise-sender', seqnr: 1 }));
    batch(we, Lane.Event, event({ senderNode: 'event-sender', data: bytes(8, 2) }));
    batch(wp, Lane.Promise, promise({ senderNode: 'promise-sender', seqnr: 2 }));
    const names: string[] = [];
    while (reader.read(r.consumer) === NativeStatus.OK) {
      names.push(...readBack(reader).map((e) => e.senderNode));
    }
    expect(names).toEqual(['event-sender', 'promise-sender', 'event-sender', 'promise-sender']);
    r.close();
  });

  it('resets both string tables once they pass their soft limit', () => {
    const r = ring('strings', 8 * 2 ** 20);
    const w = new BatchWriter();
    const reader = new BatchReader({ strings: 8192 });
    let resets = 0;
    let next = 0;
    const total = STRING_SOFT_ENTRIES + 4000;
    while (next < total) {
      w.begin(Lane.Event);
      for (let i = 0; i < 2000 && next < total; i++, next++) {
        stage(w, [event({ senderSimproc: `simproc-${next}`, data: new Uint8Array(0) })]);
      }
      expect(r.producer.writeBatch(w.finish(), w.payloads)).toBe(NativeStatus.OK);
      let s: number;
      while ((s = reader.read(r.consumer)) === NativeStatus.OK) {
        if ((reader.summary[5]! & 1) !== 0) resets += 1;
        const first = next - reader.envelopeCount;
        for (let i = 0; i < reader.envelopeCount; i++) {
          expect(reader.senderSimproc(i)).toBe(`simproc-${first + i}`);
        }
      }
      expect(s).toBe(NativeStatus.RING_EMPTY);
    }
    expect(resets).toBe(1);
    expect(reader.stringCount).toBeLessThan(STRING_SOFT_ENTRIES);
    r.close();
  });

  it('grows its arrays for a frame larger than they are', () => {
    const r = ring('grow', 4 * 2 ** 20);
    const w = new BatchWriter();
    const reader = new BatchReader({ envelopes: 2, headers: 2, strings: 2, frames: 1 });
    const list = Array.from({ length: 500 }, (_, i) =>
      event({ headers: { a: `x${i}`, b: 'y' }, senderNode: `n${i % 7}` }),
    );
    w.begin(Lane.Event);
    stage(w, list);
    expect(r.producer.writeBatch(w.finish(), w.payloads)).toBe(NativeStatus.OK);
    expect(reader.read(r.consumer)).toBe(NativeStatus.OK);
    expectSame(readBack(reader), list);
    r.close();
  });
});

/**
 * An event from n0/p to n1/p, as the FrameWriter tests send: with `data` as its payload, or
 * a fresh one of `data` bytes.
 */
const WRITER_SENDER = Object.freeze({ node: 'n0', simproc: 'p' });
function writerEvent(epoch: number, data: number | Uint8Array): EventEnvelope {
  return new EventEnvelope(
    0,
    WRITER_SENDER,
    'n1',
    'p',
    epoch,
    EMPTY_HEADERS,
    undefined,
    typeof data === 'number' ? bytes(data, epoch) : data,
    0,
    0,
    null,
  );
}

describe('heap encoder and decoder', () => {
  it('encodes a sealed frame that the TypeScript codec and the native decoder both read', () => {
    const native = loadNative();
    const encoder = new native.BatchEncoder();
    const decoder = new native.FrameDecoder();
    const w = new BatchWriter();
    w.begin(Lane.Promise, 12n, 3n);
    stage(w, SAMPLES.slice(0, 6));
    const frame = encoder.encode(w.finish(), w.payloads);
    if (typeof frame === 'number') throw new Error(`encode: ${native.statusName(frame)}`);
    expect(frame.byteOffset % 8).toBe(0);
    assertFrame(frame, 'heap encoder');

    const seen: unknown[] = [];
    const info = decodeFrame(frame, (env) => seen.push(env));
    expect(info).toEqual({ linkSeq: 12n, ack: 3n, lane: Lane.Promise, count: 6 });
    const p = seen[0] as PromiseEnvelope;
    expect(p).toBeInstanceOf(PromiseEnvelope);
    expect(p.seqnr).toBe(2n ** 64n - 1n);
    expect(p.numEvents).toBe(2 ** 32 - 1);
    const e = seen[3] as EventEnvelope;
    expect(e.headers).toEqual(SAMPLES[3]!.headers);
    expect(e.replyTo).toEqual({ node: 'n2', simproc: 'ledger' });
    expect(Array.from(e.payload!)).toEqual([0, 1, 0x7f, 0x80, 0xfe, 0xff]);

    const reader = new BatchReader();
    expect(reader.decode(decoder, frame)).toBe(NativeStatus.OK);
    expectSame(readBack(reader), SAMPLES.slice(0, 6));
    const bad = frame.slice();
    bad[40] = bad[40]! ^ 1;
    expect(reader.decode(decoder, bad)).toBe(NativeStatus.CHECKSUM_MISMATCH);
  });

  it('hands out frames in memory of their own length, not of the size bound', () => {
    // A link keeps frames until their ack and counts their length: the memory behind a frame
    // must be that length, for small envelopes whose bound is several times their size too.
    const encoder = createBatchEncoder();
    const w = new BatchWriter();
    for (const [count, size] of [
      [256, 64],
      [4, 8192],
      [1, 2 << 20],
    ] as const) {
      w.begin(Lane.Event, 1n);
      stage(
        w,
        Array.from({ length: count }, () => event({ data: bytes(size, 7) })),
      );
      const frame = encodeBatch(encoder, w.finish(), w.payloads, 'grpc link to m2');
      expect(frame.byteOffset % 8).toBe(0);
      // 8 bytes in front (room for a message lead) and, for large frames that sit at the end
      // of their bound, a bounded excess.
      expect(frame.byteOffset).toBeGreaterThanOrEqual(8);
      expect(frame.buffer.byteLength).toBeLessThanOrEqual(
        size * count < 1 << 20 ? frame.length + 8 : frame.length + 4096,
      );
      const reader = new BatchReader();
      expect(reader.decode(createFrameDecoder(), frame)).toBe(NativeStatus.OK);
      expect(reader.envelopeCount).toBe(count);
    }
  });

  it('encodes through the typed helpers and throws for a malformed layout', () => {
    const encoder = createBatchEncoder();
    const w = new BatchWriter();
    w.begin(Lane.Event, 1n);
    stage(w, [event({ data: bytes(100, 1) })]);
    const frame = encodeBatch(encoder, w.finish(), w.payloads, 'grpc link to m2');
    const reader = new BatchReader();
    expect(reader.decode(createFrameDecoder(), frame)).toBe(NativeStatus.OK);
    expect(Buffer.compare(reader.payload(0), bytes(100, 1))).toBe(0);
    expect(() => encodeBatch(encoder, new Uint8Array(48), [], 'grpc link to m2')).toThrow(
      InvalidArgumentError,
    );
  });

  it('builds a frame straight into a region, ending at its end: the bytes encode makes, or its own buffer', () => {
    const encoder = createBatchEncoder();
    const w = new BatchWriter();
    const list = SAMPLES.slice(0, 6);
    w.begin(Lane.Event, 7, 2);
    stage(w, list);
    const expected = encodeBatch(createBatchEncoder(), w.finish(), w.payloads, 'grpc link to m2');
    w.resetStrings(); // the next batches go to another encoder

    const block = Buffer.alloc(4096, 0xee);
    w.begin(Lane.Event, 7, 2);
    stage(w, list);
    const at = encodeBatchInto(encoder, w.finish(), w.payloads, block, 64, 4000, 'grpc link to m2');
    expect(typeof at).toBe('number');
    const start = at as number;
    expect(start).toBe(4000 - expected.length);
    expect(start % 8).toBe(0);
    expect(Buffer.compare(block.subarray(start, 4000), expected)).toBe(0);
    expect(block.subarray(0, 64).every((b) => b === 0xee)).toBe(true); // nothing below the region
    expect(block.subarray(4000).every((b) => b === 0xee)).toBe(true); // nor above it
    const reader = new BatchReader();
    expect(reader.decode(createFrameDecoder(), block.subarray(start, 4000))).toBe(NativeStatus.OK);
    expectSame(readBack(reader), list);

    // A region smaller than the frame's bound: the frame comes back in memory of its own.
    w.begin(Lane.Event, 7, 2);
    stage(w, list);
    const own = encodeBatchInto(encoder, w.finish(), w.payloads, block, 4000 - 64, 4000, 'm2');
    expect(own).toBeInstanceOf(Uint8Array);
    expect(Buffer.compare(own as Uint8Array, expected)).toBe(0);
    expect((own as Uint8Array).buffer).not.toBe(block.buffer);
    // The first frame stays whole: nothing was built in the region this time.
    expect(Buffer.compare(block.subarray(start, 4000), expected)).toBe(0);

    // A misaligned or out-of-range index is refused before anything is built.
    const native = new (loadNative().BatchEncoder)();
    w.begin(Lane.Event);
    stage(w, list);
    const staging = w.finish().slice();
    for (const bad of [4, -8, 4104, 0.5, Number.NaN]) {
      expect(() => native.encodeInto(staging, w.payloads, block, bad, 4096)).toThrow(
        /start must be an index of out at 8-byte aligned memory/,
      );
      expect(() => native.encodeInto(staging, w.payloads, block, 0, bad)).toThrow(
        /end must be an index of out at 8-byte aligned memory/,
      );
    }
    expect(() => native.encodeInto(staging, w.payloads, block, 64, 56)).toThrow(
      /start must not be after end/,
    );
    expect(() => native.encodeInto(staging, w.payloads, new Uint16Array(8) as never, 0, 0)).toThrow(
      TypeError,
    );
    // A failure is minus its status.
    expect(native.encodeInto(new Uint8Array(48), [], block, 0, 4096)).toBe(-NativeStatus.BAD_BATCH);
    expect(() => encodeBatchInto(native, new Uint8Array(48), [], block, 0, 4096, 'm2')).toThrow(
      InvalidArgumentError,
    );
  });

  it.each([0, 3])(
    'FrameWriter (lead %i): frames never share bytes, and a frame too large for a block stands alone',
    (lead) => {
      const writer = new FrameWriter('grpc link to m2', lead);
      const envelope = writerEvent;
      const frames: { frame: Buffer; copy: Buffer; epoch: number }[] = [];
      // Enough small frames to fill several blocks, and two that get blocks of their own:
      // frame 1500 is as large as a small block, 2500 larger than 1 MiB.
      for (let i = 0; i < 3000; i++) {
        const size = i === 1500 ? FRAME_BLOCK_BYTES : i === 2500 ? 1536 * 1024 : 200;
        const led = writer.encode(Lane.Event, i + 1, 0, [envelope(i, size)], 0, 1);
        expect([...led.subarray(0, lead)]).toEqual(new Array(lead).fill(0));
        const frame = led.subarray(lead);
        expect(frame.byteOffset % 8).toBe(0);
        frames.push({ frame, copy: Buffer.from(led), epoch: i });
      }
      expect(frames[1500]!.frame.buffer).not.toBe(frames[1499]!.frame.buffer);
      expect(new Set(frames.map((f) => f.frame.buffer)).size).toBeGreaterThan(2);
      // Frames a little over a third of a block: one that does not fit in what is left starts
      // a new block for the next, instead of every later one getting memory of its own.
      const large = Array.from({ length: 12 }, (_, i) =>
        writer.encode(Lane.Event, 4000 + i, 0, [envelope(i, 90 * 1024)], 0, 1),
      );
      for (const f of large) expect((f.byteOffset + lead) % 8).toBe(0);
      const shared = large.filter((f, i) => large.some((g, j) => j !== i && g.buffer === f.buffer));
      expect(shared.length).toBeGreaterThanOrEqual(6);
      const reader = new BatchReader();
      const decoder = createFrameDecoder();
      for (const { frame, copy, epoch } of frames) {
        // No later frame (nor its lead) wrote over it.
        expect(
          Buffer.compare(Buffer.from(frame.buffer, frame.byteOffset - lead, copy.length), copy),
        ).toBe(0);
        expect(reader.decode(decoder, frame)).toBe(NativeStatus.OK);
        expect(reader.epoch(0)).toBe(epoch);
      }
    },
  );

  describe('FrameWriter memory reuse', () => {
    const envelope = writerEvent;
    const reader = new BatchReader();
    const decoder = createFrameDecoder();
    const expectFrame = (led: Buffer, copy: Buffer, epoch: number, lead: number) => {
      expect(Buffer.compare(led, copy)).toBe(0);
      expect(reader.decode(decoder, led.subarray(lead))).toBe(NativeStatus.OK);
      expect(reader.epoch(0)).toBe(epoch);
    };

    it("a released large frame's memory holds the next one; an unreleased one's never does", () => {
      const writer = new FrameWriter('grpc link to m2', 3);
      const a = writer.encode(Lane.Event, 1, 0, [envelope(1, 1024 * 1024)], 0, 1);
      const b = writer.encode(Lane.Event, 2, 0, [envelope(2, 1024 * 1024)], 0, 1);
      expect(b.buffer).not.toBe(a.buffer);
      const bCopy = Buffer.from(b);
      writer.release(a);
      expect(writer.freeMemory.largeBytes).toBe(a.buffer.byteLength);
      const c = writer.encode(Lane.Event, 3, 0, [envelope(3, 1024 * 1024)], 0, 1);
      expect(c.buffer).toBe(a.buffer); // reused
      expect(writer.freeMemory.largeBytes).toBe(0);
      expectFrame(c, Buffer.from(c), 3, 3);
      expectFrame(b, bCopy, 2, 3); // b, not released, is whole
      // A much smaller large frame does not take a block it would fill less than half of.
      writer.release(c);
      const d = writer.encode(Lane.Event, 4, 0, [envelope(4, 200 * 1024)], 0, 1);
      expect(d.buffer).not.toBe(a.buffer);
      expectFrame(d, Buffer.from(d), 4, 3);
    });

    it.each([0, 3])(
      'small blocks (lead %i) are reused once all their frames are released, and only then',
      (lead) => {
        const writer = new FrameWriter('grpc link to m2', lead);
        const kept: { led: Buffer; copy: Buffer; epoch: number }[] = [];
        const firstBlocks: ArrayBufferLike[] = [];
        let epoch = 0;
        // Round 1: several blocks of frames; every frame but one of the second block is
        // released.
        const round1: Buffer[] = [];
        for (let i = 0; i < 4000; i++) {
          round1.push(writer.encode(Lane.Event, ++epoch, 0, [envelope(epoch, 300)], 0, 1));
        }
        for (const f of round1) if (!firstBlocks.includes(f.buffer)) firstBlocks.push(f.buffer);
        expect(firstBlocks.length).toBeGreaterThan(3);
        const keptBlock = firstBlocks[1]!;
        const inKept = round1.filter((f) => f.buffer === keptBlock);
        const keep = inKept[inKept.length >> 1]!;
        round1.forEach((f, i) => {
          if (f === keep) kept.push({ led: f, copy: Buffer.from(f), epoch: i + 1 });
          else writer.release(f);
        });
        // The full blocks wait for reuse (as many as the free list holds).
        expect(writer.freeMemory.smallBlocks).toBe(
          Math.min(FREE_SMALL_BLOCKS, firstBlocks.length - 2),
        );
        // Round 2: the new frames go to the released blocks, never to the kept one.
        const round2Blocks = new Set<ArrayBufferLike>();
        for (let i = 0; i < 4000; i++) {
          const f = writer.encode(Lane.Event, ++epoch, 0, [envelope(epoch, 300)], 0, 1);
          round2Blocks.add(f.buffer);
          expect([...f.subarray(0, lead)]).toEqual(new Array(lead).fill(0));
          expect((f.byteOffset + lead) % 8).toBe(0);
        }
        expect(round2Blocks.has(keptBlock)).toBe(false);
        expect([...round2Blocks].filter((b) => firstBlocks.includes(b)).length).toBeGreaterThan(1);
        for (const k of kept) expectFrame(k.led, k.copy, k.epoch, lead);
      },
    );

    it('refuses a batch too large for any frame without making a block for it', () => {
      const writer = new FrameWriter('grpc link to m2');
      // Three events referencing one 400 MiB payload: 1.2 GiB of frame, over the limit.
      const payload = Buffer.allocUnsafe(400 * 1024 * 1024);
      const event = (epoch: number) => writerEvent(epoch, payload);
      const before = process.memoryUsage().arrayBuffers;
      expect(() => writer.encode(Lane.Event, 1, 0, [event(1), event(2), event(3)], 0, 3)).toThrow(
        MessageTooLargeError,
      );
      expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 1024 * 1024);
      // The writer goes on as before.
      const next = writer.encode(Lane.Event, 2, 0, [writerEvent(4, 300)], 0, 1);
      expect(reader.decode(decoder, next)).toBe(NativeStatus.OK);
      expect(reader.epoch(0)).toBe(4);
    });

    it('keeps at most its bounds of free memory; releasing what it did not cut is harmless', () => {
      const writer = new FrameWriter('grpc link to m2');
      const large = Array.from({ length: 24 }, (_, i) =>
        writer.encode(Lane.Event, i + 1, 0, [envelope(i, 1024 * 1024)], 0, 1),
      );
      for (const f of large) writer.release(f);
      expect(writer.freeMemory.largeBytes).toBeGreaterThan(FREE_LARGE_BYTES / 2);
      expect(writer.freeMemory.largeBytes).toBeLessThanOrEqual(FREE_LARGE_BYTES);
      const small = Array.from({ length: 20000 }, (_, i) =>
        writer.encode(Lane.Event, i + 1, 0, [envelope(i, 300)], 0, 1),
      );
      for (const f of small) writer.release(f);
      expect(writer.freeMemory.smallBlocks).toBe(FREE_SMALL_BLOCKS);
      writer.release(Buffer.alloc(64));
      expect(writer.freeMemory.smallBlocks).toBe(FREE_SMALL_BLOCKS);
    });
  });

  it('decodes into bound output arrays, and grows them for a frame that needs more', () => {
    const decoder = createFrameDecoder();
    expect(() => decoder.decode(new Uint8Array(64))).toThrow(/bindOutput/);
    const encoder = createBatchEncoder();
    const w = new BatchWriter();
    const list = Array.from({ length: 40 }, (_, i) =>
      event({ epoch: i, headers: { [`k${i}`]: `v${i}` }, data: bytes(16, i) }),
    );
    w.begin(Lane.Event, 1);
    stage(w, list);
    const frame = encodeBatch(encoder, w.finish(), w.payloads, 'grpc link to m2');
    const reader = new BatchReader({ envelopes: 4, headers: 2, strings: 2 });
    expect(reader.decode(decoder, frame)).toBe(NativeStatus.OK);
    expectSame(readBack(reader), list);
    expect(reader.decode(decoder, frame)).toBe(NativeStatus.OK); // again, in the grown arrays
    expectSame(readBack(reader), list);
  });

  it('refuses malformed staging with BAD_BATCH', () => {
    const encoder = new (loadNative().BatchEncoder)();
    const w = new BatchWriter();
    w.begin(Lane.Event);
    stage(w, [event({ data: bytes(5000, 1) })]);
    const staging = w.finish().slice();
    expect(encoder.encode(staging, [])).toBe(NativeStatus.BAD_BATCH);
    expect(encoder.encode(staging.subarray(0, staging.length - 4), w.payloads)).toBe(
      NativeStatus.BAD_BATCH,
    );
    expect(() => encoder.encode(staging, [new Uint16Array(2) as unknown as Uint8Array])).toThrow(
      TypeError,
    );
  });
});
