/**
 * Application: one per machine (DESIGN §1). Reads the topology, creates the
 * shared-memory rings (one per ordered pair of its Servers, after removing what a
 * dead run of the same cluster left), forks one Server process per Server of its
 * machine, waits until every one is listening, starts
 * the job everywhere at once, relays job messages, supervises, and shuts down.
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
import {
  clusterSegmentPrefix,
  createRing,
  removeStaleRings,
  unlinkRing,
  type RingDoorbellOptions,
} from '../native.js';
import { loadTopology, topologyInput, type Topology, type TopologyInput } from '../topology.js';
import { ringName } from '../transports/shm.js';
import { machineEndpointIds } from './endpoints.js';
import {
  isChildMessage,
  type ChildMessage,
  type ErrorInfo,
  type ParentMessage,
  type SameMachineLink,
} from './protocol.js';

/** Default data bytes of each shared-memory ring. */
export const DEFAULT_RING_BYTES = 4 * 1024 * 1024;
/** Default time for every child to start and listen. */
export const START_TIMEOUT_MS = 30_000;
/** Default time children get to exit after 'shutdown' before they are killed. */
export const STOP_TIMEOUT_MS = 5_000;

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

/** The compiled child entry (this file's sibling in dist/, also when running from src/). */
export function serverProcessEntry(): string {
  const sibling = fileURLToPath(new URL('./server-process.js', import.meta.url));
  if (existsSync(sibling)) return sibling;
  return fileURLToPath(new URL('../../dist/runtime/server-process.js', import.meta.url));
}

interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  ready: boolean;
  result?: { value: unknown };
  error?: Error;
  exited: boolean;
}

/** Runs the Servers of one machine as child processes; see the file header. */
export class Application extends EventEmitter {
  readonly topology: Topology;
  readonly machine: string;
  private readonly options: ApplicationOptions;
  private readonly topologyInput: TopologyInput;
  private readonly children = new Map<string, Child>();
  private settled: Promise<Map<string, unknown>> | null = null;
  private stopping = false;
  private rings: string[] = [];

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
    this.options = options;
  }

  /** Names of the Servers this Application runs. */
  serverNames(): string[] {
    return this.topology.machines.find((m) => m.name === this.machine)!.servers.map((s) => s.name);
  }

  /**
   * Forks every Server, waits until all listen, then starts the job in all of them.
   * @throws {TimeoutError} when a child is not ready in time; PeerDeadError when one dies first.
   */
  async start(): Promise<void> {
    if (this.link === 'shm') this.createRings();
    for (const name of this.serverNames()) this.spawn(name);
    this.settled = this.whenSettled();
    this.settled.catch(() => {
      // Observed through wait(); this only keeps an early failure from being unhandled.
    });
    await this.whenReady(this.options.startTimeoutMs ?? START_TIMEOUT_MS);
    for (const c of this.children.values()) this.post(c, { type: 'go' });
  }

  /** Resolves with each Server's job result, or rejects with the first failure. */
  async wait(): Promise<Map<string, unknown>> {
    if (this.settled === null) throw new Error('start() first');
    return this.settled;
  }

  /** Process id of a Server's child process, while it runs. */
  pidOf(server: string): number | undefined {
    const c = this.children.get(server);
    return c === undefined || c.exited ? undefined : c.proc.pid;
  }

  /** Sends a job message to one Server, or to all when `server` is null. */
  send(server: string | null, payload: unknown): void {
    for (const c of this.children.values()) {
      if (server === null || c.name === server) this.post(c, { type: 'job', payload });
    }
  }

  /** Asks every child to shut down; kills those still running after the stop timeout. */
  async stop(): Promise<void> {
    this.stopping = true;
    const running = [...this.children.values()].filter((c) => !c.exited);
    for (const c of running) this.post(c, { type: 'shutdown' });
    const exits = running.map(
      (c) => new Promise<void>((r) => (c.exited ? r() : c.proc.once('exit', () => r()))),
    );
    const timer = setTimeout(() => {
      for (const c of running) if (!c.exited) c.proc.kill('SIGKILL');
    }, this.options.stopTimeoutMs ?? STOP_TIMEOUT_MS);
    await Promise.all(exits);
    clearTimeout(timer);
    this.removeRings();
  }

  /** Link the children use between each other. */
  get link(): SameMachineLink {
    return this.options.link ?? 'shm';
  }

  /** Ring segments this Application created (and will unlink). */
  ringNames(): readonly string[] {
    return this.rings;
  }

  /**
   * Removes what a dead run of this cluster left in /dev/shm, then creates one ring per
   * ordered pair of this machine's Servers. They are unlinked by `stop()`, and by an
   * exit handler should the parent end without it.
   */
  private createRings(): void {
    removeStaleRings(clusterSegmentPrefix(this.topology.cluster));
    const ids = machineEndpointIds(this.topology, this.machine);
    const bytes = this.options.ringBytes ?? DEFAULT_RING_BYTES;
    for (const from of ids) {
      for (const to of ids) {
        if (from === to) continue;
        const name = ringName(this.topology.cluster, from, to);
        createRing(name, bytes);
        this.rings.push(name);
      }
    }
    process.once('exit', this.removeRingsOnExit);
  }

  private removeRings(): void {
    for (const name of this.rings) unlinkRing(name);
    this.rings = [];
    process.off('exit', this.removeRingsOnExit);
  }

  private readonly removeRingsOnExit = (): void => {
    for (const name of this.rings) {
      try {
        unlinkRing(name);
      } catch {
        // Exiting: nothing else can be done; start-up removes what a dead cluster left.
      }
    }
  };

  private spawn(name: string): void {
    const proc = fork(serverProcessEntry(), [], {
      serialization: 'advanced',
      env: { ...process.env, ...this.options.env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const child: Child = { name, proc, ready: false, exited: false };
    this.children.set(name, child);
    proc.on('message', (m: unknown) => this.onMessage(child, m));
    proc.on('exit', (code, signal) => this.onExit(child, code, signal));
    proc.on('error', (err: NodeJS.ErrnoException) => {
      // EPIPE: the channel of an exiting child; the exit itself is reported by onExit.
      if (err.code !== 'EPIPE') this.fail(child, err);
    });
    this.post(child, {
      type: 'start',
      topology: this.topologyInput,
      machine: this.machine,
      server: name,
      link: this.link,
      ...(this.options.ringDoorbell !== undefined
        ? { ringDoorbell: this.options.ringDoorbell }
        : {}),
      jobModule: this.options.jobModule,
      jobOptions: this.options.jobOptions,
    });
  }

  private post(child: Child, msg: ParentMessage): void {
    if (child.exited || !child.proc.connected) return;
    child.proc.send(msg, (err) => {
      // A child that is exiting closes its channel; its exit is reported by onExit.
      if (err !== null && !child.exited && child.proc.connected) this.emit('error', err);
    });
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
      const err = new PeerDeadError(`server ${child.name} (pid ${child.proc.pid})`, how);
      this.fail(child, err);
      for (const c of this.children.values()) {
        if (c !== child) this.post(c, { type: 'peer-dead', server: child.name, detail: how });
      }
    }
    this.emit('progress');
  }

  private fail(child: Child, err: Error): void {
    child.error ??= err;
    this.emit('progress');
  }

  private whenReady(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('progress', check);
        reject(new TimeoutError('starting the Server processes', timeoutMs));
      }, timeoutMs);
      const check = (): void => {
        const failed = [...this.children.values()].find((c) => c.error !== undefined);
        const allReady = [...this.children.values()].every((c) => c.ready);
        if (failed === undefined && !allReady) return;
        clearTimeout(timer);
        this.off('progress', check);
        if (failed !== undefined) reject(failed.error);
        else resolve();
      };
      this.on('progress', check);
      check();
    });
  }

  private whenSettled(): Promise<Map<string, unknown>> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const kids = [...this.children.values()];
        const failed = kids.find((c) => c.error !== undefined);
        if (failed !== undefined) {
          this.off('progress', check);
          reject(failed.error);
        } else if (kids.every((c) => c.result !== undefined)) {
          this.off('progress', check);
          resolve(new Map(kids.map((c) => [c.name, c.result!.value])));
        }
      };
      this.on('progress', check);
    });
  }
}
