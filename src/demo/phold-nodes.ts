/**
 * The PHOLD nodes of one process: built on the NodeControllers its Server hosts,
 * run to the stop, watched for stalls.
 *
 * Both runners use this file, so the model code is the same whether every node
 * lives in one process (runPhold, src/demo/phold.ts) or the nodes are spread over
 * Server processes (the job in src/demo/phold-job.ts). What makes a node the same
 * node everywhere is fixed here: its index is its position in the replication's
 * node list (the same list in every process), and its random numbers come from
 * `Prng(seed, repid, index)`. With an end time, a run therefore handles the same
 * events wherever its nodes are placed.
 *
 * Only the stop rule differs between the runners; it arrives as a gate per node.
 */

import { TimeoutError, type NodeController } from '../index.js';
import { PholdNode, type WindowGate } from './phold-node.js';
import type { ResolvedPholdOptions } from './phold-options.js';
import type { WindowClock } from './phold-payload.js';
import { Prng } from './prng.js';

/** A run in which no node finishes a window for this long is aborted, in milliseconds. */
export const STALL_TIMEOUT_MS = 30_000;
/** How often the stall watchdog looks, in milliseconds. */
const STALL_CHECK_INTERVAL_MS = 1000;
/** Stalled nodes named in a stall report. */
const STALL_REPORT_NODES = 3;

/** The nodes of one replication hosted by this process, in the order of its controllers. */
export interface LocalReplication {
  readonly repid: number;
  readonly nodes: readonly PholdNode[];
}

/** Gives the node at `slot` (its position among this process's nodes of `repid`) its gate. */
export type GateFactory = (repid: number, slot: number) => WindowGate;

/** How far this process's nodes have got. */
export interface LocalProgress {
  readonly handled: number;
  /** Windows finished by every node here (0 when there are none). */
  readonly windows: number;
}

/** Controls of `runNodes`. */
export interface RunNodesControls {
  /** A run in which no window finishes for this long fails with TimeoutError, in ms. */
  readonly stallTimeoutMs?: number;
  /**
   * Starts the runner's own timers and listeners once the nodes run; `abortAll`
   * ends the run with an error. Returns their cleanup.
   */
  arm(abortAll: (err: Error) => void): () => void;
  /** Releases nodes waiting at their gates after an abort (a waiting gate holds them). */
  releaseGates?(): void;
}

/** Number of windows that start before `endTime`: the stop window of an end-time-bounded run. */
export function windowsBefore(clock: WindowClock, endTime: number | null): number {
  if (endTime === null) return Number.POSITIVE_INFINITY;
  let w = Math.max(0, Math.ceil(endTime / clock.width));
  while (clock.start(w) < endTime) w++;
  while (w > 0 && clock.start(w - 1) >= endTime) w--;
  return w;
}

/**
 * Puts one PholdNode on every controller, grouped by replication.
 * @param names - every node of a replication, in the order that fixes node indices.
 * @throws {RangeError} when a controller's node is not in `names`.
 */
export function buildNodes(
  controllers: readonly NodeController[],
  names: readonly string[],
  opts: ResolvedPholdOptions,
  clock: WindowClock,
  gateFor: GateFactory,
): LocalReplication[] {
  const byRepid = new Map<number, PholdNode[]>();
  const index = new Map(names.map((name, i) => [name, i]));
  for (const controller of controllers) {
    const i = index.get(controller.nodeName);
    if (i === undefined)
      throw new RangeError(`node ${controller.nodeName} is not in the node list`);
    const nodes = byRepid.get(controller.repid) ?? [];
    byRepid.set(controller.repid, nodes);
    nodes.push(
      new PholdNode({
        controller,
        nodes: names,
        simproc: opts.simproc,
        clock,
        eventsPerNode: opts.eventsPerNode,
        remote: opts.remote,
        mean: opts.mean,
        payloadBytes: opts.payload,
        rng: new Prng(opts.seed, controller.repid, i),
        gate: gateFor(controller.repid, nodes.length),
      }),
    );
  }
  return [...byRepid].sort(([a], [b]) => a - b).map(([repid, nodes]) => ({ repid, nodes }));
}

/** Events handled and windows finished by every node of `reps`. */
export function localProgress(reps: readonly LocalReplication[]): LocalProgress {
  let handled = 0;
  let windows = Number.POSITIVE_INFINITY;
  for (const rep of reps) {
    for (const node of rep.nodes) {
      handled += node.handled;
      windows = Math.min(windows, node.windowsDone);
    }
  }
  return { handled, windows: Number.isFinite(windows) ? windows : 0 };
}

/**
 * Runs every node to the stop. The first failure (a node's, or a controller's
 * 'error') aborts every node; all of them settle before this returns, so none is
 * still sending when the Server closes.
 * @throws the first failure: PholdProtocolError, TimeoutError from the watchdog,
 *   a transport error, or whatever `abortAll` was called with.
 */
export async function runNodes(
  controllers: readonly NodeController[],
  reps: readonly LocalReplication[],
  controls: RunNodesControls,
): Promise<void> {
  const nodes = reps.flatMap((r) => r.nodes);
  let first: Error | null = null;
  const abortAll = (err: Error): void => {
    first ??= err;
    for (const n of nodes) n.abort(err);
    controls.releaseGates?.();
  };
  const onError = (err: unknown): void =>
    abortAll(err instanceof Error ? err : new Error(String(err)));
  for (const c of controllers) c.on('error', onError);
  const dog = watchdog(nodes, controls.stallTimeoutMs ?? STALL_TIMEOUT_MS, abortAll);
  const disarm = controls.arm(abortAll);
  try {
    await Promise.allSettled(nodes.map((n) => n.run().catch(abortAll)));
  } finally {
    disarm();
    clearInterval(dog);
    for (const c of controllers) c.off('error', onError);
  }
  if (first !== null) throw first;
}

/** Aborts the run when no node finishes a window for `timeoutMs`. */
function watchdog(
  nodes: readonly PholdNode[],
  timeoutMs: number,
  abortAll: (err: Error) => void,
): NodeJS.Timeout {
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
      const detail = waits.slice(0, STALL_REPORT_NODES).join('; ');
      abortAll(new TimeoutError(`a PHOLD window (${detail})`, timeoutMs));
    }
  }, checkMs);
}
