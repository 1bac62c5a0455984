/**
 * PHOLD (Fujimoto 1990) over real NodeControllers: the demo and smoke load of
 * disco-transport, and what `disco phold` / `npm start` runs.
 *
 * runPhold builds a Server, puts one PholdNode (src/demo/phold-node.ts) on every
 * controller of every replication, runs the windows until the wall-clock or the
 * simulated-time limit, flushes, and checks conservation (src/demo/conservation.ts).
 * The model talks only to NodeControllers obtained from the Server, so a runtime
 * that places nodes in other processes changes where controllers come from, not
 * the model. The stop rule is the one in-process shortcut: a shared `stopAt` per
 * replication (ReplicationGate) that a multi-process runtime would replace with a
 * control message.
 *
 * Stopping keeps every node of a replication on the same window count: when the
 * limit is hit, `stopAt` becomes one past the highest window any node has begun.
 * No node passes it, and every node can still reach it, since what a node waits
 * for before a window comes from earlier windows, all below `stopAt`. So every
 * event sent is covered by a promise when the run ends.
 */

import { Server, TimeoutError, type NodeController } from '../index.js';
import { PholdNode, type WindowGate } from './phold-node.js';
import {
  resolvePholdOptions,
  type PholdOptions,
  type ResolvedPholdOptions,
} from './phold-options.js';
import { WindowClock } from './phold-payload.js';
import { summarize, type PholdResult, type ReplicationNodes } from './phold-result.js';
import { Prng } from './prng.js';

export * from './phold-options.js';
export { checkConservation, type ConservationReport } from './conservation.js';
export type { PholdNodeSummary, PholdResult, ReplicationSummary } from './phold-result.js';
export { PholdProtocolError } from './phold-node.js';

/** Default interval between progress reports, in milliseconds. */
export const PROGRESS_INTERVAL_MS = 200;
/** A run in which no node finishes a window for this long is aborted, in milliseconds. */
export const STALL_TIMEOUT_MS = 30_000;
/** How often the stall watchdog looks, in milliseconds. */
const STALL_CHECK_INTERVAL_MS = 1000;
const MS_PER_SECOND = 1000;

/** A progress report, sent periodically while the simulation runs and once at the end. */
export interface PholdProgress {
  readonly elapsedSeconds: number;
  /** Share of the run done, 0-1, by whichever limit is closer. */
  readonly fraction: number;
  readonly eventsHandled: number;
  readonly eventsPerSecond: number;
  /** Windows finished by every node of every replication. */
  readonly windows: number;
  /** Simulated time those windows reach. */
  readonly simTime: number;
}

/** Optional callbacks and run controls of runPhold; none changes the model. */
export interface PholdHooks {
  onProgress?(progress: PholdProgress): void;
  /** Interval of `onProgress` calls in milliseconds. Default 200. */
  progressIntervalMs?: number;
  /** Ends the run early, as if its limit were reached; it is still flushed and checked. */
  signal?: AbortSignal;
  /** Called with the Server once it is built, before the first window (instrumentation). */
  onServer?(server: Server): void;
  /** A run in which no window finishes for this long fails with TimeoutError, in ms. Default 30000. */
  stallTimeoutMs?: number;
}

/** The stop rule of one replication; see the file header. */
class ReplicationGate implements WindowGate {
  private maxBegun = -1;

  constructor(private stopAt: number) {}

  begin(w: number): boolean {
    if (w >= this.stopAt) return false;
    if (w > this.maxBegun) this.maxBegun = w;
    return true;
  }

  stopSoon(): void {
    this.stopAt = Math.min(this.stopAt, this.maxBegun + 1);
  }
}

interface Replication extends ReplicationNodes {
  readonly gate: ReplicationGate;
}

/** Number of windows that start before `endTime`. */
function windowsBefore(clock: WindowClock, endTime: number): number {
  let w = Math.max(0, Math.ceil(endTime / clock.width));
  while (clock.start(w) < endTime) w++;
  while (w > 0 && clock.start(w - 1) >= endTime) w--;
  return w;
}

function createReplications(
  server: Server,
  opts: ResolvedPholdOptions,
  clock: WindowClock,
): Replication[] {
  const names = server.topology.addressBook.nodes();
  const windows =
    opts.endTime === null ? Number.POSITIVE_INFINITY : windowsBefore(clock, opts.endTime);
  return Array.from({ length: opts.replications }, (_, repid) => {
    const gate = new ReplicationGate(windows);
    const nodes = names.map(
      (name, i) =>
        new PholdNode({
          controller: server.controller(name, repid),
          nodes: names,
          simproc: opts.simproc,
          clock,
          eventsPerNode: opts.eventsPerNode,
          remote: opts.remote,
          mean: opts.mean,
          payloadBytes: opts.payload,
          rng: new Prng(opts.seed, repid, i),
          gate,
        }),
    );
    return { repid, gate, nodes };
  });
}

/**
 * Runs PHOLD and checks conservation; see the file header.
 * @throws {InvalidArgumentError} for an invalid option.
 * @throws {PholdProtocolError} when the window protocol is violated (a transport
 *   delivered more events than promised, or undecodable data).
 * @throws {TimeoutError} when no window finishes for `hooks.stallTimeoutMs`.
 * @throws the first error a NodeController reports on its 'error' event.
 */
export async function runPhold(
  options: PholdOptions = {},
  hooks: PholdHooks = {},
): Promise<PholdResult> {
  const opts = resolvePholdOptions(options);
  const server = Server.standalone({
    nodes: opts.nodes,
    simprocs: [opts.simproc],
    replications: opts.replications,
    cluster: 'phold',
    inProcess: { viaWire: opts.viaWire },
  });
  try {
    const clock = new WindowClock(opts.lookahead);
    const reps = createReplications(server, opts, clock);
    hooks.onServer?.(server);
    const run = new RunClock(opts, clock, reps);
    await simulate(server.controllers(), reps, run, hooks);
    await server.flush();
    const wallSeconds = run.elapsedSeconds();
    hooks.onProgress?.(run.progress(true));
    return summarize(server, reps, opts, clock, wallSeconds);
  } finally {
    await server.close();
  }
}

/** Wall-clock start and progress arithmetic of one run. */
class RunClock {
  private readonly started = performance.now();

  constructor(
    readonly opts: ResolvedPholdOptions,
    private readonly clock: WindowClock,
    private readonly reps: readonly Replication[],
  ) {}

  elapsedSeconds(): number {
    return (performance.now() - this.started) / MS_PER_SECOND;
  }

  progress(done: boolean): PholdProgress {
    let handled = 0;
    let windows = Number.POSITIVE_INFINITY;
    for (const rep of this.reps) {
      for (const node of rep.nodes) {
        handled += node.handled;
        windows = Math.min(windows, node.windowsDone);
      }
    }
    const elapsed = this.elapsedSeconds();
    const simTime = this.clock.start(windows);
    let fraction = done ? 1 : 0;
    if (this.opts.duration !== null) fraction = Math.max(fraction, elapsed / this.opts.duration);
    if (this.opts.endTime !== null) fraction = Math.max(fraction, simTime / this.opts.endTime);
    return {
      elapsedSeconds: elapsed,
      fraction: Math.min(1, fraction),
      eventsHandled: handled,
      eventsPerSecond: elapsed > 0 ? handled / elapsed : 0,
      windows,
      simTime,
    };
  }
}

/**
 * Runs every node to the stop. The first failure aborts every node; all of them
 * settle before this returns, so none is still sending when the Server closes.
 */
async function simulate(
  controllers: readonly NodeController[],
  reps: readonly Replication[],
  run: RunClock,
  hooks: PholdHooks,
): Promise<void> {
  const nodes = reps.flatMap((r) => r.nodes);
  let first: Error | null = null;
  const abortAll = (err: Error): void => {
    first ??= err;
    for (const n of nodes) n.abort(err);
  };
  const onError = (err: unknown): void =>
    abortAll(err instanceof Error ? err : new Error(String(err)));
  for (const c of controllers) c.on('error', onError);
  const stopWatching = watch(reps, run, hooks, abortAll);
  try {
    await Promise.allSettled(nodes.map((n) => n.run().catch(abortAll)));
  } finally {
    stopWatching();
    for (const c of controllers) c.off('error', onError);
  }
  if (first !== null) throw first;
}

/** Starts the limit timer, the abort signal, progress and the watchdog; returns their cleanup. */
function watch(
  reps: readonly Replication[],
  run: RunClock,
  hooks: PholdHooks,
  abortAll: (err: Error) => void,
): () => void {
  const stopAll = (): void => reps.forEach((r) => r.gate.stopSoon());
  const timers = [watchdog(reps, hooks.stallTimeoutMs ?? STALL_TIMEOUT_MS, abortAll)];
  const duration = run.opts.duration;
  if (duration !== null) timers.push(setTimeout(stopAll, duration * MS_PER_SECOND));
  const onProgress = hooks.onProgress;
  if (onProgress !== undefined) {
    const interval = hooks.progressIntervalMs ?? PROGRESS_INTERVAL_MS;
    timers.push(setInterval(() => onProgress(run.progress(false)), interval));
  }
  hooks.signal?.addEventListener('abort', stopAll);
  if (hooks.signal?.aborted === true) stopAll();
  return () => {
    for (const t of timers) clearTimeout(t);
    hooks.signal?.removeEventListener('abort', stopAll);
  };
}

/** Aborts the run when no node finishes a window for `timeoutMs`. */
function watchdog(
  reps: readonly Replication[],
  timeoutMs: number,
  abortAll: (err: Error) => void,
): NodeJS.Timeout {
  const nodes = reps.flatMap((r) => r.nodes);
  const checkMs = Math.min(STALL_CHECK_INTERVAL_MS, timeoutMs);
  let last = -1;
  let since = performance.now();
  return setInterval(() => {
    const done = nodes.reduce((sum, n) => sum + n.windowsDone, 0);
    const now = performance.now();
    if (done !== last) {
      last = done;
      since = now;
    } else if (now - since >= timeoutMs) {
      const waits = nodes.map((n) => n.describeWait()).filter((w) => w !== null);
      abortAll(new TimeoutError(`a PHOLD window (${waits.slice(0, 3).join('; ')})`, timeoutMs));
    }
  }, checkMs);
}
