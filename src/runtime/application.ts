/**
 * Application: one per machine (DESIGN §1). Reads the topology, creates the
 * shared-memory rings (one per ordered pair of its Servers, after removing what a
 * dead run of the same cluster left), forks one Server process per Server of its
 * machine, waits until every one is listening, starts
 * the job everywhere at once, relays job messages, supervises, and shuts down.
 *
 * Several machines: each Application also runs its machine's gateway
 * (src/runtime/gateway.ts), through which its Servers reach the other machines.
 * The Application of the first machine leads (src/runtime/cluster-control.ts): its
 * children are every Server of the cluster, named `<machine>/<server>`, those of
 * other machines reached through their Application, which relays in both
 * directions. Every machine runs the same command; only `machine` differs.
 *
 * Supervision: a child that exits before it reported its result is reported with
 * its exit code or signal (PeerDeadError), and every sibling is told, so nobody
 * waits for a dead peer. `stop()` asks every child to shut down and kills those
 * still running after `stopTimeoutMs`; the CLI calls it on SIGINT/SIGTERM.
 */

import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DiscoError, ErrorCode, PeerDeadError, TimeoutError } from '../errors.js';
import type { RingDoorbellOptions } from '../native.js';
import { machineRoutes } from '../mesh.js';
import { loadTopology, topologyInput, type Topology, type TopologyInput } from '../topology.js';
import { clusterServerKey, isControlMessage, type ControlMessage } from './cluster-control.js';
import { hasGateways } from './endpoints.js';
import type { Gateway, GatewayMetrics } from './gateway.js';
import { startGateway } from './gateway-runtime.js';
import { MachineRings } from './machine-rings.js';
import {
  isChildMessage,
  type ChildMessage,
  type ErrorInfo,
  type ParentMessage,
  type SameMachineLink,
} from './protocol.js';

/** Default data bytes of each shared-memory ring. */
export const DEFAULT_RING_BYTES = 4 * 1024 * 1024;
/** How long a failure waits for a Server's death that may have caused it (whenSettled). */
const ROOT_CAUSE_GRACE_MS = 200;
/** Default time for every child to start and listen. */
export const START_TIMEOUT_MS = 30_000;
/** Default time children get to exit after 'shutdown' before they are killed. */
export const STOP_TIMEOUT_MS = 5_000;
/**
 * A member whose Servers the leader shut down waits this many stop timeouts for the
 * leader's 'stop' (which comes after every Server of the cluster exited and the members
 * farther away stopped); if none comes, the leader is gone and the member stops itself.
 */
const MEMBER_STOP_WAIT_TIMEOUTS = 4;

/** Options of an Application. */
export interface ApplicationOptions {
  /** Topology (validated object, file path, or raw object). */
  topology: Topology | TopologyInput | string;
  /** Machine this Application runs; default the first in the topology. */
  machine?: string;
  /** Absolute path of the job module each Server runs (exports `runJob`). */
  jobModule: string;
  jobOptions?: unknown;
  /** Link between the Server processes: shared-memory rings (default) or Unix sockets. */
  link?: SameMachineLink;
  /** Data bytes of each ring (a power of two, 64 KiB .. 4 GiB). Default 4 MiB. */
  ringBytes?: number;
  ringDoorbell?: RingDoorbellOptions;
  startTimeoutMs?: number;
  stopTimeoutMs?: number;
  /** Extra environment for the children. */
  env?: NodeJS.ProcessEnv;
}

/** A job failed inside a Server process; carries the child's error name and code. */
export class JobFailedError extends DiscoError {
  readonly server: string;
  readonly remote: ErrorInfo;
  constructor(server: string, remote: ErrorInfo) {
    super(ErrorCode.JOB_FAILED, `server ${server} failed: ${remote.name}: ${remote.message}`);
    this.server = server;
    this.remote = remote;
  }
}

/** `stop()` was called while `start()` still waited for the Server processes. */
export class StoppedError extends DiscoError {
  constructor(what: string) {
    super(ErrorCode.STOPPED, `${what}: the Application was stopped first`);
  }
}

/** The compiled child entry (this file's sibling in dist/, also when running from src/). */
export function serverProcessEntry(): string {
  const sibling = fileURLToPath(new URL('./server-process.js', import.meta.url));
  if (existsSync(sibling)) return sibling;
  return fileURLToPath(new URL('../../dist/runtime/server-process.js', import.meta.url));
}

interface Child {
  /** Its name in this Application's view: the server, or `<machine>/<server>` for a leader. */
  readonly name: string;
  readonly machine: string;
  readonly server: string;
  /** The child process; null for a Server of another machine (reached through its Application). */
  readonly proc: ChildProcess | null;
  ready: boolean;
  result?: { value: unknown };
  error?: Error;
  exited: boolean;
}

/** What this Application is in its cluster. */
export type ApplicationRole = 'single' | 'leader' | 'member';

/**
 * Runs the Servers of one machine as child processes; see the file header. Events: 'job'
 * (server, payload), 'exit' (server, code, signal), 'error' (err); a member also emits
 * 'stop-requested' when the leader's 'stop' reaches it.
 */
export class Application extends EventEmitter {
  readonly topology: Topology;
  readonly machine: string;
  readonly role: ApplicationRole;
  private readonly options: ApplicationOptions;
  private readonly topologyInput: TopologyInput;
  private readonly children = new Map<string, Child>();
  private readonly rings = new MachineRings();
  private gateway: Gateway | null = null;
  private settled: Promise<Map<string, unknown>> | null = null;
  private stopping = false;
  private stopped: Promise<void> | null = null;
  private memberDone: (() => void) | null = null;
  /** Leader: members that reported 'stopped'. */
  private readonly membersStopped = new Set<string>();
  /** Children that failed, in the order they did. */
  private readonly failed: Child[] = [];
  /** Member: the leader sent 'stop' (answered with 'stopped' once the Servers are gone). */
  private stopRequested = false;
  /** Member: stops it if the leader's 'stop' does not come after a shutdown. */
  private stopFallback: NodeJS.Timeout | null = null;

  /** @throws {TopologyError} for an invalid topology; RangeError for an unknown machine. */
  constructor(options: ApplicationOptions) {
    super();
    const source = options.topology;
    this.topology =
      typeof source === 'object' && 'addressBook' in source ? source : loadTopology(source);
    this.topologyInput = topologyInput(this.topology);
    this.machine = options.machine ?? this.topology.machines[0]!.name;
    if (!this.topology.machines.some((m) => m.name === this.machine)) {
      throw new RangeError(`machine ${JSON.stringify(this.machine)} is not in the topology`);
    }
    this.role = !hasGateways(this.topology)
      ? 'single'
      : this.machine === this.topology.machines[0]!.name
        ? 'leader'
        : 'member';
    this.options = options;
  }

  /** Names of the Servers this Application runs (a leader: every Server of the cluster). */
  serverNames(): string[] {
    if (this.role !== 'leader') return this.localServers();
    return this.topology.machines.flatMap((m) =>
      m.servers.map((s) => clusterServerKey(m.name, s.name)),
    );
  }

  /**
   * Forks every Server, waits until all listen, then starts the job in all of them.
   * A member starts its Servers and its gateway; the leader drives the rest.
   * @throws {TimeoutError} when a child is not ready in time (naming those that are not);
   *   PeerDeadError when one dies first; StoppedError when `stop()` is called meanwhile.
   */
  async start(): Promise<void> {
    if (this.link === 'shm') {
      this.rings.create(this.topology, this.machine, this.options.ringBytes ?? DEFAULT_RING_BYTES);
    }
    if (this.role !== 'single') await this.startGateway();
    for (const m of this.topology.machines) {
      for (const s of m.servers) {
        if (m.name === this.machine) this.spawn(m.name, s.name);
        else if (this.role === 'leader') this.addRemote(m.name, s.name);
      }
    }
    this.settled = this.role === 'member' ? this.whenMemberDone() : this.whenSettled();
    this.settled.catch(() => {
      // Observed through wait(); this only keeps an early failure from being unhandled.
    });
    if (this.role === 'member') return;
    await this.whenReady(this.options.startTimeoutMs ?? START_TIMEOUT_MS);
    for (const c of this.children.values()) this.post(c, { type: 'go' });
  }

  /**
   * Resolves with each Server's job result, or rejects with the first failure (with
   * StoppedError when `stop()` ended the run before every job reported). A member
   * resolves (with an empty map) once the leader has stopped the run.
   */
  async wait(): Promise<Map<string, unknown>> {
    if (this.settled === null) throw new Error('start() first');
    return this.settled;
  }

  /** Process id of a Server's child process on this machine, while it runs. */
  pidOf(server: string): number | undefined {
    const c = this.children.get(server);
    return c === undefined || c.exited || c.proc === null ? undefined : c.proc.pid;
  }

  /** Sends a job message to one Server, or to all when `server` is null. */
  send(server: string | null, payload: unknown): void {
    for (const c of this.children.values()) {
      if (server === null || c.name === server) this.post(c, { type: 'job', payload });
    }
  }

  /**
   * Asks every child to shut down; kills those of this machine still running after the
   * stop timeout. A leader then tells every member to stop. Idempotent.
   */
  stop(): Promise<void> {
    this.stopped ??= this.stopAll();
    return this.stopped;
  }

  /** Link the children use between each other. */
  get link(): SameMachineLink {
    return this.options.link ?? 'shm';
  }

  /** Ring segments this Application created (and will unlink). */
  ringNames(): readonly string[] {
    return this.rings.names();
  }

  /** Counters of this machine's gateway, or null without one. */
  gatewayMetrics(): GatewayMetrics | null {
    return this.gateway?.metrics() ?? null;
  }

  private async stopAll(): Promise<void> {
    this.stopping = true;
    this.emit('progress'); // a start() still waiting for the children gives up
    if (this.stopFallback !== null) clearTimeout(this.stopFallback);
    const timeoutMs = this.options.stopTimeoutMs ?? STOP_TIMEOUT_MS;
    const running = [...this.children.values()].filter((c) => !c.exited);
    for (const c of running) this.post(c, { type: 'shutdown' });
    const exits = running.map(
      (c) =>
        new Promise<void>((resolve) => {
          const check = (): void => {
            if (!c.exited) return;
            this.off('progress', check);
            resolve();
          };
          this.on('progress', check);
          check();
        }),
    );
    const timer = setTimeout(() => {
      for (const c of running) {
        if (c.exited) continue;
        if (c.proc !== null) c.proc.kill('SIGKILL');
        else {
          c.exited = true; // its own Application kills it; nothing more to wait for here
          this.emit('progress');
        }
      }
    }, timeoutMs);
    await Promise.all(exits);
    clearTimeout(timer);
    await this.closeGateway(timeoutMs);
    this.rings.remove();
    this.memberDone?.();
  }

  /**
   * A leader stops every member (`stopMembers`); a member the leader stopped says so. Then
   * the gateway hands over what it holds.
   */
  private async closeGateway(timeoutMs: number): Promise<void> {
    const gw = this.gateway;
    if (gw === null) return;
    if (this.role === 'leader') await this.stopMembers(gw, timeoutMs);
    else if (this.stopRequested) this.sendControl(gw, this.topology.machines[0]!.name, 'stopped');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      gw.flush(),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ]);
    clearTimeout(timer);
    await gw.close();
  }

  /**
   * Stops the members farthest from this machine first (cluster-control.ts): each group of
   * members at one distance gets 'stop', and the next nearer group waits for their 'stopped'.
   * After `timeoutMs` in all, or once the run failed on a link, the rest get 'stop' without
   * waiting.
   */
  private async stopMembers(gw: Gateway, timeoutMs: number): Promise<void> {
    const byHops = new Map<number, string[]>();
    for (const [machine, route] of machineRoutes(this.topology, this.machine)) {
      const group = byHops.get(route.hops) ?? [];
      group.push(machine);
      byHops.set(route.hops, group);
    }
    const deadline = Date.now() + timeoutMs;
    for (const hops of [...byHops.keys()].sort((a, b) => b - a)) {
      const group = byHops.get(hops)!;
      for (const m of group) this.sendControl(gw, m, 'stop');
      await this.progressUntil(
        () => this.linkError !== undefined || group.every((m) => this.membersStopped.has(m)),
        deadline - Date.now(),
      );
    }
  }

  private sendControl(gw: Gateway, machine: string, type: 'stop' | 'stopped'): void {
    try {
      gw.sendControl(machine, { type } satisfies ControlMessage);
    } catch {
      // The link to that machine failed already (reported as 'error'); a member stops
      // on its own when it hears nothing from the leader.
    }
  }

  /** Resolves once `done()` holds (checked at each 'progress'), or after `ms`. */
  private progressUntil(done: () => boolean, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.off('progress', check);
        resolve();
      };
      const check = (): void => {
        if (done()) finish();
      };
      const timer = setTimeout(finish, Math.max(0, ms));
      this.on('progress', check);
      check();
    });
  }

  private localServers(): string[] {
    return this.topology.machines.find((m) => m.name === this.machine)!.servers.map((s) => s.name);
  }

  private async startGateway(): Promise<void> {
    const gw = await startGateway(this.topology, this.machine, {
      link: this.link,
      ...(this.options.ringDoorbell !== undefined
        ? { ringDoorbell: this.options.ringDoorbell }
        : {}),
    });
    this.gateway = gw;
    gw.on('control', (from: string, msg: unknown) => this.onControl(from, msg));
    gw.on('error', (err: Error) => this.onGatewayError(err));
  }

  /**
   * A link of the gateway failed (a machine stayed unreachable past its deadline, a
   * peer sent bad frames, an envelope could not be forwarded). The run fails: a member
   * stops its Servers; the leader's wait() rejects. During a stop, links to Servers
   * that exit are expected to close, so errors are ignored then.
   */
  private onGatewayError(err: Error): void {
    if (this.stopping) return;
    this.linkError ??= err;
    if (this.role === 'member') void this.stop();
    if (this.listenerCount('error') > 0) this.emit('error', err);
    this.emit('progress');
  }

  private linkError: Error | undefined;

  private onControl(from: string, m: unknown): void {
    if (!isControlMessage(m)) {
      this.emit('error', new TypeError(`machine ${from} sent an unexpected control message`));
      return;
    }
    if (m.type === 'stop') {
      if (this.role === 'member') {
        this.stopRequested = true;
        this.emit('stop-requested');
        void this.stop();
      }
      return;
    }
    if (m.type === 'stopped') {
      if (this.role === 'leader') {
        this.membersStopped.add(from);
        this.emit('progress');
      }
      return;
    }
    if (m.type === 'to-server') {
      const c = this.role === 'member' ? this.children.get(m.server) : undefined;
      if (m.msg.type === 'shutdown') {
        // Once the leader shuts the Servers down, their links closing is no failure; and
        // if its 'stop' never comes (the leader is gone), a member stops on its own.
        this.stopping = true;
        if (this.role === 'member' && this.stopped === null) {
          const waitMs =
            MEMBER_STOP_WAIT_TIMEOUTS * (this.options.stopTimeoutMs ?? STOP_TIMEOUT_MS);
          this.stopFallback ??= setTimeout(() => void this.stop(), waitMs);
        }
      }
      if (c !== undefined) this.post(c, m.msg);
      return;
    }
    const c =
      this.role === 'leader' ? this.children.get(clusterServerKey(from, m.server)) : undefined;
    if (c === undefined || c.proc !== null) {
      this.emit(
        'error',
        new TypeError(`machine ${from} reported on an unknown server ${m.server}`),
      );
    } else if (m.type === 'from-server') {
      this.onMessage(c, m.msg);
    } else {
      this.onExit(c, m.code, m.signal as NodeJS.Signals | null);
    }
  }

  /** Relays a child's message or exit to the leader (member only). */
  private relay(msg: ControlMessage): void {
    try {
      this.gateway!.sendControl(this.topology.machines[0]!.name, msg);
    } catch (err) {
      this.onGatewayError(err as Error);
    }
  }

  private addRemote(machine: string, server: string): void {
    const name = clusterServerKey(machine, server);
    const child: Child = { name, machine, server, proc: null, ready: false, exited: false };
    this.children.set(name, child);
    this.post(child, this.startMessage(machine, server));
  }

  private startMessage(machine: string, server: string): ParentMessage {
    return {
      type: 'start',
      topology: this.topologyInput,
      machine,
      server,
      link: this.link,
      ...(this.options.ringDoorbell !== undefined
        ? { ringDoorbell: this.options.ringDoorbell }
        : {}),
      jobModule: this.options.jobModule,
      jobOptions: this.options.jobOptions,
    };
  }

  private spawn(machine: string, server: string): void {
    const proc = fork(serverProcessEntry(), [], {
      serialization: 'advanced',
      env: { ...process.env, ...this.options.env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const name = this.role === 'leader' ? clusterServerKey(machine, server) : server;
    const child: Child = { name, machine, server, proc, ready: false, exited: false };
    this.children.set(name, child);
    proc.on('message', (m: unknown) => {
      if (this.role === 'member' && isChildMessage(m)) {
        this.relay({ type: 'from-server', server, msg: m });
      } else this.onMessage(child, m);
    });
    proc.on('exit', (code, signal) => {
      if (this.role === 'member') {
        child.exited = true;
        this.relay({ type: 'exited', server, code, signal });
        this.emit('progress');
      } else this.onExit(child, code, signal);
    });
    proc.on('error', (err: NodeJS.ErrnoException) => {
      // EPIPE: the channel of an exiting child; the exit itself is reported by onExit.
      if (err.code !== 'EPIPE') this.fail(child, err);
    });
    // A member's Servers get their start from the leader.
    if (this.role !== 'member') this.post(child, this.startMessage(machine, server));
  }

  private post(child: Child, msg: ParentMessage): void {
    if (child.exited) return;
    if (child.proc === null) {
      try {
        this.gateway!.sendControl(child.machine, {
          type: 'to-server',
          server: child.server,
          msg,
        } satisfies ControlMessage);
      } catch (err) {
        this.fail(child, err as Error);
      }
      return;
    }
    const proc = child.proc;
    if (!proc.connected) return;
    try {
      proc.send(msg, (err) => {
        // A child that is exiting closes its channel (EPIPE): its exit is reported by onExit.
        if (err === null || (err as NodeJS.ErrnoException).code === 'EPIPE') return;
        if (!child.exited && proc.connected) this.fail(child, err);
      });
    } catch {
      // EPIPE thrown at once: the child is exiting, and onExit reports how it ended.
    }
  }

  private onMessage(child: Child, m: unknown): void {
    if (!isChildMessage(m)) {
      this.fail(child, new TypeError(`server ${child.name} sent an unexpected message`));
      return;
    }
    const msg: ChildMessage = m;
    if (msg.type === 'ready') child.ready = true;
    else if (msg.type === 'job') this.emit('job', child.name, msg.payload);
    else if (msg.type === 'done') child.result = { value: msg.result };
    else this.fail(child, new JobFailedError(child.name, msg.error));
    this.emit('progress');
  }

  private onExit(child: Child, code: number | null, signal: NodeJS.Signals | null): void {
    child.exited = true;
    this.emit('exit', child.name, code, signal);
    if (child.result === undefined && child.error === undefined && !this.stopping) {
      const how = signal !== null ? `killed by ${signal}` : `exited with code ${code}`;
      const pid = child.proc !== null ? ` (pid ${child.proc.pid})` : '';
      const err = new PeerDeadError(`server ${child.name}${pid}`, how);
      this.fail(child, err);
      for (const c of this.children.values()) {
        if (c !== child) this.post(c, { type: 'peer-dead', server: child.name, detail: how });
      }
    }
    this.emit('progress');
  }

  private fail(child: Child, err: Error): void {
    if (child.error === undefined) {
      child.error = err;
      this.failed.push(child);
    }
    this.emit('progress');
  }

  private async whenReady(timeoutMs: number): Promise<void> {
    const error = (): Error | undefined => this.failed[0]?.error ?? this.linkError;
    const allReady = (): boolean => [...this.children.values()].every((c) => c.ready);
    await this.progressUntil(() => error() !== undefined || this.stopping || allReady(), timeoutMs);
    if (this.stopping) throw new StoppedError('starting the Server processes');
    const e = error();
    if (e !== undefined) throw e;
    if (!allReady()) {
      const late = [...this.children.values()].filter((c) => !c.ready).map((c) => c.name);
      throw new TimeoutError(
        `starting the Server processes (not ready: ${late.join(', ')})`,
        timeoutMs,
      );
    }
  }

  /** A member's run ends when it stopped (the leader said so, or its links failed). */
  private whenMemberDone(): Promise<Map<string, unknown>> {
    return new Promise((resolve, reject) => {
      this.memberDone = () => {
        if (this.linkError !== undefined) reject(this.linkError);
        else resolve(new Map());
      };
    });
  }

  /**
   * The run's outcome. A Server that dies is the root cause of what its siblings then report
   * (their links see a dead peer), and the siblings' reports can arrive before its exit does:
   * so a failure that is not a death waits up to ROOT_CAUSE_GRACE_MS for one, and a death is
   * reported in preference. Otherwise the earliest failure is the one reported: later ones
   * are often its consequences (a sibling whose peer went away).
   */
  private whenSettled(): Promise<Map<string, unknown>> {
    return new Promise((resolve, reject) => {
      let grace: NodeJS.Timeout | null = null;
      const settle = (error: Error): void => {
        this.off('progress', check);
        if (grace !== null) clearTimeout(grace);
        reject(error);
      };
      const firstError = (): Error | undefined =>
        this.failed.find((c) => c.error instanceof PeerDeadError)?.error ??
        this.failed[0]?.error ??
        this.linkError;
      const check = (): void => {
        const kids = [...this.children.values()];
        const error = firstError();
        if (error instanceof PeerDeadError) settle(error);
        else if (error !== undefined) {
          grace ??= setTimeout(() => settle(firstError()!), ROOT_CAUSE_GRACE_MS);
        } else if (kids.every((c) => c.result !== undefined)) {
          this.off('progress', check);
          resolve(new Map(kids.map((c) => [c.name, c.result!.value])));
        } else if (this.stopping && kids.every((c) => c.exited || c.result !== undefined)) {
          // Stopped before every job reported (stopped while starting): no result will come.
          settle(new StoppedError('the run'));
        }
      };
      this.on('progress', check);
    });
  }
}
