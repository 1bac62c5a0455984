#!/usr/bin/env node
/**
 * `npm run bench`: runs the benchmark suites against the build in dist/ and
 * build/Release, prints their Markdown tables on stdout and writes
 * bench/results/<suite>.{json,md,svg}. Progress goes to stderr.
 *
 *   node bench/run.mjs                  every suite, medians of 5 rounds per case
 *   node bench/run.mjs inprocess        one suite
 *   node bench/run.mjs --quick          CI smoke run: seconds, numbers mean nothing
 *   node bench/run.mjs --help           all options (bench/lib/options.mjs)
 */

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseOptions, USAGE } from './lib/options.mjs';
import { runSuite } from './lib/runner.mjs';

/** Every suite, in the order they run. */
const SUITES = {
  envelope: new URL('./micro/envelope.mjs', import.meta.url),
  inprocess: new URL('./micro/inprocess.mjs', import.meta.url),
};
const DIST_ENTRY = new URL('../dist/index.js', import.meta.url);

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
  const started = process.hrtime.bigint();
  // Taken once, before any suite runs: the revision is that of the build being measured.
  const env = environment(options);
  for (const name of names) {
    const { suite, cases } = await runSuite(fileURLToPath(SUITES[name]), options);
    const md = writeResults({ suite, environment: env, cases });
    process.stdout.write(`\n${md}\n`);
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  process.stderr.write(`done in ${seconds.toFixed(1)} s; results in bench/results/\n`);
}

main().catch((err) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  if (process.env.BENCH_DEBUG === '1' && err instanceof Error)
    process.stderr.write(`${err.stack}\n`);
  process.exitCode = 1;
});
