/**
 * GrpcTransport: links to other machines over gRPC (DESIGN §6), exactly once and in
 * FIFO order per lane across reconnects.
 *
 * - One long-lived bidirectional call per directed link (this process → peer), raw
 *   bytes, the same sealed FlatBuffers frames as every other link. The outbound half
 *   (sequence numbers, resend buffer, reconnects, deadline) is GrpcLink
 *   (grpc-link.ts); the inbound half (checks, dedup, acks, rate limit) is GrpcInbound
 *   (grpc-inbound.ts); the service definition and channel defaults are in
 *   grpc-service.ts; credentials and peer authorisation come from grpc-security.ts.
 * - Senders never see an outage: sends keep queuing (bounded, with back-pressure)
 *   while a link reconnects. A link with no established call for `peerDeadlineMs`
 *   fails with LinkClosedError, emitted as 'error'; later sends to that peer throw it.
 * - Received envelopes go to the LocalNode attached for (repid, target node);
 *   UndeliverableError when there is none. Every error is a DiscoError naming the peer.
 */

import { Server, type ChannelOptions } from '@grpc/grpc-js';
import { FRAME_HEADER_BYTES, FRAME_MAX_BODY_BYTES } from '../native.js';
import { tracerFor } from '../trace.js';
import { GrpcInbound, newSessionId } from './grpc-inbound.js';
import { GrpcLink } from './grpc-link.js';
import {
  channelCredentials,
  serverCredentials,
  type GrpcSecurityOptions,
} from './grpc-security.js';
import {
  clientChannelOptions,
  DEFAULT_CHUNK_BYTES,
  DEFAULT_RECEIVE_WINDOW_BYTES,
  HTTP2_MAX_WINDOW_BYTES,
  LINK_SERVICE,
  serverChannelOptions,
  setServerReceiveWindow,
} from './grpc-service.js';
import { LinkTransport } from './link-transport.js';
import type { LinkLimits } from './outbound-queue.js';
import type { Transport } from './transport.js';

const tracer = tracerFor('grpc');

/** Default time a link may go without an established call before it fails. */
export const DEFAULT_PEER_DEADLINE_MS = 30_000;
/** Default bytes of sent, unacknowledged frames a link keeps for resending. */
export const DEFAULT_RESEND_BUFFER_BYTES = 64 * 1024 * 1024;
/**
 * Default delay of an ack after a delivery (acks also go after enough frames or bytes): what
 * a sender's `flush()` may wait longer, against one ack message per this many ms each way.
 */
export const DEFAULT_ACK_DELAY_MS = 10;
/** Default first and largest wait before reopening a broken call (jittered, doubling). */
export const DEFAULT_RECONNECT_BACKOFF_MS = 50;
export const DEFAULT_RECONNECT_BACKOFF_MAX_MS = 2_000;
/** Default batching hold after a small frame. */
export const DEFAULT_FLUSH_DELAY_MS = 1;
/**
 * How long `close()` waits for acknowledgements before it ends the calls anyway, and how
 * long `flush()` and `close()` wait for a link that has no call (its peer looks gone).
 */
export const CLOSE_FLUSH_TIMEOUT_MS = 5_000;

/** Reliability settings of a GrpcTransport's links. */
export interface GrpcReliabilityOptions {
  /** Sequence numbers, acks, resends. Default true; false only for benchmarks. */
  enabled?: boolean;
  resendBufferBytes?: number;
  ackDelayMs?: number;
  /** Default 30000. */
  peerDeadlineMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
}

/** Options of a GrpcTransport. */
export interface GrpcTransportOptions {
  /** Sent in call metadata; a call for another cluster is refused. */
  cluster: string;
  /** This endpoint's link identity (e.g. the machine name), sent in call metadata. */
  self: string;
  /** `"host:port"`, port 0 lets the OS pick; omit for a send-only transport. */
  listenAddress?: string;
  /** Peer identity carrying (repid, node), or undefined when another transport's. Pure. */
  locate(repid: number, node: string): string | undefined;
  /** `"host:port"` of a peer identity. */
  addressOf(peer: string): string;
  /**
   * The name a peer's certificate must carry when it is not the host dialled (its
   * `serverNameOverride`, per peer); undefined to check the host. TLS only.
   */
  serverNameOf?(peer: string): string | undefined;
  security?: GrpcSecurityOptions;
  /** Passed to grpc-js as they are (compression, keepalive, message sizes), over our defaults. */
  channelOptions?: ChannelOptions;
  /** Bounds of each link's OutboundQueue. */
  limits?: LinkLimits;
  reliability?: GrpcReliabilityOptions;
  /** Batching hold after a small frame, ms (0 = none). Default 1. */
  flushDelayMs?: number;
  /** Largest gRPC message written (a frame up to 16 KiB over it goes whole); larger frames are sliced. Default 1 MiB. */
  chunkBytes?: number;
  /**
   * HTTP/2 receive window of the server, per call and per connection, bytes (65535 = HTTP/2's
   * default). What a sender may have in flight before the receiving process reads it. Default 4 MiB.
   */
  receiveWindowBytes?: number;
  /** Largest frame accepted from one peer. Default 1 GiB + headers. */
  maxFrameBytes?: number;
  /** Per inbound peer: reading pauses when exceeded (back-pressure); nothing is dropped. */
  rateLimit?: { messagesPerSecond: number; burst?: number };
}

/** Counters of one peer, both directions; plain data. */
export interface GrpcLinkMetrics {
  readonly peer: string;
  readonly framesSent: number;
  readonly bytesSent: number;
  /** Frames written again on a new call. */
  readonly resends: number;
  /** Calls opened after the first. */
  readonly reconnects: number;
  /** Messages accepted and not acknowledged (resend buffer and queue). */
  readonly unacknowledged: number;
  /** Messages the peer acknowledged. */
  readonly acked: number;
  readonly framesReceived: number;
  /** Frames received again after a reconnect and dropped. */
  readonly duplicatesDropped: number;
  /** Frames refused as corrupt (the call carrying them was cancelled). */
  readonly rejectedFrames: number;
  /** Times the inbound rate limit paused reading this peer. */
  readonly rateLimitPauses: number;
  /**
   * Bytes of frame memory taken again for new frames once the peer had acknowledged the frames
   * it held (0 with reliability off, whose frames are left to the garbage collector).
   */
  readonly frameBytesReused: number;
}

function positive(name: string, v: number | undefined, fallback: number, min = 1): number {
  const value = v ?? fallback;
  if (!Number.isFinite(value) || value < min) {
    throw new RangeError(`${name} must be a number ≥ ${min}, got ${value}`);
  }
  return value;
}

/** Cross-machine transport over gRPC; see the file header. */
export class GrpcTransport extends LinkTransport<GrpcLink> implements Transport {
  readonly name = 'grpc';
  /** Random id of this transport's incarnation, sent with every call. */
  readonly session = newSessionId();
  private readonly options: GrpcTransportOptions;
  private readonly inbound: GrpcInbound;
  private readonly chunkBytes: number;
  private readonly receiveWindowBytes: number;
  private server: Server | null = null;
  private shutdownDone: Promise<void> | null = null;
  /** Where envelopes are received, for UndeliverableError. */
  private readonly where: string;

  /** @throws {RangeError} for an option out of its domain. */
  constructor(options: GrpcTransportOptions) {
    super(options.locate, options.self);
    this.where = `by ${options.self}`;
    for (const [k, v] of [
      ['cluster', options.cluster],
      ['self', options.self],
    ] as const) {
      // Both travel as gRPC metadata values: printable ASCII only.
      if (!/^[\x20-\x7e]{1,200}$/.test(v)) {
        throw new RangeError(
          `${k} must be 1-200 printable ASCII characters, got ${JSON.stringify(v)}`,
        );
      }
    }
    this.options = options;
    this.chunkBytes = positive('chunkBytes', options.chunkBytes, DEFAULT_CHUNK_BYTES, 1024);
    this.receiveWindowBytes = positive(
      'receiveWindowBytes',
      options.receiveWindowBytes,
      DEFAULT_RECEIVE_WINDOW_BYTES,
      65_535,
    );
    if (this.receiveWindowBytes > HTTP2_MAX_WINDOW_BYTES) {
      throw new RangeError(
        `receiveWindowBytes must be at most ${HTTP2_MAX_WINDOW_BYTES}, got ${this.receiveWindowBytes}`,
      );
    }
    const r = options.reliability ?? {};
    this.inbound = new GrpcInbound(
      {
        cluster: options.cluster,
        self: options.self,
        security: options.security,
        maxFrameBytes: positive(
          'maxFrameBytes',
          options.maxFrameBytes,
          FRAME_MAX_BODY_BYTES + FRAME_HEADER_BYTES,
          FRAME_HEADER_BYTES + 1,
        ),
        ackDelayMs: positive('ackDelayMs', r.ackDelayMs, DEFAULT_ACK_DELAY_MS, 0),
        rateLimit: options.rateLimit,
      },
      (env) => this.deliverReceived(env, this.where),
      (err) => this.reportError(err),
      () => this.flushQueued(),
    );
    if (options.rateLimit !== undefined) {
      positive('rateLimit.messagesPerSecond', options.rateLimit.messagesPerSecond, 1);
      positive('rateLimit.burst', options.rateLimit.burst, options.rateLimit.messagesPerSecond);
    }
  }

  /**
   * Starts the server on `listenAddress`.
   * @returns the bound port (the OS's pick when the address has port 0).
   * @throws {RangeError} without a listenAddress; the bind error when the port is taken.
   */
  listen(): Promise<number> {
    const address = this.options.listenAddress;
    if (address === undefined) {
      return Promise.reject(new RangeError('listen() needs the listenAddress option'));
    }
    if (this.server !== null || this.closing) {
      return Promise.reject(new RangeError('listen() was called already, or after close()'));
    }
    const server = new Server(serverChannelOptions(this.chunkBytes, this.options.channelOptions));
    if (!setServerReceiveWindow(server, this.receiveWindowBytes) && tracer.enabled) {
      tracer.log(`${this.options.self}: this grpc-js has no hook for the receive window`);
    }
    server.addService(LINK_SERVICE, { Stream: this.inbound.handle });
    const host = address.slice(0, Math.max(0, address.lastIndexOf(':')));
    return new Promise((resolve, reject) => {
      server.bindAsync(address, serverCredentials(this.options.security, host), (err, port) => {
        if (err !== null) {
          server.forceShutdown();
          reject(err);
          return;
        }
        this.server = server;
        resolve(port);
      });
    });
  }

  pauseInbound(): void {
    this.inbound.pauseAll();
  }

  resumeInbound(): void {
    this.inbound.resumeAll();
  }

  /**
   * Resolves once the peers acknowledged everything accepted so far, their links failed, or
   * a link has had no call for CLOSE_FLUSH_TIMEOUT_MS (its peer looks gone: `Server.close()`
   * must not wait out the peer deadline). Nothing is dropped then: the link still delivers
   * it if the peer returns, or counts it in a LinkClosedError at its deadline or `close()`.
   */
  override async flush(): Promise<void> {
    await Promise.all([...this.links.values()].map((l) => l.flush(CLOSE_FLUSH_TIMEOUT_MS)));
  }

  /** Counters per peer (outbound link and inbound calls of that identity), sorted by peer. */
  linkMetrics(): GrpcLinkMetrics[] {
    const inbound = this.inbound.stats();
    const peers = new Set([...this.links.keys(), ...inbound.keys()]);
    return [...peers].sort().map((peer) => {
      const out = this.links.get(peer);
      const c = out?.counters;
      const i = inbound.get(peer);
      return {
        peer,
        framesSent: c?.framesSent ?? 0,
        bytesSent: c?.bytesSent ?? 0,
        resends: c?.resends ?? 0,
        reconnects: c?.reconnects ?? 0,
        unacknowledged: out?.unacknowledged ?? 0,
        acked: c?.acked ?? 0,
        framesReceived: i?.framesReceived ?? 0,
        duplicatesDropped: i?.duplicatesDropped ?? 0,
        rejectedFrames: i?.rejectedFrames ?? 0,
        rateLimitPauses: i?.rateLimitPauses ?? 0,
        frameBytesReused: out?.frameBytesReused ?? 0,
      };
    });
  }

  /**
   * Waits (up to CLOSE_FLUSH_TIMEOUT_MS) for peers to acknowledge what was sent, ends
   * every call and shuts the server down. Idempotent; later sends throw LinkClosedError.
   */
  close(): Promise<void> {
    this.closing = true;
    this.shutdownDone ??= this.shutdown();
    return this.shutdownDone;
  }

  private async shutdown(): Promise<void> {
    await Promise.all([...this.links.values()].map((l) => l.close(CLOSE_FLUSH_TIMEOUT_MS)));
    this.inbound.closeAll();
    const server = this.server;
    this.server = null;
    if (server === null) return;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => server.forceShutdown(), CLOSE_FLUSH_TIMEOUT_MS);
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }

  protected createLink(peer: string): GrpcLink {
    const o = this.options;
    const r = o.reliability ?? {};
    const address = o.addressOf(peer);
    const host = address.slice(0, Math.max(0, address.lastIndexOf(':')));
    // A peer's certificate may name it rather than the address dialled (serverNameOf).
    const name = o.serverNameOf?.(peer);
    const security = channelCredentials(
      name === undefined || o.security?.tls === undefined
        ? o.security
        : { ...o.security, tls: { ...o.security.tls, serverNameOverride: name } },
      host,
    );
    const backoffInitialMs = positive(
      'backoffInitialMs',
      r.backoffInitialMs,
      DEFAULT_RECONNECT_BACKOFF_MS,
    );
    const backoffMaxMs = positive('backoffMaxMs', r.backoffMaxMs, DEFAULT_RECONNECT_BACKOFF_MAX_MS);
    const channelOptions = clientChannelOptions(this.chunkBytes, {
      // The channel's own reconnect pace follows the link's, so a call waiting for it is not stuck.
      'grpc.initial_reconnect_backoff_ms': backoffInitialMs,
      'grpc.max_reconnect_backoff_ms': backoffMaxMs,
      ...security.options,
      ...o.channelOptions,
    });
    const link = new GrpcLink(
      peer,
      {
        cluster: o.cluster,
        self: o.self,
        session: this.session,
        address,
        credentials: security.credentials,
        channelOptions,
        limits: o.limits,
        reliable: r.enabled ?? true,
        resendBufferBytes: positive(
          'resendBufferBytes',
          r.resendBufferBytes,
          DEFAULT_RESEND_BUFFER_BYTES,
        ),
        peerDeadlineMs: positive('peerDeadlineMs', r.peerDeadlineMs, DEFAULT_PEER_DEADLINE_MS),
        backoffInitialMs,
        backoffMaxMs,
        flushDelayMs: positive('flushDelayMs', o.flushDelayMs, DEFAULT_FLUSH_DELAY_MS, 0),
        chunkBytes: this.chunkBytes,
      },
      (err) => this.reportError(err),
    );
    return link;
  }
}
