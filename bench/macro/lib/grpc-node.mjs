/**
 * One end of the GrpcTransport benchmarks (bench/macro/cases/grpc-link.mjs): a Server of the
 * package hosting one node, whose only link beyond its own process is a GrpcTransport listening
 * on 127.0.0.1 with a port the OS picks. Two of them, in two processes, are the "two
 * Applications on loopback": machine m0 (Server s0, node n0, the sender, in the peer process)
 * and machine m1 (Server s1, node n1, the receiver, in the case process).
 *
 * Each end learns the other's port after both listen (`connect`), as an address book would
 * give it; the transport dials on its first send.
 *
 * Both ends take the transport's defaults. BENCH_GRPC_TRANSPORT (JSON) overrides options of
 * both ends, to try a variant without editing anything: '{"flushDelayMs":0}' (the suite's notes
 * then say so).
 */

import { Server } from '../../../dist/runtime/server.js';
import { loadTopology } from '../../../dist/topology.js';
import { GrpcTransport } from '../../../dist/transports/grpc.js';
import { LOOPBACK } from './grpc-raw.mjs';

export const SIMPROC = 'p';
/** Port named in the topology only (see `topology`). */
const PLACEHOLDER_PORT = 65000;
/** Options over the transport's defaults, from BENCH_GRPC_TRANSPORT (see the file header). */
export const TRANSPORT_OVERRIDES = JSON.parse(process.env.BENCH_GRPC_TRANSPORT || '{}');
/** Where each end lives: its machine, Server (also its peer id on the link) and node. */
export const ENDS = {
  sender: { machine: 'm0', server: 's0', node: 'n0' },
  receiver: { machine: 'm1', server: 's1', node: 'n1' },
};

function topology(cluster) {
  return loadTopology({
    cluster,
    simprocs: [SIMPROC],
    // The topology wants a fixed port per machine; the ends listen on ports the OS picks and
    // learn each other's (`connect`), so these placeholders are never dialled.
    machines: Object.values(ENDS).map(({ machine, server, node }, i) => ({
      name: machine,
      grpcPort: PLACEHOLDER_PORT + i,
      servers: [{ name: server, nodes: [node] }],
    })),
  });
}

/**
 * Starts the `role` end ('sender' or 'receiver') of cluster `cluster`; `reliability` switches
 * the link's acks and resend buffer on or off. Resolves with
 * `{ port, controller, transport, connect(peerPort), close() }`.
 */
export async function startGrpcEnd({ role, cluster, reliability }) {
  const self = ENDS[role];
  const other = role === 'sender' ? ENDS.receiver : ENDS.sender;
  let peerAddress;
  const transport = new GrpcTransport({
    cluster,
    self: self.server,
    listenAddress: `${LOOPBACK}:0`,
    locate: (_repid, node) => (node === other.node ? other.server : undefined),
    addressOf: (peer) => {
      if (peer !== other.server || peerAddress === undefined) {
        throw new Error(`benchmark end ${self.server}: no address for peer ${peer}`);
      }
      return peerAddress;
    },
    ...TRANSPORT_OVERRIDES,
    reliability: { ...TRANSPORT_OVERRIDES.reliability, enabled: reliability },
  });
  const port = await transport.listen();
  const server = new Server({
    topology: topology(cluster),
    machine: self.machine,
    server: self.server,
    transports: [transport],
  });
  const failures = [];
  server.on('error', (err) => failures.push(err));
  return {
    port,
    transport,
    controller: server.controller(self.node),
    /** The first link error seen (a failed run reports it), or undefined. */
    failure: () => failures[0],
    connect(peerPort) {
      peerAddress = `${LOOPBACK}:${peerPort}`;
    },
    close: () => server.close(),
  };
}
