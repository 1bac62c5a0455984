/**
 * The two ends of a shared-memory ring as the raw-link benchmarks drive them, straight on the
 * addon's ring ends (dist/native.js) without a transport: a receiver (ShmTransport's RingReader),
 * and a sender that writes prebuilt frames or staged batches and waits for space
 * through the producer's doorbell when the ring is full.
 */

import {
  NativeStatus,
  RingEvent,
  nativeStatusName,
  openRingProducer,
} from '../../../dist/native.js';
import { RingReader } from '../../../dist/transports/ring-reader.js';

function statusError(what, ring, status) {
  return new Error(`${what} on ring ${ring}: ${nativeStatusName(status)}`);
}

/**
 * Reads ring `ring` with ShmTransport's reader (src/transports/ring-reader.ts: polls from the
 * event loop after traffic, then sleeps on its doorbell), handing each batch to
 * `onBatch(reader)` before releasing it. `doorbell` is the consumer's RingDoorbellOptions
 * (doorbell kind, spinNs, spinMode). Failures go to `onError`.
 */
export class RingReceiver {
  #reader;
  #closed = false;

  constructor(ring, doorbell, onBatch, onError) {
    this.#reader = new RingReader(ring, doorbell, {
      onBatch,
      onError: (err) => {
        if (this.#closed) return;
        this.#closed = true;
        onError(err);
      },
    });
  }

  /** This process just sent: an answer may come soon (as ShmTransport does after a send). */
  expectTraffic() {
    this.#reader.expectTraffic();
  }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#reader.close();
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
