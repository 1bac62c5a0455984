/**
 * The PHOLD job of one Server process: the module the Application's children
 * load (src/runtime/server-process.ts calls `runJob`) when PHOLD runs across
 * processes (src/demo/phold-coordinator.ts is the parent side).
 *
 * It puts the same PholdNodes as the single-process run on the controllers its
 * Server hosts (src/demo/phold-nodes.ts: same node list, same indices, same random
 * streams), gates their windows with leases from the coordinator
 * (src/demo/phold-lease.ts), reports progress every `progressIntervalMs`, and
 * returns its nodes' tallies (src/demo/phold-result.ts) for the coordinator to
 * merge and check.
 *
 * The coordinator alone decides when the run stops. A terminal's Ctrl-C reaches
 * every process of the foreground group, so from the job's start this process
 * ignores SIGINT and SIGTERM: the parent turns them into a clean stop, and this
 * process still ends when asked to shut down, when its parent goes away, or when
 * the parent kills it after its stop timeout.
 */

import type { JobContext } from '../runtime/protocol.js';
import { LeasedReplication } from './phold-lease.js';
import {
  isCoordinatorMessage,
  jobOptionsProblem,
  type CoordinatorMessage,
  type JobMessage,
  type PholdJobOptions,
} from './phold-messages.js';
import {
  buildNodes,
  localProgress,
  runNodes,
  windowsBefore,
  type LocalReplication,
} from './phold-nodes.js';
import { resolvePholdOptions, type ResolvedPholdOptions } from './phold-options.js';
import { WindowClock } from './phold-payload.js';
import { abortReason } from './phold-progress.js';
import { tallyProcess, type ProcessTally } from './phold-result.js';

/** Signals a terminal sends to the whole process group; the coordinator handles them. */
const GROUP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

function ignoreGroupSignal(): void {
  // The parent received the same signal and stops the run through the coordinator.
}

/**
 * From the job's start to the process's end: until the parent has the result, a
 * sibling may still be reading what this process sent, and a death here would
 * fail the run the parent is stopping cleanly.
 */
function ignoreGroupSignals(): void {
  for (const signal of GROUP_SIGNALS) {
    if (!process.listeners(signal).includes(ignoreGroupSignal))
      process.on(signal, ignoreGroupSignal);
  }
}

/** The job options, checked. @throws {TypeError} naming what is missing. */
function readJobOptions(options: unknown): PholdJobOptions {
  const problem = jobOptionsProblem(options);
  if (problem !== undefined) throw new TypeError(`PHOLD job: ${problem}`);
  return options as PholdJobOptions;
}

/** Re-checks the model options with the same rules as the coordinator applied. */
function readModel(model: ResolvedPholdOptions): ResolvedPholdOptions {
  return resolvePholdOptions({
    ...model,
    duration: model.duration ?? undefined,
    endTime: model.endTime ?? undefined,
  });
}

/** One lease per replication, sized by the local nodes of each. */
function createLeases(
  ctx: JobContext,
  job: PholdJobOptions,
  endWindows: number,
): LeasedReplication[] {
  const perRepid = new Array<number>(job.model.replications).fill(0);
  for (const c of ctx.server.controllers()) perRepid[c.repid]!++;
  const report = (repid: number, frontier: number): void =>
    send(ctx, { kind: 'frontier', repid, frontier });
  return perRepid.map(
    (slots, repid) => new LeasedReplication(repid, slots, job.lease, endWindows, report),
  );
}

function send(ctx: JobContext, msg: JobMessage): void {
  ctx.send(msg);
}

function deliver(
  payload: unknown,
  leases: readonly LeasedReplication[],
  abortAll: (err: Error) => void,
): void {
  if (!isCoordinatorMessage(payload)) {
    abortAll(new TypeError(`PHOLD job: unexpected message ${JSON.stringify(payload)}`));
    return;
  }
  const msg: CoordinatorMessage = payload;
  if (msg.kind === 'lease') leases[msg.repid]?.apply(msg);
  else for (const lease of leases) lease.apply(msg);
}

/** Listens to the coordinator and the shutdown signal, reports progress; returns the cleanup. */
function arm(
  ctx: JobContext,
  job: PholdJobOptions,
  leases: readonly LeasedReplication[],
  reps: readonly LocalReplication[],
  abortAll: (err: Error) => void,
): () => void {
  const onAbort = (): void => abortAll(abortReason(ctx.signal));
  ctx.signal.addEventListener('abort', onAbort);
  ctx.onMessage((payload) => deliver(payload, leases, abortAll));
  const timer = setInterval(
    () => send(ctx, { kind: 'progress', ...localProgress(reps) }),
    job.progressIntervalMs,
  );
  send(ctx, { kind: 'joined' });
  if (ctx.signal.aborted) onAbort();
  return () => {
    clearInterval(timer);
    ctx.signal.removeEventListener('abort', onAbort);
  };
}

/**
 * Runs this process's PHOLD nodes to the coordinator's stop; see the file header.
 * @returns the tallies of this process's nodes, routes and transports.
 * @throws {TypeError} for malformed job options or coordinator messages.
 * @throws {InvalidArgumentError} for invalid model options.
 * @throws {PholdProtocolError}, TimeoutError or a transport error when the run fails;
 *   the reason of the job's signal when it is shut down or a sibling dies.
 */
export async function runJob(ctx: JobContext): Promise<ProcessTally> {
  const job = readJobOptions(ctx.options);
  const opts = readModel(job.model);
  const clock = new WindowClock(opts.lookahead);
  const leases = createLeases(ctx, job, windowsBefore(clock, opts.endTime));
  const controllers = ctx.server.controllers();
  const reps = buildNodes(controllers, job.nodes, opts, clock, (repid, slot) =>
    leases[repid]!.gate(slot),
  );
  ignoreGroupSignals();
  await runNodes(controllers, reps, {
    stallTimeoutMs: job.stallTimeoutMs,
    arm: (abortAll) => arm(ctx, job, leases, reps, abortAll),
    releaseGates: () => leases.forEach((lease) => lease.cancel()),
  });
  send(ctx, { kind: 'progress', ...localProgress(reps) });
  return tallyProcess(ctx.server, reps);
}
