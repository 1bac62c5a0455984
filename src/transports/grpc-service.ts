/**
 * The gRPC service every link uses: one bidirectional streaming method whose
 * messages are raw bytes (identity serializers, no protobuf), plus the call
 * metadata keys and the channel defaults of both ends (DESIGN §6).
 *
 * Sender → receiver messages are slices (≤ chunkBytes) of a byte stream of sealed
 * frames; receiver → sender messages are sealed ack frames. Neither side trusts a
 * message boundary: both cut the stream with a FrameStreamReader.
 */

import {
  makeGenericClientConstructor,
  type ChannelOptions,
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
