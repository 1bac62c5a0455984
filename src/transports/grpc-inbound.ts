/**
 * GrpcInbound: the receiving half of gRPC links (DESIGN §6, §11). GrpcTransport
 * hands it every call its server accepts; it checks the caller, cuts the byte
 * stream into frames, verifies each, drops duplicates, hands envelopes over in
 * link_seq order and acks on the same call.
 *
 * Per sender incarnation (cluster, sender, session) it keeps `delivered`, the highest
 * link_seq handed over. It outlives calls: a sender that reconnects resends what it
 * has no ack for, and what was delivered already is dropped and counted.
 * - link_seq ≤ delivered: duplicate, dropped. link_seq = delivered + 1: delivered.
 *   The first frame of a session this receiver has not seen (it restarted, or the
 *   sender is new) starts the count. Any other link_seq is a gap: a protocol error.
 * - link_seq 0: the sender runs without reliability; delivered as it comes.
 * - Only the newest call of a session is read; an older one still open (its
 *   connection was cut and this side has not noticed yet) is cancelled, and frames
 *   that still arrive on it are ignored (never acknowledged, so the sender resends).
 * - Acks: an empty sealed frame with `ack = delivered`, at once when a call starts,
 *   then `ackDelayMs` after a delivery or after ACK_EVERY_FRAMES / ACK_EVERY_BYTES.
 * - A bad frame (verifier, header, size, gap) is reported as FrameCorruptError naming
 *   the sender and ends that call with DATA_LOSS, which fails the sender's link (a
 *   resend would repeat the same bytes); the process and the other calls carry on.
 * - Rate limit: a token bucket per sender; when it runs dry the call is paused
 *   (HTTP/2 flow control pushes back to the sender). Nothing is dropped.
 */

import { randomBytes } from 'node:crypto';
import {
  status as GrpcStatus,
  type Metadata,
  type ServerDuplexStream,
  type ServiceError,
} from '@grpc/grpc-js';
import { Lane, type Envelope } from '../envelope.js';
import { DiscoError, FrameCorruptError, LinkClosedError } from '../errors.js';
import { FRAME_HEADER_BYTES } from '../native.js';
import { tracerFor } from '../trace.js';
import { FrameReader, FrameWriter } from './batch-frames.js';
import { FrameStreamReader } from './frame-stream.js';
import { authorizeCall, type GrpcSecurityOptions } from './grpc-security.js';
import {
  CLUSTER_METADATA_KEY,
  MESSAGE_LEAD_BYTES,
  SENDER_METADATA_KEY,
  SESSION_METADATA_KEY,
} from './grpc-service.js';

const tracer = tracerFor('grpc');

/**
 * An ack goes at once after this many frames delivered since the last one. Request/response
 * traffic sends a frame per message: an ack per few round trips cost both ends a gRPC message
 * each, about a tenth of a round trip's time.
 */
const ACK_EVERY_FRAMES = 256;
/**
 * An ack goes at once after this many bytes delivered since the last one. The sender keeps
 * every frame until an ack covers it; the sooner it can let go, the younger its frames die.
 */
const ACK_EVERY_BYTES = 1024 * 1024;

type Call = ServerDuplexStream<Buffer, Buffer>;

const NO_ENVELOPES: readonly Envelope[] = [];

/** Receiving settings, resolved by the transport. */
export interface GrpcInboundConfig {
  readonly cluster: string;
  readonly self: string;
  readonly security: GrpcSecurityOptions | undefined;
  readonly maxFrameBytes: number;
  readonly ackDelayMs: number;
  readonly rateLimit: { messagesPerSecond: number; burst?: number } | undefined;
}

/** Inbound counters of one sender; plain data. */
export interface GrpcInboundCounters {
  framesReceived: number;
  duplicatesDropped: number;
  rejectedFrames: number;
  /** Times the rate limit paused reading this sender's call. */
  rateLimitPauses: number;
}

/** Receiver state of one sender incarnation. */
interface Session {
  readonly sender: string;
  readonly id: string;
  started: boolean;
  delivered: number;
  current: CallState | null;
}

/** One accepted call. */
interface CallState {
  readonly call: Call;
  readonly session: Session;
  readonly peer: string;
  unackedFrames: number;
  unackedBytes: number;
  ackTimer: NodeJS.Timeout | null;
  ackBlocked: boolean;
  closed: boolean;
}

/** Token bucket of one sender. */
interface Bucket {
  tokens: number;
  at: number;
}

/** Receiving side of every gRPC link of a transport; see the file header. */
export class GrpcInbound {
  private readonly sessions = new Map<string, Session>();
  private readonly counters = new Map<string, GrpcInboundCounters>();
  private readonly buckets = new Map<string, Bucket>();
  private readonly calls = new Set<CallState>();
  private readonly acks = new FrameWriter('grpc acks', MESSAGE_LEAD_BYTES);
  private readonly reader = new FrameReader();
  /** Reading is paused for the owner (pauseAll); the rate limit must not resume it. */
  private paused = false;

  constructor(
    private readonly config: GrpcInboundConfig,
    private readonly deliver: (env: Envelope) => void,
    private readonly report: (err: DiscoError) => void,
    /** Called once a frame's envelopes were delivered (what inboxes sent may leave now). */
    private readonly delivered: () => void = () => {},
  ) {}

  /** Per-sender counters, by sender identity. */
  stats(): ReadonlyMap<string, Readonly<GrpcInboundCounters>> {
    return this.counters;
  }

  /** The server handler of the streaming method. */
  readonly handle = (call: Call): void => {
    const sender = firstString(call.metadata, SENDER_METADATA_KEY);
    const session = firstString(call.metadata, SESSION_METADATA_KEY);
    const cluster = firstString(call.metadata, CLUSTER_METADATA_KEY);
    const who = `grpc:${sender ?? call.getPeer()}`;
    call.on('error', () => {
      // A cancelled or broken call: 'close' below cleans up; the sender reconnects.
    });
    if (sender === undefined || session === undefined || cluster === undefined) {
      this.refuse(call, who, GrpcStatus.INVALID_ARGUMENT, 'the call metadata lacks disco-*');
      return;
    }
    if (cluster !== this.config.cluster) {
      this.refuse(
        call,
        who,
        GrpcStatus.PERMISSION_DENIED,
        `the call is for cluster ${JSON.stringify(cluster)}, but ${this.config.self} serves ` +
          `cluster ${JSON.stringify(this.config.cluster)}; check the topology of ${sender}`,
      );
      return;
    }
    const auth = authorizeCall(call, this.config.security, sender);
    if (!auth.ok) {
      this.refuse(call, who, GrpcStatus.PERMISSION_DENIED, auth.reason);
      return;
    }
    this.accept(call, sender, session, who);
  };

  /** Ends every open call (the transport is closing). */
  closeAll(): void {
    for (const c of this.calls) this.endCall(c);
  }

  /** Stops reading every call, present and future, until `resumeAll` (a gateway's back-pressure). */
  pauseAll(): void {
    this.paused = true;
    for (const c of this.calls) c.call.pause();
  }

  /** Reverses `pauseAll`. */
  resumeAll(): void {
    this.paused = false;
    for (const c of this.calls) c.call.resume();
  }

  private refuse(call: Call, who: string, code: GrpcStatus, reason: string): void {
    this.report(new LinkClosedError(who, `refused an incoming call: ${reason}`));
    call.emit('error', { code, details: reason } as Partial<ServiceError>);
  }

  private accept(call: Call, sender: string, id: string, peer: string): void {
    const session = this.sessionOf(sender, id);
    const state: CallState = {
      call,
      session,
      peer,
      unackedFrames: 0,
      unackedBytes: 0,
      ackTimer: null,
      ackBlocked: false,
      closed: false,
    };
    const previous = session.current;
    session.current = state;
    if (previous !== null) this.endCall(previous, 'superseded by a newer call of the same sender');
    this.calls.add(state);
    if (this.paused) call.pause();
    if (!this.counters.has(sender)) {
      this.counters.set(sender, {
        framesReceived: 0,
        duplicatesDropped: 0,
        rejectedFrames: 0,
        rateLimitPauses: 0,
      });
    }
    if (tracer.enabled) tracer.log(`${peer}: call accepted, delivered ${session.delivered}`);
    const reader = new FrameStreamReader(
      peer,
      this.config.maxFrameBytes - FRAME_HEADER_BYTES,
      MESSAGE_LEAD_BYTES,
    );
    call.on('data', (chunk: Buffer) => {
      if (session.current !== state) return; // stale call: never acknowledged, so resent
      try {
        reader.push(chunk, (frame) => this.onFrame(state, frame));
      } catch (err) {
        this.reject(state, err);
      }
    });
    call.on('drain', () => {
      state.ackBlocked = false;
      this.sendAck(state);
    });
    call.on('end', () => this.endCall(state));
    call.on('close', () => this.dropCall(state));
    this.sendAck(state);
  }

  /** The session of (sender, id); a new one replaces that sender's idle older ones. */
  private sessionOf(sender: string, id: string): Session {
    const key = `${sender}\n${id}`;
    let s = this.sessions.get(key);
    if (s === undefined) {
      for (const [k, old] of this.sessions) {
        if (old.sender === sender && old.current === null) this.sessions.delete(k);
      }
      s = { sender, id, started: false, delivered: 0, current: null };
      this.sessions.set(key, s);
    }
    return s;
  }

  private onFrame(state: CallState, frame: Uint8Array): void {
    const r = this.reader;
    r.read(frame, state.peer); // verified before anything of it is read
    const seq = r.linkSeq;
    const session = state.session;
    const counters = this.counters.get(session.sender)!;
    if (seq !== 0) {
      if (!session.started) {
        session.started = true;
        session.delivered = seq - 1;
      }
      if (seq <= session.delivered) {
        counters.duplicatesDropped++;
        this.ackSoon(state, frame.length);
        return;
      }
      if (seq !== session.delivered + 1) {
        throw new FrameCorruptError(
          state.peer,
          `link_seq ${seq} after ${session.delivered}: frames are missing`,
        );
      }
      session.delivered = seq;
    }
    counters.framesReceived++;
    // Envelopes are built before any is delivered: a delivery may lead to another read.
    const count = r.count;
    const envelopes: Envelope[] = new Array<Envelope>(count);
    for (let i = 0; i < count; i++) envelopes[i] = r.envelope(i);
    for (const env of envelopes) this.deliver(env);
    this.delivered();
    if (seq !== 0) this.ackSoon(state, frame.length);
    if (this.config.rateLimit !== undefined) this.throttle(state, count);
  }

  private reject(state: CallState, err: unknown): void {
    const e = err instanceof DiscoError ? err : new FrameCorruptError(state.peer, String(err));
    const counters = this.counters.get(state.session.sender);
    if (counters !== undefined) counters.rejectedFrames++;
    this.report(e);
    this.endCall(state, `bad frame: ${e.message}`, GrpcStatus.DATA_LOSS);
  }

  private ackSoon(state: CallState, bytes: number): void {
    state.unackedFrames++;
    state.unackedBytes += bytes;
    if (state.unackedFrames >= ACK_EVERY_FRAMES || state.unackedBytes >= ACK_EVERY_BYTES) {
      this.sendAck(state);
    } else if (state.ackTimer === null) {
      state.ackTimer = setTimeout(() => this.sendAck(state), this.config.ackDelayMs);
    }
  }

  /** Writes `ack = delivered` on the call, unless its write buffer is full ('drain' retries). */
  private sendAck(state: CallState): void {
    if (state.ackTimer !== null) clearTimeout(state.ackTimer);
    state.ackTimer = null;
    if (state.closed || state.ackBlocked || state.session.current !== state) return;
    state.unackedFrames = 0;
    state.unackedBytes = 0;
    const frame = this.acks.encode(Lane.Promise, 0, state.session.delivered, NO_ENVELOPES, 0, 0);
    if (!state.call.write(frame)) {
      state.ackBlocked = true;
    }
  }

  /** Pauses the call while the sender's bucket is empty. */
  private throttle(state: CallState, messages: number): void {
    const { messagesPerSecond: rate, burst = rate } = this.config.rateLimit!;
    const now = Date.now();
    let b = this.buckets.get(state.session.sender);
    if (b === undefined) {
      b = { tokens: burst, at: now };
      this.buckets.set(state.session.sender, b);
    }
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) * rate) / 1000) - messages;
    b.at = now;
    if (b.tokens >= 0 || state.call.isPaused()) return;
    this.counters.get(state.session.sender)!.rateLimitPauses++;
    state.call.pause();
    setTimeout(
      () => {
        if (!this.paused) state.call.resume();
      },
      Math.ceil((-b.tokens * 1000) / rate),
    );
  }

  /** Ends a call: OK when it finished, `code` with `reason` otherwise. */
  private endCall(state: CallState, reason?: string, code = GrpcStatus.ABORTED): void {
    if (state.closed) return;
    this.sendAck(state); // what was delivered is acknowledged before the status, bad frame or not
    state.closed = true;
    if (state.ackTimer !== null) clearTimeout(state.ackTimer);
    state.ackTimer = null;
    if (state.session.current === state) state.session.current = null;
    if (reason === undefined) state.call.end();
    else state.call.emit('error', { code, details: reason } as Partial<ServiceError>);
  }

  private dropCall(state: CallState): void {
    state.closed = true;
    if (state.ackTimer !== null) clearTimeout(state.ackTimer);
    state.ackTimer = null;
    if (state.session.current === state) state.session.current = null;
    this.calls.delete(state);
  }
}

/** A metadata value as a string, or undefined when absent or binary. */
function firstString(md: Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/** A random 64-bit incarnation id, hex. */
export function newSessionId(): string {
  return randomBytes(8).toString('hex');
}
