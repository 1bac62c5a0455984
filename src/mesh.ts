/**
 * Routes between the machines of a cluster (DESIGN §8, SPEC B1-B2): which gateway an
 * envelope for a remote machine goes to next, and in how many hops it arrives.
 *
 * The machines and the gRPC links between them form an undirected graph (the
 * topology's `links`, or every pair when it has none). Each gateway forwards to the
 * neighbour on a shortest path (breadth-first search; ties go to the neighbour listed
 * first, so every gateway computes the same table without talking). Pure and
 * computed once per topology: the hot path is one map lookup.
 */

import type { Topology } from './topology.js';

/**
 * The replication id of control envelopes between gateways, which are addressed to a
 * machine's name. A topology has at most 2^32 - 1 replications, numbered from 0, so
 * no simulation envelope uses it.
 */
export const CONTROL_REPID = 0xffffffff;

/** How to reach one machine from here. */
export interface MachineRoute {
  /** The neighbour to hand envelopes to (the destination itself when linked directly). */
  readonly via: string;
  /** Gateway-to-gateway hops to the destination. */
  readonly hops: number;
}

/** Machines linked directly to `machine`, in topology order. */
export function neighbours(topology: Topology, machine: string): string[] {
  const names = topology.machines.map((m) => m.name);
  if (topology.links === null) return names.filter((m) => m !== machine);
  const out = new Set<string>();
  for (const [a, b] of topology.links) {
    if (a === machine) out.add(b);
    else if (b === machine) out.add(a);
  }
  return names.filter((m) => out.has(m));
}

/**
 * The route table of `from`: every other reachable machine, with its next hop and
 * distance. A validated topology is connected, so every machine is in it.
 */
export function machineRoutes(topology: Topology, from: string): Map<string, MachineRoute> {
  const routes = new Map<string, MachineRoute>();
  let frontier: { machine: string; via: string }[] = neighbours(topology, from).map((m) => ({
    machine: m,
    via: m,
  }));
  const seen = new Set([from]);
  for (let hops = 1; frontier.length > 0; hops++) {
    const next: { machine: string; via: string }[] = [];
    for (const { machine, via } of frontier) {
      if (seen.has(machine)) continue;
      seen.add(machine);
      routes.set(machine, { via, hops });
      for (const n of neighbours(topology, machine)) {
        if (!seen.has(n)) next.push({ machine: n, via });
      }
    }
    frontier = next;
  }
  return routes;
}

/**
 * The pure locator of `machine`'s gRPC links: the neighbour machine on a shortest
 * path to the machine hosting (repid, node); control envelopes (CONTROL_REPID)
 * are addressed to a machine's name.
 */
export function meshLocator(
  topology: Topology,
  machine: string,
): (repid: number, node: string) => string | undefined {
  const routes = machineRoutes(topology, machine);
  const via = new Map<string, string>();
  for (const node of topology.addressBook.nodes()) {
    const m = topology.addressBook.lookup(0, node)!.machine;
    const r = routes.get(m);
    if (r !== undefined) via.set(node, r.via);
  }
  return (repid, node) => {
    if (repid === CONTROL_REPID) return routes.get(node)?.via;
    if (!Number.isInteger(repid) || repid < 0 || repid >= topology.replications) return undefined;
    return via.get(node);
  };
}
