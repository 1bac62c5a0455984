import { connect as http2Connect, type Settings } from 'node:http2';
import { Metadata, status as GrpcStatus, credentials, type StatusObject } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { decodeFrame, FrameEncoder, Lane, type EventEnvelope } from '../../src/envelope.js';
import {
  BackpressureError,
  FrameCorruptError,
  LinkClosedError,
  UndeliverableError,
  type DiscoError,
} from '../../src/errors.js';
import { assertFrame, sealFrame } from '../../src/native.js';
import { FrameStreamReader } from '../../src/transports/frame-stream.js';
import { GrpcTransport } from '../../src/transports/grpc.js';
import {
  CLUSTER_METADATA_KEY,
  LINK_METHOD,
  MESSAGE_LEAD_BYTES,
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
function rawCall(address: string, cluster: string, session = '00000000000000ff') {
  const client = new LinkClient(address, credentials.createInsecure());
  const md = new Metadata();
  md.set(CLUSTER_METADATA_KEY, cluster);
  md.set(SENDER_METADATA_KEY, 'intruder');
  md.set(SESSION_METADATA_KEY, session);
  const call = client.makeBidiStreamRequest(
    LINK_METHOD.path,
    LINK_METHOD.requestSerialize,
    LINK_METHOD.responseDeserialize,
    md,
  );
  const acks: bigint[] = [];
  const reader = new FrameStreamReader('test', undefined, MESSAGE_LEAD_BYTES);
  call.on('data', (chunk: Buffer) =>
    reader.push(chunk, (f) => {
      assertFrame(f, 'test');
      acks.push(decodeFrame(f, () => undefined).ack);
    }),
  );
  call.on('error', () => {
    // Expected when the receiver cancels the call; the status says why.
  });
  const ended = new Promise<StatusObject>((resolve) => call.on('status', resolve));
  return { client, call, ended, acks };
}

/** `bytes` as a message that starts a frame: behind the zero bytes of the message lead. */
function message(bytes: Uint8Array): Buffer {
  return Buffer.concat([Buffer.alloc(MESSAGE_LEAD_BYTES), bytes]);
}

/** A message of one sealed frame with link_seq `seq` carrying one event `seq - 1` from x to b1. */
function seqFrame(enc: FrameEncoder, seq: number): Buffer {
  const f = Buffer.from(enc.encode([seqEvent('x', 'b1', seq - 1)], Lane.Event, BigInt(seq), 0n));
  sealFrame(f);
  return message(f);
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

  it.each([true, false])(
    'reuses the memory of acknowledged frames (reliability %s), every event intact',
    async (reliable) => {
      const cluster = uniqueCluster('grpc-reuse');
      const dir = new Directory();
      dir.placement.set('b1', 'B');
      const options = { reliability: { enabled: reliable } };
      const A = await startTransport(dir, cluster, 'A', options);
      const B = await startTransport(dir, cluster, 'B', options);
      const b1 = new RecordingNode('b1', 0, true);
      B.t.attach(b1);
      // 1 MiB events one at a time, each acknowledged before the next: from the second on,
      // a reliable link builds each where the previous one was.
      const size = 1024 * 1024;
      const sent: EventEnvelope[] = [];
      for (let seq = 0; seq < 12; seq++) {
        const env = seqEvent('a1', 'b1', seq, size);
        for (let i = 4; i < size; i += 1024) env.payload![i] = (seq * 31 + (i >> 10)) & 0xff;
        sent.push(env);
        A.t.sendEvent(env);
        await A.t.flush();
      }
      await until(() => b1.eventCount === sent.length, 30_000, 'the events');
      b1.kept.forEach((got, i) => {
        expect(seqOf(got)).toBe(i);
        expect(Buffer.compare(got.payload!, sent[i]!.payload!)).toBe(0);
      });
      const reused = A.t.linkMetrics()[0]!.frameBytesReused;
      if (reliable) expect(reused).toBeGreaterThanOrEqual(10 * size);
      else expect(reused).toBe(0);
      await A.t.close();
      await B.t.close();
    },
  );

  it('flushes and closes without waiting out the peer deadline when the peer is gone, counting what it lost', async () => {
    const { A, B, b1 } = await pair('grpc-close-gone');
    A.t.sendEvent(seqEvent('a1', 'b1', 0));
    await A.t.flush();
    expect(b1.eventCount).toBe(1);
    await B.t.close(); // the peer goes away for good; A's peer deadline is 30 s
    for (let i = 1; i <= 3; i++) A.t.sendEvent(seqEvent('a1', 'b1', i));
    await A.t.flush();
    await A.t.close();
    const lost = A.errors.find((e) => e instanceof LinkClosedError) as LinkClosedError;
    expect(lost).toBeDefined();
    expect(lost.unacknowledged).toBe(3);
    expect(lost.message).toMatch(/closed/);
  }, 20_000);

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
    bad.call.write(message(Buffer.from('this is not a frame, not even close')));
    const s1 = await bad.ended;
    expect(s1.code).toBe(GrpcStatus.DATA_LOSS);

    // 2. A good header whose body fails the verifier (one flipped byte after sealing).
    const enc = new FrameEncoder();
    const frame = Buffer.from(enc.encode([seqEvent('x', 'b1', 0)], Lane.Event, 1n, 0n));
    sealFrame(frame);
    frame[frame.length - 5]! ^= 0x40;
    const flipped = rawCall(address, cluster);
    flipped.call.write(message(frame));
    const s2 = await flipped.ended;
    expect(s2.code).toBe(GrpcStatus.DATA_LOSS);

    // 2b. A good frame without the zero bytes a message that starts a frame opens with.
    const unled = rawCall(address, cluster);
    frame[frame.length - 5]! ^= 0x40;
    unled.call.write(frame);
    expect((await unled.ended).code).toBe(GrpcStatus.DATA_LOSS);

    // 3. Valid frames with link_seq 1 then 3: frames are missing.
    const gap = rawCall(address, cluster);
    for (const seq of [1n, 3n]) {
      const f = Buffer.from(enc.encode([seqEvent('x', 'b1', Number(seq))], Lane.Event, seq, 0n));
      sealFrame(f);
      gap.call.write(message(f));
    }
    const s3 = await gap.ended;
    expect(s3.code).toBe(GrpcStatus.DATA_LOSS);
    for (const c of [bad, flipped, unled, gap]) c.client.close();

    expect(B.errors).toHaveLength(4);
    for (const e of B.errors) {
      expect(e).toBeInstanceOf(FrameCorruptError);
      expect((e as FrameCorruptError).peer).toBe('grpc:intruder');
    }
    expect(B.errors[0]!.message).toMatch(/bad frame magic/);
    expect(B.errors[2]!.message).toMatch(/must open with 3 zero bytes/);
    expect(B.errors[3]!.message).toMatch(/link_seq 3 after 1/);
    expect(b1.events.get('x')).toEqual([1]); // the good frame before the gap was delivered

    // The process and the server live on: a normal link still works.
    A.t.sendEvent(seqEvent('a1', 'b1', 0));
    await until(() => b1.events.get('a1')?.length === 1, 10_000, 'delivery after the bad calls');
    expect(B.t.linkMetrics().find((m) => m.peer === 'intruder')!.rejectedFrames).toBe(4);
    await A.t.close();
    await B.t.close();
  });

  it('drops frames a reconnecting sender resends on a new call of the same session', async () => {
    const { A, B, b1, cluster, dir } = await pair('grpc-dedup');
    const enc = new FrameEncoder();
    const first = rawCall(dir.addressOf('B'), cluster, '00000000000000aa');
    for (const seq of [1, 2, 3]) first.call.write(seqFrame(enc, seq));
    first.call.end();
    expect((await first.ended).code).toBe(GrpcStatus.OK);
    expect(first.acks.at(-1)).toBe(3n);

    // The sender did not see the acks: it resends 2 and 3, then goes on with 4.
    const second = rawCall(dir.addressOf('B'), cluster, '00000000000000aa');
    for (const seq of [2, 3, 4]) second.call.write(seqFrame(enc, seq));
    second.call.end();
    expect((await second.ended).code).toBe(GrpcStatus.OK);
    expect(second.acks[0]).toBe(3n); // acked at once when the call starts: trim before resending
    expect(second.acks.at(-1)).toBe(4n);
    expect(b1.events.get('x')).toEqual([0, 1, 2, 3]);
    const m = B.t.linkMetrics().find((x) => x.peer === 'intruder')!;
    expect(m).toMatchObject({ framesReceived: 4, duplicatesDropped: 2, rejectedFrames: 0 });

    // A new incarnation of the sender (another session) starts from its first frame.
    const third = rawCall(dir.addressOf('B'), cluster, '00000000000000bb');
    third.call.write(seqFrame(enc, 9));
    third.call.end();
    expect((await third.ended).code).toBe(GrpcStatus.OK);
    expect(b1.events.get('x')).toEqual([0, 1, 2, 3, 8]);
    for (const c of [first, second, third]) c.client.close();
    expect(B.errors).toEqual([]);
    await A.t.close();
    await B.t.close();
  });

  it('refuses a frame over maxFrameBytes and fails the sending link, which cannot resend it', async () => {
    const cluster = uniqueCluster('grpc-max-frame');
    const dir = new Directory();
    dir.placement.set('b1', 'B');
    const A = await startTransport(dir, cluster, 'A');
    const B = await startTransport(dir, cluster, 'B', { maxFrameBytes: 64 * 1024 });
    const b1 = new RecordingNode('b1');
    B.t.attach(b1);
    A.t.sendEvent(seqEvent('a1', 'b1', 0, 1000));
    await until(() => b1.eventCount === 1, 10_000, 'the small event');
    A.t.sendEvent(seqEvent('a1', 'b1', 1, 100 * 1024));
    await until(() => A.errors.length > 0, 10_000, 'the link to fail');
    expect(B.errors[0]).toBeInstanceOf(FrameCorruptError);
    expect(B.errors[0]!.message).toMatch(/grpc:A.*over the limit of 65520/);
    expect(A.errors[0]).toBeInstanceOf(LinkClosedError);
    expect(A.errors[0]!.message).toMatch(/rejected a frame.*\(1 messages not acknowledged\)/);
    expect(b1.eventCount).toBe(1);
    await A.t.close();
    await B.t.close();
  });

  it('pauses reading a peer over its rate limit and still delivers everything in order', async () => {
    const cluster = uniqueCluster('grpc-rate');
    const dir = new Directory();
    dir.placement.set('b1', 'B');
    const A = await startTransport(dir, cluster, 'A');
    const B = await startTransport(dir, cluster, 'B', {
      rateLimit: { messagesPerSecond: 20_000, burst: 1000 },
    });
    const b1 = new RecordingNode('b1');
    B.t.attach(b1);
    await sendAll(A.t, 10_000, (i) => seqEvent('a1', 'b1', i));
    await A.t.flush();
    expect(fifoViolation(b1.events.get('a1')!, 10_000)).toBeNull();
    expect(B.t.linkMetrics()[0]!.rateLimitPauses).toBeGreaterThan(0);
    await A.t.close();
    await B.t.close();
  });

  it('runs without sequence numbers and acks when reliability is off (benchmark mode)', async () => {
    const cluster = uniqueCluster('grpc-unreliable');
    const dir = new Directory();
    dir.placement.set('b1', 'B');
    const A = await startTransport(dir, cluster, 'A', { reliability: { enabled: false } });
    const B = await startTransport(dir, cluster, 'B');
    const b1 = new RecordingNode('b1');
    B.t.attach(b1);
    await sendAll(A.t, 20_000, (i) => seqEvent('a1', 'b1', i));
    await until(() => b1.eventCount === 20_000, 20_000, 'all events');
    expect(fifoViolation(b1.events.get('a1')!, 20_000)).toBeNull();
    expect(A.t.linkMetrics()[0]).toMatchObject({ acked: 0, unacknowledged: 0, resends: 0 });
    await A.t.close();
    await B.t.close();
  });

  it('queues sends while the peer is unreachable, with back-pressure and a hard limit', async () => {
    const dir = new Directory();
    dir.placement.set('b1', 'B');
    dir.addresses.set('B', '127.0.0.1:1'); // nothing listens there
    const A = await startTransport(dir, uniqueCluster('grpc-backpressure'), 'A', {
      limits: { highWaterMarkMessages: 10, hardLimitMessages: 20 },
      reliability: { peerDeadlineMs: 60_000 },
    });
    for (let i = 0; i < 20; i++) A.t.sendEvent(seqEvent('a1', 'b1', i));
    expect(A.t.writable).toBe(false);
    expect(() => A.t.sendEvent(seqEvent('a1', 'b1', 20))).toThrow(BackpressureError);
    expect(A.t.linkMetrics()[0]!.unacknowledged).toBe(20);
    await A.t.close(); // waits CLOSE_FLUSH_TIMEOUT_MS for acks that cannot come
    expect(A.errors).toHaveLength(1);
    expect((A.errors[0] as LinkClosedError).unacknowledged).toBe(20);
  }, 20_000);

  it('refuses a cluster or identity that cannot travel as call metadata', () => {
    const base = { locate: () => undefined, addressOf: () => '127.0.0.1:1' };
    expect(() => new GrpcTransport({ ...base, cluster: 'c', self: 'm\n1' })).toThrow(
      /self must be 1-200 printable ASCII characters, got "m\\n1"/,
    );
    expect(() => new GrpcTransport({ ...base, cluster: '', self: 'm' })).toThrow(/cluster/);
  });

  it('advertises its receive window to every connection, per call and per connection', async () => {
    const windowBytes = 3 * 1024 * 1024;
    const dir = new Directory();
    const A = await startTransport(dir, uniqueCluster('grpc-window'), 'A', {
      receiveWindowBytes: windowBytes,
    });
    const session = http2Connect(`http://${dir.addressOf('A')}`);
    session.on('error', () => {
      // Closed below; a failure shows as the settings never arriving.
    });
    try {
      const settings = await new Promise<Settings>((resolve) =>
        session.once('remoteSettings', resolve),
      );
      expect(settings.initialWindowSize).toBe(windowBytes);
      // The connection window goes up by a WINDOW_UPDATE right after the settings.
      await until(() => session.state.remoteWindowSize === windowBytes, 10_000, 'window update');
    } finally {
      session.destroy();
      await A.t.close();
    }
    const base = { cluster: 'c', self: 'm', locate: () => undefined, addressOf: () => '' };
    expect(() => new GrpcTransport({ ...base, receiveWindowBytes: 1024 })).toThrow(
      /receiveWindowBytes must be a number ≥ 65535, got 1024/,
    );
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
