/**
 * Payload sizes of the macro benchmarks and how many messages a run of each takes.
 */

const KiB = 1024;
const MiB = 1024 * KiB;

/** The payloads every one-way case runs at (the list). */
export const SIZES = [64, KiB, 64 * KiB, MiB, 64 * MiB];

/** 64 -> '64B', 65536 -> '64KiB', 67108864 -> '64MiB'. */
export function sizeLabel(bytes) {
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB}MiB`;
  if (bytes >= KiB && bytes % KiB === 0) return `${bytes / KiB}KiB`;
  return `${bytes}B`;
}

/** Bytes moved by the calibration's first run, and by a quick (smoke) run. */
const PROBE_BYTES = 256 * KiB;
const QUICK_BYTES = 2 * MiB;
/** Most bytes one run moves, whatever the rate (bounds a round's time and memory traffic). */
const RUN_BYTES_MAX = 16 * 1024 * MiB;
/** Fewest messages a measured run takes. */
const RUN_MESSAGES_MIN = 3;

function clamp(n, lo, hi) {
  return Math.max(lo, Math.min(hi, n));
}

/**
 * Message counts of a self-timed throughput case for `size`-byte messages, for the runner's
 * calibration (bench/lib/measure.mjs): counts are rounded up to whole `step`s.
 */
export function countsFor(size, step = 1) {
  return {
    step,
    minCount: RUN_MESSAGES_MIN,
    maxCount: Math.max(RUN_MESSAGES_MIN, Math.floor(RUN_BYTES_MAX / size)),
    probeCount: clamp(Math.floor(PROBE_BYTES / size), 1, 1024),
    quickCount: clamp(Math.floor(QUICK_BYTES / size), 1, 1000),
  };
}

/** Counts of a round-trip case (one message in flight). */
export const ROUND_TRIP_COUNTS = { minCount: 100, probeCount: 200, quickCount: 200 };
