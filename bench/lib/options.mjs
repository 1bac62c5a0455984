/**
 * Command-line and environment options of the benchmark runner.
 *
 *   node bench/run.mjs [suite ...] [--quick] [--rounds N] [--max-time S] [--filter TEXT]
 *                      [--profile] [--isolate round|suite|none]
 *
 * `--quick` (or BENCH_QUICK=1) is the CI smoke mode: every case runs, briefly, so the
 * suites are exercised end to end in seconds; its numbers mean nothing. The full mode
 * runs each case in `ROUNDS_MIN` or more rounds and reports medians (STYLE §8).
 */

/** Fewest rounds a full run reports a median of. */
export const ROUNDS_MIN = 5;
/** benchmark.js `maxTime` of one round in a full run, in seconds. */
const MAX_TIME_S = 0.5;
/** Rounds and benchmark.js `maxTime` (seconds) of a quick run. */
const QUICK_ROUNDS = 2;
const QUICK_MAX_TIME_S = 0.005;

const USAGE = `usage: node bench/run.mjs [suite ...] [options]

  suite             envelope, inprocess, macro, grpc (default: all)
  --quick           smoke mode: tiny iterations, numbers mean nothing (also BENCH_QUICK=1)
  --rounds N        rounds per case, median reported (default ${ROUNDS_MIN}, at least ${ROUNDS_MIN}
                    unless --quick)
  --max-time S      benchmark.js maxTime per round, seconds (default ${MAX_TIME_S})
  --filter TEXT     only cases whose name contains TEXT (their baselines run too); A|B for
                    either of two texts
  --profile         write V8 CPU profiles to bench/results/profiles/ (one per process);
                    summarise one with node bench/lib/profile-summary.mjs <file>
  --isolate MODE    round: a fresh process per round of each case, rounds interleaved
                    across cases (default); suite: one process per suite (default with
                    --quick); none: everything in this process
  --help            this text
`;

/**
 * Parses `argv` (without node and script) and the environment.
 * @throws {Error} with the usage text for an unknown option or a bad value.
 */
export function parseOptions(argv, env = process.env) {
  const options = {
    quick: env.BENCH_QUICK === '1',
    rounds: undefined,
    maxTime: undefined,
    filter: undefined,
    profile: false,
    isolate: undefined,
    help: false,
    suites: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value\n\n${USAGE}`);
      return argv[++i];
    };
    if (arg === '--quick') options.quick = true;
    else if (arg === '--rounds') options.rounds = positiveNumber(arg, value(), true);
    else if (arg === '--max-time') options.maxTime = positiveNumber(arg, value(), false);
    else if (arg === '--filter') options.filter = value();
    else if (arg === '--profile') options.profile = true;
    else if (arg === '--isolate') options.isolate = isolation(value());
    else if (arg === '--help' || arg === '-h') options.help = true;
    else if (arg.startsWith('-')) throw new Error(`unknown option ${arg}\n\n${USAGE}`);
    else options.suites.push(arg);
  }
  options.rounds ??= options.quick ? QUICK_ROUNDS : ROUNDS_MIN;
  options.maxTime ??= options.quick ? QUICK_MAX_TIME_S : MAX_TIME_S;
  options.isolate ??= options.quick ? 'suite' : 'round';
  if (!options.quick && options.rounds < ROUNDS_MIN) {
    throw new Error(`--rounds ${options.rounds}: a full run needs at least ${ROUNDS_MIN} rounds`);
  }
  return options;
}

export { USAGE };

function isolation(text) {
  if (text === 'round' || text === 'suite' || text === 'none') return text;
  throw new Error(`--isolate expects round, suite or none, got ${text}`);
}

function positiveNumber(name, text, integer) {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new Error(`${name} expects a positive ${integer ? 'integer' : 'number'}, got ${text}`);
  }
  return n;
}
