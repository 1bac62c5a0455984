/**
 * UnixSocketTransport: links to other processes of this machine over Unix-domain
 * stream sockets, with the same framing and batching as every other link.
 *
 * It is the fallback where /dev/shm is not shared between the processes (some
 * containers) and the same-run baseline of the shared-memory benchmarks. Each
 * process listens on one endpoint in Linux's abstract socket namespace (no file to
 * clean up); a link to a peer is one outbound connection, so FIFO per lane holds.
 *
 * - Outbound: OutboundQueue per peer (two lanes, bounded, batched once per turn);
 *   frames are built and sealed (checksum) by the native batch encoder, as on the
 *   shared-memory and gRPC links, and written; the socket's own back-pressure
 *   (`write() === false`) stops the pump until 'drain'.
 * - Connecting retries with backoff until `connectTimeoutMs` (peers start in any
 *   order); after that the link fails with LinkClosedError. A peer that goes away
 *   fails the link with PeerDeadError; either error counts the messages lost.
 * - Inbound: every frame passes the native verifier before the native decoder reads
 *   it; a bad frame closes that connection with FrameCorruptError naming the peer.
 * - Errors are emitted as 'error' (the Router relays them).
 */

import { connect, createServer, type Server as NetServer, type Socket } from 'node:net';
import type { Lane } from '../envelope.js';
import type { BatchWriter } from '../native-batch.js';
import { DiscoError, FrameCorruptError, LinkClosedError, PeerDeadError } from '../errors.js';
import { tracerFor } from '../trace.js';
import { FrameReader, FrameWriter } from './batch-frames.js';
import { FrameStreamReader } from './frame-stream.js';
import { DEFAULT_CLOSE_TIMEOUT_MS, LinkTransport } from './link-transport.js';
import { OutboundQueue, type LinkChannel, type LinkLimits } from './outbound-queue.js';
import type { Transport } from './transport.js';

const tracer = tracerFor('uds');

/** Default time to keep retrying a connection to a peer that is not listening yet. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const RETRY_INITIAL_MS = 5;
const RETRY_MAX_MS = 200;

/** Options of a UnixSocketTransport. */
export interface UnixSocketTransportOptions {
  /** This process's endpoint name (abstract namespace; `[A-Za-z0-9_.-]`, at most 100 chars). */
  endpoint: string;
  /** Endpoint of the process hosting (repid, node), or undefined when another transport's. Pure. */
  locate(repid: number, node: string): string | undefined;
  limits?: LinkLimits;
  connectTimeoutMs?: number;
  /** How long `close()` waits for peers to read what is queued. Default 10 s. */
  closeTimeoutMs?: number;
  /** Name in metrics and route tables; default `uds`. Two transports of one Router need two names. */
  name?: string;
}

/** Checks an endpoint name. @throws {RangeError} when it is not usable. */
export function checkEndpoint(name: string): string {
  if (!/^[A-Za-z0-9_.-]{1,100}$/.test(name)) {
    throw new RangeError(`endpoint ${JSON.stringify(name)} must be 1-100 of [A-Za-z0-9_.-]`);
  }
  return name;
}

function socketPath(endpoint: string): string {
  return `\0${endpoint}`;
}

/** One outbound connection to a peer endpoint. */
class UdsLink implements LinkChannel {
  readonly queue: OutboundQueue;
  private socket: Socket | null = null;
  private connected = false;
  private retryMs = RETRY_INITIAL_MS;
  private readonly deadline: number;
  private readonly writer: FrameWriter;
  private closing = false;
  private failed = false;
  bytesSent = 0;

  constructor(
    readonly peer: string,
    private readonly owner: UnixSocketTransport,
    limits: LinkLimits | undefined,
    connectTimeoutMs: number,
  ) {
    this.queue = new OutboundQueue(`uds link to ${peer}`, this, limits);
    this.writer = new FrameWriter(`uds link to ${peer}`);
    this.queue.on('failed', (err: DiscoError) => {
      this.failed = true;
      if (!this.closing) this.owner.reportError(err);
      this.socket?.destroy();
    });
    this.deadline = Date.now() + connectTimeoutMs;
    this.connect();
  }

  /**
   * A send that finds the link idle is written at once, inside the send: a lone event or an
   * answer does not wait a turn of the event loop for the pump. Later sends of the same turn
   * queue behind it and leave together, one frame per turn, as before.
   */
  readonly writesAtOnce = true;

  get ready(): boolean {
    return this.connected && this.socket !== null && !this.socket.writableNeedDrain;
  }

  writeBatch(lane: Lane, w: BatchWriter): boolean {
    const frame = this.writer.encodeBatch(lane, w, 0, 0);
    this.bytesSent += frame.length;
    this.socket!.write(frame);
    return true;
  }

  /**
   * Flushes what is queued, waiting at most `timeoutMs` for a peer that does not read, then
   * half-closes the connection. When the peer did not take everything in time, the connection
   * is dropped and the loss reported (LinkClosedError): the messages still queued by count,
   * and the bytes of frames already handed to the socket that it had not sent, never silently.
   */
  async close(timeoutMs: number): Promise<void> {
    this.closing = true;
    const left = await this.queue.flushedWithin(timeoutMs);
    if (left > 0 && !this.failed) {
      this.failed = true;
      const unsent = this.socket?.writableLength ?? 0;
      const err = new LinkClosedError(
        `uds:${this.peer}`,
        'closed before the peer read everything' +
          (unsent > 0 ? ` (and ${unsent} bytes of frames written to the socket but not sent)` : ''),
        left,
      );
      this.queue.fail(err);
      this.owner.reportError(err);
      this.socket?.destroy();
      return;
    }
    this.socket?.end();
  }

  private connect(): void {
    const s = connect(socketPath(this.peer));
    this.socket = s;
    s.setNoDelay?.(true);
    s.on('connect', () => {
      this.connected = true;
      if (tracer.enabled) tracer.log(`connected to ${this.peer}`);
      this.queue.resume();
    });
    s.on('drain', () => this.queue.resume());
    s.on('data', () => {
      // Links are one-way: the peer sends nothing on our connection.
    });
    s.on('error', (err: NodeJS.ErrnoException) => this.onSocketError(err));
    s.on('close', () => this.onClose());
  }

  private onSocketError(err: NodeJS.ErrnoException): void {
    const retriable = !this.connected && (err.code === 'ECONNREFUSED' || err.code === 'ENOENT');
    if (retriable && Date.now() < this.deadline && !this.closing) {
      this.socket?.removeAllListeners('close');
      this.socket = null;
      setTimeout(() => this.connect(), this.retryMs).unref();
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
      return;
    }
    const reason = this.connected
      ? `connection failed: ${err.message}`
      : `cannot connect: ${err.message}`;
    this.failWith(this.connected ? 'dead' : 'closed', reason);
  }

  private onClose(): void {
    if (this.closing) return;
    this.failWith(this.connected ? 'dead' : 'closed', 'the connection closed');
  }

  private failWith(kind: 'dead' | 'closed', reason: string): void {
    if (this.failed) return;
    this.failed = true;
    const queued = this.queue.queued;
    const err =
      kind === 'dead'
        ? new PeerDeadError(`uds:${this.peer}`, `${reason}; ${queued} queued messages not sent`)
        : new LinkClosedError(`uds:${this.peer}`, reason, queued);
    this.queue.fail(err);
    if (!this.closing) this.owner.reportError(err);
    this.socket?.destroy();
  }
}

/** Same-machine transport over Unix-domain sockets; see the file header. */
export class UnixSocketTransport extends LinkTransport<UdsLink> implements Transport {
  readonly name: string;
  readonly endpoint: string;
  /** Where envelopes are received, for UndeliverableError. */
  private readonly where: string;
  private readonly options: UnixSocketTransportOptions;
  private readonly inbound = new Set<Socket>();
  private server: NetServer | null = null;
  private inboundCount = 0;
  private paused = false;

  constructor(options: UnixSocketTransportOptions) {
    const endpoint = checkEndpoint(options.endpoint);
    super(options.locate, endpoint);
    this.endpoint = endpoint;
    this.where = `by ${endpoint}`;
    this.name = options.name ?? 'uds';
    this.options = options;
  }

  /** Starts listening on the endpoint. @throws when it is already taken. */
  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = createServer((socket) => this.accept(socket));
      server.once('error', reject);
      server.listen(socketPath(this.endpoint), () => {
        server.off('error', reject);
        server.on('error', (err) =>
          this.reportError(new LinkClosedError(`uds:${this.endpoint}`, err.message)),
        );
        this.server = server;
        resolve();
      });
    });
  }

  pauseInbound(): void {
    this.paused = true;
    for (const s of this.inbound) s.pause();
  }

  resumeInbound(): void {
    this.paused = false;
    for (const s of this.inbound) s.resume();
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const timeoutMs = this.options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    await Promise.all([...this.links.values()].map((l) => l.close(timeoutMs)));
    for (const s of this.inbound) s.destroy();
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
  }

  protected createLink(peer: string): UdsLink {
    return new UdsLink(
      peer,
      this,
      this.options.limits,
      this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    );
  }

  private accept(socket: Socket): void {
    const peer = `uds:${this.endpoint}#${++this.inboundCount}`;
    const reader = new FrameStreamReader(peer);
    const frames = new FrameReader();
    this.inbound.add(socket);
    if (this.paused) socket.pause();
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk, (frame) => this.receive(frames, frame, peer));
      } catch (err) {
        this.reportError(
          err instanceof DiscoError ? err : new FrameCorruptError(peer, String(err)),
        );
        socket.destroy();
      }
    });
    socket.on('error', () => {
      // 'close' follows; an inbound connection that breaks has nothing queued on our side.
    });
    socket.on('close', () => this.inbound.delete(socket));
  }

  /** Verifies and decodes `frame` (nothing of a bad one is delivered), then delivers it. */
  private receive(frames: FrameReader, frame: Uint8Array, peer: string): void {
    frames.read(frame, peer);
    const n = frames.count;
    for (let i = 0; i < n; i++) this.deliverReceived(frames.envelope(i), this.where);
    this.flushQueued();
  }
}
