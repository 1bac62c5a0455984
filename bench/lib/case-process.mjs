/**
 * Child process entry: measures the named cases of one suite, in order, then exits.
 *
 *   argv: <suite module path> <JSON array of case names> <JSON of { rounds, maxTime, quick }>
 *
 * The runner (bench/lib/runner.mjs) forks this file per case (or per suite) and
 * listens on the IPC channel: `start` before a case, `round` after each round,
 * `result` when a case is done. Any failure exits non-zero with the error on stderr.
 */

import { loadSuite, measureHere } from './runner.mjs';

/** Exit code of a case process whose runner went away. */
const EXIT_ORPHANED = 3;
let finished = false;
// A runner that died (or was interrupted) takes its cases with it: without this a case would
// run to its end unobserved. Exiting runs the 'exit' handlers, which release shared memory.
process.on('disconnect', () => {
  if (!finished) process.exit(EXIT_ORPHANED);
});

function send(msg) {
  return new Promise((resolve) => process.send(msg, resolve));
}

async function main() {
  const [suitePath, namesJson, optionsJson] = process.argv.slice(2);
  const names = JSON.parse(namesJson);
  const options = JSON.parse(optionsJson);
  const { specs } = await loadSuite(suitePath, { quick: options.quick });
  const chosen = names.map((name) => {
    const spec = specs.find((s) => s.name === name);
    if (spec === undefined) throw new Error(`no case named "${name}" in ${suitePath}`);
    return spec;
  });
  const pending = [];
  await measureHere(chosen, options, (msg) => pending.push(send(msg)));
  await Promise.all(pending);
  finished = true;
  process.disconnect();
}

main().catch((err) => {
  console.error(err);
  finished = true;
  // Exit now: a failed case may leave servers, sockets or peer processes that would keep
  // this process (and the runner waiting for it) alive. 'exit' handlers still run.
  process.exit(1);
});
