/**
 * Where the nodes of a PHOLD run across processes go, decided and checked before
 * any process starts: a topology file, or the embedded default of DESIGN §1 —
 * one machine, one Server per core (os.availableParallelism(), at most one per
 * node), nodes dealt round-robin.
 *
 * The plan also fixes the node list that gives nodes their indices (and so their
 * random streams): `n0..n<N-1>` for the default, the single-process run's list,
 * and the topology's node order for a file. So an end-time-bounded run handles
 * exactly the events the single-process run with the same list and seed handles.
 *
 * Used by the coordinator (src/demo/phold-coordinator.ts) and, to tell bad input
 * from a failed run, by the CLI.
 */

import { availableParallelism } from 'node:os';
import { InvalidArgumentError, loadTopology, type Topology, type TopologyInput } from '../index.js';
import { clusterServerKey } from '../runtime/cluster-control.js';
import { topologyInput } from '../topology.js';
import {
  resolvePholdOptions,
  type PholdOptions,
  type ResolvedPholdOptions,
} from './phold-options.js';

/** Most Server processes of the default topology. */
export const MAX_PROCESSES = 256;
/** Machine name of the default topology. */
export const DEFAULT_MACHINE = 'local';

/** Where the nodes of a run go. */
export interface PholdPlacement {
  /** A topology file path or object; default: one machine, `processes` Servers. */
  topology?: TopologyInput | string;
  /** The machine whose Servers run here; default the topology's first. */
  machine?: string;
  /** Server processes of the default topology; default one per core, at most one per node. */
  processes?: number;
}

/** A topology this runtime cannot run yet (e.g. several machines). */
export class UnsupportedTopologyError extends Error {
  override readonly name = 'UnsupportedTopologyError';
}

/** Everything decided before any process starts. */
export interface RunPlan {
  readonly opts: ResolvedPholdOptions;
  readonly topology: TopologyInput;
  readonly machine: string;
  /** The node list that fixes node indices. */
  readonly names: readonly string[];
  /** Servers of the machine that host nodes. */
  readonly busy: readonly string[];
}

/** Runs planned by this process so far: makes default cluster names unique. */
let runSeq = 0;

/**
 * The default topology: one machine, `processes` Servers `s0..`, nodes dealt
 * round-robin (node i on Server i mod processes).
 */
export function defaultTopology(
  names: readonly string[],
  processes: number,
  opts: Pick<ResolvedPholdOptions, 'simproc' | 'replications'>,
  cluster: string,
): TopologyInput {
  const servers = Array.from({ length: processes }, (_, s) => ({
    name: `s${s}`,
    nodes: names.filter((_, i) => i % processes === s),
  }));
  return {
    cluster,
    simprocs: [opts.simproc],
    replications: opts.replications,
    machines: [{ name: DEFAULT_MACHINE, servers }],
  };
}

/** Server processes for the default topology: the request, or one per core; at most one per node. */
function processCount(requested: number | undefined, nodes: number): number {
  const count = requested ?? availableParallelism();
  if (!Number.isInteger(count) || count < 1 || count > MAX_PROCESSES) {
    throw new InvalidArgumentError('processes', count, `an integer from 1 to ${MAX_PROCESSES}`);
  }
  return Math.min(count, nodes);
}

function defaultPlan(options: PholdOptions, processes: number | undefined): RunPlan {
  const opts = resolvePholdOptions(options);
  const names = Array.from({ length: opts.nodes }, (_, i) => `n${i}`);
  const count = processCount(processes, opts.nodes);
  const cluster = `phold-${process.pid}-${++runSeq}`;
  const topology = defaultTopology(names, count, opts, cluster);
  const busy = topology.machines[0]!.servers.map((s) => s.name);
  return { opts, topology, machine: DEFAULT_MACHINE, names, busy };
}

/** The machine that runs here. @throws {InvalidArgumentError} for a machine not in the topology. */
function checkMachines(topo: Topology, machine: string | undefined): string {
  const names = topo.machines.map((m) => m.name);
  if (machine !== undefined && !names.includes(machine)) {
    throw new InvalidArgumentError(
      'machine',
      machine,
      `a machine of the topology: ${names.join(', ')}`,
    );
  }
  return machine ?? names[0]!;
}

/** Model options for a topology: its nodes, its first simproc, its replications. */
function topologyModel(options: PholdOptions, topo: Topology, names: string[]): PholdOptions {
  if (options.nodes !== undefined && options.nodes !== names.length) {
    throw new InvalidArgumentError(
      'nodes',
      options.nodes,
      `the ${names.length} nodes of the topology`,
    );
  }
  const simproc = options.simproc ?? topo.simprocs[0]!;
  if (!topo.simprocs.includes(simproc)) {
    throw new InvalidArgumentError('simproc', simproc, `one of ${topo.simprocs.join(', ')}`);
  }
  const replications = options.replications ?? topo.replications;
  return { ...options, nodes: names.length, simproc, replications };
}

function topologyPlan(
  options: PholdOptions,
  source: TopologyInput | string,
  machine?: string,
): RunPlan {
  const topo = loadTopology(source);
  const name = checkMachines(topo, machine);
  const names = topo.addressBook.nodes();
  const opts = resolvePholdOptions(topologyModel(options, topo, names));
  const topology: TopologyInput = { ...topologyInput(topo), replications: opts.replications };
  // The leader's view names Servers `<machine>/<server>` when there are several machines.
  const several = topo.machines.length > 1;
  const busy = topo.machines.flatMap((m) =>
    m.servers
      .filter((s) => s.nodes.length > 0)
      .map((s) => (several ? clusterServerKey(m.name, s.name) : s.name)),
  );
  return { opts, topology, machine: name, names, busy };
}

/**
 * Validates options and placement into a plan; see the file header.
 * @throws {InvalidArgumentError} for an invalid option, process count or machine.
 * @throws {TopologyError} for an invalid topology file.
 */
export function planRun(options: PholdOptions, placement: PholdPlacement): RunPlan {
  const plan =
    placement.topology === undefined
      ? defaultPlan(options, placement.processes)
      : topologyPlan(options, placement.topology, placement.machine);
  if (plan.opts.viaWire) {
    throw new InvalidArgumentError(
      'viaWire',
      true,
      'false across processes (messages between Server processes always go through the wire codec)',
    );
  }
  return plan;
}

/**
 * Checks options and placement exactly as runPholdAcrossProcesses does, without
 * starting anything, so a caller can tell bad input from a failed run.
 * @returns how many Server processes the run would start.
 * @throws {InvalidArgumentError} for an invalid option, process count or machine.
 * @throws {TopologyError} for an invalid topology file.
 */
export function planPholdProcesses(
  options: PholdOptions,
  placement: PholdPlacement = {},
): { processes: number } {
  const plan = planRun(options, placement);
  const here = plan.topology.machines.find((m) => m.name === plan.machine)!;
  return { processes: here.servers.length };
}
