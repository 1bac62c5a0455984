/**
 * Names of the same-machine endpoints of a cluster, derived from the topology so
 * that every process computes the same ones without talking: Server `s` of machine
 * `m` listens on `disco.<cluster>.<m>.<s>` (indices in topology order, so names
 * stay short whatever the node and server names are).
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

/**
 * A pure locator for same-machine links of `machine`'s Server `self`: the endpoint name
 * (or id) of the Server hosting (repid, node) when that is another Server of the same machine.
 */
export function sameMachineLocator(
  topology: Topology,
  machine: string,
  self: string,
  naming: 'endpoint' | 'id' = 'endpoint',
): (repid: number, node: string) => string | undefined {
  const name = naming === 'id' ? serverId : serverEndpoint;
  const endpoints = new Map<string, string>();
  for (const node of topology.addressBook.nodes()) {
    const p = topology.addressBook.lookup(0, node)!;
    if (p.machine === machine && p.server !== self) {
      endpoints.set(node, name(topology, p.machine, p.server));
    }
  }
  return (repid, node) =>
    repid >= 0 && repid < topology.replications && Number.isInteger(repid)
      ? endpoints.get(node)
      : undefined;
}
