/**
 * The shared-memory rings of one machine: one per ordered pair of its same-machine
 * endpoints (its Servers, and its gateway in a cluster of several machines). The
 * Application creates them before it forks, after removing what a dead run of the
 * same cluster left, and unlinks them when it stops, or from an exit handler should
 * its process end without stopping.
 */

import { clusterSegmentPrefix, createRing, removeStaleRings, unlinkRing } from '../native.js';
import type { Topology } from '../topology.js';
import { ringName } from '../transports/shm.js';
import { machineEndpointIds } from './endpoints.js';

/** The rings of one machine; see the file header. */
export class MachineRings {
  private rings: string[] = [];

  /** Ring segments created and not yet unlinked. */
  names(): readonly string[] {
    return this.rings;
  }

  /** Removes stale segments of the cluster, then creates every ring of `machine`. */
  create(topology: Topology, machine: string, bytes: number): void {
    removeStaleRings(clusterSegmentPrefix(topology.cluster));
    const ids = machineEndpointIds(topology, machine);
    for (const from of ids) {
      for (const to of ids) {
        if (from === to) continue;
        const name = ringName(topology.cluster, from, to);
        createRing(name, bytes);
        this.rings.push(name);
      }
    }
    process.once('exit', this.removeOnExit);
  }

  /** Unlinks every ring created; idempotent. */
  remove(): void {
    for (const name of this.rings) unlinkRing(name);
    this.rings = [];
    process.off('exit', this.removeOnExit);
  }

  private readonly removeOnExit = (): void => {
    for (const name of this.rings) {
      try {
        unlinkRing(name);
      } catch {
        // Exiting: nothing else can be done; start-up removes what a dead cluster left.
      }
    }
  };
}
