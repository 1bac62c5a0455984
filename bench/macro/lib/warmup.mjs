/**
 * Warm-up of a self-timed case before the runner calibrates it (bench/lib/measure.mjs).
 *
 * The runner's calibration stops at the first run that fills part of a round, and a gRPC case
 * in a fresh pair of processes is slow for its first hundred thousand or so small messages (the
 * JIT has not compiled the paths yet): the first 1024 events through GrpcTransport took 200 ms,
 * the same 1024 after 300 k others 3 ms. Calibrated on that first run, a round would time a
 * couple of thousand messages of mostly cold code. So the gRPC cases first run until the rate
 * settles: counts doubling until a run takes WARM_RUN_S, then repeated until two runs in a row
 * agree within SETTLED_FRACTION, for at least MIN_S and at most MAX_S of traffic. Both the
 * transport cases and their raw baselines get it.
 */

/** A warm-up run is long enough once it takes this long, seconds. */
const WARM_RUN_S = 0.1;
/** Two consecutive rates within this fraction of each other count as settled. */
const SETTLED_FRACTION = 0.2;
/** Least and most traffic of a warm-up, seconds. */
const MIN_S = 0.3;
const MAX_S = 4;
/**
 * Least ops of a round-trip warm-up (within MAX_S): 0.3 s is only a few hundred round trips,
 * and the link's per-message code is still being compiled then (two processes, 64 B: p50
 * 618 us over round trips 0-700, 364 us over 700-2000, 214 us over 2000-5000), while the
 * rate of two short runs already agrees within SETTLED_FRACTION.
 */
export const ROUND_TRIP_WARM_OPS = 10_000;

/**
 * Runs `instance.run` (a set-up self-timed case: `run`, `step?`, `probeCount?`, `minCount?`,
 * `maxCount?`, `warmOps?`: least ops in all) until its rate settles, as the file header
 * describes.
 */
export async function warmUp(instance) {
  const step = instance.step ?? 1;
  const maxCount = instance.maxCount ?? Number.MAX_SAFE_INTEGER;
  const fit = (n) => Math.max(step, Math.min(maxCount, Math.ceil(n / step) * step));
  let count = fit(instance.probeCount ?? instance.minCount ?? 1);
  let spent = 0;
  let lastRate = 0;
  let ops = 0;
  const warmOps = instance.warmOps ?? 0;
  for (;;) {
    const { seconds } = await instance.run(count);
    spent += seconds;
    ops += count;
    const rate = count / seconds;
    const settled = lastRate > 0 && Math.abs(rate - lastRate) <= SETTLED_FRACTION * lastRate;
    if ((settled && spent >= MIN_S && ops >= warmOps) || spent >= MAX_S) return;
    if (seconds < WARM_RUN_S) {
      count = fit(count * Math.min(8, Math.max(2, WARM_RUN_S / Math.max(seconds, 1e-6))));
      lastRate = 0; // a longer run next: its rate is compared with the one after it
    } else {
      lastRate = rate;
    }
  }
}

/**
 * `instance`, warmed up first when `warm` (a full run); a failed warm-up tears it down and
 * rethrows (the runner only tears down what setup returned).
 */
export async function warmedUp(instance, warm) {
  if (!warm) return instance;
  try {
    await warmUp(instance);
  } catch (err) {
    await instance.teardown?.();
    throw err;
  }
  return instance;
}
