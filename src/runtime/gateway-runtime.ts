/**
 * Builds a machine's gateway from the topology: its same-machine link to the
 * machine's Servers (the rings the Application created, or Unix sockets) and its
 * gRPC links to the neighbour gateways (src/mesh.ts), listening on the machine's
 * `host:grpcPort` with the machine's TLS files and the cluster's allow-list.
 */

import { meshLocator } from '../mesh.js';
import type { RingDoorbellOptions } from '../native.js';
import type { Topology } from '../topology.js';
import { GrpcTransport, type GrpcTransportOptions } from '../transports/grpc.js';
import type { GrpcSecurityOptions } from '../transports/grpc-security.js';
import { ShmTransport } from '../transports/shm.js';
import type { Transport } from '../transports/transport.js';
import { UnixSocketTransport } from '../transports/unix-socket.js';
import { gatewayEndpoint, gatewayId, gatewayLocator, machineEndpointIds } from './endpoints.js';
import { Gateway } from './gateway.js';
import type { SameMachineLink } from './protocol.js';

/** How a gateway reaches its machine's Servers. */
export interface GatewayLinkOptions {
  readonly link: SameMachineLink;
  readonly ringDoorbell?: RingDoorbellOptions;
}

/**
 * The security options of `machine`'s gRPC links, from the topology. A machine's
 * `serverNameOverride` is the name its dialers verify (see `peerServerName`), not one
 * it applies to others; the machines' `identity` fields bind callers to certificates.
 */
export function machineSecurity(topology: Topology, machine: string): GrpcSecurityOptions {
  const m = topology.machines.find((x) => x.name === machine)!;
  const tls = m.tls === undefined ? undefined : { ...m.tls };
  if (tls !== undefined) delete (tls as { serverNameOverride?: string }).serverNameOverride;
  const identities: Record<string, string> = {};
  for (const x of topology.machines) if (x.identity !== undefined) identities[x.name] = x.identity;
  return {
    ...(tls !== undefined ? { tls } : {}),
    ...(topology.security.allow !== undefined ? { allow: topology.security.allow } : {}),
    ...(Object.keys(identities).length > 0 ? { identities } : {}),
    insecure: topology.security.insecure,
  };
}

/** The name `peer`'s certificate carries, when the topology says it differs from its host. */
export function peerServerName(topology: Topology, peer: string): string | undefined {
  return topology.machines.find((m) => m.name === peer)?.tls?.serverNameOverride;
}

/** The link settings of a topology's `grpc` section, as GrpcTransport options. */
export function grpcLinkOptions(
  topology: Topology,
): Pick<GrpcTransportOptions, 'channelOptions' | 'reliability' | 'maxFrameBytes' | 'rateLimit'> {
  const g = topology.grpc;
  const reliability = {
    ...(g.peerDeadlineMs !== undefined ? { peerDeadlineMs: g.peerDeadlineMs } : {}),
    ...(g.resendBufferBytes !== undefined ? { resendBufferBytes: g.resendBufferBytes } : {}),
  };
  return {
    ...(g.channelOptions !== undefined ? { channelOptions: { ...g.channelOptions } } : {}),
    ...(Object.keys(reliability).length > 0 ? { reliability } : {}),
    ...(g.maxFrameBytes !== undefined ? { maxFrameBytes: g.maxFrameBytes } : {}),
    ...(g.rateLimit !== undefined ? { rateLimit: { ...g.rateLimit } } : {}),
  };
}

function localLink(topology: Topology, machine: string, opts: GatewayLinkOptions): Transport {
  if (opts.link === 'uds') {
    return new UnixSocketTransport({
      endpoint: gatewayEndpoint(topology, machine),
      locate: gatewayLocator(topology, machine),
    });
  }
  return new ShmTransport({
    cluster: topology.cluster,
    self: gatewayId(topology, machine),
    peers: machineEndpointIds(topology, machine),
    locate: gatewayLocator(topology, machine, 'id'),
    ...(opts.ringDoorbell !== undefined ? { doorbell: opts.ringDoorbell } : {}),
  });
}

/**
 * Starts `machine`'s gateway: listens for its Servers and for other gateways.
 * The rings must exist already (the Application creates them before).
 * @throws when the gRPC port cannot be bound, or the security options are invalid.
 */
export async function startGateway(
  topology: Topology,
  machine: string,
  opts: GatewayLinkOptions,
): Promise<Gateway> {
  const spec = topology.machines.find((m) => m.name === machine)!;
  const local = localLink(topology, machine, opts);
  if (local instanceof UnixSocketTransport) await local.listen();
  else (local as ShmTransport).open();
  const remote = new GrpcTransport({
    cluster: topology.cluster,
    self: machine,
    listenAddress: `${spec.host}:${spec.grpcPort ?? 0}`,
    locate: meshLocator(topology, machine),
    addressOf: (peer) => {
      const m = topology.machines.find((x) => x.name === peer);
      if (m === undefined) throw new RangeError(`no machine ${JSON.stringify(peer)}`);
      return `${m.host}:${m.grpcPort ?? 0}`;
    },
    security: machineSecurity(topology, machine),
    serverNameOf: (peer) => peerServerName(topology, peer),
    ...grpcLinkOptions(topology),
  });
  try {
    await remote.listen();
  } catch (err) {
    await local.close();
    throw err;
  }
  return new Gateway({ topology, machine, local, remote });
}
