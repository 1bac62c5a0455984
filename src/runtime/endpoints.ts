/**
 * Names of the same-machine endpoints of a cluster, derived from the topology so
 * that every process computes the same ones without talking: Server `s` of machine
 * `m` listens on `disco.<cluster>.<m>.<s>` (indices in topology order, so names
 * stay short whatever the node and server names are).
 *
 * A cluster of several machines has a gateway on each (src/runtime/gateway.ts, in
 * the Application's process) with the id `<m>.g`: the Servers reach every node of
 * another machine through it, so their locators name the gateway for those nodes.
 */

import type { Topology } from '../topology.js';

/** Index of `machine` and of `server` on it. @throws {RangeError} when either is unknown. */
export function serverIndex(topology: Topology, machine: string, server: string): [number, number] {
  const mi = topology.machines.findIndex((m) => m.name === machine);
  const si = mi < 0 ? -1 : topology.machines[mi]!.servers.findIndex((s) => s.name === server);
  if (si < 0)
    throw new RangeError(
      `no server ${JSON.stringify(server)} on machine ${JSON.stringify(machine)}`,
    );
  return [mi, si];
}

/** The short id of one Server, `<machine index>.<server index>`: used in ring names. */
export function serverId(topology: Topology, machine: string, server: string): string {
  const [mi, si] = serverIndex(topology, machine, server);
  return `${mi}.${si}`;
}

/** The socket endpoint name of one Server: `disco.<cluster>.<id>`. */
export function serverEndpoint(topology: Topology, machine: string, server: string): string {
  return `disco.${topology.cluster}.${serverId(topology, machine, server)}`;
}

/** Ids of every Server of `machine` (see `serverId`), in topology order. */
export function machineServerIds(topology: Topology, machine: string): string[] {
  const m = topology.machines.find((x) => x.name === machine);
  return m === undefined ? [] : m.servers.map((s) => serverId(topology, machine, s.name));
}

/** Whether the machines of `topology` run gateways: when there are several. */
export function hasGateways(topology: Topology): boolean {
  return topology.machines.length > 1;
}

/** The id of `machine`'s gateway, `<machine index>.g`. @throws {RangeError} for an unknown machine. */
export function gatewayId(topology: Topology, machine: string): string {
  const mi = topology.machines.findIndex((m) => m.name === machine);
  if (mi < 0) throw new RangeError(`no machine ${JSON.stringify(machine)}`);
  return `${mi}.g`;
}

/** The socket endpoint name of `machine`'s gateway: `disco.<cluster>.<m>.g`. */
export function gatewayEndpoint(topology: Topology, machine: string): string {
  return `disco.${topology.cluster}.${gatewayId(topology, machine)}`;
}

/** Ids of every same-machine endpoint of `machine`: its Servers, then its gateway if any. */
export function machineEndpointIds(topology: Topology, machine: string): string[] {
  const ids = machineServerIds(topology, machine);
  if (hasGateways(topology)) ids.push(gatewayId(topology, machine));
  return ids;
}

/**
 * The locator of `machine`'s gateway: the Server (endpoint name or id) hosting
 * (repid, node) when that is a Server of this machine, else undefined.
 */
export function gatewayLocator(
  topology: Topology,
  machine: string,
  naming: 'endpoint' | 'id' = 'endpoint',
): (repid: number, node: string) => string | undefined {
  const name = naming === 'id' ? serverId : serverEndpoint;
  const endpoints = new Map<string, string>();
  for (const node of topology.addressBook.nodes()) {
    const p = topology.addressBook.lookup(0, node)!;
    if (p.machine === machine) endpoints.set(node, name(topology, p.machine, p.server));
  }
  return (repid, node) =>
    repid >= 0 && repid < topology.replications && Number.isInteger(repid)
      ? endpoints.get(node)
      : undefined;
}

/**
 * A pure locator for same-machine links of `machine`'s Server `self`: the endpoint name
 * (or id) of the Server hosting (repid, node) when that is another Server of the same
 * machine, or of this machine's gateway when the node is on another machine.
 */
export function sameMachineLocator(
  topology: Topology,
  machine: string,
  self: string,
  naming: 'endpoint' | 'id' = 'endpoint',
): (repid: number, node: string) => string | undefined {
  const name = naming === 'id' ? serverId : serverEndpoint;
  // With direct links the Servers reach other machines over their own gRPC links.
  const gateway =
    hasGateways(topology) && !topology.directLinks
      ? naming === 'id'
        ? gatewayId(topology, machine)
        : gatewayEndpoint(topology, machine)
      : undefined;
  const endpoints = new Map<string, string>();
  for (const node of topology.addressBook.nodes()) {
    const p = topology.addressBook.lookup(0, node)!;
    if (p.machine === machine && p.server !== self) {
      endpoints.set(node, name(topology, p.machine, p.server));
    } else if (p.machine !== machine && gateway !== undefined) {
      endpoints.set(node, gateway);
    }
  }
  return (repid, node) =>
    repid >= 0 && repid < topology.replications && Number.isInteger(repid)
      ? endpoints.get(node)
      : undefined;
}

/**
 * With `directLinks`: the pure locator of Server links to other machines, naming the
 * Server hosting (repid, node) as `<machine>/<server>` when it is on another machine.
 */
export function directLocator(
  topology: Topology,
  machine: string,
): (repid: number, node: string) => string | undefined {
  const peers = new Map<string, string>();
  for (const node of topology.addressBook.nodes()) {
    const p = topology.addressBook.lookup(0, node)!;
    if (p.machine !== machine) peers.set(node, `${p.machine}/${p.server}`);
  }
  return (repid, node) =>
    repid >= 0 && repid < topology.replications && Number.isInteger(repid)
      ? peers.get(node)
      : undefined;
}

/** `"host:port"` of a Server's own gRPC links, from its `<machine>/<server>` name. */
export function directAddress(topology: Topology, peer: string): string {
  const slash = peer.indexOf('/');
  const m = topology.machines.find((x) => x.name === peer.slice(0, slash));
  const s = m?.servers.find((x) => x.name === peer.slice(slash + 1));
  if (m === undefined || s?.grpcPort === undefined) {
    throw new RangeError(`no Server ${JSON.stringify(peer)} with a gRPC port`);
  }
  return `${m.host}:${s.grpcPort}`;
}
