import { Metadata, status as GrpcStatus, credentials, type StatusObject } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { FrameEncoder, Lane } from '../../src/envelope.js';
import {
  FrameCorruptError,
  LinkClosedError,
  UndeliverableError,
  type DiscoError,
} from '../../src/errors.js';
import { sealFrame } from '../../src/native.js';
import {
  CLUSTER_METADATA_KEY,
  LINK_METHOD,
  LinkClient,
  SENDER_METADATA_KEY,
  SESSION_METADATA_KEY,
} from '../../src/transports/grpc-service.js';
import { Directory, sendAll, startTransport, uniqueCluster } from '../fixtures/grpc/pair.js';
import {
  fifoViolation,
  RecordingNode,
  seqEvent,
  seqOf,
  seqPromise,
  until,
} from '../fixtures/grpc/recording-node.js';

/** Two transports A (node a1) and B (nodes b1, b2) of one cluster, linked both ways. */
async function pair(prefix: string) {
  const cluster = uniqueCluster(prefix);
  const dir = new Directory();
  dir.placement.set('a1', 'A').set('b1', 'B').set('b2', 'B');
  const A = await startTransport(dir, cluster, 'A');
  const B = await startTransport(dir, cluster, 'B');
  const a1 = new RecordingNode('a1');
  const b1 = new RecordingNode('b1');
  const b2 = new RecordingNode('b2');
  A.t.attach(a1);
  B.t.attach(b1);
  B.t.attach(b2);
  return { cluster, dir, A, B, a1, b1, b2 };
}

/** A raw stream to `address` as a peer of `cluster` would open it, bypassing GrpcTransport. */
function rawCall(address: string, cluster: string) {
  const client = new LinkClient(address, credentials.createInsecure());
  const md = new Metadata();
  md.set(CLUSTER_METADATA_KEY, cluster);
  md.set(SENDER_METADATA_KEY, 'intruder');
  md.set(SESSION_METADATA_KEY, '00000000000000ff');
  const call = client.makeBidiStreamRequest(
    LINK_METHOD.path,
    LINK_METHOD.requestSerialize,
    LINK_METHOD.responseDeserialize,
    md,
  );
  call.on('data', () => {
    // Acks from the receiver; this test only looks at the final status.
  });
  call.on('error', () => {
    // Expected: the receiver cancels the call; the status says why.
  });
  const ended = new Promise<StatusObject>((resolve) => call.on('status', resolve));
  return { client, call, ended };
}

const N = 100_000;

describe('GrpcTransport link', () => {
  it('delivers 100k events with interleaved promises exactly once and in order, both directions', async () => {
    const { A, B, a1, b1 } = await pair('grpc-fifo');
    // a1 -> b1 and b1 -> a1 at the same time; a promise after every 100 events.
    const make = (from: string, to: string) => (i: number) =>
      i % 101 === 100
        ? seqPromise(from, to, Math.floor(i / 101))
        : seqEvent(from, to, i - Math.floor(i / 101));
    const total = N + Math.floor(N / 100);
    await Promise.all([
      sendAll(A.t, total, make('a1', 'b1')),
      sendAll(B.t, total, make('b1', 'a1')),
    ]);
    const events = total - Math.floor(total / 101);
    const promises = Math.floor(total / 101);
    await until(() => b1.eventCount >= events && a1.eventCount >= events, 30_000, 'all events');
    await until(
      () => b1.promiseCount >= promises && a1.promiseCount >= promises,
      5_000,
      'all promises',
    );
    await Promise.all([A.t.flush(), B.t.flush()]);
    expect(fifoViolation(b1.events.get('a1')!, events)).toBeNull();
    expect(fifoViolation(a1.events.get('b1')!, events)).toBeNull();
    expect(fifoViolation(b1.promises.get('a1')!, promises)).toBeNull();
    expect(fifoViolation(a1.promises.get('b1')!, promises)).toBeNull();

    const [toB] = A.t.linkMetrics();
    expect(toB).toMatchObject({ peer: 'B', unacknowledged: 0, acked: total, rejectedFrames: 0 });
    expect(toB!.framesSent).toBeGreaterThan(0);
    expect(toB!.framesReceived).toBeGreaterThan(0); // B -> A arrived on A's inbound side
    expect(A.t.metrics()).toMatchObject({
      name: 'grpc',
      eventsSent: events,
      promisesSent: promises,
      eventsDelivered: events,
      promisesDelivered: promises,
      queued: 0,
    });
    expect(A.errors).toEqual([]);
    expect(B.errors).toEqual([]);
    await A.t.close();
    await B.t.close();
  });

  it('carries a 64 MiB event in chunks, every byte intact', async () => {
    const cluster = uniqueCluster('grpc-big');
    const dir = new Directory();
    dir.placement.set('b1', 'B');
    const A = await startTransport(dir, cluster, 'A');
    const B = await startTransport(dir, cluster, 'B');
    const b1 = new RecordingNode('b1', 0, true);
    B.t.attach(b1);
    const size = 64 * 1024 * 1024;
    const env = seqEvent('a1', 'b1', 7, size);
    for (let i = 4; i < size; i += 4096) env.payload![i] = (i >> 12) & 0xff;
    A.t.sendEvent(env);
    A.t.sendEvent(seqEvent('a1', 'b1', 8));
    await until(() => b1.eventCount === 2, 30_000, 'the large event');
    const got = b1.kept[0]!;
    expect(seqOf(got)).toBe(7);
    expect(got.payload!.length).toBe(size);
    expect(Buffer.compare(got.payload!, env.payload!)).toBe(0);
    expect(seqOf(b1.kept[1]!)).toBe(8);
    expect(A.t.linkMetrics()[0]!.bytesSent).toBeGreaterThan(size);
    await A.t.close();
    await B.t.close();
  });

  it('reports a message for a node the receiver does not host as UndeliverableError', async () => {
    const { A, B, dir } = await pair('grpc-undeliverable');
    dir.placement.set('ghost', 'B');
    A.t.sendEvent(seqEvent('a1', 'ghost', 0));
    A.t.sendEvent(seqEvent('a1', 'b1', 1));
    await until(() => B.errors.length > 0, 10_000, 'an error on B');
    expect(B.errors[0]).toBeInstanceOf(UndeliverableError);
    expect(B.errors[0]!.message).toMatch(/ghost\/p/);
    await A.t.close();
    await B.t.close();
  });

  it('refuses a call for another cluster on both ends, naming the sender', async () => {
    const dir = new Directory();
    dir.placement.set('b1', 'B');
    const A = await startTransport(dir, uniqueCluster('grpc-cluster-a'), 'A', {
      reliability: { peerDeadlineMs: 1000 },
    });
    const B = await startTransport(dir, uniqueCluster('grpc-cluster-b'), 'B');
    B.t.attach(new RecordingNode('b1'));
    A.t.sendEvent(seqEvent('a1', 'b1', 0));
    await until(() => A.errors.length > 0, 10_000, 'the link to fail');
    expect(B.errors[0]).toBeInstanceOf(LinkClosedError);
    expect(B.errors[0]!.message).toMatch(/grpc:A.*refused.*cluster/);
    const failed = A.errors[0] as LinkClosedError;
    expect(failed).toBeInstanceOf(LinkClosedError);
    expect(failed.message).toMatch(/PERMISSION_DENIED/);
    expect(failed.unacknowledged).toBe(1);
    expect(() => A.t.sendEvent(seqEvent('a1', 'b1', 1))).toThrow(LinkClosedError);
    await A.t.close();
    await B.t.close();
  });

  it('rejects corrupt bytes and a sequence gap with FrameCorruptError and keeps serving', async () => {
    const { A, B, b1, cluster, dir } = await pair('grpc-corrupt');
    const address = dir.addressOf('B');

    // 1. Garbage: a bad frame magic.
    const bad = rawCall(address, cluster);
    bad.call.write(Buffer.from('this is not a frame, not even close'));
    const s1 = await bad.ended;
    expect(s1.code).toBe(GrpcStatus.DATA_LOSS);

    // 2. A good header whose body fails the verifier (one flipped byte after sealing).
    const enc = new FrameEncoder();
    const frame = Buffer.from(enc.encode([seqEvent('x', 'b1', 0)], Lane.Event, 1n, 0n));
    sealFrame(frame);
    frame[frame.length - 5]! ^= 0x40;
    const flipped = rawCall(address, cluster);
    flipped.call.write(frame);
    const s2 = await flipped.ended;
    expect(s2.code).toBe(GrpcStatus.DATA_LOSS);

    // 3. Valid frames with link_seq 1 then 3: frames are missing.
    const gap = rawCall(address, cluster);
    for (const seq of [1n, 3n]) {
      const f = Buffer.from(enc.encode([seqEvent('x', 'b1', Number(seq))], Lane.Event, seq, 0n));
      sealFrame(f);
      gap.call.write(f);
    }
    const s3 = await gap.ended;
    expect(s3.code).toBe(GrpcStatus.DATA_LOSS);
    for (const c of [bad, flipped, gap]) c.client.close();

    expect(B.errors).toHaveLength(3);
    for (const e of B.errors) {
      expect(e).toBeInstanceOf(FrameCorruptError);
      expect((e as FrameCorruptError).peer).toBe('grpc:intruder');
    }
    expect(B.errors[0]!.message).toMatch(/bad frame magic/);
    expect(B.errors[2]!.message).toMatch(/link_seq 3 after 1/);
    expect(b1.events.get('x')).toEqual([1]); // the good frame before the gap was delivered

    // The process and the server live on: a normal link still works.
    A.t.sendEvent(seqEvent('a1', 'b1', 0));
    await until(() => b1.events.get('a1')?.length === 1, 10_000, 'delivery after the bad calls');
    expect(B.t.linkMetrics().find((m) => m.peer === 'intruder')!.rejectedFrames).toBe(3);
    await A.t.close();
    await B.t.close();
  });

  it('refuses to send after close() and closes idempotently', async () => {
    const { A, B, b1 } = await pair('grpc-close');
    A.t.sendEvent(seqEvent('a1', 'b1', 0));
    await Promise.all([A.t.close(), A.t.close()]);
    expect(b1.eventCount).toBe(1); // close() waited for the ack
    expect(() => A.t.sendEvent(seqEvent('a1', 'b1', 1))).toThrow(LinkClosedError);
    await B.t.close();
    expect(A.errors as DiscoError[]).toEqual([]);
  });
});
