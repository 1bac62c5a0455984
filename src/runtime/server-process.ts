/**
 * Entry point of a forked Server process (DESIGN §1): waits for its assignment
 * from the Application, builds its Server with same-machine links (shared-memory
 * rings the Application created, or Unix sockets), loads the job module, reports
 * ready, runs the job on 'go', reports the result, and closes on 'shutdown'. Job
 * messages that arrive before the job registers its handler are kept, in order.
 *
 * The job module is loaded before 'ready', and the Server reads nothing from its
 * peers until 'go' has called `runJob`: what peers send before then waits in their
 * rings, sockets and outbound queues, under back-pressure (their `writable` turns
 * false), however late 'go' reaches this process. So a job that sets its inboxes
 * before its first `await` receives every message. A job that sets one later gets
 * what arrived meanwhile from its controller, which holds up to `maxHeldMessages`.
 *
 * It never outlives its parent: when the IPC channel closes it exits, and it
 * ignores SIGINT/SIGTERM, which the parent handles for the whole group. Errors of
 * the Server (a dead peer, a corrupt frame) abort the job, whose failure is
 * reported to the parent with the error's name, code and message; so do errors of
 * a NodeController that the job does not listen for itself.
 */

import { pathToFileURL } from 'node:url';
import { loadTopology, type Topology } from '../topology.js';
import { ShmTransport } from '../transports/shm.js';
import type { Transport } from '../transports/transport.js';
import { UnixSocketTransport } from '../transports/unix-socket.js';
import { GrpcTransport } from '../transports/grpc.js';
import {
  directAddress,
  directLocator,
  hasGateways,
  machineEndpointIds,
  sameMachineLocator,
  serverEndpoint,
  serverId,
} from './endpoints.js';
import { grpcLinkOptions, machineSecurity, peerServerName } from './gateway-runtime.js';
import {
  errorInfo,
  isParentMessage,
  type ChildMessage,
  type JobContext,
  type ParentMessage,
  type RunJob,
  type StartMessage,
} from './protocol.js';
import { Server } from './server.js';
import { PeerDeadError } from '../errors.js';

/** Exit code of a child whose parent went away. */
const EXIT_ORPHANED = 3;

/** The transport to the other Servers of this machine, ready to carry traffic. */
async function sameMachineLink(topology: Topology, msg: StartMessage): Promise<Transport> {
  if (msg.link === 'uds') {
    const uds = new UnixSocketTransport({
      endpoint: serverEndpoint(topology, msg.machine, msg.server),
      locate: sameMachineLocator(topology, msg.machine, msg.server),
    });
    await uds.listen();
    return uds;
  }
  const shm = new ShmTransport({
    cluster: topology.cluster,
    self: serverId(topology, msg.machine, msg.server),
    peers: machineEndpointIds(topology, msg.machine),
    locate: sameMachineLocator(topology, msg.machine, msg.server, 'id'),
    ...(msg.ringDoorbell !== undefined ? { doorbell: msg.ringDoorbell } : {}),
  });
  shm.open();
  return shm;
}

/**
 * With `directLinks` in a cluster of several machines: this Server's own gRPC links to
 * the Servers of other machines, listening on its port. Null otherwise.
 */
async function directLink(topology: Topology, msg: StartMessage): Promise<Transport | null> {
  if (!topology.directLinks || !hasGateways(topology)) return null;
  const m = topology.machines.find((x) => x.name === msg.machine)!;
  const port = m.servers.find((x) => x.name === msg.server)!.grpcPort!;
  const grpc = new GrpcTransport({
    cluster: topology.cluster,
    self: `${msg.machine}/${msg.server}`,
    listenAddress: `${m.host}:${port}`,
    locate: directLocator(topology, msg.machine),
    addressOf: (peer: string) => directAddress(topology, peer),
    serverNameOf: (peer: string) => peerServerName(topology, peer.slice(0, peer.indexOf('/'))),
    security: machineSecurity(topology, msg.machine),
    ...grpcLinkOptions(topology),
  });
  await grpc.listen();
  return grpc;
}

function send(msg: ChildMessage): void {
  // With a callback, a parent that is gone is not an unhandled 'error': the
  // 'disconnect' handler below ends this process.
  process.send?.(msg, undefined, {}, () => {});
}

/** One child's lifecycle; see the file header. */
class ServerProcess {
  private server: Server | null = null;
  /** Transports to other processes; their reading is paused from creation until 'go'. */
  private links: Transport[] = [];
  private start: StartMessage | null = null;
  private runJobFn: RunJob | null = null;
  private readonly abort = new AbortController();
  private jobHandler: ((payload: unknown) => void) | null = null;
  /** Job messages that arrived before the job registered its handler, in order. */
  private early: unknown[] = [];
  /** The job: its module loaded or loading, running since 'go', or finished. */
  private job: 'waiting' | 'running' | 'finished' = 'waiting';

  async onMessage(msg: ParentMessage): Promise<void> {
    switch (msg.type) {
      case 'start':
        return this.onStart(msg);
      case 'go':
        return this.runJob();
      case 'job':
        if (this.jobHandler === null) this.early.push(msg.payload);
        else this.jobHandler(msg.payload);
        return;
      case 'peer-dead':
        this.abort.abort(new PeerDeadError(`server ${msg.server}`, msg.detail));
        return;
      case 'shutdown':
        this.abort.abort(new Error('shutdown requested'));
        // A job that never started (the run failed to start) has nothing to finish.
        if (this.job !== 'running') await this.exit(0);
        return;
    }
  }

  private async onStart(msg: StartMessage): Promise<void> {
    this.start = msg;
    const topology = loadTopology(msg.topology);
    const link = await sameMachineLink(topology, msg);
    link.pauseInbound?.();
    const direct = await directLink(topology, msg);
    direct?.pauseInbound?.();
    this.links = direct === null ? [link] : [link, direct];
    const server = new Server({
      topology,
      machine: msg.machine,
      server: msg.server,
      transports: this.links,
    });
    server.on('error', (err: Error) => this.abort.abort(err));
    for (const c of server.controllers()) {
      // Listening here keeps an error the job does not handle (a message for a
      // simproc that never got an inbox) from throwing out of a ring poll and
      // killing the process; the job fails with it instead.
      c.on('error', (err: Error) => {
        if (c.listenerCount('error') === 1) this.abort.abort(err);
      });
    }
    this.server = server;
    const mod = (await import(pathToFileURL(msg.jobModule).href)) as { runJob?: unknown };
    if (typeof mod.runJob !== 'function') {
      throw new TypeError(`job module ${msg.jobModule} does not export a runJob function`);
    }
    this.runJobFn = mod.runJob as RunJob;
    send({ type: 'ready' });
  }

  private async runJob(): Promise<void> {
    const start = this.start!;
    this.job = 'running';
    try {
      const ctx: JobContext = {
        server: this.server!,
        options: start.jobOptions,
        send: (payload) => send({ type: 'job', payload }),
        onMessage: (handler) => {
          this.jobHandler = handler;
          const early = this.early;
          this.early = [];
          for (const payload of early) handler(payload);
        },
        signal: this.abort.signal,
      };
      let running: ReturnType<RunJob>;
      try {
        running = this.runJobFn!(ctx);
      } finally {
        // The job ran up to its first await, setting its inboxes: what waited may come in.
        for (const t of this.links) t.resumeInbound?.();
      }
      const result = await running;
      await this.server!.flush();
      send({ type: 'done', result });
    } catch (err) {
      send({ type: 'failed', error: errorInfo(err) });
    }
    this.job = 'finished';
    if (this.abort.signal.aborted) await this.exit(0);
  }

  private async exit(code: number): Promise<void> {
    await this.server?.close();
    process.disconnect?.();
    process.exitCode = code;
    // A job module still loading (its top level waits on something) would keep this
    // process alive until the parent's stop timeout kills it; nothing of the job ran, so
    // nothing is cut short by leaving now.
    if (this.job === 'waiting') process.exit(code);
  }
}

// The parent decides when a Server stops: a terminal's Ctrl-C reaches the whole
// process group, and a child that died of it would look like a crash to its peers.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});

const child = new ServerProcess();
process.on('message', (msg: unknown) => {
  if (!isParentMessage(msg)) {
    send({
      type: 'failed',
      error: { name: 'TypeError', message: `unexpected IPC message ${JSON.stringify(msg)}` },
    });
    return;
  }
  child.onMessage(msg).catch((err: unknown) => {
    send({ type: 'failed', error: errorInfo(err) });
    process.exitCode = 1;
    process.disconnect?.();
  });
});
process.on('disconnect', () => {
  if (process.exitCode === undefined) process.exit(EXIT_ORPHANED);
});
