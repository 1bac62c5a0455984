#!/usr/bin/env node
/**
 * `npm run bench`: runs the benchmark suites against the build in dist/ and
 * build/Release, prints their Markdown tables on stdout and writes
 * bench/results/<suite>.{json,md,svg}. Progress goes to stderr.
 *
 *   node bench/run.mjs                  every suite, medians of 5 rounds per case
 *   node bench/run.mjs inprocess        one suite
 *   node bench/run.mjs macro            the multi-process benchmarks (bench/macro)
 *   node bench/run.mjs grpc             the gRPC link on loopback (bench/macro/grpc.mjs)
 *   node bench/run.mjs --quick          CI smoke run: seconds, numbers mean nothing
 *   node bench/run.mjs --help           all options (bench/lib/options.mjs)
 *
 * Clean-up: the case processes name everything they put in /dev/shm after this process's
 * pid (BENCH_RUN_ID). After the run, after a failure and on SIGINT/SIGTERM, the runner stops
 * its case processes (their peers exit with them) and each suite's `cleanup` removes what is
 * left, so a run leaves no process and no segment behind.
 */

import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseOptions, USAGE } from './lib/options.mjs';
import { killRunning, runSuite } from './lib/runner.mjs';

/** Every suite, in the order they run. */
const SUITES = {
  envelope: new URL('./micro/envelope.mjs', import.meta.url),
  inprocess: new URL('./micro/inprocess.mjs', import.meta.url),
  macro: new URL('./macro/index.mjs', import.meta.url),
  grpc: new URL('./macro/grpc.mjs', import.meta.url),
};
const DIST_ENTRY = new URL('../dist/index.js', import.meta.url);
/** Exit codes after SIGINT and SIGTERM (128 + signal number, as a shell reports them). */
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 };

/** Runs the `cleanup` of every suite in `names` that has one; never throws. */
async function cleanupSuites(names) {
  for (const name of names) {
    try {
      const mod = await import(pathToFileURL(fileURLToPath(SUITES[name])).href);
      const removed = (await mod.cleanup?.(process.env.BENCH_RUN_ID)) ?? [];
      if (removed.length > 0)
        process.stderr.write(
          `${name}: removed ${removed.length} leftover(s): ${removed.join(', ')}\n`,
        );
    } catch (err) {
      process.stderr.write(
        `${name}: clean-up failed: ${err instanceof Error ? err.message : err}\n`,
      );
    }
  }
}

/** The suites this run would clean up after (all known ones named on the command line). */
let toClean = [];

async function main() {
  const options = parseOptions(process.argv.slice(2));
  if (options.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (!existsSync(DIST_ENTRY)) {
    throw new Error(
      'dist/ is missing: build first with `npm run build` (native addon and TypeScript)',
    );
  }
  // Loaded after the check above: the report reads the addon's location from dist/.
  const { environment, writeResults } = await import('./lib/report.mjs');
  const names = options.suites.length > 0 ? options.suites : Object.keys(SUITES);
  const unknown = names.filter((n) => SUITES[n] === undefined);
  if (unknown.length > 0) {
    throw new Error(
      `unknown suite ${unknown.join(', ')}; suites: ${Object.keys(SUITES).join(', ')}`,
    );
  }
  toClean = names;
  const started = process.hrtime.bigint();
  // Taken once, before any suite runs: the revision is that of the build being measured.
  const env = environment(options);
  for (const name of names) {
    const { suite, cases, goals } = await runSuite(fileURLToPath(SUITES[name]), options);
    const md = writeResults({ suite, environment: env, cases, goals });
    process.stdout.write(`\n${md}\n`);
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  process.stderr.write(`done in ${seconds.toFixed(1)} s; results in bench/results/\n`);
}

for (const signal of Object.keys(SIGNAL_EXIT)) {
  process.once(signal, () => {
    process.stderr.write(`bench: ${signal}, stopping\n`);
    killRunning()
      .then(() => cleanupSuites(toClean))
      .finally(() => process.exit(SIGNAL_EXIT[signal]));
  });
}

// Every process of this run names its shared memory after this one (bench/macro/lib/peer.mjs).
process.env.BENCH_RUN_ID = String(process.pid);

main()
  .catch((err) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    if (process.env.BENCH_DEBUG === '1' && err instanceof Error)
      process.stderr.write(`${err.stack}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    await killRunning();
    await cleanupSuites(toClean);
  });
