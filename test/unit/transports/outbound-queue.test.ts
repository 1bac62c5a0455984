import { describe, expect, it } from 'vitest';
import { OutboundQueue, type LinkChannel } from '../../../src/transports/outbound-queue.js';
import {
  DataFormat,
  EMPTY_HEADERS,
  EventEnvelope,
  Lane,
  PromiseEnvelope,
  type Envelope,
} from '../../../src/envelope.js';
import { BackpressureError, PeerDeadError } from '../../../src/errors.js';
import type { BatchWriter } from '../../../src/native-batch.js';
import { FrameReader, FrameWriter } from '../../../src/transports/batch-frames.js';

const sender = { node: 's', simproc: 'p' };
const ev = (n: number, bytes = 8) =>
  new EventEnvelope(
    0,
    sender,
    't',
    'p',
    n,
    EMPTY_HEADERS,
    undefined,
    new Uint8Array(bytes),
    DataFormat.Raw,
    0,
    null,
  );
const pr = (n: number) => new PromiseEnvelope(0, sender, 't', 'p', n, n, 1, 0);

/**
 * A channel that encodes every batch it takes with the native encoder and reads the frame
 * back (so what it records is what a peer would receive), and can refuse like a full ring.
 */
class RecordingChannel implements LinkChannel {
  ready = true;
  readonly frames: { lane: Lane; epochs: number[] }[] = [];
  readonly envelopes: Envelope[] = [];
  /** Batches to refuse, as a full ring does, before taking one; refusing turns it not ready. */
  refuse = 0;
  private readonly writer = new FrameWriter('test link');
  private readonly reader = new FrameReader();
  writeBatch(lane: Lane, w: BatchWriter, count: number): boolean {
    if (this.refuse > 0) {
      this.refuse--;
      this.ready = false;
      return false;
    }
    this.reader.read(this.writer.encodeBatch(lane, w, 0, 0), 'test peer');
    expect(this.reader.count).toBe(count);
    const epochs: number[] = [];
    for (let i = 0; i < count; i++) {
      const env = this.reader.envelope(i);
      this.envelopes.push(env);
      epochs.push(env.epoch);
    }
    this.frames.push({ lane, epochs });
    return true;
  }
}

const tick = () => new Promise((r) => setImmediate(r));

describe('OutboundQueue', () => {
  it('writes a send that finds the link idle at once when the channel asks, and batches the rest of the turn', async () => {
    const ch = new RecordingChannel();
    (ch as { writesAtOnce?: boolean }).writesAtOnce = true;
    const q = new OutboundQueue('test', ch);
    q.push(ev(1));
    expect(ch.frames).toEqual([{ lane: Lane.Event, epochs: [1] }]);
    q.push(ev(2));
    q.push(pr(10));
    q.push(ev(3));
    expect(ch.frames).toHaveLength(1); // a pump is pending: the rest waits for it
    await q.flushed();
    await tick();
    q.push(ev(4)); // idle again
    expect(ch.frames).toEqual([
      { lane: Lane.Event, epochs: [1] },
      { lane: Lane.Promise, epochs: [10] },
      { lane: Lane.Event, epochs: [2, 3] },
      { lane: Lane.Event, epochs: [4] },
    ]);
    ch.ready = false;
    await tick();
    q.push(ev(5)); // not ready: queued, never written inside push
    expect(ch.frames).toHaveLength(4);
    expect(q.queued).toBe(1);
  });

  it('flushNow writes what waits for the pump at once, promises first, and leaves the pump nothing', async () => {
    const ch = new RecordingChannel();
    (ch as { writesAtOnce?: boolean }).writesAtOnce = true;
    const q = new OutboundQueue('test', ch);
    q.push(ev(1)); // at once; the pump is now pending
    q.push(ev(2));
    q.push(pr(10));
    q.push(ev(3));
    expect(ch.frames).toHaveLength(1);
    q.flushNow();
    expect(q.queued).toBe(0);
    expect(ch.frames).toEqual([
      { lane: Lane.Event, epochs: [1] },
      { lane: Lane.Promise, epochs: [10] },
      { lane: Lane.Event, epochs: [2, 3] },
    ]);
    q.push(ev(4)); // the pump is still pending: this one waits for it (or the next flushNow)
    expect(ch.frames).toHaveLength(3);
    await tick();
    expect(ch.frames.at(-1)).toEqual({ lane: Lane.Event, epochs: [4] });
    expect(ch.frames).toHaveLength(4);
    // A channel that is full takes nothing from flushNow: the queue keeps it, in order.
    ch.ready = false;
    q.push(ev(5));
    q.flushNow();
    expect(q.queued).toBe(1);
    expect(ch.frames).toHaveLength(4);
    q.flushNow(); // nothing to do is harmless
  });

  it('writes the promise lane before the event lane, each FIFO, batched per turn', async () => {
    const ch = new RecordingChannel();
    const q = new OutboundQueue('test', ch);
    q.push(ev(1));
    q.push(ev(2));
    q.push(pr(10));
    q.push(ev(3));
    q.push(pr(11));
    expect(ch.frames).toEqual([]); // never inside the sender's call
    await q.flushed();
    expect(ch.frames).toEqual([
      { lane: Lane.Promise, epochs: [10, 11] },
      { lane: Lane.Event, epochs: [1, 2, 3] },
    ]);
  });

  it('splits frames by envelope count and estimated bytes, sending an oversized envelope alone', async () => {
    const ch = new RecordingChannel();
    const q = new OutboundQueue('test', ch, { maxFrameEnvelopes: 2, maxFrameBytes: 1000 });
    for (let i = 0; i < 5; i++) q.push(ev(i));
    q.push(ev(5, 5000));
    q.push(ev(6));
    await q.flushed();
    expect(ch.frames.map((f) => f.epochs)).toEqual([[0, 1], [2, 3], [4], [5], [6]]);
  });

  it('holds frames while the channel is not ready and resumes in order', async () => {
    const ch = new RecordingChannel();
    ch.ready = false;
    const q = new OutboundQueue('test', ch);
    q.push(ev(1));
    q.push(pr(2));
    await tick();
    expect(ch.frames).toEqual([]);
    expect(q.queued).toBe(2);
    ch.ready = true;
    q.resume();
    await q.flushed();
    expect(ch.frames.map((f) => f.lane)).toEqual([Lane.Promise, Lane.Event]);
  });

  it('enforces message and byte limits, admitting one oversized message into an empty queue', async () => {
    const ch = new RecordingChannel();
    ch.ready = false;
    const q = new OutboundQueue('test', ch, {
      highWaterMarkMessages: 2,
      hardLimitMessages: 3,
      highWaterMarkBytes: 1000,
      hardLimitBytes: 2000,
    });
    q.push(ev(0, 10_000)); // larger than the hard byte limit, but the queue is empty
    expect(q.writable).toBe(false);
    expect(() => q.push(ev(1))).toThrow(BackpressureError);
    expect(() => q.push(ev(1))).toThrow(/2000 bytes/);
    ch.ready = true;
    q.resume();
    let drained = false;
    q.on('drain', () => (drained = true));
    await q.flushed();
    expect(drained).toBe(true);
    q.push(pr(1));
    q.push(pr(2));
    q.push(pr(3));
    expect(() => q.push(pr(4))).toThrow(/3 messages/);
    expect(q.backpressureEvents).toBe(2);
  });

  it('after fail(), counts what was lost, throws that error on push and releases flushed()', async () => {
    const ch = new RecordingChannel();
    ch.ready = false;
    const q = new OutboundQueue('test', ch);
    q.push(ev(1));
    q.push(pr(1));
    const waiting = q.flushed();
    const err = new PeerDeadError('peer', 'gone');
    expect(q.fail(err)).toBe(2);
    await waiting;
    expect(() => q.push(ev(2))).toThrow(err);
    expect(q.fail(err)).toBe(0);
    expect(q.writable).toBe(true); // nothing to wait for: sends fail at once instead
  });

  it('fails the link, instead of throwing out of the pump, when the channel throws', async () => {
    const ch = new RecordingChannel();
    ch.writeBatch = () => {
      throw new Error('addon missing');
    };
    const q = new OutboundQueue('link x', ch);
    const failures: Error[] = [];
    q.on('failed', (e: Error) => failures.push(e));
    q.push(ev(1));
    q.push(ev(2));
    await q.flushed();
    expect(failures).toHaveLength(1);
    expect(failures[0]!.message).toMatch(
      /link x is closed: writing a frame failed: addon missing \(2 messages/,
    );
    expect(() => q.push(ev(3))).toThrow(failures[0]!);
  });

  it('keeps a batch the channel refused, adds to it up to the frame limit, and resumes in order', async () => {
    const ch = new RecordingChannel();
    ch.refuse = 1;
    const q = new OutboundQueue('test', ch, { maxFrameEnvelopes: 4 });
    q.push(ev(0));
    q.push(ev(1));
    await tick(); // the pump offers [0, 1]: refused, as by a full ring
    expect(ch.frames).toEqual([]);
    for (let i = 2; i < 7; i++) q.push(ev(i)); // 2 and 3 join the batch; 4..6 wait behind it
    expect(q.queued).toBe(7);
    await tick();
    expect(ch.frames).toEqual([]); // not ready: nothing is offered
    ch.ready = true;
    q.resume();
    await q.flushed();
    expect(ch.frames.map((f) => f.epochs)).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6],
    ]);
    expect(q.bytes).toBe(0);
    expect(q.envelopesWritten).toBe(7);
  });

  it('writes a full batch at once when the channel can take it, promises first', () => {
    const ch = new RecordingChannel();
    const q = new OutboundQueue('test', ch, { maxFrameEnvelopes: 3 });
    q.push(pr(10));
    for (let i = 0; i < 4; i++) q.push(ev(i)); // the fourth finds the batch full
    expect(ch.frames).toEqual([
      { lane: Lane.Promise, epochs: [10] },
      { lane: Lane.Event, epochs: [0, 1, 2] },
    ]);
    expect(q.queued).toBe(1);
  });

  it('emits drain at the pump, not inside a send that wrote a full batch', async () => {
    const ch = new RecordingChannel();
    const q = new OutboundQueue('test', ch, {
      maxFrameEnvelopes: 2,
      highWaterMarkMessages: 1,
      hardLimitMessages: 10,
    });
    let answered = false;
    q.on('drain', () => {
      // A listener that sends: had it run inside push(ev(2)), 99 would overtake 2.
      if (!answered) q.push(ev(99));
      answered = true;
    });
    q.push(ev(0));
    q.push(ev(1)); // above the high-water mark: drain is due once the queue empties
    q.push(ev(2)); // the batch [0, 1] is full and goes now; 2 starts the next
    expect(answered).toBe(false);
    await q.flushed();
    await tick();
    expect(ch.frames.map((f) => f.epochs)).toEqual([[0, 1], [2], [99]]);
  });

  it('refuses a send whose full batch, written inside it, fails the link', () => {
    const ch = new RecordingChannel();
    ch.writeBatch = () => {
      throw new Error('ring gone');
    };
    const q = new OutboundQueue('link y', ch, { maxFrameEnvelopes: 2 });
    const failures: Error[] = [];
    q.on('failed', (e: Error) => failures.push(e));
    q.push(ev(0));
    q.push(ev(1));
    expect(() => q.push(ev(2))).toThrow(/link y is closed: writing a frame failed: ring gone/);
    expect(failures).toHaveLength(1);
    expect(failures[0]!.message).toMatch(/\(2 messages/);
    expect(q.queued).toBe(0); // the refused send is not queued in a failed link
  });

  it('stages every field of an event sent by its fields, as a peer decodes it', async () => {
    const ch = new RecordingChannel();
    const q = new OutboundQueue('test', ch);
    const payload = Uint8Array.from([1, 2, 3, 4, 5]);
    const replyTo = { node: 'r', simproc: 'q' };
    q.pushEvent(3, sender, 't2', 'p2', 7.5, { k: 'v' }, payload, DataFormat.Serialized, 2, replyTo);
    q.pushEvent(4, sender, 't', 'p', -1, EMPTY_HEADERS, new Uint8Array(0), DataFormat.Raw, 0, null);
    await q.flushed();
    const [a, b] = ch.envelopes as EventEnvelope[];
    expect(a).toMatchObject({
      repid: 3,
      sender,
      targetNode: 't2',
      simproc: 'p2',
      epoch: 7.5,
      headers: { k: 'v' },
      dataFormat: DataFormat.Serialized,
      hops: 2,
      replyTo,
    });
    expect([...a!.payload!]).toEqual([1, 2, 3, 4, 5]);
    expect(b).toMatchObject({ repid: 4, targetNode: 't', epoch: -1, hops: 0, replyTo: null });
    expect(b!.payload!.length).toBe(0);
  });

  it('leaves the staged batch whole when staging a send throws', async () => {
    const ch = new RecordingChannel();
    const q = new OutboundQueue('test', ch);
    q.push(ev(1));
    const bad = { h: Symbol('not a string') } as unknown as Record<string, string>;
    const send = () =>
      q.pushEvent(0, sender, 't', 'p', 2, bad, new Uint8Array(8), DataFormat.Raw, 0, null);
    expect(send).toThrow(TypeError);
    expect(q.queued).toBe(1);
    q.push(ev(3));
    await q.flushed();
    expect(ch.frames).toEqual([{ lane: Lane.Event, epochs: [1, 3] }]);
  });

  it('wakes drain waiters when a blocked link fails, so nobody waits forever', () => {
    const ch = new RecordingChannel();
    ch.ready = false;
    const q = new OutboundQueue('test', ch, { highWaterMarkMessages: 1, hardLimitMessages: 10 });
    q.push(ev(1));
    q.push(ev(2));
    expect(q.writable).toBe(false);
    let drained = 0;
    q.on('drain', () => drained++);
    q.fail(new PeerDeadError('peer', 'gone'));
    expect(drained).toBe(1);
    expect(() => q.push(ev(3))).toThrow(PeerDeadError);
  });

  it('admits promises behind a queued event over the byte limit', () => {
    const ch = new RecordingChannel();
    ch.ready = false;
    const q = new OutboundQueue('test', ch, { highWaterMarkBytes: 1000, hardLimitBytes: 2000 });
    q.push(ev(0, 1_000_000));
    expect(() => q.push(ev(1))).toThrow(BackpressureError);
    expect(() => q.push(pr(1))).not.toThrow();
    expect(q.queued).toBe(2);
  });
});
