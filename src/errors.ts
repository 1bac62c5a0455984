/**
 * Error classes of disco-transport (DESIGN §9).
 *
 * Every failure the library reports is a `DiscoError` subclass with a stable,
 * read-only `code`, so callers can branch on `err.code` (or `instanceof`) without
 * parsing messages. Messages say what was wrong, show the offending value and,
 * where there is one, what to do about it. Native statuses are turned into these
 * classes at the binding boundary (src/native.ts); nothing below throws raw strings.
 */

/** Stable codes, one per error class. */
export const ErrorCode = {
  INVALID_TARGET: 'ERR_INVALID_TARGET',
  UNKNOWN_NODE: 'ERR_UNKNOWN_NODE',
  INVALID_ARGUMENT: 'ERR_INVALID_ARGUMENT',
  MESSAGE_TOO_LARGE: 'ERR_MESSAGE_TOO_LARGE',
  BACKPRESSURE: 'ERR_BACKPRESSURE',
  LINK_CLOSED: 'ERR_LINK_CLOSED',
  PEER_DEAD: 'ERR_PEER_DEAD',
  FRAME_CORRUPT: 'ERR_FRAME_CORRUPT',
  TIMEOUT: 'ERR_TIMEOUT',
  TOPOLOGY: 'ERR_TOPOLOGY',
  SERIALIZATION: 'ERR_SERIALIZATION',
  UNDELIVERABLE: 'ERR_UNDELIVERABLE',
  JOB_FAILED: 'ERR_JOB_FAILED',
  STOPPED: 'ERR_STOPPED',
  NATIVE_UNAVAILABLE: 'ERR_NATIVE_UNAVAILABLE',
} as const;

/** Union of every code a `DiscoError` can carry. */
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Base class of every error this library throws or reports. */
export class DiscoError extends Error {
  /** Stable machine-readable code, e.g. `ERR_BACKPRESSURE`. */
  readonly code: ErrorCodeValue;

  constructor(code: ErrorCodeValue, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Renders a user-supplied value for an error message, bounded in length. */
export function describeValue(value: unknown): string {
  let text: string;
  if (typeof value === 'string') text = JSON.stringify(value);
  else if (typeof value === 'bigint') text = `${value}n`;
  else if (typeof value === 'number' || typeof value === 'boolean' || value == null) {
    text = String(value);
  } else if (typeof value === 'function') text = '[function]';
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      // Cyclic or otherwise unserialisable: the type name is the best we can show.
      text = Object.prototype.toString.call(value);
    }
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** A target string that is not `"<node>/<simproc>"` with a known simproc. */
export class InvalidTargetError extends DiscoError {
  readonly target: unknown;
  constructor(target: unknown, reason: string) {
    super(ErrorCode.INVALID_TARGET, `invalid target ${describeValue(target)}: ${reason}`);
    this.target = target;
  }
}

/** No transport handles the target node for this replication. */
export class UnknownNodeError extends DiscoError {
  readonly repid: number;
  readonly node: string;
  constructor(repid: number, node: string, transports: readonly string[]) {
    super(
      ErrorCode.UNKNOWN_NODE,
      `no transport handles node ${describeValue(node)} (repid ${repid}); ` +
        `tried ${transports.length > 0 ? transports.join(', ') : 'no transports'}. ` +
        'Check the node name against the topology.',
    );
    this.repid = repid;
    this.node = node;
  }
}

/** An argument of a public call is out of its domain (NaN epoch, negative seqnr, ...). */
export class InvalidArgumentError extends DiscoError {
  readonly argument: string;
  readonly value: unknown;
  constructor(argument: string, value: unknown, expected: string) {
    super(
      ErrorCode.INVALID_ARGUMENT,
      `invalid ${argument} ${describeValue(value)}: expected ${expected}`,
    );
    this.argument = argument;
    this.value = value;
  }
}

/** A message is larger than the link or configuration allows. */
export class MessageTooLargeError extends DiscoError {
  readonly size: number;
  readonly limit: number;
  constructor(what: string, size: number, limit: number) {
    super(
      ErrorCode.MESSAGE_TOO_LARGE,
      `${what} is ${size} bytes, over the limit of ${limit} bytes`,
    );
    this.size = size;
    this.limit = limit;
  }
}

/** An outbound queue is at its hard limit; wait for `drained()` before sending more. */
export class BackpressureError extends DiscoError {
  readonly link: string;
  readonly limit: number;
  constructor(link: string, limit: number, unit: string) {
    super(
      ErrorCode.BACKPRESSURE,
      `outbound queue of ${link} is full (${limit} ${unit}); ` +
        'the message was not sent. Check `writable` and await `drained()` before sending more.',
    );
    this.link = link;
    this.limit = limit;
  }
}

/** The link was closed (by us, or after its reconnect deadline) before a message could go. */
export class LinkClosedError extends DiscoError {
  readonly link: string;
  /** Messages accepted for sending that were not acknowledged by the peer. */
  readonly unacknowledged: number;
  constructor(link: string, reason: string, unacknowledged = 0) {
    super(
      ErrorCode.LINK_CLOSED,
      `link ${link} is closed: ${reason}` +
        (unacknowledged > 0 ? ` (${unacknowledged} messages not acknowledged)` : ''),
    );
    this.link = link;
    this.unacknowledged = unacknowledged;
  }
}

/** The process at the other end of a link died. */
export class PeerDeadError extends DiscoError {
  readonly peer: string;
  constructor(peer: string, detail: string) {
    super(ErrorCode.PEER_DEAD, `peer ${peer} is dead: ${detail}`);
    this.peer = peer;
  }
}

/** Bytes from another process or machine failed verification; the link that carried them closes. */
export class FrameCorruptError extends DiscoError {
  readonly peer: string;
  readonly reason: string;
  constructor(peer: string, reason: string) {
    super(ErrorCode.FRAME_CORRUPT, `corrupt frame from ${peer}: ${reason}`);
    this.peer = peer;
    this.reason = reason;
  }
}

/** An operation did not finish before its deadline. */
export class TimeoutError extends DiscoError {
  readonly ms: number;
  constructor(what: string, ms: number) {
    super(ErrorCode.TIMEOUT, `${what} did not finish within ${ms} ms`);
    this.ms = ms;
  }
}

/** One problem found in a topology, with the path of the offending field. */
export interface TopologyIssue {
  /** Dotted path into the topology document, e.g. `machines[0].servers[1].nodes[2]`. */
  readonly path: string;
  readonly message: string;
}

/** A topology file or object is invalid; `issues` lists every problem found. */
export class TopologyError extends DiscoError {
  readonly issues: readonly TopologyIssue[];
  readonly source: string;
  constructor(source: string, issues: readonly TopologyIssue[]) {
    super(
      ErrorCode.TOPOLOGY,
      `invalid topology ${source}:\n` +
        issues.map((i) => `  - ${i.path || '(root)'}: ${i.message}`).join('\n'),
    );
    this.issues = issues;
    this.source = source;
  }
}

/** Data could not be serialized or deserialized by the configured Serializer. */
export class SerializationError extends DiscoError {
  constructor(what: string, cause: unknown) {
    super(
      ErrorCode.SERIALIZATION,
      `${what}: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
  }
}

/**
 * A received message could not be handed to an inbox and was dropped; reported on
 * the receiving NodeController's 'error' event, never silently.
 */
export class UndeliverableError extends DiscoError {
  readonly target: string;
  constructor(target: string, reason: string) {
    super(ErrorCode.UNDELIVERABLE, `message for ${target} dropped: ${reason}`);
    this.target = target;
  }
}

/** The native addon could not be loaded. */
export class NativeUnavailableError extends DiscoError {
  readonly path: string;
  constructor(path: string, cause: unknown) {
    super(
      ErrorCode.NATIVE_UNAVAILABLE,
      `cannot load the native addon at ${path}: ${cause instanceof Error ? cause.message : String(cause)}. ` +
        'Run `npm rebuild disco-transport` (needs cmake, g++, libflatbuffers-dev and libxxhash-dev).',
      { cause },
    );
    this.path = path;
  }
}

/**
 * Emits `err` as 'error' on `emitter`, or throws it asynchronously when nobody listens:
 * an error is never lost, and never thrown into the caller's stack.
 */
export function emitError(emitter: NodeJS.EventEmitter, err: unknown): void {
  if (emitter.listenerCount('error') > 0) emitter.emit('error', err);
  else
    process.nextTick(() => {
      throw err;
    });
}
