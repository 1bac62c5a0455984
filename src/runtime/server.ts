/**
 * Server: one Node.js process hosting the NodeControllers placed on it (DESIGN §1).
 *
 * It builds the Router (in-process transport first, then any transports given for
 * other processes and machines, in locality order) and one NodeController per
 * (replication, node) placed on it by the topology. `Server.standalone` is the
 * one-line form for single-process simulations.
 */

import { EventEmitter } from 'node:events';
import { DEFAULT_MAX_HOPS, Router } from '../router.js';
import { NodeController, type NodeControllerMetrics } from '../node-controller.js';
import { emitError, UnknownNodeError, InvalidArgumentError } from '../errors.js';
import type { Serializer } from '../serializer.js';
import { loadTopology, type Topology } from '../topology.js';
import { InProcessTransport, type InProcessTransportOptions } from '../transports/inprocess.js';
import type { Transport } from '../transports/transport.js';

/** Options of a Server. */
export interface ServerOptions {
  topology: Topology;
  /** Name of the machine this process runs on, as in the topology. */
  machine: string;
  /** Name of this Server, as in the topology. */
  server: string;
  /** Transports to other processes and machines, in locality order, after in-process. */
  transports?: readonly Transport[];
  serializer?: Serializer;
  /** Options of the in-process transport (queue limits, viaWire). */
  inProcess?: InProcessTransportOptions;
  maxHops?: number;
}

/** Options of `Server.standalone`. */
export interface StandaloneOptions {
  /** Node names, or a count: `n0` ... `n<count-1>`. */
  nodes: number | readonly string[];
  simprocs: readonly string[];
  /** Replications sharing this process. Default 1. */
  replications?: number;
  /** Cluster name. Default `standalone`. */
  cluster?: string;
  serializer?: Serializer;
  inProcess?: InProcessTransportOptions;
}

/**
 * Hosts NodeControllers in this process; see the file header. Transport errors
 * (a failed link, a corrupt frame) are emitted as 'error'; without a listener
 * they are thrown asynchronously, never lost.
 */
export class Server extends EventEmitter {
  readonly topology: Topology;
  readonly machine: string;
  readonly name: string;
  readonly router: Router;
  private readonly byRepid: Map<string, NodeController>[] = [];
  private closed = false;

  /** @throws {InvalidArgumentError} when the machine or server is not in the topology. */
  constructor(options: ServerOptions) {
    super();
    const { topology, machine, server } = options;
    const m = topology.machines.find((x) => x.name === machine);
    if (m === undefined) {
      throw new InvalidArgumentError(
        'machine',
        machine,
        `one of ${topology.machines.map((x) => x.name).join(', ')}`,
      );
    }
    if (!m.servers.some((s) => s.name === server)) {
      throw new InvalidArgumentError(
        'server',
        server,
        `one of ${m.servers.map((s) => s.name).join(', ')}`,
      );
    }
    this.topology = topology;
    this.machine = machine;
    this.name = server;
    this.router = new Router({
      transports: [new InProcessTransport(options.inProcess), ...(options.transports ?? [])],
      maxHops: options.maxHops ?? DEFAULT_MAX_HOPS,
    });
    this.router.on('error', (err: Error) => {
      emitError(this, err);
    });
    const nodes = topology.addressBook.nodesOn(machine, server);
    for (let repid = 0; repid < topology.replications; repid++) {
      const controllers = new Map<string, NodeController>();
      for (const nodeName of nodes) {
        controllers.set(
          nodeName,
          new NodeController({
            repid,
            nodeName,
            simprocs: topology.simprocs,
            router: this.router,
            serializer: options.serializer,
          }),
        );
      }
      this.byRepid.push(controllers);
    }
  }

  /**
   * A single-process Server with every node on it.
   * @throws {TopologyError} for bad node or simproc names.
   */
  static standalone(options: StandaloneOptions): Server {
    const nodes =
      typeof options.nodes === 'number'
        ? Array.from({ length: options.nodes }, (_, i) => `n${i}`)
        : [...options.nodes];
    const topology = loadTopology({
      cluster: options.cluster ?? 'standalone',
      simprocs: [...options.simprocs],
      replications: options.replications ?? 1,
      machines: [{ name: 'local', servers: [{ name: 'server0', nodes }] }],
    });
    return new Server({
      topology,
      machine: 'local',
      server: 'server0',
      serializer: options.serializer,
      inProcess: options.inProcess,
    });
  }

  /**
   * The controller of `node` in replication `repid` (default 0).
   * @throws {UnknownNodeError} when that node is not hosted by this Server.
   */
  controller(node: string, repid = 0): NodeController {
    const c = this.byRepid[repid]?.get(node);
    if (c === undefined) throw new UnknownNodeError(repid, node, [`server ${this.name}`]);
    return c;
  }

  /** Every controller hosted here, replication by replication, in topology order. */
  controllers(): NodeController[] {
    return this.byRepid.flatMap((m) => [...m.values()]);
  }

  /** Metrics of every controller hosted here. */
  metrics(): NodeControllerMetrics[] {
    return this.controllers().map((c) => c.metrics());
  }

  /** Resolves once everything sent by controllers hosted here has been handed over. */
  async flush(): Promise<void> {
    await Promise.all(this.controllers().map((c) => c.flush()));
  }

  /**
   * Closes every controller (each hands over what it sent to itself) and the router; idempotent.
   * Each transport then waits, within its own limit (`closeTimeoutMs` of the shared-memory
   * and Unix-socket transports, the flush timeout of gRPC), for its peers to take what it
   * still holds, and reports what they did not as LinkClosedError ('error') with its count:
   * a peer that stopped reading cannot hold close() forever.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.controllers().map((c) => c.close()));
    await this.router.close();
  }
}
