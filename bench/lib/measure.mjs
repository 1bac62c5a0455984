/**
 * Measures one benchmark case: benchmark.js runs it once per round, and the round
 * results are summarised by their median (STYLE §8: medians of at least 5 runs).
 *
 * A case is a plain object (bench/lib/runner.mjs documents the contract). Its `setup()`
 * builds the fixtures outside the timed code and returns the function benchmark.js
 * times: `fn()` for synchronous work, or `fn(deferred)` with `defer: true` for work
 * that completes asynchronously (the function calls `deferred.resolve()` when done).
 * A full run first gives each case one shorter, uncounted round, so the rounds that
 * count measure optimised code rather than the JIT warming up.
 *
 * benchmark.js is never given `setup`/`teardown` functions: with them it decompiles
 * every function into one source string, which would cut `fn` off from its closure.
 * Without them it calls `fn` by reference in its timing loop.
 *
 * Self-timed cases (the multi-process macro benchmarks) return `run(count)` instead of `fn`:
 * benchmark.js cannot see work that happens in other processes, so the case times `count`
 * messages itself and resolves with `{ seconds, latency? }`. A full run first calibrates:
 * runs of a growing count warm the case up and find the count that fills `maxTime`; every
 * round then runs that count. A quick run takes `quickCount` (or `minCount`) at once.
 */

import { createRequire } from 'node:module';
import { latencyOf, median } from './stats.mjs';

const require = createRequire(import.meta.url);
const Benchmark = require('benchmark');

/** benchmark.js minSamples of a full run (its default) and of a quick run. */
const MIN_SAMPLES = 5;
const QUICK_MIN_SAMPLES = 1;
/** benchmark.js minTime of a quick run, seconds (a full run keeps the default). */
const QUICK_MIN_TIME_S = 0.001;
/** A full run starts each case with one uncounted round this much shorter, to warm the JIT. */
const WARMUP_FRACTION = 0.4;

/** One benchmark.js run of `fn`; resolves with its statistics. */
function runOnce(name, instance, options) {
  const defer = instance.defer === true;
  return new Promise((resolve, reject) => {
    const bench = new Benchmark(name, instance.fn, {
      defer,
      async: defer,
      maxTime: options.maxTime,
      minSamples: options.quick ? QUICK_MIN_SAMPLES : MIN_SAMPLES,
      ...(options.quick ? { minTime: QUICK_MIN_TIME_S } : {}),
      onError: (event) => reject(event.target.error),
      onComplete: (event) => {
        const b = event.target;
        if (b.error) reject(b.error);
        else resolve({ hz: b.hz, rme: b.stats.rme, samples: b.stats.sample.length });
      },
    });
    bench.run({ async: defer });
  });
}

/** Median of each latency field over the rounds that recorded one. */
function medianLatency(rounds) {
  const recorded = rounds.map((r) => r.latency).filter((l) => l !== undefined);
  if (recorded.length === 0) return undefined;
  const out = {};
  for (const key of Object.keys(recorded[0])) out[key] = median(recorded.map((l) => l[key]));
  return out;
}

/** A self-timed case's first calibration run, in messages (or round trips), by default. */
const PROBE_COUNT = 64;
/** Largest growth of the count from one calibration run to the next. */
const PROBE_GROWTH_MAX = 64;

/**
 * Warms a self-timed case up and finds how many messages fill a round of `maxTime`: runs with
 * a growing count until one run takes WARMUP_FRACTION of it, then scales by the rate seen.
 */
async function calibrate(instance, options) {
  const minCount = instance.minCount ?? 1;
  const maxCount = instance.maxCount ?? Number.MAX_SAFE_INTEGER;
  const fit = (n) => countOf(instance, Math.min(maxCount, Math.max(minCount, n)));
  const target = options.maxTime * WARMUP_FRACTION;
  let count = fit(instance.probeCount ?? PROBE_COUNT);
  for (;;) {
    const { seconds } = await instance.run(count);
    if (seconds >= target || count >= maxCount) return fit((count / seconds) * options.maxTime);
    const scaled = Math.ceil((count * 1.2 * target) / Math.max(seconds, 1e-6));
    count = fit(Math.min(count * PROBE_GROWTH_MAX, Math.max(2 * count, scaled)));
  }
}

/** `n` rounded up to a whole number of the case's `step` (a batch), at least one step. */
function countOf(instance, n) {
  const step = instance.step ?? 1;
  return Math.max(step, Math.ceil(n / step) * step);
}

/**
 * Rounds of a self-timed case (`instance.run`): multi-process benchmarks time themselves, as
 * the work crosses processes benchmark.js cannot see into. One round is one run of `count`
 * messages; its ops/s are messages (or round trips) per second.
 */
async function measureSelfTimed(spec, instance, options, onRound) {
  const count = options.quick
    ? countOf(instance, instance.quickCount ?? instance.minCount ?? 1)
    : await calibrate(instance, options);
  const rounds = [];
  for (let r = 0; r < options.rounds; r++) {
    globalThis.gc?.();
    const result = await instance.run(count);
    const round = { hz: count / result.seconds, rme: 0, samples: count, seconds: result.seconds };
    if (result.latency !== undefined) round.latency = result.latency;
    instance.check?.();
    rounds.push(round);
    onRound(r, round);
  }
  return rounds;
}

/**
 * Sets the case up, runs `options.rounds` rounds and tears it down.
 * @param spec - a case from a suite's `cases()`.
 * @param options - `{ rounds, maxTime, quick }`.
 * @param onRound - called after each round with `(roundIndex, roundResult)`.
 * @returns the raw per-round results; `summarise` adds the medians.
 */
export async function measureCase(spec, options, onRound = () => {}) {
  const instance = await spec.setup();
  let rounds;
  try {
    rounds =
      typeof instance.run === 'function'
        ? await measureSelfTimed(spec, instance, options, onRound)
        : await measureWithBenchmark(spec, instance, options, onRound);
  } catch (err) {
    // The first failure is the one to report: a teardown after it often fails as a consequence.
    try {
      await instance.teardown?.();
    } catch (teardownError) {
      console.error(`${spec.name}: teardown after a failure also failed:`, teardownError);
    }
    throw err;
  }
  await instance.teardown?.();
  return {
    name: spec.name,
    messagesPerOp: instance.messagesPerOp ?? spec.messagesPerOp ?? 1,
    bytesPerOp: instance.bytesPerOp ?? spec.bytesPerOp ?? 0,
    rounds,
  };
}

/** Rounds of a case benchmark.js times (`instance.fn`), after a warm-up round in a full run. */
async function measureWithBenchmark(spec, instance, options, onRound) {
  if (!options.quick) {
    await runOnce(spec.name, instance, {
      ...options,
      maxTime: options.maxTime * WARMUP_FRACTION,
    });
  }
  const rounds = [];
  for (let r = 0; r < options.rounds; r++) {
    globalThis.gc?.();
    instance.histogram?.reset();
    const round = await runOnce(spec.name, instance, options);
    if (instance.histogram !== undefined) round.latency = latencyOf(instance.histogram);
    instance.check?.();
    rounds.push(round);
    onRound(r, round);
  }
  return rounds;
}

/** Adds the medians over `raw.rounds` (ops/s, relative margin of error, latency). */
export function summarise(raw) {
  return {
    ...raw,
    hz: median(raw.rounds.map((r) => r.hz)),
    rme: median(raw.rounds.map((r) => r.rme)),
    latency: medianLatency(raw.rounds),
  };
}
