/**
 * Cross-language round trip (STYLE §9): the C++ side (flatc 2.0.8 generated code, FlatBuffers
 * 2.0.8 headers) and the TypeScript side (the same flatc's TS output, npm `flatbuffers` 2.0.7
 * runtime) read each other's frames field by field.
 *
 * (a) C++ writes the sample frame of native/frame_testing.h; TypeScript reads every field.
 * (b) TypeScript builds a frame, seals it through the addon; C++ verifies it and describes every
 *     field as JSON, which must equal what TypeScript wrote.
 */
import * as flatbuffers from 'flatbuffers';
import { describe, expect, it } from 'vitest';
import { decodeFrame } from '../../src/envelope.js';
import { FrameCorruptError } from '../../src/errors.js';
import { BatchReader } from '../../src/native-batch.js';

import {
  Address,
  DataFormat,
  Envelope,
  EnvelopeHead,
  Frame,
  Header,
  Kind,
  Lane,
} from '../../src/generated/envelope_generated.js';
import {
  FRAME_HEADER_BYTES,
  NativeStatus,
  createFrameDecoder,
  loadNative,
  sealFrame,
  verifyFrame,
} from '../../src/native.js';

const U64_MAX = 2n ** 64n - 1n;
const U32_MAX = 2 ** 32 - 1;

/** What native/frame_testing.cc `testing::describe_frame` prints for one envelope. */
interface DescribedEnvelope {
  kind: number;
  repid: number;
  senderNode: string;
  senderSimproc: string;
  targetNode: string;
  targetSimproc: string;
  epoch: number | string;
  seqnr: string;
  numEvents: number;
  headers: { key: string; value: string }[] | null;
  data: number[] | null;
  dataFormat: number;
  hops: number;
  replyTo: { node: string; simproc: string } | null;
}

interface DescribedFrame {
  linkSeq: string;
  ack: string;
  lane: number;
  envelopes: DescribedEnvelope[] | null;
}

function describeNative(frame: Uint8Array): DescribedFrame {
  return JSON.parse(loadNative().testing.describeFrame(frame)) as DescribedFrame;
}

function readFrame(frame: Uint8Array): Frame {
  const bb = new flatbuffers.ByteBuffer(frame.subarray(FRAME_HEADER_BYTES));
  expect(Frame.bufferHasIdentifier(bb)).toBe(true);
  return Frame.getRootAsFrame(bb);
}

describe('C++ writes, TypeScript reads', () => {
  const frame = loadNative().testing.buildSampleFrame();
  const root = readFrame(frame);

  it('verifies the frame before reading it', () => {
    expect(verifyFrame(frame)).toBe(NativeStatus.OK);
  });

  it('reads the frame fields, 64-bit values beyond 2^53 included', () => {
    expect(root.linkSeq()).toBe(2n ** 63n + 1n);
    expect(root.ack()).toBe(2n ** 53n + 1n);
    expect(root.lane()).toBe(Lane.Event);
    expect(root.envelopesLength()).toBe(2);
  });

  it('reads every field of the full envelope', () => {
    const e = root.envelopes(0)!;
    const h = e.head()!;
    expect(h.kind()).toBe(Kind.Promise);
    expect(h.repid()).toBe(7);
    expect(root.names(h.senderNode())).toBe('n1');
    expect(root.names(h.senderSimproc())).toBe('physics');
    expect(root.names(h.targetNode())).toBe('n7');
    expect(root.names(h.targetSimproc())).toBe('chemistry');
    expect(h.epoch()).toBe(1234.5678);
    expect(h.seqnr()).toBe(U64_MAX);
    expect(h.numEvents()).toBe(U32_MAX);
    expect(e.headersLength()).toBe(2);
    expect([e.headers(0)!.key(), e.headers(0)!.value()]).toStrictEqual([
      'trace-id',
      '4bf92f3577b34da6',
    ]);
    expect([e.headers(1)!.key(), e.headers(1)!.value()]).toStrictEqual(['unicode', 'grüße ✓ 日本']);
    expect([...e.dataArray()!]).toStrictEqual([
      0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x44, 0x53, 0x43, 0x4f, 0x00,
    ]);
    expect(h.dataFormat()).toBe(DataFormat.Serialized);
    expect(h.hops()).toBe(3);
    const replyTo = e.replyTo()!;
    expect([replyTo.node(), replyTo.simproc()]).toStrictEqual(['n2', 'ledger']);
  });

  it('reads the minimal envelope: a head of zeros, no headers, data or reply-to', () => {
    const e = root.envelopes(1)!;
    const h = e.head()!;
    expect(
      [h.senderNode(), h.senderSimproc(), h.targetNode(), h.targetSimproc()].map((i) =>
        root.names(i),
      ),
    ).toStrictEqual(['n0', 'source', 'n1', 'sink']);
    expect(h.kind()).toBe(Kind.Event);
    expect(h.repid()).toBe(0);
    expect(h.epoch()).toBe(0);
    expect(h.seqnr()).toBe(0n);
    expect(h.numEvents()).toBe(0);
    expect(e.headersLength()).toBe(0);
    expect(e.dataArray()).toBeNull();
    expect(h.dataFormat()).toBe(DataFormat.Raw);
    expect(h.hops()).toBe(0);
    expect(e.replyTo()).toBeNull();
  });

  it('agrees with the C++ description of the same frame', () => {
    const described = describeNative(frame);
    const h = root.envelopes(0)!.head()!;
    expect(described.envelopes![0]!.seqnr).toBe(h.seqnr().toString());
    expect(described.envelopes![0]!.epoch).toBe(h.epoch());
    expect(described.linkSeq).toBe(root.linkSeq().toString());
  });
});

/** One envelope as TypeScript writes it; absent optional parts are undefined. */
interface EnvelopeInput {
  kind?: Kind;
  repid?: number;
  sender: [string, string];
  target: [string, string];
  epoch?: number;
  seqnr?: bigint;
  numEvents?: number;
  headers?: [string, string][];
  data?: Uint8Array;
  dataFormat?: DataFormat;
  hops?: number;
  replyTo?: [string, string];
  /** Name indices written instead of the right ones (sender node and simproc, target's). */
  nameIds?: [number, number, number, number];
}

/** The frame's names as they are written: each once, indexed in order of first use. */
class Names {
  readonly offsets: flatbuffers.Offset[] = [];
  private readonly index = new Map<string, number>();
  constructor(private readonly b: flatbuffers.Builder) {}
  of(name: string): number {
    let i = this.index.get(name);
    if (i === undefined) {
      i = this.offsets.length;
      this.offsets.push(this.b.createString(name));
      this.index.set(name, i);
    }
    return i;
  }
}

function writeEnvelope(
  b: flatbuffers.Builder,
  names: Names,
  input: EnvelopeInput,
): flatbuffers.Offset {
  const ids = input.nameIds ?? [...input.sender, ...input.target].map((n) => names.of(n));
  const headers =
    input.headers &&
    Envelope.createHeadersVector(
      b,
      input.headers.map(([k, v]) => Header.createHeader(b, b.createString(k), b.createString(v))),
    );
  const data = input.data && Envelope.createDataVector(b, input.data);
  const replyTo =
    input.replyTo &&
    Address.createAddress(b, b.createString(input.replyTo[0]), b.createString(input.replyTo[1]));
  Envelope.startEnvelope(b);
  Envelope.addHead(
    b,
    EnvelopeHead.createEnvelopeHead(
      b,
      input.epoch ?? 0,
      input.seqnr ?? 0n,
      input.repid ?? 0,
      input.numEvents ?? 0,
      ids[0]!,
      ids[1]!,
      ids[2]!,
      ids[3]!,
      input.kind ?? Kind.Event,
      input.dataFormat ?? DataFormat.Raw,
      input.hops ?? 0,
    ),
  );
  if (headers !== undefined) Envelope.addHeaders(b, headers);
  if (data !== undefined) Envelope.addData(b, data);
  if (replyTo !== undefined) Envelope.addReplyTo(b, replyTo);
  return Envelope.endEnvelope(b);
}

/** Builds a Frame body with the generated TS builder and seals it behind a 16-byte header. */
function writeFrame(
  linkSeq: bigint,
  ack: bigint,
  lane: Lane,
  envelopes: EnvelopeInput[],
): Uint8Array {
  const b = new flatbuffers.Builder(256);
  const names = new Names(b);
  const offsets = envelopes.map((e) => writeEnvelope(b, names, e));
  const vector = Frame.createEnvelopesVector(b, offsets);
  const nameVector = Frame.createNamesVector(b, names.offsets);
  Frame.finishFrameBuffer(b, Frame.createFrame(b, linkSeq, ack, lane, vector, nameVector, 0, 0, 0));
  const body = b.asUint8Array();
  const frame = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  frame.set(body, FRAME_HEADER_BYTES);
  sealFrame(frame);
  return frame;
}

function expectedEnvelope(input: EnvelopeInput): DescribedEnvelope {
  return {
    kind: input.kind ?? Kind.Event,
    repid: input.repid ?? 0,
    senderNode: input.sender[0],
    senderSimproc: input.sender[1],
    targetNode: input.target[0],
    targetSimproc: input.target[1],
    epoch: input.epoch ?? 0,
    seqnr: (input.seqnr ?? 0n).toString(),
    numEvents: input.numEvents ?? 0,
    headers: input.headers ? input.headers.map(([key, value]) => ({ key, value })) : null,
    data: input.data ? [...input.data] : null,
    dataFormat: input.dataFormat ?? DataFormat.Raw,
    hops: input.hops ?? 0,
    replyTo: input.replyTo ? { node: input.replyTo[0], simproc: input.replyTo[1] } : null,
  };
}

describe('TypeScript writes, C++ reads', () => {
  const full: EnvelopeInput = {
    kind: Kind.Promise,
    repid: 0xffff_ffff,
    sender: ['node-a', 'physics'],
    target: ['node-b', 'chemistry "quoted" \\ \n tab\t'],
    epoch: -0.1 + 1e-9,
    seqnr: U64_MAX,
    numEvents: U32_MAX,
    headers: [
      ['content-type', 'application/octet-stream'],
      ['ключ', 'значение ✓'],
      ['', ''],
    ],
    data: Uint8Array.from({ length: 300 }, (_, i) => (i * 37) & 0xff),
    dataFormat: DataFormat.Serialized,
    hops: 255,
    replyTo: ['node-c', 'ledger'],
  };
  const minimal: EnvelopeInput = { sender: ['a', 'b'], target: ['c', 'd'] };
  const emptyVectors: EnvelopeInput = {
    kind: Kind.Control,
    sender: ['a', 'b'],
    target: ['c', 'd'],
    epoch: 1e300,
    seqnr: 2n ** 53n + 1n,
    headers: [],
    data: new Uint8Array(0),
  };

  it('verifies a frame built by the TypeScript builder and sealed by the addon', () => {
    const frame = writeFrame(1n, 0n, Lane.Promise, [full]);
    expect(verifyFrame(frame)).toBe(NativeStatus.OK);
  });

  it('reads back every field TypeScript wrote', () => {
    const linkSeq = U64_MAX;
    const ack = 2n ** 63n;
    const frame = writeFrame(linkSeq, ack, Lane.Event, [full, minimal, emptyVectors]);
    expect(describeNative(frame)).toStrictEqual({
      linkSeq: linkSeq.toString(),
      ack: ack.toString(),
      lane: Lane.Event,
      envelopes: [
        expectedEnvelope(full),
        expectedEnvelope(minimal),
        expectedEnvelope(emptyVectors),
      ],
    });
  });

  it('carries non-finite, subnormal and negative-zero epochs bit for bit', () => {
    // The epoch lives in the envelope's head struct, written whole: nothing equal to a
    // default is left out, so -0 stays -0.
    const epochs = [
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.MIN_VALUE,
      -0,
    ];
    const frame = writeFrame(
      0n,
      0n,
      Lane.Event,
      epochs.map((epoch) => ({ ...minimal, epoch })),
    );
    const described = describeNative(frame).envelopes!.map((e) => e.epoch);
    expect(described).toStrictEqual(['NaN', 'Infinity', '-Infinity', Number.MIN_VALUE, -0]);
  });

  it('reads an empty batch', () => {
    const frame = writeFrame(5n, 4n, Lane.Promise, []);
    expect(describeNative(frame)).toStrictEqual({
      linkSeq: '5',
      ack: '4',
      lane: Lane.Promise,
      envelopes: [],
    });
  });
});

describe('values the verifier does not check', () => {
  // The FlatBuffers verifier checks offsets and sizes; a name index or an enum value in the
  // head struct is only a number to it. Both decoders check them before anything is read.
  const good: EnvelopeInput = { sender: ['a', 'b'], target: ['c', 'd'], data: new Uint8Array(4) };
  const cases: [string, EnvelopeInput][] = [
    ['target simproc', { ...good, nameIds: [0, 1, 2, 4] }],
    ['sender node', { ...good, nameIds: [0xffff_ffff, 1, 2, 3] }],
    ['kind', { ...good, kind: 7 as Kind }],
    ['data format', { ...good, dataFormat: 9 as DataFormat }],
  ];
  for (const [what, bad] of cases) {
    it(`refuses an envelope with an invalid ${what}, delivering nothing of its frame`, () => {
      const frame = writeFrame(1n, 0n, Lane.Event, [good, bad]);
      expect(verifyFrame(frame)).toBe(NativeStatus.OK);
      const reader = new BatchReader();
      expect(reader.decode(createFrameDecoder(), frame)).toBe(NativeStatus.CORRUPT_RECORD);
      const seen: unknown[] = [];
      expect(() => decodeFrame(frame, (e) => seen.push(e), 'peer p')).toThrow(FrameCorruptError);
      expect(seen).toHaveLength(0);
      // The same frame without the bad envelope is read by both.
      const fine = writeFrame(1n, 0n, Lane.Event, [good, good]);
      expect(reader.decode(createFrameDecoder(), fine)).toBe(NativeStatus.OK);
      expect(reader.envelopeCount).toBe(2);
      expect(decodeFrame(fine, (e) => seen.push(e)).count).toBe(2);
    });
  }
});
