/**
 * PHOLD (Fujimoto 1990) over real NodeControllers: the demo and smoke load of
 * disco-transport. This file is the single-process run (`disco phold
 * --processes 1`); src/demo/phold-coordinator.ts spreads the same nodes over
 * Server processes, which is what `disco phold` does by default.
 *
 * runPhold builds a Server, puts one PholdNode (src/demo/phold-node.ts) on every
 * controller of every replication (src/demo/phold-nodes.ts), runs the windows until
 * the wall-clock or the simulated-time limit, flushes, and checks conservation
 * (src/demo/conservation.ts). The model talks only to NodeControllers obtained
 * from the Server. The stop rule is the one in-process shortcut: a shared `stopAt`
 * per replication (ReplicationGate), answered synchronously, so no window waits
 * for anything but the model's own messages.
 *
 * Stopping keeps every node of a replication on the same window count: when the
 * limit is hit, `stopAt` becomes one past the highest window any node has begun.
 * No node passes it, and every node can still reach it, since what a node waits
 * for before a window comes from earlier windows, all below `stopAt`. So every
 * event sent is covered by a promise when the run ends.
 */

import { Server } from '../index.js';
import type { WindowGate } from './phold-node.js';
import { buildNodes, localProgress, runNodes, windowsBefore } from './phold-nodes.js';
import { resolvePholdOptions, type PholdOptions } from './phold-options.js';
import { WindowClock } from './phold-payload.js';
import { abortReason, PROGRESS_INTERVAL_MS, RunClock, type PholdHooks } from './phold-progress.js';
import { summarize, tallyProcess, type PholdResult } from './phold-result.js';

export * from './phold-options.js';
export { checkConservation, type ConservationReport } from './conservation.js';
export type { PholdNodeSummary, PholdResult, ReplicationSummary } from './phold-result.js';
export { PholdProtocolError } from './phold-node.js';
export { STALL_TIMEOUT_MS } from './phold-nodes.js';
export { PROGRESS_INTERVAL_MS, type PholdHooks, type PholdProgress } from './phold-progress.js';

const MS_PER_SECOND = 1000;

/** The stop rule of one replication in one process; see the file header. */
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

/**
 * Runs PHOLD in this process and checks conservation; see the file header.
 * @throws {InvalidArgumentError} for an invalid option.
 * @throws {PholdProtocolError} when the window protocol is violated (a transport
 *   delivered more events than promised, or undecodable data).
 * @throws {TimeoutError} when no window finishes for `hooks.stallTimeoutMs`.
 * @throws the reason of `hooks.cancel` when it aborts the run.
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
    const names = server.topology.addressBook.nodes();
    const gates = Array.from(
      { length: opts.replications },
      () => new ReplicationGate(windowsBefore(clock, opts.endTime)),
    );
    const reps = buildNodes(server.controllers(), names, opts, clock, (repid) => gates[repid]!);
    hooks.onServer?.(server);
    const run = new RunClock(opts, clock);
    const report = (done: boolean): void => {
      const p = localProgress(reps);
      hooks.onProgress?.(run.progress(p.handled, p.windows, done));
    };
    await runNodes(server.controllers(), reps, {
      stallTimeoutMs: hooks.stallTimeoutMs,
      arm: (abortAll) => arm(opts.duration, gates, hooks, abortAll, report),
    });
    await server.flush();
    const wallSeconds = run.elapsedSeconds();
    report(true);
    return summarize([tallyProcess(server, reps)], opts, clock, wallSeconds);
  } finally {
    await server.close();
  }
}

/** Starts the limit timer, the signals and progress; returns their cleanup. */
function arm(
  duration: number | null,
  gates: readonly ReplicationGate[],
  hooks: PholdHooks,
  abortAll: (err: Error) => void,
  report: (done: boolean) => void,
): () => void {
  const stopAll = (): void => gates.forEach((g) => g.stopSoon());
  const cancel = (): void => abortAll(abortReason(hooks.cancel!));
  const timers: NodeJS.Timeout[] = [];
  if (duration !== null) timers.push(setTimeout(stopAll, duration * MS_PER_SECOND));
  if (hooks.onProgress !== undefined) {
    const interval = hooks.progressIntervalMs ?? PROGRESS_INTERVAL_MS;
    timers.push(setInterval(() => report(false), interval));
  }
  hooks.signal?.addEventListener('abort', stopAll);
  if (hooks.signal?.aborted === true) stopAll();
  hooks.cancel?.addEventListener('abort', cancel);
  if (hooks.cancel?.aborted === true) cancel();
  return () => {
    for (const t of timers) clearTimeout(t);
    hooks.signal?.removeEventListener('abort', stopAll);
    hooks.cancel?.removeEventListener('abort', cancel);
  };
}
