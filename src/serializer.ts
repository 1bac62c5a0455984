/**
 * Data <-> bytes for events that leave the process (SPEC A5, C3).
 *
 * The NodeController calls the serializer once per send, and only when the route
 * leaves the process; in-process delivery never serializes. A `Uint8Array` is never
 * given to the serializer: it travels as raw bytes (`DataFormat.Raw`) and the
 * receiver gets a `Uint8Array` with the same bytes.
 */

import { deserialize as v8Deserialize, serialize as v8Serialize } from 'node:v8';

/** Turns event data into bytes and back. Both sides of a link must use the same one. */
export interface Serializer {
  /**
   * Encodes `value` (never a Uint8Array: those bypass the serializer).
   * @throws when the value cannot be encoded; the send then fails as a whole.
   */
  serialize(value: unknown): Uint8Array;
  /**
   * Decodes what `serialize` produced on the peer.
   * @throws when the bytes are not a valid encoding.
   */
  deserialize(bytes: Uint8Array): unknown;
}

/**
 * The default serializer: V8's structured-clone format, so everything
 * `structuredClone` accepts round-trips (objects, arrays, Map, Set, Date, RegExp,
 * bigint, typed arrays, ArrayBuffer, Error). Functions and symbols throw.
 */
export class StructuredCloneSerializer implements Serializer {
  serialize(value: unknown): Uint8Array {
    return v8Serialize(value);
  }

  deserialize(bytes: Uint8Array): unknown {
    return v8Deserialize(bytes);
  }
}

/** The process-wide default instance (stateless, so sharing it is safe). */
export const defaultSerializer: Serializer = new StructuredCloneSerializer();
