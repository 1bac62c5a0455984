/**
 * The gRPC service every link uses: one bidirectional streaming method whose
 * messages are raw bytes (identity serializers, no protobuf), plus the call
 * metadata keys and the channel defaults of both ends (DESIGN §6).
 *
 * Sender → receiver messages are slices (≤ chunkBytes) of a byte stream of sealed
 * frames; receiver → sender messages are sealed ack frames. Neither side trusts a
 * message boundary: both cut the stream with a FrameStreamReader. A message never
 * holds parts of two frames: it is a whole frame or one slice of a frame, and one
 * that starts a frame opens with MESSAGE_LEAD_BYTES zero bytes.
 */

import type { Http2Server, Http2Session, Settings } from 'node:http2';
import {
  makeGenericClientConstructor,
  type ChannelOptions,
  type Server,
  type MethodDefinition,
  type ServiceDefinition,
} from '@grpc/grpc-js';

/** Full path of the streaming method. */
export const LINK_METHOD_PATH = '/disco.Link/Stream';

/** Call metadata: the cluster the caller belongs to. A call for another cluster is refused. */
export const CLUSTER_METADATA_KEY = 'disco-cluster';
/** Call metadata: the caller's link identity (its `self`). */
export const SENDER_METADATA_KEY = 'disco-sender';
/** Call metadata: the caller's incarnation, random per GrpcTransport (hex, 64 bits). */
export const SESSION_METADATA_KEY = 'disco-session';

/**
 * Zero bytes in front of every message that starts a frame. grpc-js hands a received
 * message over as a view 5 bytes into its buffer (behind the gRPC message prefix); with
 * these 3 the frame is 8-byte aligned there, as the native verifier needs, and is read in
 * place instead of copied.
 */
export const MESSAGE_LEAD_BYTES = 3;

/** Largest gRPC message a link writes by default; larger frames are sliced. */
export const DEFAULT_CHUNK_BYTES = 1024 * 1024;
/** Room above chunkBytes in the message size limits (gRPC framing, headroom). */
const MESSAGE_SLACK_BYTES = 64 * 1024;
/** Receivers accept messages up to this many times their own chunkBytes (peers may differ). */
const RECEIVE_CHUNK_FACTOR = 16;

/** Client keepalive ping interval: an idle link notices a dead peer before its next send. */
export const KEEPALIVE_TIME_MS = 10_000;
/** How long a keepalive ping may go unanswered before the connection is dropped. */
export const KEEPALIVE_TIMEOUT_MS = 5_000;

/**
 * Default HTTP/2 receive window of a link's server, per call and per connection. With
 * HTTP/2's 64 KiB default a sender stalls whenever the receiving process is busy with the
 * previous frame (copying, verifying, delivering it): large events then go at the pace of
 * window updates. It bounds what one connection buffers while its reader is paused.
 */
export const DEFAULT_RECEIVE_WINDOW_BYTES = 4 * 1024 * 1024;
/** HTTP/2's own default and smallest window (RFC 9113 §6.9.2). */
const HTTP2_DEFAULT_WINDOW_BYTES = 65_535;
/** HTTP/2's largest window. */
export const HTTP2_MAX_WINDOW_BYTES = 2 ** 31 - 1;

const identity = (b: Buffer): Buffer => b;

/** A bidirectional streaming method at `path` that carries raw bytes (no protobuf). */
export function rawBidiMethod(path: string): MethodDefinition<Buffer, Buffer> {
  return {
    path,
    requestStream: true,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
    originalName: 'stream',
  };
}

const STREAM_METHOD = rawBidiMethod(LINK_METHOD_PATH);

/** The service, for `Server.addService`. */
export const LINK_SERVICE: ServiceDefinition = { Stream: STREAM_METHOD };

/** Client class of the service; links call `makeBidiStreamRequest` on it with `LINK_METHOD`. */
export const LinkClient = makeGenericClientConstructor(LINK_SERVICE, 'Link');

/** The streaming method (path and serializers). */
export const LINK_METHOD = STREAM_METHOD;

/** Client channel options: keepalive on idle links and message limits above chunkBytes. */
export function clientChannelOptions(chunkBytes: number, user?: ChannelOptions): ChannelOptions {
  return {
    'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
    'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.max_send_message_length': chunkBytes + MESSAGE_SLACK_BYTES,
    'grpc.max_receive_message_length': chunkBytes + MESSAGE_SLACK_BYTES,
    // One channel per peer: never share a subchannel with another link of this process.
    'grpc.use_local_subchannel_pool': 1,
    // The link resends by itself; grpc-js retries would keep every written message in a
    // retry buffer as well, trimmed with a copy per write.
    'grpc.enable_retries': 0,
    ...user,
  };
}

/**
 * Server options consistent with clientChannelOptions: pings as often as clients send
 * them are allowed, and received messages may be larger than our own chunks.
 */
export function serverChannelOptions(chunkBytes: number, user?: ChannelOptions): ChannelOptions {
  return {
    'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
    'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': KEEPALIVE_TIME_MS / 2,
    'grpc.max_receive_message_length': chunkBytes * RECEIVE_CHUNK_FACTOR + MESSAGE_SLACK_BYTES,
    'grpc.max_send_message_length': chunkBytes + MESSAGE_SLACK_BYTES,
    ...user,
  };
}

/** The parts of a grpc-js Server (1.14) that `setServerReceiveWindow` uses; not public API. */
interface ServerInternals {
  commonServerOptions?: { settings?: Settings };
  createHttp2Server?: (credentials: unknown) => Http2Server;
}

/**
 * Makes `server` (before `bindAsync`) advertise a receive window of `bytes` per call and per
 * connection. grpc-js has no server option for it (its 'grpc-node.flow_control_window' sets
 * only a client's), so this reaches into its internals: the options it hands to
 * `http2.createServer`, and the HTTP/2 server it creates, whose sessions get the connection
 * window. Returns false, changing nothing, when those internals are not there (another
 * grpc-js release): the server then keeps HTTP/2's default, slower but correct.
 */
export function setServerReceiveWindow(server: Server, bytes: number): boolean {
  const internals = server as unknown as ServerInternals;
  const options = internals.commonServerOptions;
  const create = internals.createHttp2Server;
  if (typeof options !== 'object' || options === null || typeof create !== 'function') {
    return false;
  }
  if (bytes <= HTTP2_DEFAULT_WINDOW_BYTES) return true;
  options.settings = { ...options.settings, initialWindowSize: bytes };
  internals.createHttp2Server = function (this: unknown, credentials: unknown) {
    const http2Server = create.call(this, credentials);
    http2Server.on('session', (session: Http2Session) => {
      // Before the session's first SETTINGS exchange: the window update goes out with them.
      session.setLocalWindowSize(bytes);
    });
    return http2Server;
  };
  return true;
}
