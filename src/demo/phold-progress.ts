/**
 * What a running PHOLD simulation tells its caller, and what the caller can do
 * to it: progress reports, the run hooks, and the share-done arithmetic both
 * runners (one process, src/demo/phold.ts; several, src/demo/phold-coordinator.ts)
 * use, so that a progress bar reads the same whichever runs.
 */

import type { Server } from '../index.js';
import type { ResolvedPholdOptions } from './phold-options.js';
import type { WindowClock } from './phold-payload.js';

/** Default interval between progress reports, in milliseconds. */
export const PROGRESS_INTERVAL_MS = 200;
const MS_PER_SECOND = 1000;
/**
 * Share shown while the run is still going: a wall-clock limit is reached before
 * the nodes have stopped and flushed, and only the final report may say 100%
 * (a line display writes its 100% line once).
 */
const MAX_RUNNING_FRACTION = 0.99;

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

/** Optional callbacks and run controls; none changes the model. */
export interface PholdHooks {
  onProgress?(progress: PholdProgress): void;
  /** Interval of `onProgress` calls in milliseconds. Default 200. */
  progressIntervalMs?: number;
  /**
   * Ends the run early, as if its limit were reached: every node of a replication
   * stops on the same window, and the run is still flushed and checked.
   */
  signal?: AbortSignal;
  /**
   * Aborts the run at once: nodes stop where they are, nothing is checked, and
   * the run rejects with the signal's reason. For a second Ctrl-C.
   */
  cancel?: AbortSignal;
  /** In-process runs only: called with the Server before the first window (instrumentation). */
  onServer?(server: Server): void;
  /** A run in which no window finishes for this long fails with TimeoutError, in ms. Default 30000. */
  stallTimeoutMs?: number;
}

/** Wall-clock start and progress arithmetic of one run. */
export class RunClock {
  private readonly started = performance.now();

  constructor(
    readonly opts: ResolvedPholdOptions,
    private readonly clock: WindowClock,
  ) {}

  elapsedSeconds(): number {
    return (performance.now() - this.started) / MS_PER_SECOND;
  }

  /**
   * A progress report.
   * @param handled - events handled so far, every node together.
   * @param windows - windows finished by every node.
   * @param done - true for the final report (share done 1).
   */
  progress(handled: number, windows: number, done: boolean): PholdProgress {
    const elapsed = this.elapsedSeconds();
    const simTime = this.clock.start(windows);
    let fraction = done ? 1 : 0;
    if (this.opts.duration !== null) fraction = Math.max(fraction, elapsed / this.opts.duration);
    if (this.opts.endTime !== null) fraction = Math.max(fraction, simTime / this.opts.endTime);
    return {
      elapsedSeconds: elapsed,
      fraction: done ? 1 : Math.min(MAX_RUNNING_FRACTION, fraction),
      eventsHandled: handled,
      eventsPerSecond: elapsed > 0 ? handled / elapsed : 0,
      windows,
      simTime,
    };
  }
}

/** The reason of an aborted signal as an Error. */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(`run cancelled: ${String(reason)}`);
}
