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

/** The endpoint name of one Server. */
export function serverEndpoint(topology: Topology, machine: string, server: string): string {
  const [mi, si] = serverIndex(topology, machine, server);
  return `disco.${topology.cluster}.${mi}.${si}`;
}

/**
 * A pure locator for same-machine links of `machine`'s Server `self`: the endpoint of
 * the Server hosting (repid, node) when that is another Server of the same machine.
 */
export function sameMachineLocator(
  topology: Topology,
  machine: string,
  self: string,
): (repid: number, node: string) => string | undefined {
  const endpoints = new Map<string, string>();
  for (const node of topology.addressBook.nodes()) {
    const p = topology.addressBook.lookup(0, node)!;
    if (p.machine === machine && p.server !== self) {
      endpoints.set(node, serverEndpoint(topology, p.machine, p.server));
    }
  }
  return (repid, node) =>
    repid >= 0 && repid < topology.replications && Number.isInteger(repid)
      ? endpoints.get(node)
      : undefined;
}
