/**
 * PHOLD across processes, parent side: one Application forks a Server process per
 * Server of the machine, each runs the PHOLD job (src/demo/phold-job.ts) on the
 * nodes it hosts, and this coordinator grants window leases, stops the run,
 * aggregates progress and merges the results. What `disco phold` (by default) and
 * `disco run <topology.json>` execute.
 *
 * Placement (src/demo/phold-placement.ts): a topology file, or one machine with
 * one Server per core. Node lists and random streams are those of the
 * single-process run, so end-time-bounded runs give the same counts.
 *
 * Stop rule: LeaseGrantor (src/demo/phold-lease.ts), whose header argues why every
 * node of a replication stops on the same window. The duration timer and
 * `hooks.signal` call its stop; `hooks.cancel` stops the Servers at once.
 *
 * Transport-agnostic: the coordinator sees only the Application and the job's
 * messages; which link carries events between the Servers is the runtime's choice.
 */

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Application } from '../runtime/application.js';
import { LeaseGrantor, INITIAL_LEASE } from './phold-lease.js';
import {
  isJobMessage,
  isProcessTally,
  type CoordinatorMessage,
  type PholdJobOptions,
} from './phold-messages.js';
import { STALL_TIMEOUT_MS } from './phold-nodes.js';
import type { PholdOptions } from './phold-options.js';
import { WindowClock } from './phold-payload.js';
import { planRun, type PholdPlacement, type RunPlan } from './phold-placement.js';
import { abortReason, PROGRESS_INTERVAL_MS, RunClock, type PholdHooks } from './phold-progress.js';
import { summarize, type PholdResult, type ProcessTally } from './phold-result.js';

export {
  DEFAULT_MACHINE,
  defaultTopology,
  MAX_PROCESSES,
  planPholdProcesses,
  UnsupportedTopologyError,
  type PholdPlacement,
} from './phold-placement.js';

const MS_PER_SECOND = 1000;

/** The compiled job module: this file's sibling in dist/, also when running from src/. */
export function pholdJobModule(): string {
  const sibling = fileURLToPath(new URL('./phold-job.js', import.meta.url));
  if (existsSync(sibling)) return sibling;
  return fileURLToPath(new URL('../../dist/demo/phold-job.js', import.meta.url));
}

/** The latest progress report of each process. */
class ProgressBoard {
  private readonly reports = new Map<string, { handled: number; windows: number }>();

  constructor(private readonly busy: readonly string[]) {}

  set(server: string, handled: number, windows: number): void {
    this.reports.set(server, { handled, windows });
  }

  /** Events handled everywhere; windows finished by every node everywhere. */
  total(): { handled: number; windows: number } {
    let handled = 0;
    let windows = Number.POSITIVE_INFINITY;
    for (const server of this.busy) {
      const r = this.reports.get(server);
      handled += r?.handled ?? 0;
      windows = Math.min(windows, r?.windows ?? 0);
    }
    return { handled, windows: Number.isFinite(windows) ? windows : 0 };
  }
}

/** One run across processes: the Application, the leases, the job messages. */
class Coordinator {
  private readonly grantor: LeaseGrantor;
  private readonly board: ProgressBoard;
  private readonly joined = new Set<string>();
  private readonly queued = new Map<string, CoordinatorMessage[]>();
  private readonly failure: Promise<never>;
  private fail!: (err: Error) => void;

  constructor(
    private readonly app: Application,
    plan: RunPlan,
  ) {
    this.grantor = new LeaseGrantor(plan.busy, plan.opts.replications, (s, m) => this.post(s, m));
    this.board = new ProgressBoard(plan.busy);
    this.failure = new Promise<never>((_, reject) => (this.fail = reject));
    this.failure.catch(() => {
      // Observed through the races in start() and results(); this keeps it from being unhandled.
    });
    app.on('job', (server: string, payload: unknown) => this.onJob(server, payload));
    app.on('error', (err: Error) => this.fail(err));
  }

  /** Stops extending leases and tells every process where to stop; idempotent. */
  readonly stop = (): void => {
    this.grantor.stop();
  };

  /** Fails the run at once (the Application is stopped by the caller). */
  abort(err: Error): void {
    this.fail(err);
  }

  /** Starts the Servers; resolves once every job has been told to go. */
  async start(): Promise<void> {
    await Promise.race([this.app.start(), this.failure]);
    this.grantor.markStart();
  }

  /** Resolves with every Server's tallies once every job is done. */
  async results(): Promise<ProcessTally[]> {
    const results = await Promise.race([this.app.wait(), this.failure]);
    return [...results].map(([server, value]) => {
      if (!isProcessTally(value)) throw new TypeError(`server ${server} returned no PHOLD tally`);
      return value;
    });
  }

  progress(): { handled: number; windows: number } {
    return this.board.total();
  }

  private post(server: string, msg: CoordinatorMessage): void {
    if (this.joined.has(server)) this.app.send(server, msg);
    else this.queued.set(server, [...(this.queued.get(server) ?? []), msg]);
  }

  private onJob(server: string, payload: unknown): void {
    if (!isJobMessage(payload)) {
      this.fail(new TypeError(`server ${server} sent ${JSON.stringify(payload)}`));
      return;
    }
    try {
      if (payload.kind === 'joined') this.join(server);
      else if (payload.kind === 'frontier') {
        this.grantor.onFrontier(server, payload.repid, payload.frontier);
      } else this.board.set(server, payload.handled, payload.windows);
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Messages for a job that has not installed its handler yet wait here (they would be lost). */
  private join(server: string): void {
    this.joined.add(server);
    for (const msg of this.queued.get(server) ?? []) this.app.send(server, msg);
    this.queued.delete(server);
  }
}

function jobOptions(plan: RunPlan, hooks: PholdHooks): PholdJobOptions {
  return {
    model: plan.opts,
    nodes: plan.names,
    lease: INITIAL_LEASE,
    progressIntervalMs: hooks.progressIntervalMs ?? PROGRESS_INTERVAL_MS,
    stallTimeoutMs: hooks.stallTimeoutMs ?? STALL_TIMEOUT_MS,
  };
}

/** Hooks the signals up to the coordinator; returns their cleanup. */
function listen(coordinator: Coordinator, hooks: PholdHooks): () => void {
  const cancel = (): void => coordinator.abort(abortReason(hooks.cancel!));
  hooks.signal?.addEventListener('abort', coordinator.stop);
  if (hooks.signal?.aborted === true) coordinator.stop();
  hooks.cancel?.addEventListener('abort', cancel);
  if (hooks.cancel?.aborted === true) cancel();
  return () => {
    hooks.signal?.removeEventListener('abort', coordinator.stop);
    hooks.cancel?.removeEventListener('abort', cancel);
  };
}

/** Starts the duration timer and progress once the jobs run; returns their cleanup. */
function startTimers(coordinator: Coordinator, run: RunClock, hooks: PholdHooks): () => void {
  const timers: NodeJS.Timeout[] = [];
  const duration = run.opts.duration;
  if (duration !== null) timers.push(setTimeout(coordinator.stop, duration * MS_PER_SECOND));
  const onProgress = hooks.onProgress;
  if (onProgress !== undefined) {
    const report = (): void => {
      const p = coordinator.progress();
      onProgress(run.progress(p.handled, p.windows, false));
    };
    timers.push(setInterval(report, hooks.progressIntervalMs ?? PROGRESS_INTERVAL_MS));
  }
  return () => timers.forEach((t) => clearTimeout(t));
}

/**
 * Runs PHOLD across Server processes and checks conservation over all of them;
 * see the file header. Every child has ended when this settles.
 * @throws {InvalidArgumentError} for an invalid option, process count or machine.
 * @throws {TopologyError} for an invalid topology file.
 * @throws {JobFailedError} when a Server's job fails (protocol error, stall, link error).
 * @throws {PeerDeadError} when a Server process dies.
 * @throws the reason of `hooks.cancel` when it aborts the run.
 */
export async function runPholdAcrossProcesses(
  options: PholdOptions = {},
  placement: PholdPlacement = {},
  hooks: PholdHooks = {},
): Promise<PholdResult> {
  const plan = planRun(options, placement);
  const app = new Application({
    topology: plan.topology,
    machine: plan.machine,
    jobModule: pholdJobModule(),
    jobOptions: jobOptions(plan, hooks),
  });
  const coordinator = new Coordinator(app, plan);
  const clock = new WindowClock(plan.opts.lookahead);
  const unlisten = listen(coordinator, hooks);
  let stopTimers = (): void => {};
  try {
    await coordinator.start();
    const run = new RunClock(plan.opts, clock);
    stopTimers = startTimers(coordinator, run, hooks);
    const tallies = await coordinator.results();
    const wallSeconds = run.elapsedSeconds();
    const result = summarize(tallies, plan.opts, clock, wallSeconds);
    const windows = Math.min(...result.replications.map((r) => r.windows));
    hooks.onProgress?.(run.progress(result.eventsHandled, windows, true));
    return result;
  } finally {
    stopTimers();
    unlisten();
    await app.stop();
  }
}

/** What a member machine did in a run led by another machine. */
export interface PholdMemberResult {
  readonly machine: string;
  readonly leader: string;
  readonly servers: number;
  /** Envelopes its gateway forwarded, both directions. */
  readonly forwarded: number;
}

/** Whether `placement` puts this process on a member machine of a multi-machine topology. */
export function isMemberPlacement(options: PholdOptions, placement: PholdPlacement): boolean {
  const plan = planRun(options, placement);
  return plan.topology.machines.length > 1 && plan.machine !== plan.topology.machines[0]!.name;
}

/**
 * Runs this machine's Servers of a PHOLD run led by the topology's first machine:
 * they take their start, job messages and stop from the leader, through the gateway.
 * Resolves when the leader has stopped the run; `hooks.cancel` stops it here at once.
 * @throws {LinkClosedError} when the leader stays unreachable past the link deadline.
 */
export async function runPholdMember(
  options: PholdOptions = {},
  placement: PholdPlacement = {},
  hooks: Pick<PholdHooks, 'cancel'> = {},
): Promise<PholdMemberResult> {
  const plan = planRun(options, placement);
  const app = new Application({
    topology: plan.topology,
    machine: plan.machine,
    jobModule: pholdJobModule(),
  });
  const cancel = (): void => void app.stop();
  hooks.cancel?.addEventListener('abort', cancel);
  app.on('error', () => {
    // A member reports its failure through wait(), which rejects with the first error.
  });
  try {
    await app.start();
    await app.wait();
    const g = app.gatewayMetrics();
    return {
      machine: plan.machine,
      leader: plan.topology.machines[0]!.name,
      servers: app.serverNames().length,
      forwarded: g === null ? 0 : g.forwardedEvents + g.forwardedPromises,
    };
  } finally {
    hooks.cancel?.removeEventListener('abort', cancel);
    await app.stop();
  }
}
