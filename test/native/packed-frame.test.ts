/**
 * Packed frames (body identifier "DSC2", schemas/envelope.fbs): the envelopes' fixed parts in
 * one vector of PackedHead structs, the payloads in one byte vector, headers and replyTo in
 * sparse extras. The native encoders write them; both decoders (the addon's BatchReader and
 * TypeScript's decodeFrame) read them, and refuse what the FlatBuffers verifier cannot check:
 * payload ranges outside `data`, unknown flags, extras out of envelope order, and a frame that
 * mixes the two kinds of envelope fields.
 */
import * as flatbuffers from 'flatbuffers';
import { describe, expect, it } from 'vitest';
import {
  decodeFrame,
  FrameEncoder,
  type Envelope,
  type EventEnvelope,
} from '../../src/envelope.js';
import { FrameCorruptError } from '../../src/errors.js';
import {
  Address,
  DataFormat,
  EnvelopeExtra,
  EnvelopeHead,
  Envelope as WireEnvelope,
  Frame,
  Header,
  Kind,
  Lane,
  PackedHead,
} from '../../src/generated/envelope_generated.js';
import { BatchReader, BatchWriter } from '../../src/native-batch.js';
import {
  FRAME_HEADER_BYTES,
  NativeStatus,
  createBatchEncoder,
  createFrameDecoder,
  encodeBatch,
  sealFrame,
  verifyFrame,
} from '../../src/native.js';

const PACKED_HAS_DATA = 1;

interface HeadSpec {
  kind?: Kind;
  dataOffset?: number;
  dataLength?: number;
  flags?: number;
  epoch?: number;
}

interface PackedSpec {
  heads: HeadSpec[];
  data?: number[];
  /** Envelope index of each extra (each carries one header "k" = "v" and replyTo n2/ledger). */
  extras?: number[];
  identifier?: string;
  /** Also write an `envelopes` vector of one Envelope table (a mixed frame). */
  withTables?: boolean;
}

/** Seals a packed frame written field by field with the FlatBuffers builder. */
function packedFrame(spec: PackedSpec): Uint8Array {
  const b = new flatbuffers.Builder(1024);
  const names = Frame.createNamesVector(
    b,
    ['n0', 'p', 'n1'].map((s) => b.createString(s)),
  );
  const extras = (spec.extras ?? []).map((of) => {
    const header = Header.createHeader(b, b.createString('k'), b.createString('v'));
    const headers = EnvelopeExtra.createHeadersVector(b, [header]);
    const reply = Address.createAddress(b, b.createString('n2'), b.createString('ledger'));
    EnvelopeExtra.startEnvelopeExtra(b);
    EnvelopeExtra.addEnvelope(b, of);
    EnvelopeExtra.addHeaders(b, headers);
    EnvelopeExtra.addReplyTo(b, reply);
    return EnvelopeExtra.endEnvelopeExtra(b);
  });
  const extrasVector = extras.length > 0 ? Frame.createExtrasVector(b, extras) : 0;
  let dataVector = 0;
  if (spec.data !== undefined) {
    b.startVector(1, spec.data.length, 8);
    for (let i = spec.data.length - 1; i >= 0; i--) b.addInt8(spec.data[i]!);
    dataVector = b.endVector();
  }
  let tables = 0;
  if (spec.withTables === true) {
    WireEnvelope.startEnvelope(b);
    WireEnvelope.addHead(
      b,
      EnvelopeHead.createEnvelopeHead(b, 0, 0n, 0, 0, 0, 1, 2, 1, Kind.Event, DataFormat.Raw, 0),
    );
    tables = Frame.createEnvelopesVector(b, [WireEnvelope.endEnvelope(b)]);
  }
  Frame.startHeadsVector(b, spec.heads.length);
  for (let i = spec.heads.length - 1; i >= 0; i--) {
    const h = spec.heads[i]!;
    const length = h.dataLength ?? 0;
    PackedHead.createPackedHead(
      b,
      h.epoch ?? i,
      0n,
      0,
      0,
      0,
      1,
      2,
      1,
      h.dataOffset ?? 0,
      length,
      h.kind ?? Kind.Event,
      DataFormat.Raw,
      0,
      h.flags ?? PACKED_HAS_DATA,
    );
  }
  const heads = b.endVector();
  const frame = Frame.createFrame(
    b,
    1n,
    0n,
    Lane.Event,
    tables,
    names,
    heads,
    dataVector,
    extrasVector,
  );
  b.finish(frame, spec.identifier ?? 'DSC2');
  const body = b.asUint8Array();
  const out = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  out.set(body, FRAME_HEADER_BYTES);
  sealFrame(out);
  return out;
}

/** What each decoder makes of `frame`: its envelopes, or why it refused. */
function decodeBoth(frame: Uint8Array): {
  native: number;
  ts: Envelope[] | Error;
  reader: BatchReader;
} {
  const reader = new BatchReader();
  const native = reader.decode(createFrameDecoder(), frame);
  let ts: Envelope[] | Error;
  try {
    const seen: Envelope[] = [];
    decodeFrame(frame, (e) => seen.push(e), 'peer x');
    ts = seen;
  } catch (err) {
    ts = err as Error;
  }
  return { native, ts, reader };
}

const TWO_PAYLOADS = {
  heads: [
    { dataOffset: 0, dataLength: 3 },
    { dataOffset: 8, dataLength: 2 },
  ],
  data: [1, 2, 3, 0, 0, 0, 0, 0, 9, 8, 0, 0, 0, 0, 0, 0],
};

describe('packed frames', () => {
  it('are what the native encoder writes: a head and a payload per envelope', () => {
    const writer = new BatchWriter();
    writer.begin(Lane.Event);
    for (let i = 0; i < 8; i++) {
      writer.addEvent(
        0,
        'n0',
        'p',
        'n1',
        'p',
        i,
        null,
        new Uint8Array(64),
        DataFormat.Raw,
        0,
        null,
      );
    }
    const frame = encodeBatch(createBatchEncoder(), writer.finish(), writer.payloads, 'test');
    const identifier = new TextDecoder().decode(
      frame.subarray(FRAME_HEADER_BYTES + 4, FRAME_HEADER_BYTES + 8),
    );
    expect(identifier).toBe('DSC2');
    expect(verifyFrame(frame)).toBe(NativeStatus.OK);
    // 8 heads of 56 bytes and 8 payloads of 64, plus the frame's own fields: no table, vtable
    // or offset per envelope (as tables, each envelope adds about 20 bytes more).
    expect(frame.length).toBeLessThan(8 * (56 + 64) + 256);
  });

  it('decode alike in both decoders, with payloads as views and extras on their envelopes', () => {
    const frame = packedFrame({ ...TWO_PAYLOADS, extras: [1] });
    expect(verifyFrame(frame)).toBe(NativeStatus.OK);
    const { native, ts, reader } = decodeBoth(frame);
    expect(native).toBe(NativeStatus.OK);
    expect(ts).not.toBeInstanceOf(Error);
    const events = ts as EventEnvelope[];
    expect(events.map((e) => Array.from(e.payload!))).toEqual([
      [1, 2, 3],
      [9, 8],
    ]);
    expect(events.map((e) => e.headers)).toEqual([{}, { k: 'v' }]);
    expect(events.map((e) => e.replyTo)).toEqual([null, { node: 'n2', simproc: 'ledger' }]);
    expect([0, 1].map((i) => Array.from(reader.payload(i)))).toEqual([
      [1, 2, 3],
      [9, 8],
    ]);
    expect([0, 1].map((i) => reader.headers(i))).toEqual([{}, { k: 'v' }]);
    expect(reader.replyTo(1)).toEqual({ node: 'n2', simproc: 'ledger' });
    expect(reader.replyTo(0)).toBeNull();
  });

  it('and table frames of the same envelopes read the same in the native reader', () => {
    // A peer that still writes Envelope tables (TypeScript's FrameEncoder does) is read as
    // before: the same envelopes, packed by the native encoder or as tables, decode alike.
    const writer = new BatchWriter();
    writer.begin(Lane.Event, 7n, 3n);
    writer.addEvent(
      4,
      'n0',
      'p',
      'n1',
      'q',
      1.5,
      { k: 'v', trace: 'x' },
      new Uint8Array([1, 2, 3]),
      DataFormat.Serialized,
      2,
      { node: 'n2', simproc: 'ledger' },
    );
    writer.addPromise(4, 'n0', 'p', 'n1', 'q', 2.5, 2n ** 64n - 1n, 2 ** 32 - 1, 0);
    writer.addEvent(0, 'n1', 'q', 'n0', 'p', 3.5, null, new Uint8Array(0), DataFormat.Raw, 0, null);
    const packed = encodeBatch(createBatchEncoder(), writer.finish(), writer.payloads, 'test');
    const envelopes: Envelope[] = [];
    decodeFrame(packed, (e) => envelopes.push(e));
    const tables = new FrameEncoder().encode(envelopes, Lane.Event, 7n, 3n);
    sealFrame(tables);
    expect(
      new TextDecoder().decode(tables.subarray(FRAME_HEADER_BYTES + 4, FRAME_HEADER_BYTES + 8)),
    ).toBe('DSCO');
    const fields = (frame: Uint8Array): unknown[] => {
      const reader = new BatchReader();
      expect(reader.decode(createFrameDecoder(), frame)).toBe(NativeStatus.OK);
      return Array.from({ length: reader.envelopeCount }, (_, i) => [
        reader.kind(i),
        reader.repid(i),
        reader.senderNode(i),
        reader.senderSimproc(i),
        reader.targetNode(i),
        reader.targetSimproc(i),
        reader.epoch(i),
        reader.seqnr(i),
        reader.numEvents(i),
        reader.dataFormat(i),
        reader.hops(i),
        reader.hasData(i),
        Array.from(reader.payload(i)),
        reader.headers(i),
        reader.replyTo(i),
      ]);
    };
    const fromPacked = fields(packed);
    expect(fromPacked).toHaveLength(3);
    expect(fields(tables)).toEqual(fromPacked);
  });

  it('give an empty payload, not none, to an event whose data is empty in a frame without data', () => {
    const frame = packedFrame({ heads: [{ dataOffset: 0, dataLength: 0 }] });
    const { native, ts, reader } = decodeBoth(frame);
    expect(native).toBe(NativeStatus.OK);
    expect(reader.hasData(0)).toBe(true);
    expect(reader.payload(0).length).toBe(0);
    expect((ts as EventEnvelope[])[0]!.payload!.length).toBe(0);
  });

  const refused: [string, PackedSpec, string][] = [
    [
      'a payload past the end of data',
      { heads: [{ dataOffset: 8, dataLength: 9 }], data: new Array(16).fill(0) },
      'payload range',
    ],
    ['a payload without data', { heads: [{ dataOffset: 0, dataLength: 1 }] }, 'payload range'],
    [
      'an offset on an envelope without data',
      { heads: [{ flags: 0, dataOffset: 8 }], data: new Array(16).fill(0) },
      'payload range',
    ],
    ['an unknown flag', { heads: [{ flags: 2 }] }, 'flags'],
    ['extras out of order', { ...TWO_PAYLOADS, extras: [1, 0] }, 'out of order'],
    ['two extras for one envelope', { ...TWO_PAYLOADS, extras: [1, 1] }, 'out of order'],
    ['an extra past the last envelope', { ...TWO_PAYLOADS, extras: [2] }, 'out of order'],
  ];
  for (const [what, spec, message] of refused) {
    it(`with ${what} are refused by both decoders`, () => {
      const frame = packedFrame(spec);
      expect(verifyFrame(frame)).toBe(NativeStatus.OK); // the verifier cannot see it
      const { native, ts } = decodeBoth(frame);
      expect(native).toBe(NativeStatus.CORRUPT_RECORD);
      expect(ts).toBeInstanceOf(FrameCorruptError);
      expect((ts as Error).message).toContain(message);
      expect((ts as Error).message).toContain('peer x');
    });
  }

  it('do not verify when they carry Envelope tables, nor a table frame packed fields', () => {
    expect(verifyFrame(packedFrame({ ...TWO_PAYLOADS }))).toBe(NativeStatus.OK);
    expect(verifyFrame(packedFrame({ ...TWO_PAYLOADS, withTables: true }))).toBe(
      NativeStatus.VERIFY_FAILED,
    );
    expect(verifyFrame(packedFrame({ ...TWO_PAYLOADS, identifier: 'DSCO' }))).toBe(
      NativeStatus.VERIFY_FAILED,
    );
    expect(verifyFrame(packedFrame({ ...TWO_PAYLOADS, identifier: 'DSC3' }))).toBe(
      NativeStatus.BAD_IDENTIFIER,
    );
  });
});
