/**
 * Checks for the arguments of `sendEvent` and `sendPromise` (the user-input
 * boundary). Each check either returns the value to put on the envelope or throws
 * InvalidArgumentError naming the argument, the value and what was expected.
 * They run before anything is queued, so a call that throws has sent nothing.
 */

import { EMPTY_HEADERS, type Headers, type Seqnr } from './envelope.js';
import { InvalidArgumentError } from './errors.js';

/** Largest promise count on the wire; itself legal, as the "pre-promise" marker. */
export const MAX_NUM_EVENTS = 2 ** 32 - 1;
/** Exclusive upper bound of a seqnr (uint64 on the wire). */
export const SEQNR_LIMIT = 2n ** 64n;
const SEQNR_LIMIT_NUMBER = 2 ** 64;

/** @throws {InvalidArgumentError} unless `epoch` is a finite number. */
export function checkEpoch(epoch: unknown): number {
  if (typeof epoch !== 'number' || !Number.isFinite(epoch)) {
    throw new InvalidArgumentError('epoch', epoch, 'a finite number');
  }
  return epoch;
}

/**
 * Accepts an integer in [0, 2^64) as a number or bigint; returns it as a number
 * when it is at most `Number.MAX_SAFE_INTEGER`, else as a bigint (see envelope.ts).
 * @throws {InvalidArgumentError} for negative, fractional, non-finite or too large values.
 */
export function checkSeqnr(seqnr: unknown): Seqnr {
  if (typeof seqnr === 'number') {
    if (Number.isSafeInteger(seqnr) && seqnr >= 0) return seqnr;
    if (Number.isInteger(seqnr) && seqnr > 0 && seqnr < SEQNR_LIMIT_NUMBER) return BigInt(seqnr);
  } else if (typeof seqnr === 'bigint') {
    if (seqnr >= 0n && seqnr < SEQNR_LIMIT) {
      return seqnr <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(seqnr) : seqnr;
    }
  }
  throw new InvalidArgumentError(
    'seqnr',
    seqnr,
    'an integer from 0 to 2^64 - 1 (number or bigint)',
  );
}

/** @throws {InvalidArgumentError} unless `n` is an integer from 0 to 2^32 - 1. */
export function checkNumEvents(n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > MAX_NUM_EVENTS) {
    throw new InvalidArgumentError('numEvents', n, 'an integer from 0 to 2^32 - 1');
  }
  return n;
}

/**
 * Accepts `undefined` or a plain object whose own values are all strings.
 * The object is carried by reference; do not change it after sending.
 * @throws {InvalidArgumentError} for any other value, naming the offending key.
 */
export function checkHeaders(headers: unknown): Headers {
  if (headers === undefined) return EMPTY_HEADERS;
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) {
    throw new InvalidArgumentError('headers', headers, 'an object of string values');
  }
  const record = headers as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (typeof record[key] !== 'string') {
      throw new InvalidArgumentError(
        `headers[${JSON.stringify(key)}]`,
        record[key],
        'a string (header values are strings)',
      );
    }
  }
  return record as Headers;
}
