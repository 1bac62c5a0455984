/**
 * Credentials and peer authorisation of gRPC links (DESIGN §6, §11): the seam
 * GrpcTransport calls at three places.
 *
 * - `serverCredentials` when the server binds,
 * - `channelCredentials` when a link opens its channel to a peer,
 * - `authorizeCall` when a peer opens a stream, before any frame is read.
 *
 * This is a placeholder with the final signatures: plaintext only, every caller is
 * accepted as 'anonymous'. TLS, mTLS and the per-cluster allow-list replace it.
 */

import {
  credentials,
  ServerCredentials,
  type ChannelCredentials,
  type ChannelOptions,
  type ServerDuplexStream,
} from '@grpc/grpc-js';

/** Security settings of a GrpcTransport. */
export interface GrpcSecurityOptions {
  /** Plaintext; for loopback or explicit opt-in. */
  insecure?: boolean;
}

/** Credentials the server binds `host` with. */
export function serverCredentials(
  _opts: GrpcSecurityOptions | undefined,
  _host: string,
): ServerCredentials {
  return ServerCredentials.createInsecure();
}

/** Credentials and extra channel options of a channel to `host`. */
export function channelCredentials(
  _opts: GrpcSecurityOptions | undefined,
  _host: string,
): { credentials: ChannelCredentials; options: ChannelOptions } {
  return { credentials: credentials.createInsecure(), options: {} };
}

/** Decides whether the peer that opened `call` may send on it, and who it is. */
export function authorizeCall(
  _call: ServerDuplexStream<Buffer, Buffer>,
  _opts: GrpcSecurityOptions | undefined,
): { ok: true; identity: string } | { ok: false; reason: string } {
  return { ok: true, identity: 'anonymous' };
}
