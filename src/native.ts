/**
 * The one loader and the typed surface of the native addon (STYLE §2).
 *
 * Only this file loads `disco_native.node`; everything else imports the functions below. The
 * addon is loaded lazily on first use from `build/Release/disco_native.node` under the package
 * root, or from the path in the `DISCO_NATIVE_PATH` environment variable (the sanitizer build
 * uses it). A missing or stale build becomes a `NativeUnavailableError`.
 *
 * Invariants:
 * - `NativeStatus` mirrors native/status.h and the `FRAME_*` constants mirror native/frame.h;
 *   test/native/verifier.test.ts fails when either side changes alone.
 * - Verification outcomes are numbers (statuses); only misuse of the addon throws TypeError.
 *   Functions here turn a failed status into the error classes of src/errors.ts.
 * - TypeScript has no FlatBuffers verifier: every frame that came from another process or
 *   machine goes through `assertFrame` or `verifyBatch` before anything decodes it (STYLE §9).
 *
 * Shared-memory rings (native/ring.h): `createRing`, `unlinkRing` and `removeStaleRings` manage
 * segments; `openRingProducer` / `openRingConsumer` return the two ends, whose per-batch calls
 * return statuses (`RING_FULL`, `RING_EMPTY` are outcomes, not errors). How a link drives them:
 *
 * - Producer: fill a `BatchWriter` (src/native-batch.ts), then `producer.writeBatch(staging,
 *   payloads)`. `OK`: written. `WRITE_PENDING`: taken, but larger than a record; its remaining
 *   chunks go in through `flush()` as space frees. `RING_FULL`: nothing taken; keep the batch,
 *   call `notifyWhenWritable(bytes)` and retry on the next `RingEvent.READY`. Any other status
 *   fails the link (`ringStatusError`).
 * - Consumer: on `RingEvent.READY`, read with a `BatchReader` until `RING_EMPTY` (bounded per
 *   wake-up; yield with `setImmediate` when the bound is hit). `RING_EMPTY` re-arms the doorbell
 *   by itself. `PEER_CLOSED`: the producer closed and everything was read. A reader that polls
 *   (src/transports/ring-reader.ts) turns that off (`autoArm(false)`), checks `pollWords()`
 *   with `Atomics.load` between reads, and calls `arm()` when it goes to sleep.
 * - `RingEvent.PEER_DEAD` arrives once, within 100 ms of the peer's death; records committed
 *   before it can still be read. The callbacks never keep the process alive.
 *
 * Links that are not rings (gRPC) use the same builder into JS memory: `encodeBatch` with a
 * `createBatchEncoder()`, and `BatchReader.decode` with a `createFrameDecoder()` on receipt.
 *
 * Callers: transports (frame verification and sealing, rings), the runtime (segments),
 * benchmarks (`noop`), native tests.
 */
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  type DiscoError,
  FrameCorruptError,
  InvalidArgumentError,
  LinkClosedError,
  MessageTooLargeError,
  NativeUnavailableError,
  PeerDeadError,
} from './errors.js';

/** Environment variable naming another build of the addon (absolute, or relative to the cwd). */
export const NATIVE_PATH_ENV = 'DISCO_NATIVE_PATH';

/** Bytes of the frame header (magic, body length, checksum) before the FlatBuffers body. */
export const FRAME_HEADER_BYTES = 16;

/** Smallest frame: the header plus a FlatBuffers root offset and the 4-byte identifier. */
export const FRAME_MIN_BYTES = 24;

/**
 * Alignment a frame's first byte must have in memory. Node's `Buffer.alloc` and fresh
 * `ArrayBuffer`s satisfy it; a view at an odd offset verifies as `BAD_ALIGNMENT`.
 */
export const FRAME_ALIGNMENT_BYTES = 8;

/** Largest FlatBuffers body a frame may carry: 1 GiB of message plus 1 MiB of envelope. */
export const FRAME_MAX_BODY_BYTES = 2 ** 30 + 2 ** 20;

/** Version of the frame layout this code reads and writes; the addon must report the same. */
export const FRAME_LAYOUT_VERSION = 1;

/** Outcomes of native calls, as native/status.h numbers them. */
export const NativeStatus = {
  OK: 0,
  TOO_SHORT: 1,
  BAD_LENGTH: 2,
  BAD_MAGIC: 3,
  CHECKSUM_MISMATCH: 4,
  BAD_IDENTIFIER: 5,
  VERIFY_FAILED: 6,
  TOO_LARGE: 7,
  BAD_ALIGNMENT: 8,
  INVALID_ARGUMENT: 9,
  RING_FULL: 10,
  RING_EMPTY: 11,
  CORRUPT_RECORD: 12,
  PEER_DEAD: 13,
  PEER_CLOSED: 14,
  SEGMENT_EXISTS: 15,
  SEGMENT_NOT_FOUND: 16,
  BAD_SEGMENT: 17,
  BAD_NAME: 18,
  ROLE_TAKEN: 19,
  ROLE_ABANDONED: 20,
  SYSTEM_ERROR: 21,
  BAD_BATCH: 22,
  OUTPUT_TOO_SMALL: 23,
  WRITE_PENDING: 24,
  NO_MEMORY: 25,
  BOUND_EXCEEDED: 26,
  CLOSED: 27,
  PAYLOAD_DETACHED: 28,
} as const;

/** Name of a native status, e.g. `'BAD_MAGIC'`. */
export type NativeStatusName = keyof typeof NativeStatus;

/** Numeric value of a native status. */
export type NativeStatusCode = (typeof NativeStatus)[NativeStatusName];

/** Versions the addon was built with. */
export interface NativeVersions {
  /** FlatBuffers C++ headers, e.g. `'2.0.8'`. */
  readonly flatbuffers: string;
  /** Node-API version the addon targets. */
  readonly napi: number;
  /** Frame layout version (native/frame.h `kFrameLayoutVersion`). */
  readonly layout: number;
  /**
   * V8 version of the headers the addon was built with (`'11.3.244.8'`), or `''` when the
   * build found none for this Node: views of 1 MiB and more are then counted as V8 external
   * memory, and every message over 64 MiB costs a full garbage collection (README, Shared-memory rings).
   */
  readonly v8Headers: string;
}

/** Frame constants as native/frame.h defines them. */
export interface NativeFrameLayout {
  readonly version: number;
  readonly headerBytes: number;
  readonly minFrameBytes: number;
  readonly alignmentBytes: number;
  readonly maxBodyBytes: number;
}

/** Version of the ring segment layout (native/ring.h); the addon must report the same. */
export const RING_LAYOUT_VERSION = 1;

/** Bytes of a ring segment's header page, before its data area. */
export const RING_HEADER_BYTES = 4096;

/** Smallest ring data area: 64 KiB. Capacities are powers of two. */
export const RING_MIN_CAPACITY_BYTES = 2 ** 16;

/** Largest ring data area: 4 GiB. */
export const RING_MAX_CAPACITY_BYTES = 2 ** 32;

/** Bytes of a ring record's header. */
export const RING_RECORD_HEADER_BYTES = 16;

/** Largest message a ring carries (chunked when larger than a record): a 1 GiB payload's frame. */
export const RING_MAX_MESSAGE_BYTES = 2 ** 30 + 2 ** 20 + 16;

/** Longest segment name. Names are `[A-Za-z0-9_.-]`, not starting with a dot. */
export const SEGMENT_NAME_MAX_BYTES = 200;

const SEGMENT_NAME_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;

/** What a ring end's `onEvent` callback receives. */
export const RingEvent = {
  /** Consumer: records to read (or the producer closed). Producer: the space asked for is free. */
  READY: 0,
  /** The process at the other end died; reported once. */
  PEER_DEAD: 1,
} as const;

/** A `RingEvent` value. */
export type RingEventCode = (typeof RingEvent)[keyof typeof RingEvent];

/**
 * How a ring end waits. `doorbell` and `livenessMs` go to the addon (native/doorbell.h);
 * `spinNs` and `spinMode` are the JS reader's idle strategy (src/transports/ring-reader.ts),
 * which the addon ignores.
 */
export interface RingDoorbellOptions {
  /**
   * Consumer only. `'futex'` (the addon's default): a native thread sleeps on a futex in the
   * segment and wakes JS through a threadsafe function. `'pipe'` (ShmTransport's default): the
   * producer writes a byte into a FIFO whose descriptor `doorbellFd()` hands to the event loop;
   * a native thread still watches liveness.
   */
  readonly doorbell?: 'futex' | 'pipe';
  /**
   * Reader only: nanoseconds the reader keeps polling its ring from the event loop after
   * traffic (records read, or a send of this process) before it arms the doorbell and sleeps
   * (default `RING_POLL_NS`); 0 sleeps at once.
   */
  readonly spinNs?: number;
  /** Reader only: poll for as long as the ring is open, never sleep (default false). */
  readonly spinMode?: boolean;
  /** Liveness check interval and longest sleep, 1..50 ms (default 50). */
  readonly livenessMs?: number;
}

/**
 * Words a reader polls with `Atomics.load`, without crossing into the addon (`pollWords()`):
 * the ring has something to read when `tail` differs from `readPosition` (both as low, high
 * u32 words; load the low word first) or `producerClosed[0]` is not 0.
 */
export interface RingPollWords {
  /** The segment's tail, a view over shared memory that the producer writes. */
  readonly tail: Uint32Array;
  /** The segment's producer_closed flag. */
  readonly producerClosed: Uint32Array;
  /** This end's read position, kept current by `readBatch`. */
  readonly readPosition: Uint32Array;
}

/** Ring positions (bytes since creation) as one end sees them. */
export interface RingState {
  readonly head: number;
  readonly tail: number;
  readonly capacity: number;
}

/** The writing end of a ring (one producer process per ring). Statuses are `NativeStatus` codes. */
export interface NativeRingProducer {
  /**
   * Builds the staging layout's frame straight into a ring record (or chunks it when larger than
   * a record). `OK`, `WRITE_PENDING` (taken; call `flush()` as space frees), `RING_FULL` (nothing
   * taken, retry the same staging later), `PEER_DEAD`, `PEER_CLOSED`, `CLOSED`, `BAD_BATCH`,
   * `TOO_LARGE`, `CORRUPT_RECORD`. Drops an outstanding `reserve()`. The producer keeps one string
   * table per lane (the header's lane word picks it): one BatchWriter per lane.
   *
   * @throws TypeError when `staging` is not a Uint8Array or `payloads` not an array of them.
   */
  writeBatch(staging: Uint8Array, payloads?: readonly Uint8Array[]): number;
  /** Copies one sealed frame into the ring (chunked when larger than a record); as `writeBatch`. */
  writeFrame(frame: Uint8Array): number;
  /**
   * Reserves a record of `bytes` and returns a view over it to write one sealed frame into (zero
   * copies), or a status (`RING_FULL`, `TOO_LARGE` above `maxContentBytes`, ...). The view is
   * detached by `commit`, `abandon`, any write and `close`.
   */
  reserve(bytes: number): Uint8Array | number;
  /** Publishes the reserved record holding a sealed frame of `length` bytes at its start. */
  commit(length: number): number;
  /** Drops the reservation. */
  abandon(): void;
  /** Writes more chunks of a pending message: `OK` when none is left, else `WRITE_PENDING`. */
  flush(): number;
  /**
   * Arms one `RingEvent.READY` for when `bytes` are free (at once if they are). The wait alone
   * does not keep the process alive: a link holding queued data calls `keepAlive(true)` until it
   * has written it.
   */
  notifyWhenWritable(bytes: number): void;
  /**
   * Whether this end's event callback keeps the event loop alive (default false: an idle ring
   * never holds a process open).
   *
   * @throws TypeError when `on` is not a boolean.
   */
  keepAlive(on: boolean): void;
  /** Free bytes in the ring now. */
  freeBytes(): number;
  /** `OK`, `PEER_DEAD` or `PEER_CLOSED` for the consumer end. */
  checkPeer(): number;
  state(): RingState;
  /** Marks the ring closed for the consumer, stops the doorbell; idempotent. */
  close(): void;
  /** Largest record content: half the ring minus the record header. */
  readonly maxContentBytes: number;
  /** True while a chunked message waits for space. */
  readonly pending: boolean;
  readonly closed: boolean;
}

/** The output arrays of a decode (layout in native/batch.h), as `bindOutput` allocates them. */
export interface NativeBatchOutput {
  readonly summary: Uint32Array;
  readonly frames: Uint32Array;
  readonly envelopes: Uint32Array;
  readonly epochs: Float64Array;
  readonly headers: Uint32Array;
  readonly strings: Uint32Array;
}

/** A native end that decodes into arrays it allocates (a ring consumer, a frame decoder). */
export interface NativeBoundOutput {
  /**
   * Allocates output arrays with room for that many envelopes, header pairs, new strings and
   * frames, and makes the one-argument read or decode fill them from now on (no arrays to check
   * per call). Called again, e.g. to grow after `OUTPUT_TOO_SMALL`, it replaces them: the arrays
   * returned before are not written any more.
   *
   * @throws TypeError for counts that are not integers in range (envelopes and frames >= 1).
   */
  bindOutput(
    envelopes: number,
    headers: number,
    strings: number,
    frames: number,
  ): NativeBatchOutput;
}

/** The reading end of a ring (one consumer process per ring). */
export interface NativeRingConsumer extends NativeBoundOutput {
  /** As the seven-argument form, into the arrays of `bindOutput`. @throws TypeError before it. */
  readBatch(maxBytes: number): Uint8Array | number;
  /**
   * Releases the previous batch, reads the next one, verifies and decodes its frames into the
   * output arrays (layout in native/batch.h, read by `BatchReader`), and returns one view over
   * the batch's bytes, or a status: `RING_EMPTY` (the doorbell is re-armed unless `autoArm(false)`), `PEER_CLOSED`,
   * `OUTPUT_TOO_SMALL` (grow the arrays as the summary says), a verification status or
   * `CORRUPT_RECORD` (the link is bad), `CLOSED`.
   *
   * @throws TypeError for arrays of the wrong type, too short, or sharing memory.
   */
  readBatch(
    summary: Uint32Array,
    frames: Uint32Array,
    envelopes: Uint32Array,
    epochs: Float64Array,
    headers: Uint32Array,
    strings: Uint32Array,
    maxBytes: number,
  ): Uint8Array | number;
  /** Detaches the batch's view (later use throws) and gives its bytes back to the producer. */
  release(): void;
  /** Pipe doorbell: a new descriptor of the FIFO for the event loop to watch (caller closes it); -1 otherwise. */
  doorbellFd(): number;
  /** As `NativeRingProducer.keepAlive`: default false. */
  keepAlive(on: boolean): void;
  /** The words a poll from JS reads; see `RingPollWords`. Each call returns fresh views. */
  pollWords(): RingPollWords;
  /**
   * Whether a `readBatch` that finds the ring empty arms the doorbell (default true). A reader
   * that polls turns it off and calls `arm()` when it stops polling.
   *
   * @throws TypeError when `on` is not a boolean.
   */
  autoArm(on: boolean): void;
  /**
   * Arms the doorbell: `RING_EMPTY` when armed (one `RingEvent.READY`, or a byte on the pipe,
   * comes when records arrive or the producer closes), `OK` when records arrived meanwhile
   * (read them; nothing is armed), `CLOSED`.
   */
  arm(): number;
  /**
   * Takes an arm back, so that a producer stops paying for wake-ups while this end polls. A
   * wake-up already on its way still comes.
   */
  disarm(): void;
  /** `OK` or `PEER_DEAD` for the producer end. */
  checkPeer(): number;
  state(): RingState;
  /** Releases the batch, marks the ring closed for the producer, stops the doorbell; idempotent. */
  close(): void;
  readonly closed: boolean;
}

/** Staging layout -> sealed frame in JS memory, with its own string table (one per link). */
export interface NativeBatchEncoder {
  /**
   * The sealed frame (8-byte aligned view, with at least 8 unused bytes of its buffer in front,
   * where a link may put a message lead) or a status (`BAD_BATCH`, `TOO_LARGE`).
   */
  encode(staging: Uint8Array, payloads?: readonly Uint8Array[]): Uint8Array | number;
  /**
   * Builds the sealed frame straight into `out[start..end)`, ending at `end`, and returns the
   * index where it begins (>= start) when its bound fits there; else returns it in fresh memory
   * as `encode` does. A failure returns minus its status. `start` and `end` point at 8-byte
   * aligned memory; bytes of the region outside the frame may be overwritten.
   */
  encodeInto(
    staging: Uint8Array,
    payloads: readonly Uint8Array[],
    out: Uint8Array,
    start: number,
    end: number,
  ): Uint8Array | number;
}

/** Verifies one frame in JS memory and decodes it like `readBatch` (offsets relative to it). */
export interface NativeFrameDecoder extends NativeBoundOutput {
  /** As the seven-argument form, into the arrays of `bindOutput`. @throws TypeError before it. */
  decode(frame: Uint8Array): number;
  decode(
    frame: Uint8Array,
    summary: Uint32Array,
    frames: Uint32Array,
    envelopes: Uint32Array,
    epochs: Float64Array,
    headers: Uint32Array,
    strings: Uint32Array,
  ): number;
}

/** Ring constants as native/ring.h defines them. */
export interface NativeRingLayout {
  readonly version: number;
  readonly headerBytes: number;
  readonly minCapacity: number;
  readonly maxCapacity: number;
  readonly recordHeaderBytes: number;
  readonly maxMessageBytes: number;
  readonly maxNameBytes: number;
}

/** Batch layout constants as native/batch.h defines them (mirrored in src/native-batch.ts). */
export interface NativeBatchLayout {
  readonly magic: number;
  readonly version: number;
  readonly headerBytes: number;
  readonly envelopeFixedBytes: number;
  readonly summaryWords: number;
  readonly frameWords: number;
  readonly envelopeWords: number;
  readonly noString: number;
  readonly stringSoftEntries: number;
  readonly stringSoftBytes: number;
  readonly stringHardEntries: number;
  readonly stringHardBytes: number;
}

/** Test support compiled into the addon (native/frame_testing.h). */
export interface NativeTesting {
  /** A sealed frame built by C++ with the fixed values documented in native/frame_testing.h. */
  buildSampleFrame(): Uint8Array;
  /**
   * Verifies `frame` and returns JSON of every field as C++ reads it (64-bit integers as
   * decimal strings). Throws an `Error` `"<STATUS>: <message>"` when verification fails.
   */
  describeFrame(frame: Uint8Array): string;
}

/** The addon's exports, exactly as native/binding.cc defines them. */
export interface NativeAddon {
  /** Status of one frame of exactly `frame.length` bytes. Throws TypeError unless a Uint8Array. */
  verifyFrame(frame: Uint8Array): number;
  /**
   * Verifies `buf[spans[2i] .. spans[2i] + spans[2i + 1])` for every pair in `spans`, writes each
   * status into `out[i]` and returns how many are OK. A span outside `buf` is INVALID_ARGUMENT
   * and is not read. Throws TypeError for wrong types, an odd `spans.length`, an `out` shorter
   * than `spans.length / 2`, or an `out` sharing memory with `buf` or `spans`.
   */
  verifyBatch(buf: Uint8Array, spans: Uint32Array, out: Int32Array): number;
  /** Writes the header over `frame[0..16)` for the body in `frame[16..)`; returns the status. */
  sealFrame(frame: Uint8Array): number;
  /** Name of a status code, or `'UNKNOWN'`. */
  statusName(code: number): string;
  /** Human explanation of a status code. */
  statusMessage(code: number): string;
  /** Does nothing: the cost of one boundary crossing, the benchmark baseline. */
  noop(): undefined;
  /** Creates a ring segment (mode 0600); a status. */
  ringCreate(name: string, capacity: number): number;
  /** Unlinks a ring segment and its pipe doorbell; a status. */
  ringUnlink(name: string): number;
  /** Unlinks segments under `prefix` whose creator is dead. */
  removeStaleSegments(prefix: string): { readonly status: number; readonly removed: number };
  /** Claims the producer end of ring `name`: the end, or a status. */
  openRingProducer(
    name: string,
    onEvent: (event: RingEventCode) => void,
    options?: RingDoorbellOptions,
  ): NativeRingProducer | number;
  /** Claims the consumer end of ring `name`: the end, or a status. */
  openRingConsumer(
    name: string,
    onEvent: (event: RingEventCode) => void,
    options?: RingDoorbellOptions,
  ): NativeRingConsumer | number;
  /** This process's identity as rings record it. */
  processIdentity(): { readonly pid: number; readonly startTicks: number };
  /** errno of the last `SYSTEM_ERROR` status in this thread's addon instance. */
  lastErrno(): number;
  /** Constructors, for `instanceof`; ring ends come from `openRing*` (direct `new` throws). */
  readonly RingProducer: abstract new () => NativeRingProducer;
  readonly RingConsumer: abstract new () => NativeRingConsumer;
  readonly BatchEncoder: new () => NativeBatchEncoder;
  readonly FrameDecoder: new () => NativeFrameDecoder;
  readonly statusCodes: Readonly<Record<string, number>>;
  readonly frameLayout: NativeFrameLayout;
  readonly ringLayout: NativeRingLayout;
  readonly batchLayout: NativeBatchLayout;
  readonly versions: NativeVersions;
  readonly testing: NativeTesting;
}

let addon: NativeAddon | undefined;

/**
 * Path the addon is (or will be) loaded from: `$DISCO_NATIVE_PATH` resolved against the current
 * directory, else `build/Release/disco_native.node` under the package root.
 */
export function nativeAddonPath(): string {
  const override = process.env[NATIVE_PATH_ENV];
  if (override !== undefined && override !== '') return resolve(override);
  // This file is src/native.ts in a checkout and dist/native.js when built: one level below
  // the package root either way.
  return fileURLToPath(new URL('../build/Release/disco_native.node', import.meta.url));
}

/**
 * The loaded addon, loading it on first call.
 *
 * @throws NativeUnavailableError when the file is missing, fails to load, or was built for
 *   another frame layout version (a stale build: run `npm rebuild disco-transport`).
 */
export function loadNative(): NativeAddon {
  if (addon !== undefined) return addon;
  const path = nativeAddonPath();
  let loaded: NativeAddon;
  try {
    loaded = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (err) {
    throw new NativeUnavailableError(path, err);
  }
  const layout = loaded.versions?.layout;
  const ringLayout = loaded.ringLayout?.version;
  if (layout !== FRAME_LAYOUT_VERSION || ringLayout !== RING_LAYOUT_VERSION) {
    throw new NativeUnavailableError(
      path,
      new Error(
        `the addon has frame layout version ${String(layout)} and ring layout version ` +
          `${String(ringLayout)}, expected ${FRAME_LAYOUT_VERSION} and ${RING_LAYOUT_VERSION}`,
      ),
    );
  }
  addon = loaded;
  return loaded;
}

/**
 * Status of the frame in `bytes` (exactly one frame, header included); `NativeStatus.OK` when it
 * may be decoded.
 *
 * @throws NativeUnavailableError when the addon cannot be loaded.
 * @throws TypeError when `bytes` is not a Uint8Array.
 */
export function verifyFrame(bytes: Uint8Array): NativeStatusCode {
  return loadNative().verifyFrame(bytes) as NativeStatusCode;
}

/**
 * Checks that `bytes` is one well-formed frame before anything decodes it.
 *
 * @param peer names the sender in the error, e.g. `'shm ring from server 3'`.
 * @throws FrameCorruptError (`reason` = `"<STATUS>: <message>"`) when verification fails; the
 *   caller closes the link that carried the frame.
 * @throws NativeUnavailableError when the addon cannot be loaded.
 * @throws TypeError when `bytes` is not a Uint8Array.
 */
export function assertFrame(bytes: Uint8Array, peer: string): void {
  const status = loadNative().verifyFrame(bytes);
  if (status !== NativeStatus.OK) throw frameStatusError(status, peer);
}

/**
 * The error of a frame that failed verification or decoding with `status`, naming `peer`:
 * FrameCorruptError, `reason` = `"<STATUS>: <message>"`.
 *
 * @throws NativeUnavailableError when the addon cannot be loaded.
 */
export function frameStatusError(status: number, peer: string): FrameCorruptError {
  const native = loadNative();
  return new FrameCorruptError(
    peer,
    `${native.statusName(status)}: ${native.statusMessage(status)}`,
  );
}

/**
 * Verifies many frames in one native call: `spans` holds `(offset, length)` pairs into `buf`;
 * each frame's status goes into `out[i]`. Returns how many frames are OK. A span that runs
 * outside `buf` gets `INVALID_ARGUMENT` and is not read.
 *
 * @throws TypeError for arguments of the wrong type, an odd `spans.length`, an `out` with fewer
 *   than `spans.length / 2` slots, or an `out` sharing memory with `buf` or `spans`.
 * @throws NativeUnavailableError when the addon cannot be loaded.
 */
export function verifyBatch(buf: Uint8Array, spans: Uint32Array, out: Int32Array): number {
  return loadNative().verifyBatch(buf, spans, out);
}

/**
 * Seals a frame in place: `bytes[0..16)` is reserved, `bytes[16..)` holds a finished FlatBuffers
 * `Frame` (identifier `'DSCO'`); writes magic, body length and checksum into the first 16 bytes.
 *
 * @throws InvalidArgumentError when `bytes` is shorter than `FRAME_MIN_BYTES`.
 * @throws MessageTooLargeError when the body is larger than `FRAME_MAX_BODY_BYTES`.
 * @throws NativeUnavailableError when the addon cannot be loaded.
 * @throws TypeError when `bytes` is not a Uint8Array.
 */
export function sealFrame(bytes: Uint8Array): void {
  const native = loadNative();
  const status = native.sealFrame(bytes);
  if (status === NativeStatus.OK) return;
  if (status === NativeStatus.TOO_LARGE) {
    throw new MessageTooLargeError(
      'frame body',
      bytes.length - FRAME_HEADER_BYTES,
      FRAME_MAX_BODY_BYTES,
    );
  }
  throw new InvalidArgumentError(
    'frame length',
    bytes.length,
    `at least ${FRAME_MIN_BYTES} bytes: ${FRAME_HEADER_BYTES} reserved for the header, then a FlatBuffers body ` +
      `(${native.statusName(status)})`,
  );
}

/**
 * Name of a native status code (`'BAD_MAGIC'`), or `'UNKNOWN'` for a number that is not one.
 *
 * @throws NativeUnavailableError when the addon cannot be loaded.
 */
export function nativeStatusName(code: number): string {
  return loadNative().statusName(code);
}

/**
 * The error a failed ring status stands for, naming the ring: `PeerDeadError` for a dead peer
 * (`PEER_DEAD`, `ROLE_ABANDONED`), `FrameCorruptError` for bytes that failed a check
 * (`CORRUPT_RECORD` and the frame verification statuses), `InvalidArgumentError` for a bad name,
 * capacity or argument, `MessageTooLargeError` for `TOO_LARGE`, `LinkClosedError` otherwise (with
 * errno for `SYSTEM_ERROR`).
 *
 * @throws NativeUnavailableError when the addon cannot be loaded.
 */
export function ringStatusError(status: number, ring: string): DiscoError {
  const native = loadNative();
  const reason = `${native.statusName(status)}: ${native.statusMessage(status)}`;
  switch (status) {
    case NativeStatus.PEER_DEAD:
    case NativeStatus.ROLE_ABANDONED:
      return new PeerDeadError(ring, reason);
    case NativeStatus.BAD_NAME:
      return new InvalidArgumentError(
        'segment name',
        ring,
        `1 to ${SEGMENT_NAME_MAX_BYTES} characters of A-Z a-z 0-9 _ . - not starting with a dot`,
      );
    case NativeStatus.INVALID_ARGUMENT:
      return new InvalidArgumentError(
        'ring argument',
        ring,
        `valid arguments (${reason}); capacities are powers of two from ` +
          `${RING_MIN_CAPACITY_BYTES} to ${RING_MAX_CAPACITY_BYTES} bytes`,
      );
    case NativeStatus.TOO_LARGE:
      return new MessageTooLargeError(`a message on ring ${ring}`, NaN, RING_MAX_MESSAGE_BYTES);
    case NativeStatus.SYSTEM_ERROR:
      return new LinkClosedError(ring, `${reason} (errno ${native.lastErrno()})`);
    default:
      if (status === NativeStatus.CORRUPT_RECORD || (status >= 1 && status <= 8)) {
        return new FrameCorruptError(`ring ${ring}`, reason);
      }
      return new LinkClosedError(ring, reason);
  }
}

/**
 * Name of the segment of the ring from `from` to `to` in `cluster`: `disco.<cluster>.<from>-<to>`.
 *
 * @throws InvalidArgumentError when the result is not a valid segment name.
 */
export function ringSegmentName(
  cluster: string,
  from: string | number,
  to: string | number,
): string {
  const name = `${clusterSegmentPrefix(cluster)}${from}-${to}`;
  if (name.length > SEGMENT_NAME_MAX_BYTES || !SEGMENT_NAME_PATTERN.test(name)) {
    throw new InvalidArgumentError(
      'ring name',
      name,
      `at most ${SEGMENT_NAME_MAX_BYTES} characters of A-Z a-z 0-9 _ . - (check the cluster and endpoint names)`,
    );
  }
  return name;
}

/**
 * Prefix shared by every segment of `cluster`: `disco.<cluster>.`, for `removeStaleRings`.
 *
 * @throws InvalidArgumentError when `cluster` is empty or not `[A-Za-z0-9_-]`.
 */
export function clusterSegmentPrefix(cluster: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(cluster) || cluster.length > SEGMENT_NAME_MAX_BYTES - 16) {
    throw new InvalidArgumentError('cluster name', cluster, 'a non-empty name of A-Z a-z 0-9 _ -');
  }
  return `disco.${cluster}.`;
}

/**
 * Creates the segment of ring `name` in /dev/shm (mode 0600) with a data area of
 * `capacityBytes`. The creator unlinks it (`unlinkRing`) when the cluster stops.
 *
 * @throws InvalidArgumentError for a bad name or capacity (a power of two, 64 KiB .. 4 GiB).
 * @throws LinkClosedError when the segment exists or the system refuses it (errno in the message).
 * @throws NativeUnavailableError when the addon cannot be loaded.
 */
export function createRing(name: string, capacityBytes: number): void {
  const status = loadNative().ringCreate(name, capacityBytes);
  if (status !== NativeStatus.OK) throw ringStatusError(status, name);
}

/**
 * Unlinks the segment of ring `name` (mappings stay valid until their ends close). Returns false
 * when there was none.
 *
 * @throws InvalidArgumentError for a bad name.
 * @throws LinkClosedError when the system refuses.
 * @throws NativeUnavailableError when the addon cannot be loaded.
 */
export function unlinkRing(name: string): boolean {
  const status = loadNative().ringUnlink(name);
  if (status === NativeStatus.SEGMENT_NOT_FOUND) return false;
  if (status !== NativeStatus.OK) throw ringStatusError(status, name);
  return true;
}

/**
 * Unlinks the segments under `prefix` (see `clusterSegmentPrefix`) whose creator process is dead,
 * and their pipe doorbells; returns how many entries went. Run at start-up so /dev/shm never
 * fills with leftovers.
 *
 * @throws InvalidArgumentError for a bad prefix.
 * @throws LinkClosedError when /dev/shm cannot be read.
 * @throws NativeUnavailableError when the addon cannot be loaded.
 */
export function removeStaleRings(prefix: string): number {
  const { status, removed } = loadNative().removeStaleSegments(prefix);
  if (status !== NativeStatus.OK) throw ringStatusError(status, prefix);
  return removed;
}

/**
 * Claims the producer end of ring `name`. `onEvent` gets `RingEvent.READY` once per
 * `notifyWhenWritable` (when the space is free) and `RingEvent.PEER_DEAD` once if the consumer
 * dies; it never keeps the process alive. Close the end when done.
 *
 * @throws PeerDeadError when a dead process held the end (ROLE_ABANDONED: recreate the ring).
 * @throws LinkClosedError when the ring is missing, malformed, taken by a live process, or closed.
 * @throws InvalidArgumentError for a bad name.
 * @throws TypeError for arguments of the wrong type.
 * @throws NativeUnavailableError when the addon cannot be loaded.
 */
export function openRingProducer(
  name: string,
  onEvent: (event: RingEventCode) => void,
  options?: RingDoorbellOptions,
): NativeRingProducer {
  const end = loadNative().openRingProducer(name, onEvent, options);
  if (typeof end === 'number') throw ringStatusError(end, name);
  return end;
}

/**
 * Claims the consumer end of ring `name`. `onEvent` gets `RingEvent.READY` after a `readBatch`
 * returned `RING_EMPTY` and records arrived (futex doorbell), and `RingEvent.PEER_DEAD` once if
 * the producer dies; it never keeps the process alive. Read once right after opening: records may
 * already be waiting. Close the end when done.
 *
 * @throws PeerDeadError when a dead process held the end (ROLE_ABANDONED: recreate the ring).
 * @throws LinkClosedError when the ring is missing, malformed, taken by a live process, or closed.
 * @throws InvalidArgumentError for a bad name.
 * @throws TypeError for arguments or options of the wrong type.
 * @throws NativeUnavailableError when the addon cannot be loaded.
 */
export function openRingConsumer(
  name: string,
  onEvent: (event: RingEventCode) => void,
  options?: RingDoorbellOptions,
): NativeRingConsumer {
  const end = loadNative().openRingConsumer(name, onEvent, options);
  if (typeof end === 'number') throw ringStatusError(end, name);
  return end;
}

/**
 * A staging-layout encoder into JS memory (for links that are not rings, such as gRPC, and for
 * tests), with its own string table: pair it with one `BatchWriter`.
 *
 * @throws NativeUnavailableError when the addon cannot be loaded.
 */
export function createBatchEncoder(): NativeBatchEncoder {
  return new (loadNative().BatchEncoder)();
}

/**
 * A decoder of single frames held in JS memory, with its own string table: pair it with one
 * `BatchReader` (its `decode`).
 *
 * @throws NativeUnavailableError when the addon cannot be loaded.
 */
export function createFrameDecoder(): NativeFrameDecoder {
  return new (loadNative().FrameDecoder)();
}

/**
 * Builds the sealed frame of a staging layout (see `BatchWriter.finish`) into a fresh buffer: the
 * same in-place builder the ring uses, over heap memory. The result is 8-byte aligned.
 *
 * @param link - names the link in errors.
 * @throws InvalidArgumentError (`BAD_BATCH`) for a malformed layout: a writer bug; reset its strings.
 * @throws MessageTooLargeError when the frame would exceed `FRAME_MAX_BODY_BYTES`.
 * @throws TypeError for arguments of the wrong type.
 */
export function encodeBatch(
  encoder: NativeBatchEncoder,
  staging: Uint8Array,
  payloads: readonly Uint8Array[],
  link: string,
): Uint8Array {
  const frame = encoder.encode(staging, payloads);
  if (typeof frame !== 'number') return frame;
  throw encodeStatusError(frame, staging, link);
}

/**
 * Builds the sealed frame of a staging layout into `out[start..end)` (8-byte aligned indexes),
 * ending at `end`, when its bound fits there, and returns the index where it begins; else
 * builds it into fresh memory and returns that (8-byte aligned). Throws as `encodeBatch`.
 */
export function encodeBatchInto(
  encoder: NativeBatchEncoder,
  staging: Uint8Array,
  payloads: readonly Uint8Array[],
  out: Uint8Array,
  start: number,
  end: number,
  link: string,
): Uint8Array | number {
  const r = encoder.encodeInto(staging, payloads, out, start, end);
  if (typeof r !== 'number' || r >= 0) return r;
  throw encodeStatusError(-r, staging, link);
}

function encodeStatusError(status: number, staging: Uint8Array, link: string): DiscoError {
  if (status === NativeStatus.BAD_BATCH) {
    return new InvalidArgumentError(
      'batch staging layout',
      link,
      'a layout written by the BatchWriter paired with this encoder (reset its strings)',
    );
  }
  if (status === NativeStatus.TOO_LARGE) {
    return new MessageTooLargeError(`a batch on ${link}`, staging.length, FRAME_MAX_BODY_BYTES);
  }
  return ringStatusError(status, link);
}
