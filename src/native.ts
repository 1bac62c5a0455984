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
 * Callers: transports (frame verification and sealing), benchmarks (`noop`), native tests.
 */
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  FrameCorruptError,
  InvalidArgumentError,
  MessageTooLargeError,
  NativeUnavailableError,
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
}

/** Frame constants as native/frame.h defines them. */
export interface NativeFrameLayout {
  readonly version: number;
  readonly headerBytes: number;
  readonly minFrameBytes: number;
  readonly alignmentBytes: number;
  readonly maxBodyBytes: number;
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
  readonly statusCodes: Readonly<Record<string, number>>;
  readonly frameLayout: NativeFrameLayout;
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
  if (layout !== FRAME_LAYOUT_VERSION) {
    throw new NativeUnavailableError(
      path,
      new Error(
        `the addon has frame layout version ${String(layout)}, expected ${FRAME_LAYOUT_VERSION}`,
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
  const native = loadNative();
  const status = native.verifyFrame(bytes);
  if (status !== NativeStatus.OK) {
    throw new FrameCorruptError(
      peer,
      `${native.statusName(status)}: ${native.statusMessage(status)}`,
    );
  }
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
