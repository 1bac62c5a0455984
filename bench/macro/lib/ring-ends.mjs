/**
 * The two ends of a shared-memory ring as the raw-link benchmarks drive them, straight on the
 * addon's ring ends (dist/native.js) without a transport: a receiver that reads batches when its
 * doorbell rings, and a sender that writes prebuilt frames or staged batches and waits for space
 * through the producer's doorbell when the ring is full.
 */

import { Socket } from 'node:net';
import { BatchReader } from '../../../dist/native-batch.js';
import {
  NativeStatus,
  RingEvent,
  nativeStatusName,
  openRingConsumer,
  openRingProducer,
} from '../../../dist/native.js';

/** Most batches read per wake-up before yielding to the event loop (as ShmTransport does). */
const READS_PER_WAKEUP = 16;
/** Most bytes one read takes (as ShmTransport). */
const READ_BYTES = 16 * 1024 * 1024;

function statusError(what, ring, status) {
  return new Error(`${what} on ring ${ring}: ${nativeStatusName(status)}`);
}

/**
 * Reads ring `ring` whenever its doorbell rings (and once when constructed), handing each batch
 * to `onBatch(reader)` before releasing it. `doorbell` is the consumer's RingDoorbellOptions; with `doorbell: 'pipe'` the
 * event loop watches the FIFO itself. Failures go to `onError`.
 */
export class RingReceiver {
  #ring;
  #consumer;
  #reader = new BatchReader();
  #onBatch;
  #onError;
  #socket = null;
  #scheduled = false;
  #closed = false;

  constructor(ring, doorbell, onBatch, onError) {
    this.#ring = ring;
    this.#onBatch = onBatch;
    this.#onError = onError;
    this.#consumer = openRingConsumer(
      ring,
      (event) => {
        if (event === RingEvent.READY) this.drain();
        else this.#fail(new Error(`ring ${ring}: the producing process died`));
      },
      doorbell,
    );
    if (doorbell?.doorbell === 'pipe') {
      this.#socket = new Socket({
        fd: this.#consumer.doorbellFd(),
        readable: true,
        writable: false,
      });
      this.#socket.on('data', () => this.drain());
      this.#socket.on('error', (err) => this.#fail(err));
    }
    // The doorbell is armed by a read that finds the ring empty; records may also wait already.
    this.drain();
  }

  /** Reads what is there (bounded; the rest after a turn of the event loop). */
  drain() {
    if (this.#closed) return;
    const reader = this.#reader;
    for (let n = 0; n < READS_PER_WAKEUP; n++) {
      const status = reader.read(this.#consumer, READ_BYTES);
      if (status === NativeStatus.OK) {
        this.#onBatch(reader);
        continue;
      }
      if (status === NativeStatus.RING_EMPTY || status === NativeStatus.PEER_CLOSED) return;
      this.#fail(statusError('readBatch', this.#ring, status));
      return;
    }
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.drain();
      });
    }
  }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket?.destroy();
    this.#consumer.close();
  }

  #fail(err) {
    if (this.#closed) return;
    this.close();
    this.#onError(err);
  }
}

/** Writes into ring `ring`: prebuilt sealed frames, or staged batches the addon frames. */
export class RingSender {
  #ring;
  #producer;
  #wake = null;
  #dead = false;

  constructor(ring) {
    this.#ring = ring;
    this.#producer = openRingProducer(ring, (event) => {
      if (event === RingEvent.PEER_DEAD) this.#dead = true;
      const wake = this.#wake;
      this.#wake = null;
      wake?.();
    });
    // A sender waiting for space must not be abandoned by an idle event loop.
    this.#producer.keepAlive(true);
  }

  get producer() {
    return this.#producer;
  }

  /**
   * Writes one sealed frame (chunked when larger than a record); resolves once the ring took
   * all of it. The fast path (room in the ring) stays synchronous: callers check the result
   * and only await when it is a promise.
   */
  writeFrame(frame) {
    const status = this.#producer.writeFrame(frame);
    if (status === NativeStatus.OK) return true;
    return this.#slowPath(status, frame.length, () => this.#producer.writeFrame(frame));
  }

  /** As writeFrame, for a staging layout and its external payloads. */
  writeBatch(staging, payloads) {
    const status = this.#producer.writeBatch(staging, payloads);
    if (status === NativeStatus.OK) return true;
    return this.#slowPath(status, staging.length, () =>
      this.#producer.writeBatch(staging, payloads),
    );
  }

  close() {
    this.#producer.keepAlive(false);
    this.#producer.close();
  }

  async #slowPath(status, bytes, retry) {
    for (;;) {
      if (status === NativeStatus.OK) return true;
      if (status === NativeStatus.WRITE_PENDING) {
        // Taken, larger than a record: the rest goes in chunk by chunk as the reader frees space.
        const chunkRoom = Math.min(
          this.#producer.maxContentBytes,
          this.#producer.state().capacity / 4,
        );
        while ((status = this.#producer.flush()) === NativeStatus.WRITE_PENDING) {
          await this.#writable(chunkRoom);
        }
        if (status !== NativeStatus.OK) throw statusError('flush', this.#ring, status);
        return true;
      }
      if (status !== NativeStatus.RING_FULL || this.#dead) {
        throw statusError('write', this.#ring, status);
      }
      await this.#writable(Math.min(bytes + 4096, this.#producer.maxContentBytes));
      status = retry();
    }
  }

  #writable(bytes) {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#producer.notifyWhenWritable(bytes);
    });
  }
}
