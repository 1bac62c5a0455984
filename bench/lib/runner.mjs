/**
 * Runs one benchmark suite and gathers its results; bench/run.mjs calls it per suite.
 *
 * A suite is a module in bench/micro or bench/macro that exports
 *   suite   { name, title, notes?: string[], sections?(run) -> string[] }
 *           (`sections` adds Markdown lines after the tables: a suite's own summaries)
 *   cases(context) -> Case[]     context: { quick }
 *   goals?  Goal[]               checked against the run (bench/lib/goals.mjs)
 *   cleanup?(runId)              removes what the suite's processes may have left behind
 *                                (called by bench/run.mjs after the run, also on failure)
 * and a Case is
 *   name           every parameter in it: 'envelope.encode events=256 size=64'
 *   baseline?      name of the case this one is compared with (same suite, same run)
 *   goal?          the ratio against `baseline` this case is meant to reach
 *   messagesPerOp? messages (envelopes, frames, sends) one timed call handles; default 1
 *   setup()        builds fixtures, returns (or resolves to) an Instance:
 *     fn           the timed function; `fn(deferred)` with `defer: true`
 *     defer?       true when `fn` finishes asynchronously by calling `deferred.resolve()`
 *     bytesPerOp?  payload bytes one call handles (for MB/s)
 *     histogram?   a node:perf_hooks RecordableHistogram of latencies in ns that `fn` records into
 *     check?()     throws if the case did not do its work (called after each round)
 *     teardown?()  releases what setup made
 *   or, for a self-timed case (the multi-process macro benchmarks), instead of `fn`:
 *     run(count)   moves `count` messages (or round trips) and resolves with
 *                  { seconds, latency? } (latency: µs percentiles, as stats.mjs latencyOf)
 *     step?        counts are whole multiples of it (a batch); default 1
 *     minCount?, maxCount?, probeCount?, quickCount?   bounds of the calibration
 *                  (bench/lib/measure.mjs) and the count of a quick run
 *
 * Isolation (`--isolate`):
 *   round  (default) every round of every case in a fresh process (STYLE §8), after an
 *          uncounted warm-up round; round r of every case runs before round r + 1 of
 *          any, so a change in machine load hits a case and its baseline alike;
 *   suite  (default with --quick) one process runs every round of every case in turn;
 *   none   everything in the runner's own process.
 * Ratios are paired: round r of a case over round r of its baseline, median over r.
 */

import { fork } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { evaluateGoals } from './goals.mjs';
import { measureCase, summarise } from './measure.mjs';
import { formatRate, median } from './stats.mjs';

const CASE_PROCESS = fileURLToPath(new URL('./case-process.mjs', import.meta.url));
/** CPU profile sampling interval, µs: ten times V8's default, for short rounds. */
const PROFILE_INTERVAL_US = 100;
/** Where `--profile` writes CPU profiles. */
export const PROFILE_DIR = fileURLToPath(new URL('../results/profiles/', import.meta.url));

/** Loads a suite module and its case list. */
export async function loadSuite(path, context) {
  const mod = await import(pathToFileURL(path).href);
  if (mod.suite === undefined || typeof mod.cases !== 'function') {
    throw new Error(`${path} is not a benchmark suite: it must export "suite" and "cases"`);
  }
  return { suite: mod.suite, specs: mod.cases(context), goals: mod.goals ?? [] };
}

/** Child processes measuring right now, so that an interrupted run can stop them. */
const running = new Set();

/** Kills every case process still running (an interrupted run); resolves once they exited. */
export function killRunning(signal = 'SIGTERM') {
  return Promise.all(
    [...running].map((child) => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill(signal);
      return exited;
    }),
  );
}

/**
 * The cases `filter` selects, plus the baselines they are compared with. `filter` may list
 * alternatives separated by `|` ("tput.ring|rtt.ring"): a case matches when its name contains
 * any of them.
 */
export function selectCases(specs, filter) {
  if (filter === undefined) return specs;
  const parts = filter.split('|').filter((p) => p !== '');
  const wanted = new Set(
    specs.filter((s) => parts.some((p) => s.name.includes(p))).map((s) => s.name),
  );
  for (const s of specs) if (wanted.has(s.name) && s.baseline !== undefined) wanted.add(s.baseline);
  return specs.filter((s) => wanted.has(s.name));
}

/** 'envelope.encode events=1 size=64' -> 'envelope.encode_events-1_size-64'. */
function fileSafe(name) {
  return name.replace(/=/g, '-').replace(/[^A-Za-z0-9.-]+/g, '_');
}

/** Node flags of a child: gc() between rounds, and a CPU profile named `label` if asked. */
function childFlags(options, label) {
  const flags = ['--expose-gc'];
  if (options.profile) {
    mkdirSync(PROFILE_DIR, { recursive: true });
    flags.push(
      '--cpu-prof',
      `--cpu-prof-dir=${PROFILE_DIR}`,
      `--cpu-prof-interval=${PROFILE_INTERVAL_US}`,
    );
    flags.push(`--cpu-prof-name=${fileSafe(label)}.cpuprofile`);
  }
  return flags;
}

/**
 * Measures `specs` in order, `rounds` rounds each, in one fresh Node process; resolves
 * with their raw results. `progress` receives the child's messages.
 */
function measureInChild(suitePath, specs, options, rounds, label, progress) {
  const measureOptions = { rounds, maxTime: options.maxTime, quick: options.quick };
  const names = JSON.stringify(specs.map((s) => s.name));
  const child = fork(CASE_PROCESS, [suitePath, names, JSON.stringify(measureOptions)], {
    execArgv: childFlags(options, label),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  return new Promise((resolve, reject) => {
    const results = [];
    child.on('message', (msg) => {
      progress(msg);
      if (msg.type === 'result') results.push(msg.result);
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0 && results.length === specs.length) resolve(results);
      else
        reject(
          new Error(`${label}: benchmark process failed (exit code ${code}, signal ${signal})`),
        );
    });
  });
}

/** Measures `specs` in order in this process, reporting progress as a child would. */
export async function measureHere(specs, options, progress) {
  const results = [];
  for (const spec of specs) {
    progress({ type: 'start', name: spec.name });
    const onRound = (index, round) => progress({ type: 'round', name: spec.name, index, round });
    const result = await measureCase(spec, options, onRound);
    progress({ type: 'result', result });
    results.push(result);
  }
  return results;
}

/** Round r of every case, each in its own process; rounds merged per case. */
async function measureRoundByRound(path, specs, options, log) {
  const merged = new Map();
  for (let r = 0; r < options.rounds; r++) {
    for (let i = 0; i < specs.length; i++) {
      const spec = specs[i];
      log.write(`[round ${r + 1}/${options.rounds}, case ${i + 1}/${specs.length}] ${spec.name}:`);
      const label = `${spec.name} round=${r + 1}`;
      const [raw] = await measureInChild(path, [spec], options, 1, label, () => {});
      log.write(` ${formatRate(raw.rounds[0].hz)} ops/s\n`);
      const into = merged.get(spec.name);
      if (into === undefined) merged.set(spec.name, raw);
      else into.rounds.push(...raw.rounds);
    }
  }
  return specs.map((s) => merged.get(s.name));
}

/** Writes one progress line per case to `log`: name, each round's ops/s, the median. */
function progressWriter(total, log) {
  let index = 0;
  return (msg) => {
    if (msg.type === 'start') log.write(`[case ${++index}/${total}] ${msg.name}:`);
    else if (msg.type === 'round') log.write(` ${formatRate(msg.round.hz)}`);
    else if (msg.type === 'result') log.write(' ops/s\n');
  };
}

/**
 * Adds `ratio`: the median over rounds of the case's ops/s over its baseline's ops/s in
 * the same round. Suites pair cases that do the same work per op (same envelopes, same
 * batch), so this is also the ratio of messages/s.
 */
function attachRatios(results, specs) {
  const byName = new Map(results.map((r) => [r.name, r]));
  const baselines = new Set(specs.map((s) => s.baseline).filter((b) => b !== undefined));
  for (const spec of specs) {
    const r = byName.get(spec.name);
    r.isBaseline = baselines.has(spec.name);
    if (spec.goal !== undefined) r.goal = spec.goal;
    const b = spec.baseline === undefined ? undefined : byName.get(spec.baseline);
    if (b === undefined) continue;
    const n = Math.min(r.rounds.length, b.rounds.length);
    const paired = [];
    for (let i = 0; i < n; i++) {
      paired.push(r.rounds[i].hz / b.rounds[i].hz);
    }
    r.baseline = b.name;
    r.ratio = median(paired);
    r.ratios = paired;
  }
}

/**
 * Runs every selected case of the suite at `path`, isolated as `options.isolate` says.
 * @param options - parsed options (bench/lib/options.mjs).
 * @param log - where progress goes (a writable stream; stderr).
 */
export async function runSuite(path, options, log = process.stderr) {
  const { suite, specs: all, goals } = await loadSuite(path, { quick: options.quick });
  const specs = selectCases(all, options.filter);
  log.write(`${suite.name}: ${specs.length} cases, ${options.rounds} rounds\n`);
  let raw;
  if (options.isolate === 'round') {
    raw = await measureRoundByRound(path, specs, options, log);
  } else if (options.isolate === 'suite') {
    const progress = progressWriter(specs.length, log);
    raw = await measureInChild(path, specs, options, options.rounds, suite.name, progress);
  } else {
    raw = await measureHere(specs, options, progressWriter(specs.length, log));
  }
  const results = raw.map(summarise);
  attachRatios(results, specs);
  return { suite, cases: results, goals: evaluateGoals(goals, results) };
}
