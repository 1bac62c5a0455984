/**
 * Topology: which machines, Servers and nodes make up a cluster (DESIGN §1, §8).
 *
 * A topology is JSON, validated with zod; every problem is reported with the path
 * of the offending field (`machines[0].servers[1].nodes[2]`) in one TopologyError.
 * The validated topology yields an AddressBook: (repid, node) -> (machine, server).
 * Every replication uses the same placement (SPEC S1: replications share processes).
 *
 * Placement is configuration: code never changes when nodes move.
 */

import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { nameProblem, SELF_NODE } from './address.js';
import { TopologyError, type TopologyIssue } from './errors.js';

/** Longest cluster name: it scopes shared-memory segment names, which are short. */
export const MAX_CLUSTER_NAME_LENGTH = 64;

const name = z.string().superRefine((value, ctx) => {
  const problem = nameProblem(value);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  if (value === SELF_NODE) ctx.addIssue({ code: 'custom', message: '"self" is reserved' });
});

const serverSchema = z.strictObject({
  name,
  nodes: z.array(name),
});

const machineSchema = z.strictObject({
  name,
  host: z.string().min(1).default('127.0.0.1'),
  grpcPort: z.number().int().min(0).max(65535).optional(),
  servers: z.array(serverSchema).min(1),
});

const topologySchema = z
  .strictObject({
    cluster: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/, 'only letters, digits, "_" and "-"')
      .max(MAX_CLUSTER_NAME_LENGTH),
    simprocs: z.array(name).min(1),
    replications: z.number().int().min(1).max(0xffffffff).default(1),
    machines: z.array(machineSchema).min(1),
  })
  .superRefine((topo, ctx) => {
    duplicates(topo.simprocs, (i) => ctx.addIssue(dup(['simprocs', i], 'simproc')));
    duplicates(
      topo.machines.map((m) => m.name),
      (i) => ctx.addIssue(dup(['machines', i, 'name'], 'machine name')),
    );
    const placed = new Set<string>();
    topo.machines.forEach((m, mi) => {
      duplicates(
        m.servers.map((s) => s.name),
        (si) => ctx.addIssue(dup(['machines', mi, 'servers', si, 'name'], 'server name')),
      );
      m.servers.forEach((s, si) =>
        s.nodes.forEach((node, ni) => {
          if (placed.has(node)) {
            ctx.addIssue(dup(['machines', mi, 'servers', si, 'nodes', ni], `node ${node}`));
          }
          placed.add(node);
        }),
      );
    });
    if (placed.size === 0)
      ctx.addIssue({ code: 'custom', path: ['machines'], message: 'no nodes' });
  });

function duplicates(values: readonly string[], report: (index: number) => void): void {
  const seen = new Set<string>();
  values.forEach((v, i) => {
    if (seen.has(v)) report(i);
    seen.add(v);
  });
}

function dup(path: (string | number)[], what: string): z.core.$ZodRawIssue {
  return { code: 'custom', path, message: `duplicate ${what}`, input: undefined };
}

/** A topology as written in a file, before defaults. */
export type TopologyInput = z.input<typeof topologySchema>;

/** Where a node runs. */
export interface Placement {
  readonly machine: string;
  readonly server: string;
}

/** Maps (repid, node) to the machine and Server that run it. */
export class AddressBook {
  private readonly placements: ReadonlyMap<string, Placement>;

  constructor(
    private readonly replications: number,
    placements: ReadonlyMap<string, Placement>,
  ) {
    this.placements = placements;
  }

  /** Where `node` of replication `repid` runs, or undefined when it is not in the cluster. */
  lookup(repid: number, node: string): Placement | undefined {
    if (!Number.isInteger(repid) || repid < 0 || repid >= this.replications) return undefined;
    return this.placements.get(node);
  }

  /** Every node name, in topology order. */
  nodes(): string[] {
    return [...this.placements.keys()];
  }

  /** Nodes placed on one Server, in topology order. */
  nodesOn(machine: string, server: string): string[] {
    const out: string[] = [];
    for (const [node, p] of this.placements) {
      if (p.machine === machine && p.server === server) out.push(node);
    }
    return out;
  }
}

/** A validated topology. */
export interface Topology {
  readonly cluster: string;
  readonly simprocs: readonly string[];
  readonly replications: number;
  readonly machines: readonly {
    readonly name: string;
    readonly host: string;
    readonly grpcPort?: number;
    readonly servers: readonly { readonly name: string; readonly nodes: readonly string[] }[];
  }[];
  readonly addressBook: AddressBook;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out.length === 0 ? String(key) : `.${String(key)}`;
  }
  return out;
}

/**
 * Reads and validates a topology from a JSON file path or an object.
 * @throws {TopologyError} listing every problem with the path of its field,
 *   or the file's read or JSON error.
 */
export function loadTopology(source: string | TopologyInput): Topology {
  const label = typeof source === 'string' ? source : '(object)';
  let input: unknown = source;
  if (typeof source === 'string') {
    try {
      input = JSON.parse(readFileSync(source, 'utf8'));
    } catch (err) {
      throw new TopologyError(label, [{ path: '', message: (err as Error).message }]);
    }
  }
  const parsed = topologySchema.safeParse(input);
  if (!parsed.success) {
    const issues: TopologyIssue[] = parsed.error.issues.map((i) => ({
      path: formatPath(i.path),
      message: i.message,
    }));
    throw new TopologyError(label, issues);
  }
  const topo = parsed.data;
  const placements = new Map<string, Placement>();
  for (const m of topo.machines) {
    for (const s of m.servers) {
      for (const node of s.nodes) placements.set(node, { machine: m.name, server: s.name });
    }
  }
  return Object.freeze({
    cluster: topo.cluster,
    simprocs: Object.freeze([...topo.simprocs]),
    replications: topo.replications,
    machines: topo.machines,
    addressBook: new AddressBook(topo.replications, placements),
  });
}
