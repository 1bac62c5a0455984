/**
 * RingReader: reads one inbound shared-memory ring from the JS thread, with the idle strategy
 * of DESIGN §5 (used by ShmTransport, and by the ring benchmarks to measure the same code).
 *
 * A wake-up through a doorbell costs a hand-off to the event loop (a threadsafe function, or a
 * byte on a FIFO through epoll): tens of microseconds on a VM. So while it expects traffic the
 * reader polls the ring itself, from `setImmediate` callbacks, never blocking the event loop for
 * long:
 *
 * - polling: after a read that returned records, and after this process sent something
 *   (`expectTraffic()`), the reader checks the ring for a window of `spinNs`, repeatedly within
 *   a turn of the event loop for up to POLL_SLICE_NS, then again next turn (timers and I/O run
 *   in between). A check is a few `Atomics.load`s of the segment's tail and this end's read
 *   position (`pollWords()`), no call into the addon. While it polls the doorbell is not
 *   armed, so producers pay no wake-up syscall.
 * - sleeping: when the window passes without records, the reader arms the doorbell
 *   (native/doorbell.h's handshake, no lost wake-up) and waits for it. A window that keeps
 *   passing without records shrinks (`missed()`): then the reader sleeps at once.
 * - `spinMode`: polls for as long as the ring is open (a core for the lowest latency).
 *
 * Keeping the process alive: a pending `setImmediate` that is not ref'd does not keep the event
 * loop from blocking in epoll, so the polling immediate must be ref'd, and a ref'd immediate
 * keeps the process alive. A window keeps it alive for at most `spinNs` after the last traffic.
 * Spin mode lets go for one turn after `SPIN_IDLE_CHECK_MS` without records: it arms the doorbell
 * and sets an unref'd timer; a process with nothing else to do exits then (an idle ring never
 * holds a process open, as with the doorbells), any other process resumes polling when the timer
 * fires (or at once, through the doorbell, when records come).
 *
 * All readers of the process share one polling immediate. Each read takes at most
 * `READS_PER_WAKEUP` batches before the event loop gets a turn. Threading: the JS thread only.
 */

import { type OnReadOpts, Socket, type SocketConstructorOpts } from 'node:net';
import { performance } from 'node:perf_hooks';
import { type DiscoError, LinkClosedError, PeerDeadError } from '../errors.js';
import {
  NativeStatus,
  openRingConsumer,
  ringStatusError,
  RingEvent,
  type NativeRingConsumer,
  type RingDoorbellOptions,
  type RingEventCode,
  type RingPollWords,
} from '../native.js';
import { BatchReader } from '../native-batch.js';

/** Default polling window after traffic, before the reader sleeps (`spinNs`). */
export const RING_POLL_NS = 50_000;
/**
 * Longest a turn of the poller checks its rings before it yields to the event loop. One check
 * per turn would cost a whole turn (about 4 µs here) per hop; checking for a slice of a turn
 * sees records within a fraction of a microsecond, and timers and I/O still run every slice.
 */
export const POLL_SLICE_NS = 20_000;
/** A reader whose window shrank to nothing polls one full window again after this many sleeps. */
export const POLL_PROBE_SLEEPS = 16;
/** Most batches read before yielding to the event loop. */
export const READS_PER_WAKEUP = 16;
/** Most bytes one read takes from a ring. */
export const READ_BATCH_BYTES = 16 * 1024 * 1024;
/** Spin mode: polling without records this long lets go of the process for one turn. */
export const SPIN_IDLE_CHECK_MS = 100;
/** Bytes of the buffer the pipe doorbell's bytes are read into (their value is not used). */
const BELL_READ_BYTES = 64;
/** POLL_SLICE_NS in the unit of performance.now(). */
const POLL_SLICE_MS = POLL_SLICE_NS / 1e6;
/** Checks between two reads of the clock (a read costs about 0.1 µs here). */
const CHECKS_PER_CLOCK = 16;

/** What a RingReader reports. */
export interface RingReaderHandlers {
  /** One verified, decoded batch; valid during the call only (released right after). */
  onBatch(reader: BatchReader): void;
  /** The ring failed (corrupt record, dead producer, doorbell error); reading stops. */
  onError(err: DiscoError): void;
}

type State = 'polling' | 'sleeping' | 'done';

/** The process's one polling loop over every polling reader. */
class Poller {
  private readonly readers = new Set<RingReader>();
  private scheduled = false;
  private readonly tickFn = (): void => this.tick();

  add(reader: RingReader): void {
    this.readers.add(reader);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.tickFn);
    }
  }

  remove(reader: RingReader): void {
    this.readers.delete(reader);
  }

  /** One turn: checks every polling reader for up to POLL_SLICE_MS, then yields the loop. */
  private tick(): void {
    this.scheduled = false;
    let now = performance.now();
    const end = now + POLL_SLICE_MS;
    try {
      for (let checks = 1; this.readers.size > 0; checks++) {
        let polling = false;
        for (const reader of this.readers) if (reader.poll(now)) polling = true;
        if (!polling) break;
        if (checks % CHECKS_PER_CLOCK === 0) {
          now = performance.now();
          if (now >= end) break;
        }
      }
    } finally {
      // Also after a handler threw: the other readers keep polling.
      if (this.readers.size > 0 && !this.scheduled) {
        this.scheduled = true;
        setImmediate(this.tickFn);
      }
    }
  }
}

const poller = new Poller();

/** Reads one inbound ring; see the file header. */
export class RingReader {
  private readonly reader = new BatchReader();
  private readonly consumer: NativeRingConsumer;
  private readonly words: RingPollWords;
  /** The configured window (`spinNs`), and the one in use (see `missed()`), in ms. */
  private readonly maxWindowMs: number;
  private windowMs: number;
  private readonly spinMode: boolean;
  private bell: Socket | null = null;
  private state: State = 'polling';
  private pollUntil = 0;
  private lastRecords = 0;
  private sleeps = 0;
  private resumeTimer: NodeJS.Timeout | null = null;
  private isPaused = false;

  /**
   * Opens the consumer end of ring `ring` and starts reading (records may already wait).
   * @throws as `openRingConsumer`; RangeError for a `spinNs` that is not a number from 0 to 1e9.
   */
  constructor(
    readonly ring: string,
    options: RingDoorbellOptions | undefined,
    private readonly handlers: RingReaderHandlers,
  ) {
    const spinNs = options?.spinNs ?? RING_POLL_NS;
    if (!(spinNs >= 0 && spinNs <= 1e9)) {
      throw new RangeError(
        `spinNs ${String(spinNs)} of ring ${ring} is not a number of nanoseconds from 0 to 1e9`,
      );
    }
    this.maxWindowMs = spinNs / 1e6;
    this.windowMs = this.maxWindowMs;
    this.spinMode = options?.spinMode === true;
    this.consumer = openRingConsumer(ring, (ev: RingEventCode) => this.onEvent(ev), options);
    this.consumer.autoArm(false);
    this.words = this.consumer.pollWords();
    const fd = this.consumer.doorbellFd();
    if (fd >= 0) this.bell = this.watchBell(fd);
    this.sawTraffic(performance.now());
    poller.add(this); // records may already wait
  }

  /** True once the ring failed, the producer closed it and everything was read, or `close()`. */
  get done(): boolean {
    return this.state === 'done';
  }

  /** True while the reader waits for its doorbell (not polling). */
  get sleeping(): boolean {
    return this.state === 'sleeping';
  }

  /** Whether reading is paused (what peers write waits in the ring). */
  get paused(): boolean {
    return this.isPaused;
  }

  /** Stops reading; producers wait when the ring is full. */
  pause(): void {
    this.isPaused = true;
    poller.remove(this);
  }

  /** Resumes reading: what arrived meanwhile is read on the next turn. */
  resume(): void {
    if (!this.isPaused) return;
    this.isPaused = false;
    this.sawTraffic(performance.now());
    this.startPolling();
  }

  /**
   * This process expects records soon (it just sent something): poll for a window from now
   * instead of waiting for the doorbell. Cheap when already polling.
   */
  expectTraffic(): void {
    if (this.state === 'done' || this.isPaused) return;
    if (this.state === 'polling') {
      if (this.windowMs > 0) this.sawTraffic(performance.now());
      return;
    }
    if (this.windowMs > 0 || this.spinMode) {
      this.sawTraffic(performance.now());
      this.startPolling();
    }
  }

  /** Closes the consumer end and its doorbell; idempotent. */
  close(): void {
    this.finish();
    this.consumer.close();
  }

  /**
   * One check of the ring by the Poller, at time `now` (ms). True while the reader goes on
   * polling, false once it left the poller (asleep, paused, done).
   */
  poll(now: number): boolean {
    if (this.hasNews()) {
      this.windowMs = this.maxWindowMs; // polling paid off
      this.drain();
    } else if (this.spinMode) {
      if (now - this.lastRecords >= SPIN_IDLE_CHECK_MS) this.letGo();
    } else if (now >= this.pollUntil) {
      this.missed();
      this.sleep();
    }
    return this.state === 'polling' && !this.isPaused;
  }

  /** Records (or the producer's close) to read: tail differs from the read position. */
  private hasNews(): boolean {
    const w = this.words;
    return (
      Atomics.load(w.tail, 0) !== w.readPosition[0] ||
      Atomics.load(w.tail, 1) !== w.readPosition[1] ||
      Atomics.load(w.producerClosed, 0) !== 0
    );
  }

  /**
   * Reads what is there, at most READS_PER_WAKEUP batches, then decides how to wait. Each read
   * is preceded by a poll, so that an empty ring costs no call into the addon.
   */
  private drain(): void {
    let records = false;
    for (let n = 0; n < READS_PER_WAKEUP; n++) {
      if (this.state === 'done' || this.isPaused) return;
      const status = this.hasNews()
        ? this.reader.read(this.consumer, READ_BATCH_BYTES)
        : NativeStatus.RING_EMPTY;
      if (status === NativeStatus.OK) {
        records = true;
        try {
          this.handlers.onBatch(this.reader);
        } finally {
          this.reader.release(this.consumer);
        }
        continue;
      }
      if (records) this.sawTraffic(performance.now());
      if (status === NativeStatus.RING_EMPTY) {
        this.idle();
      } else if (status === NativeStatus.PEER_CLOSED) {
        this.finish();
      } else {
        this.fail(ringStatusError(status, this.ring));
      }
      return;
    }
    this.sawTraffic(performance.now()); // more may wait: the next turn reads on
    this.startPolling();
  }

  /** Traffic at `now`: the window runs from here. */
  private sawTraffic(now: number): void {
    this.lastRecords = now;
    let window = this.windowMs;
    // A window that shrank to nothing is tried again now and then: the machine may be quieter.
    if (window === 0 && this.sleeps % POLL_PROBE_SLEEPS === 0) window = this.maxWindowMs;
    if (now + window > this.pollUntil) this.pollUntil = now + window;
  }

  /**
   * A window passed without records. When the peer cannot run while this process polls (both
   * on one core: the machine is busy, or the scheduler put a woken peer next to its waker),
   * every window is lost time, so the window halves with each miss down to nothing (a sleeping
   * reader); records found by a poll restore it.
   */
  private missed(): void {
    this.windowMs = this.windowMs > this.maxWindowMs / 16 ? this.windowMs / 2 : 0;
  }

  /** The ring is empty: keep polling inside the window (or in spin mode), else sleep. */
  private idle(): void {
    if (this.spinMode || performance.now() < this.pollUntil) this.startPolling();
    else this.sleep();
  }

  /** Polls from the next turn on; an armed doorbell is taken back (producers stop ringing). */
  private startPolling(): void {
    if (this.state === 'done' || this.isPaused) return;
    if (this.state === 'sleeping') this.consumer.disarm();
    this.state = 'polling';
    poller.add(this);
  }

  /** Arms the doorbell and waits for it; reads at once if records came meanwhile. */
  private sleep(): void {
    poller.remove(this);
    this.state = 'sleeping';
    this.sleeps++;
    const status = this.consumer.arm();
    if (status === NativeStatus.OK) {
      this.state = 'polling'; // records came meanwhile: nothing armed, read them next turn
      poller.add(this);
    } else if (status !== NativeStatus.RING_EMPTY) {
      this.finish();
    }
  }

  /** Spin mode, idle: sleep, and resume polling after one turn unless the process exits. */
  private letGo(): void {
    this.sleep();
    if (this.state !== 'sleeping' || this.resumeTimer !== null) return;
    this.resumeTimer = setTimeout(() => {
      this.resumeTimer = null;
      this.lastRecords = performance.now();
      this.expectTraffic();
    }, 0);
    this.resumeTimer.unref();
  }

  /** A doorbell rang: read now (this is its own event-loop callback). */
  private wake(): void {
    if (this.state === 'done') return;
    this.drain();
  }

  private onEvent(ev: RingEventCode): void {
    if (ev === RingEvent.READY) {
      this.wake();
    } else if (this.state !== 'done') {
      this.drain(); // what the dead producer committed is complete and still delivered
      this.fail(new PeerDeadError(`ring ${this.ring}`, 'the producing process died'));
    }
  }

  /** Pipe doorbell: the producer writes a byte into a FIFO this event loop watches. */
  private watchBell(fd: number): Socket {
    // `onread` reads into one reused buffer, without the stream machinery: only the wake-up
    // counts. Node's Socket constructor takes it; @types/node declares it for connect() only.
    const options: SocketConstructorOpts & { onread: OnReadOpts } = {
      fd,
      readable: true,
      writable: false,
      onread: {
        buffer: Buffer.alloc(BELL_READ_BYTES),
        callback: () => {
          this.wake();
          return true; // keep reading (false would pause the socket)
        },
      },
    };
    const bell = new Socket(options);
    bell.on('error', (err: Error) =>
      this.fail(new LinkClosedError(`ring ${this.ring}`, `doorbell failed: ${err.message}`)),
    );
    bell.unref(); // like the futex doorbell, an idle ring never holds the process open
    return bell;
  }

  private finish(): void {
    if (this.state === 'done') return;
    this.state = 'done';
    poller.remove(this);
    if (this.resumeTimer !== null) clearTimeout(this.resumeTimer);
    this.resumeTimer = null;
    this.bell?.destroy();
    this.bell = null;
  }

  private fail(err: DiscoError): void {
    if (this.state === 'done') return;
    this.finish();
    this.consumer.close();
    this.handlers.onError(err);
  }
}
