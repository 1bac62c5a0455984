/**
 * Progress display for long-running commands (DESIGN §10): a redrawn bar when the
 * stream is a terminal, plain periodic lines when it is not (CI logs, pipes), and
 * nothing at all when asked to be quiet.
 *
 * Progress goes to stderr by convention, so that stdout carries only the result
 * (a summary, or JSON for machines). The bar is drawn by `cli-progress`, which
 * throttles redraws itself; lines are throttled here, and the final update (share
 * done 1) is always written, so a log ends with where the run got to.
 *
 * Used by the `disco` command (src/cli.ts); independent of what is being measured.
 */

import cliProgress from 'cli-progress';

/** Least time between two plain progress lines, in milliseconds. */
export const LINE_INTERVAL_MS = 1000;
/** Width of the drawn bar, in characters. */
const BAR_WIDTH_CHARS = 30;
const PERCENT = 100;

/** Where progress is written: stderr, or anything with `write` in tests. */
export interface ProgressStream {
  write(chunk: string): unknown;
  /** True for a terminal; the bar is drawn only then. */
  readonly isTTY?: boolean;
}

/** Options of `createProgress`. */
export interface ProgressOptions {
  stream: ProgressStream;
  /** Short name printed before the progress, e.g. `phold`. */
  label: string;
  /** Show nothing. */
  quiet?: boolean;
  /** Least time between plain lines, in milliseconds. Default 1000. */
  lineIntervalMs?: number;
}

/** A progress display. */
export interface ProgressDisplay {
  /**
   * Shows progress.
   * @param fraction - share done, 0-1 (clamped).
   * @param detail - one line of figures, e.g. `1,234 events | t=12`.
   */
  update(fraction: number, detail: string): void;
  /** Ends the display (the bar leaves its last state on screen). Idempotent. */
  stop(): void;
}

function clampFraction(fraction: number): number {
  return Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
}

const SILENT: ProgressDisplay = Object.freeze({
  update(): void {},
  stop(): void {},
});

/** A bar redrawn in place on a terminal. */
class BarProgress implements ProgressDisplay {
  private readonly bar: cliProgress.SingleBar;
  private stopped = false;

  constructor(options: ProgressOptions) {
    this.bar = new cliProgress.SingleBar(
      {
        // Only used when `isTTY` is true, i.e. for a real tty.WriteStream.
        stream: options.stream as NodeJS.WritableStream,
        format: `${options.label} [{bar}] {percentage}% | {duration_formatted} | {detail}`,
        barsize: BAR_WIDTH_CHARS,
        hideCursor: false,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(PERCENT, 0, { detail: '' });
  }

  update(fraction: number, detail: string): void {
    if (this.stopped) return;
    this.bar.update(Math.floor(clampFraction(fraction) * PERCENT), { detail });
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.bar.stop();
  }
}

/** Plain lines, at most one per interval, and always the final one. */
class LineProgress implements ProgressDisplay {
  private lastLineAt = Number.NEGATIVE_INFINITY;
  private finished = false;
  private readonly intervalMs: number;

  constructor(private readonly options: ProgressOptions) {
    this.intervalMs = options.lineIntervalMs ?? LINE_INTERVAL_MS;
  }

  update(fraction: number, detail: string): void {
    if (this.finished) return;
    const share = clampFraction(fraction);
    const now = performance.now();
    if (share < 1 && now - this.lastLineAt < this.intervalMs) return;
    this.lastLineAt = now;
    this.finished = share >= 1;
    const percent = Math.floor(share * PERCENT);
    this.options.stream.write(`${this.options.label}: ${percent}% | ${detail}\n`);
  }

  stop(): void {
    this.finished = true;
  }
}

/**
 * A progress display suited to `options.stream`: a bar on a terminal, lines
 * elsewhere, nothing when `quiet`.
 */
export function createProgress(options: ProgressOptions): ProgressDisplay {
  if (options.quiet === true) return SILENT;
  if (options.stream.isTTY === true) return new BarProgress(options);
  return new LineProgress(options);
}
