/**
 * The public API of disco-transport. Re-exports only.
 */

export { SELF_NODE, parseTarget, type NodeRef } from './address.js';
export { MAX_NUM_EVENTS } from './arguments.js';
export {
  DataFormat,
  EMPTY_HEADERS,
  EnvelopeKind,
  EventEnvelope,
  FrameEncoder,
  FRAME_HEADER_BYTES,
  Lane,
  PromiseEnvelope,
  decodeFrame,
  type Envelope,
  type FrameInfo,
  type Headers,
  type ReceivedEvent,
  type ReceivedPromise,
  type Seqnr,
} from './envelope.js';
export {
  BackpressureError,
  DiscoError,
  ErrorCode,
  FrameCorruptError,
  InvalidArgumentError,
  InvalidTargetError,
  LinkClosedError,
  MessageTooLargeError,
  NativeUnavailableError,
  PeerDeadError,
  SerializationError,
  TimeoutError,
  TopologyError,
  UndeliverableError,
  UnknownNodeError,
  type ErrorCodeValue,
  type TopologyIssue,
} from './errors.js';
export {
  NodeController,
  type Inbox,
  type NodeControllerMetrics,
  type NodeControllerOptions,
} from './node-controller.js';
export { DEFAULT_MAX_HOPS, Router, type RouterOptions } from './router.js';
export { StructuredCloneSerializer, defaultSerializer, type Serializer } from './serializer.js';
export {
  AddressBook,
  loadTopology,
  type Placement,
  type Topology,
  type TopologyInput,
} from './topology.js';
export {
  DEFAULT_HARD_LIMIT_MESSAGES,
  DEFAULT_HIGH_WATER_MARK_MESSAGES,
  type QueueLimits,
} from './transports/delivery-queue.js';
export { InProcessTransport, type InProcessTransportOptions } from './transports/inprocess.js';
export type { LocalNode, Transport, TransportMetrics } from './transports/transport.js';
export { Server, type ServerOptions, type StandaloneOptions } from './runtime/server.js';
export {
  GrpcTransport,
  type GrpcLinkMetrics,
  type GrpcReliabilityOptions,
  type GrpcTransportOptions,
} from './transports/grpc.js';
export type { GrpcSecurityOptions } from './transports/grpc-security.js';
export type { LinkLimits } from './transports/outbound-queue.js';
