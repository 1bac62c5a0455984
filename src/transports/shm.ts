/**
 * ShmTransport: links to the other Server processes of this machine through
 * shared-memory rings (DESIGN §5): one single-producer/single-consumer ring per
 * directed pair of processes, created by the Application before it forks.
 *
 * - Outbound: an OutboundQueue per peer (two lanes, promise lane first, bounded,
 *   batched once per turn, staged as sent). A batch goes to the native producer as
 *   one staging buffer (a lane's BatchWriter; the producer keeps a string table per
 *   lane); the addon builds the FlatBuffers frame in the ring slot, so a payload is
 *   copied once, from JS memory into shared memory. A full ring keeps the batch
 *   queued and asks the addon to call back when space frees.
 * - Inbound: a RingReader per ring (ring-reader.ts) polls the ring from the event loop
 *   for a short window after traffic (records read, or a send of this process), then
 *   sleeps on its doorbell; it reads batches (bounded, then yields to the event loop),
 *   the addon verifies and decodes every frame in place, and envelopes go to their
 *   NodeControllers with payloads as views over shared memory. The views are detached
 *   when the batch is released, right after it is handed over: a receiver that keeps
 *   bytes copies them.
 * - A dead peer (found by the addon within 100 ms) fails the link with PeerDeadError;
 *   a corrupt ring fails it with FrameCorruptError naming the ring. Both are emitted
 *   as 'error'; the process lives on.
 */

import type { Lane } from '../envelope.js';
import { DiscoError, emitError, LinkClosedError, PeerDeadError } from '../errors.js';
import {
  NativeStatus,
  openRingProducer,
  ringSegmentName,
  ringStatusError,
  RingEvent,
  type NativeRingProducer,
  type RingDoorbellOptions,
  type RingEventCode,
} from '../native.js';
import type { BatchReader, BatchWriter } from '../native-batch.js';
import { envelopeAt, SenderRefs } from './batch-frames.js';
import { tracerFor } from '../trace.js';
import { DEFAULT_CLOSE_TIMEOUT_MS, LinkTransport } from './link-transport.js';
import { RingReader } from './ring-reader.js';
import { OutboundQueue, type LinkChannel, type LinkLimits } from './outbound-queue.js';
import type { Transport } from './transport.js';

const tracer = tracerFor('shm');

/** Options of a ShmTransport. */
export interface ShmTransportOptions {
  /** Cluster name: scopes the ring names. */
  cluster: string;
  /** This process's endpoint id in ring names (e.g. `0.1`). */
  self: string;
  /** Endpoint ids of the processes that send to this one (one inbound ring each). */
  peers: readonly string[];
  /** Endpoint id of the process hosting (repid, node), or undefined when not a ring peer. Pure. */
  locate(repid: number, node: string): string | undefined;
  limits?: LinkLimits;
  /**
   * How inbound rings are read: the polling window (`spinNs`) or `spinMode`, and the doorbell
   * of a sleeping reader. Default doorbell: the pipe (the event loop watches a FIFO), which had
   * the lower round-trip latency in bench/macro (rtt.ring).
   */
  doorbell?: RingDoorbellOptions;
  /** How long `close()` waits for peers to read what is queued. Default 10 s. */
  closeTimeoutMs?: number;
}

/** The name of the ring from endpoint `from` to endpoint `to` of `cluster`. */
export function ringName(cluster: string, from: string, to: string): string {
  return ringSegmentName(cluster, from, to);
}

/** The doorbell options of an inbound ring: `options` with the default doorbell filled in. */
function consumerDoorbell(options: RingDoorbellOptions | undefined): RingDoorbellOptions {
  if (options?.doorbell !== undefined) return options;
  return { ...options, doorbell: 'pipe' };
}

/** One outbound ring: this process -> a peer. */
class ShmLink implements LinkChannel {
  readonly queue: OutboundQueue;
  private producer: NativeRingProducer | null = null;
  private waiting = false;
  private failed = false;
  bytesSent = 0;

  constructor(
    readonly ring: string,
    private readonly owner: ShmTransport,
    limits: LinkLimits | undefined,
  ) {
    this.queue = new OutboundQueue(`shm ring ${ring}`, this, limits);
    this.queue.on('failed', (err: DiscoError) => this.fail(err));
  }

  /**
   * A send that finds the link idle is written at once, inside the send: a lone event or an
   * answer does not wait a turn of the event loop for the pump. Later sends of the same turn
   * queue behind it and leave together, one frame per turn, as before.
   */
  readonly writesAtOnce = true;

  get ready(): boolean {
    return !this.waiting && !this.failed;
  }

  writeBatch(_lane: Lane, w: BatchWriter): boolean {
    const producer = this.producer ?? this.open();
    const staging = w.finish();
    const status = producer.writeBatch(staging, w.payloads);
    if (status === NativeStatus.OK) {
      this.bytesSent += staging.length;
      this.owner.expectTraffic();
      return true;
    }
    if (status === NativeStatus.WRITE_PENDING) {
      this.bytesSent += staging.length;
      this.waitForSpace(producer, producer.maxContentBytes);
      return true;
    }
    if (status === NativeStatus.RING_FULL) {
      this.waitForSpace(producer, Math.min(staging.length + 4096, producer.maxContentBytes));
      return false;
    }
    this.fail(ringStatusError(status, this.ring));
    return false;
  }

  /** Space is free again: finish a chunked message, then let the queue pump. */
  onReady(): void {
    const producer = this.producer!;
    if (producer.pending) {
      const status = producer.flush();
      if (status === NativeStatus.WRITE_PENDING) {
        producer.notifyWhenWritable(producer.maxContentBytes);
        return;
      }
      if (status !== NativeStatus.OK) {
        this.fail(ringStatusError(status, this.ring));
        return;
      }
    }
    this.waiting = false;
    producer.keepAlive(false);
    this.queue.resume();
  }

  fail(err: DiscoError): void {
    if (this.failed) return;
    this.failed = true;
    this.queue.fail(err);
    this.owner.reportError(err);
  }

  /**
   * Hands over what is queued, waiting at most `timeoutMs` for a consumer that does not
   * read; what is still queued then is reported as lost, never silently dropped.
   */
  async close(timeoutMs: number): Promise<void> {
    const left = await this.queue.flushedWithin(timeoutMs);
    if (left > 0) {
      this.fail(
        new LinkClosedError(
          `shm ring ${this.ring}`,
          'closed before the peer read everything',
          left,
        ),
      );
    }
    this.producer?.close();
  }

  private open(): NativeRingProducer {
    this.producer = openRingProducer(this.ring, (ev: RingEventCode) => {
      if (ev === RingEvent.READY) this.onReady();
      else this.fail(new PeerDeadError(`ring ${this.ring}`, 'the consuming process died'));
    });
    return this.producer;
  }

  private waitForSpace(producer: NativeRingProducer, bytes: number): void {
    this.waiting = true;
    producer.keepAlive(true); // queued data must not be abandoned by an idle event loop
    producer.notifyWhenWritable(bytes);
  }
}

/** One inbound ring: a peer -> this process, read by a RingReader. */
class ShmInbound {
  private readonly reader: RingReader;
  private readonly senders = new SenderRefs();
  /** Where its envelopes are received, for UndeliverableError. */
  private readonly where: string;

  constructor(
    readonly ring: string,
    private readonly owner: ShmTransport,
    doorbell: RingDoorbellOptions | undefined,
  ) {
    this.where = `here (ring ${ring})`;
    this.reader = new RingReader(ring, doorbell, {
      onBatch: (r) => this.deliverBatch(r),
      onError: (err) => this.owner.reportError(err),
    });
  }

  close(): void {
    this.reader.close();
  }

  /** This process sent something: an answer may come soon. */
  expectTraffic(): void {
    this.reader.expectTraffic();
  }

  /** Reading stops while paused; what peers write waits in the rings. */
  pause(): void {
    this.reader.pause();
  }

  /** Resumes reading: what arrived meanwhile is read on the next turn. */
  resume(): void {
    this.reader.resume();
  }

  private deliverBatch(r: BatchReader): void {
    const n = r.envelopeCount;
    for (let i = 0; i < n; i++) {
      this.owner.deliverReceived(envelopeAt(r, i, this.senders), this.where);
    }
    this.owner.flushQueued();
  }
}

/** Same-machine transport over shared-memory rings; see the file header. */
export class ShmTransport extends LinkTransport<ShmLink> implements Transport {
  readonly name = 'shm';
  private readonly options: ShmTransportOptions;
  private readonly inbound: ShmInbound[] = [];
  private closed = false;

  constructor(options: ShmTransportOptions) {
    super(options.locate, options.self);
    this.options = options;
  }

  /**
   * Opens the consumer end of every inbound ring (they must exist: the Application creates them).
   * @throws {LinkClosedError} when a ring is missing or taken; PeerDeadError for an abandoned one.
   */
  open(): void {
    for (const peer of this.options.peers) {
      if (peer === this.options.self) continue;
      const ring = ringName(this.options.cluster, peer, this.options.self);
      this.inbound.push(new ShmInbound(ring, this, consumerDoorbell(this.options.doorbell)));
      if (tracer.enabled) tracer.log(`consuming ${ring}`);
    }
  }

  /** Stops reading the inbound rings; their producers wait when the rings are full. */
  pauseInbound(): void {
    for (const i of this.inbound) i.pause();
  }

  resumeInbound(): void {
    for (const i of this.inbound) i.resume();
  }

  /**
   * Hands over what is queued (waiting up to `closeTimeoutMs` for peers to read), then
   * closes every ring end; idempotent.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const timeout = this.options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    await Promise.all([...this.links.values()].map((l) => l.close(timeout)));
    this.closed = true;
    for (const i of this.inbound) i.close();
  }

  /** This process sent something: its inbound rings poll for a while, answers may come. */
  expectTraffic(): void {
    for (const i of this.inbound) i.expectTraffic();
  }

  /** Emits `err` as 'error' (silenced once closing), or throws it asynchronously when nobody listens. */
  override reportError(err: DiscoError): void {
    if (this.closed) return;
    emitError(this, err);
  }

  protected createLink(peer: string): ShmLink {
    return new ShmLink(
      ringName(this.options.cluster, this.options.self, peer),
      this,
      this.options.limits,
    );
  }
}
