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
 */

import { createRequire } from 'node:module';
import { median } from './stats.mjs';

const require = createRequire(import.meta.url);
const Benchmark = require('benchmark');

/** benchmark.js minSamples of a full run (its default) and of a quick run. */
const MIN_SAMPLES = 5;
const QUICK_MIN_SAMPLES = 1;
/** benchmark.js minTime of a quick run, seconds (a full run keeps the default). */
const QUICK_MIN_TIME_S = 0.001;
/** A full run starts each case with one uncounted round this much shorter, to warm the JIT. */
const WARMUP_FRACTION = 0.4;
/** Latency percentiles reported when a case records a histogram. */
const PERCENTILES = [50, 90, 99, 99.9];

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

/** Percentiles of a node:perf_hooks histogram (nanoseconds), in microseconds. */
function latencyOf(histogram) {
  const out = { count: histogram.count };
  for (const p of PERCENTILES) out[`p${p}`] = histogram.percentile(p) / 1e3;
  out.max = histogram.max / 1e3;
  return out;
}

/** Median of each latency field over the rounds that recorded one. */
function medianLatency(rounds) {
  const recorded = rounds.map((r) => r.latency).filter((l) => l !== undefined);
  if (recorded.length === 0) return undefined;
  const out = {};
  for (const key of Object.keys(recorded[0])) out[key] = median(recorded.map((l) => l[key]));
  return out;
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
  const rounds = [];
  try {
    if (!options.quick) {
      await runOnce(spec.name, instance, {
        ...options,
        maxTime: options.maxTime * WARMUP_FRACTION,
      });
    }
    for (let r = 0; r < options.rounds; r++) {
      globalThis.gc?.();
      instance.histogram?.reset();
      const round = await runOnce(spec.name, instance, options);
      if (instance.histogram !== undefined) round.latency = latencyOf(instance.histogram);
      instance.check?.();
      rounds.push(round);
      onRound(r, round);
    }
  } finally {
    await instance.teardown?.();
  }
  return {
    name: spec.name,
    messagesPerOp: instance.messagesPerOp ?? spec.messagesPerOp ?? 1,
    bytesPerOp: instance.bytesPerOp ?? spec.bytesPerOp ?? 0,
    rounds,
  };
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
