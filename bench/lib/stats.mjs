/**
 * Small statistics and number formatting helpers shared by the runner and the reports.
 */

/** The median of a non-empty list of numbers (mean of the middle two for even lengths). */
export function median(values) {
  if (values.length === 0) throw new RangeError('median of an empty list');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Latency percentiles reported when a case records a histogram. */
export const PERCENTILES = [50, 90, 99, 99.9];

/**
 * Percentiles of a node:perf_hooks histogram of nanoseconds, in microseconds: `{ count, p50,
 * p90, p99, p99.9, max }`, the shape a round's `latency` has.
 */
export function latencyOf(histogram) {
  const out = { count: histogram.count };
  for (const p of PERCENTILES) out[`p${p}`] = histogram.percentile(p) / 1e3;
  out.max = histogram.max / 1e3;
  return out;
}

/** Half the range of `values` as a percentage of their median: how far rounds disagree. */
export function spreadPercent(values) {
  const m = median(values);
  if (m === 0) return 0;
  return ((Math.max(...values) - Math.min(...values)) / 2 / m) * 100;
}

const SI = [
  [1e9, 'G'],
  [1e6, 'M'],
  [1e3, 'k'],
];

/** 12345678 -> "12.3 M"; three significant digits. */
export function formatRate(value) {
  for (const [scale, prefix] of SI) {
    if (value >= scale) return `${(value / scale).toPrecision(3)} ${prefix}`;
  }
  return value.toPrecision(3);
}

/** A duration in seconds as "12.3 ns", "4.56 µs", "7.89 ms" or "1.23 s". */
export function formatSeconds(seconds) {
  if (seconds < 1e-6) return `${(seconds * 1e9).toPrecision(3)} ns`;
  if (seconds < 1e-3) return `${(seconds * 1e6).toPrecision(3)} µs`;
  if (seconds < 1) return `${(seconds * 1e3).toPrecision(3)} ms`;
  return `${seconds.toPrecision(3)} s`;
}

/** A ratio as "0.215×" or "12.3×". */
export function formatRatio(ratio) {
  return `${ratio.toPrecision(3)}×`;
}

/** Megabytes per second: whole numbers from 100 up, three significant digits below. */
export function formatMegabytes(mb) {
  return mb >= 100 ? mb.toFixed(0) : mb.toPrecision(3);
}
