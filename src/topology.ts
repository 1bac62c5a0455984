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
import { dirname, resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { nameProblem, SELF_NODE } from './address.js';
import { TopologyError, type TopologyIssue } from './errors.js';
import { canonicalIdentity, isLoopbackHost } from './transports/grpc-security.js';

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
  /** Port of this Server's own gRPC links, with `directLinks`. */
  grpcPort: z.number().int().min(1).max(65535).optional(),
});

const file = z.string().min(1);

/** PEM files of one machine's gateway (paths relative to the topology file). */
const tlsSchema = z.strictObject({
  ca: file.optional(),
  cert: file.optional(),
  key: file.optional(),
  requireClientCert: z.boolean().optional(),
  serverNameOverride: z.string().min(1).optional(),
});

const machineSchema = z.strictObject({
  name,
  host: z.string().min(1).default('127.0.0.1'),
  /** Port of this machine's gateway; required when the cluster has several machines. */
  grpcPort: z.number().int().min(0).max(65535).optional(),
  tls: tlsSchema.optional(),
  /**
   * The identity (certificate CN or SAN) this machine's certificate names. Set on every
   * machine or none; when set, a gateway refuses a call that claims to come from a machine
   * unless its certificate names that machine's identity (needs security.allow).
   */
  identity: z.string().min(1).optional(),
  servers: z.array(serverSchema).min(1),
});

const securitySchema = z.strictObject({
  /** Peer identities (certificate CN or SAN) a gateway accepts. */
  allow: z.array(z.string().min(1)).min(1).optional(),
  /** Plaintext gRPC on a non-loopback address; off unless set. */
  insecure: z.boolean().default(false),
});

const grpcSchema = z.strictObject({
  /** grpc-js channel options (compression, keepalive, message sizes), passed as they are. */
  channelOptions: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
  /** How long a link may stay down before it fails with LinkClosedError. */
  peerDeadlineMs: z.number().int().min(1).optional(),
  /** Per peer: largest frame accepted from it, in bytes. */
  maxFrameBytes: z.number().int().min(1024).optional(),
  /** Per peer: bytes of sent, unacknowledged frames kept for resending. */
  resendBufferBytes: z.number().int().min(65536).optional(),
  /** Per peer: envelopes accepted per second (reading pauses above it; nothing is dropped). */
  rateLimit: z
    .strictObject({
      messagesPerSecond: z.number().positive(),
      burst: z.number().int().min(1).optional(),
    })
    .optional(),
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
    /** Machine pairs joined by a gRPC link; absent means every pair (full mesh). */
    links: z.array(z.tuple([name, name])).optional(),
    /** Most gateway hops an envelope may take. */
    maxHops: z.number().int().min(1).max(255).default(8),
    /**
     * Servers link to the Servers of other machines directly, each on its own gRPC port,
     * instead of through their gateways (small clusters; connections grow with Servers).
     */
    directLinks: z.boolean().default(false),
    security: securitySchema.optional(),
    grpc: grpcSchema.optional(),
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
    checkMesh(topo, ctx);
  });

/** Ports and links of a cluster of several machines. */
function checkMesh(
  topo: {
    security?: { allow?: string[] | undefined; insecure: boolean } | undefined;
    machines: {
      name: string;
      host: string;
      tls?: { ca?: string | undefined } | undefined;
      grpcPort?: number | undefined;
      servers: { grpcPort?: number | undefined }[];
    }[];
    links?: [string, string][] | undefined;
    directLinks: boolean;
  },
  ctx: z.RefinementCtx,
): void {
  const names = new Set(topo.machines.map((m) => m.name));
  if (topo.machines.length > 1 && topo.directLinks) {
    topo.machines.forEach((m, mi) =>
      m.servers.forEach((s, si) => {
        if (s.grpcPort === undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['machines', mi, 'servers', si, 'grpcPort'],
            message: 'with directLinks every Server needs its own gRPC port',
          });
        } else if (s.grpcPort === m.grpcPort) {
          ctx.addIssue({
            code: 'custom',
            path: ['machines', mi, 'servers', si, 'grpcPort'],
            message: `port ${s.grpcPort} is the gateway's port of machine ${m.name}`,
          });
        }
      }),
    );
  }
  if (topo.machines.length > 1) checkSecurity(topo, ctx);
  if (topo.machines.length > 1) {
    topo.machines.forEach((m, mi) => {
      if (m.grpcPort === undefined || m.grpcPort === 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['machines', mi, 'grpcPort'],
          message: 'a cluster of several machines needs a fixed gRPC port (1-65535) on each',
        });
      }
    });
  }
  if (topo.links === undefined) return;
  topo.links.forEach((pair, li) =>
    pair.forEach((m, end) => {
      if (!names.has(m))
        ctx.addIssue({ code: 'custom', path: ['links', li, end], message: `no machine ${m}` });
    }),
  );
  topo.links.forEach(([a, b], li) => {
    if (a === b)
      ctx.addIssue({ code: 'custom', path: ['links', li], message: 'a machine linked to itself' });
  });
  const unreachable = unreachableMachines(topo.machines[0]!.name, [...names], topo.links);
  if (unreachable.length > 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['links'],
      message: `machines ${unreachable.join(', ')} cannot be reached from ${topo.machines[0]!.name}`,
    });
  }
}

/**
 * Plaintext only on loopback or by opt-in; an allow-list needs mTLS everywhere; machine
 * identities are all set or none, need the allow-list, and are in it.
 */
function checkSecurity(
  topo: {
    security?: { allow?: string[] | undefined; insecure: boolean } | undefined;
    machines: {
      host: string;
      identity?: string | undefined;
      tls?: { ca?: string | undefined } | undefined;
    }[];
  },
  ctx: z.RefinementCtx,
): void {
  checkMachineIdentities(topo, ctx);
  const insecure = topo.security?.insecure === true;
  const allow = topo.security?.allow !== undefined;
  topo.machines.forEach((m, mi) => {
    if (m.tls === undefined && !insecure && !isLoopbackHost(m.host)) {
      ctx.addIssue({
        code: 'custom',
        path: ['machines', mi, 'tls'],
        message:
          `gRPC links of ${m.host} would be plaintext on a non-loopback address: set tls ` +
          '({ "ca", "cert", "key" }), or "security": { "insecure": true } to allow it',
      });
    } else if (allow && m.tls?.ca === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['machines', mi, 'tls', 'ca'],
        message: 'security.allow needs mutual TLS: every machine needs tls.ca, cert and key',
      });
    }
  });
}

function checkMachineIdentities(
  topo: {
    security?: { allow?: string[] | undefined } | undefined;
    machines: { identity?: string | undefined }[];
  },
  ctx: z.RefinementCtx,
): void {
  if (topo.machines.every((m) => m.identity === undefined)) return;
  const allow = topo.security?.allow;
  const allowed = new Set((allow ?? []).map(canonicalIdentity));
  topo.machines.forEach((m, mi) => {
    const path = ['machines', mi, 'identity'];
    if (m.identity === undefined) {
      ctx.addIssue({
        code: 'custom',
        path,
        message: 'another machine has an identity: set one on every machine, or on none',
      });
    } else if (allow === undefined) {
      ctx.addIssue({
        code: 'custom',
        path,
        message: 'an identity binds calls to certificates: it needs security.allow (mutual TLS)',
      });
    } else if (!allowed.has(canonicalIdentity(m.identity))) {
      ctx.addIssue({
        code: 'custom',
        path,
        message: `identity ${JSON.stringify(m.identity)} is not in security.allow`,
      });
    }
  });
}

/** Machines with no path of links from `from`. */
function unreachableMachines(
  from: string,
  machines: readonly string[],
  links: readonly (readonly [string, string])[],
): string[] {
  const seen = new Set([from]);
  const todo = [from];
  while (todo.length > 0) {
    const m = todo.pop()!;
    for (const [a, b] of links) {
      const other = a === m ? b : b === m ? a : null;
      if (other !== null && !seen.has(other)) {
        seen.add(other);
        todo.push(other);
      }
    }
  }
  return machines.filter((m) => !seen.has(m));
}

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

/** PEM files of a machine's gateway, as absolute paths. */
export interface MachineTls {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly requireClientCert?: boolean;
  readonly serverNameOverride?: string;
}

/** One machine of a topology. */
export interface MachineSpec {
  readonly name: string;
  readonly host: string;
  readonly grpcPort?: number;
  readonly tls?: MachineTls;
  /** The identity this machine's certificate names, when callers are bound to certificates. */
  readonly identity?: string;
  readonly servers: readonly {
    readonly name: string;
    readonly nodes: readonly string[];
    readonly grpcPort?: number;
  }[];
}

/** A validated topology. */
export interface Topology {
  readonly cluster: string;
  readonly simprocs: readonly string[];
  readonly replications: number;
  readonly machines: readonly MachineSpec[];
  /** Machine pairs joined by a gRPC link; null means every pair. */
  readonly links: readonly (readonly [string, string])[] | null;
  readonly maxHops: number;
  /** Servers link to other machines' Servers directly over gRPC, not through gateways. */
  readonly directLinks: boolean;
  readonly security: { readonly allow?: readonly string[]; readonly insecure: boolean };
  readonly grpc: {
    readonly channelOptions?: Readonly<Record<string, string | number>>;
    readonly peerDeadlineMs?: number;
    readonly maxFrameBytes?: number;
    readonly resendBufferBytes?: number;
    readonly rateLimit?: { readonly messagesPerSecond: number; readonly burst?: number };
  };
  readonly addressBook: AddressBook;
}

/** The topology as an input object again (for a child process or a file): `loadTopology` of it gives the same. */
export function topologyInput(topo: Topology): TopologyInput {
  return {
    cluster: topo.cluster,
    simprocs: [...topo.simprocs],
    replications: topo.replications,
    machines: topo.machines.map((m) => ({
      name: m.name,
      host: m.host,
      ...(m.grpcPort !== undefined ? { grpcPort: m.grpcPort } : {}),
      ...(m.tls !== undefined ? { tls: { ...m.tls } } : {}),
      ...(m.identity !== undefined ? { identity: m.identity } : {}),
      servers: m.servers.map((s) => ({
        name: s.name,
        nodes: [...s.nodes],
        ...(s.grpcPort !== undefined ? { grpcPort: s.grpcPort } : {}),
      })),
    })),
    ...(topo.links !== null
      ? { links: topo.links.map(([a, b]) => [a, b] as [string, string]) }
      : {}),
    maxHops: topo.maxHops,
    directLinks: topo.directLinks,
    security: {
      ...(topo.security.allow !== undefined ? { allow: [...topo.security.allow] } : {}),
      insecure: topo.security.insecure,
    },
    grpc: JSON.parse(JSON.stringify(topo.grpc)) as TopologyInput['grpc'],
  };
}

/** TLS file paths resolved against `dir` (the topology file's folder). */
function resolveTls(tls: MachineTls | undefined, dir: string | null): MachineTls | undefined {
  if (tls === undefined || dir === null) return tls;
  const abs = (p: string | undefined): string | undefined =>
    p === undefined ? undefined : resolvePath(dir, p);
  return {
    ...tls,
    ...(tls.ca !== undefined ? { ca: abs(tls.ca) } : {}),
    ...(tls.cert !== undefined ? { cert: abs(tls.cert) } : {}),
    ...(tls.key !== undefined ? { key: abs(tls.key) } : {}),
  };
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
  const dir = typeof source === 'string' ? dirname(resolvePath(source)) : null;
  return Object.freeze({
    cluster: topo.cluster,
    simprocs: Object.freeze([...topo.simprocs]),
    replications: topo.replications,
    machines: topo.machines.map((m) => {
      const tls = resolveTls(m.tls, dir);
      return { ...m, ...(tls !== undefined ? { tls } : {}) };
    }),
    links: topo.links ?? null,
    maxHops: topo.maxHops,
    directLinks: topo.directLinks,
    security: topo.security ?? { insecure: false },
    grpc: topo.grpc ?? {},
    addressBook: new AddressBook(topo.replications, placements),
  });
}
