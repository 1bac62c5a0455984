#!/usr/bin/env node
/**
 * The `disco` command.
 *
 * `disco phold` runs the PHOLD demo (src/demo/phold.ts) over real NodeControllers
 * and prints a summary (or JSON with `--json`); progress goes to stderr. Exit
 * codes: 0 success, 1 the run failed or its conservation check did not hold,
 * 2 bad usage (unknown flag, invalid value).
 *
 * Flag values are checked against the same rules runPhold applies
 * (src/demo/phold-options.ts), with messages naming the flag. `main` takes its
 * arguments and output streams as parameters and returns the exit code, so tests
 * drive it in-process; it runs by itself only when this file is the entry point.
 */

import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import {
  DEFAULT_DURATION_SECONDS,
  DEFAULT_EVENTS_PER_NODE,
  DEFAULT_LOOKAHEAD,
  DEFAULT_MEAN,
  DEFAULT_NODES,
  DEFAULT_REMOTE,
  DEFAULT_REPLICATIONS,
  DEFAULT_SEED,
  pholdOptionProblem,
  runPhold,
  type NumericPholdOption,
  type PholdOptions,
  type PholdResult,
} from './demo/phold.js';
import { formatProgress, formatSummary } from './demo/phold-report.js';
import { createProgress, type ProgressStream } from './demo/progress.js';

/** Exit code of a successful command. */
export const EXIT_OK = 0;
/** Exit code when a run fails or its conservation check does not hold. */
export const EXIT_FAILURE = 1;
/** Exit code for bad usage: unknown flags, invalid values. */
export const EXIT_USAGE = 2;

/** Where the command writes; process.stdout and process.stderr by default. */
export interface CliIo {
  readonly stdout: ProgressStream;
  readonly stderr: ProgressStream;
}

/** A numeric flag of `disco phold` and the runPhold option it sets. */
interface NumberFlag {
  readonly option: NumericPholdOption;
  /** Flag and argument, as commander reads them: `--nodes <count>`. */
  readonly spec: string;
  readonly description: string;
  /** Default shown in the help; absent when the default depends on other flags. */
  readonly value?: number;
}

const NUMBER_FLAGS: readonly NumberFlag[] = [
  {
    option: 'nodes',
    spec: '--nodes <count>',
    description: 'nodes per replication',
    value: DEFAULT_NODES,
  },
  {
    option: 'eventsPerNode',
    spec: '--events-per-node <count>',
    description: 'events each node starts with',
    value: DEFAULT_EVENTS_PER_NODE,
  },
  {
    option: 'remote',
    spec: '--remote <fraction>',
    description: 'share of new events sent to another node, 0-1',
    value: DEFAULT_REMOTE,
  },
  {
    option: 'lookahead',
    spec: '--lookahead <time>',
    description: 'minimum timestamp increment, also the window width',
    value: DEFAULT_LOOKAHEAD,
  },
  {
    option: 'mean',
    spec: '--mean <time>',
    description: 'mean of the exponential increment on top of the lookahead',
    value: DEFAULT_MEAN,
  },
  {
    option: 'duration',
    spec: '--duration <seconds>',
    description: `wall-clock limit (default: ${DEFAULT_DURATION_SECONDS} unless --end-time is given)`,
  },
  {
    option: 'endTime',
    spec: '--end-time <time>',
    description: 'simulated-time limit; a run with a seed and an end time is reproducible',
  },
  {
    option: 'seed',
    spec: '--seed <n>',
    description: 'seed of the random numbers, 0 to 2^32-1',
    value: DEFAULT_SEED,
  },
  {
    option: 'payload',
    spec: '--payload <bytes>',
    description: 'byte payloads of this size (12 or more); 0 sends small objects',
    value: 0,
  },
  {
    option: 'replications',
    spec: '--replications <count>',
    description: 'replications run side by side',
    value: DEFAULT_REPLICATIONS,
  },
];

function packageVersion(): string {
  const url = new URL('../package.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

/** A flag value as a number: strings are parsed strictly (empty or junk gives NaN). */
function toNumber(raw: unknown): number {
  if (typeof raw === 'number') return raw;
  const text = String(raw).trim();
  return text === '' ? Number.NaN : Number(text);
}

/** Turns parsed flags into runPhold options, or the first problem in terms of the flag. */
export function pholdOptionsFromFlags(
  flags: Readonly<Record<string, unknown>>,
): { options: PholdOptions } | { error: string } {
  const options: Record<string, unknown> = { viaWire: flags['viaWire'] === true };
  for (const { option, spec } of NUMBER_FLAGS) {
    const raw = flags[option];
    if (raw === undefined) continue;
    const value = toNumber(raw);
    const problem = pholdOptionProblem(option, value);
    const flag = spec.split(' ')[0]!;
    if (problem !== undefined) return { error: `${flag} ${problem}, got ${String(raw)}` };
    options[option] = value;
  }
  return { options: options as PholdOptions };
}

/** Runs PHOLD with progress on stderr; Ctrl-C ends the run early instead of killing it. */
async function runWithProgress(
  options: PholdOptions,
  io: CliIo,
  quiet: boolean,
): Promise<PholdResult> {
  const progress = createProgress({ stream: io.stderr, label: 'phold', quiet });
  const interrupt = new AbortController();
  const onSigint = (): void => interrupt.abort();
  process.once('SIGINT', onSigint);
  try {
    return await runPhold(options, {
      onProgress: (p) => progress.update(p.fraction, formatProgress(p)),
      signal: interrupt.signal,
    });
  } finally {
    progress.stop();
    process.off('SIGINT', onSigint);
  }
}

async function runPholdCommand(flags: Record<string, unknown>, io: CliIo): Promise<number> {
  const parsed = pholdOptionsFromFlags(flags);
  if ('error' in parsed) {
    io.stderr.write(`error: ${parsed.error}\n(run "disco phold --help" for the options)\n`);
    return EXIT_USAGE;
  }
  let result: PholdResult;
  try {
    result = await runWithProgress(parsed.options, io, flags['quiet'] === true);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    io.stderr.write(`error: the PHOLD run failed: ${message}\n`);
    return EXIT_FAILURE;
  }
  const json = flags['json'] === true;
  io.stdout.write(json ? `${JSON.stringify(result, null, 2)}\n` : formatSummary(result));
  return result.conservation.ok ? EXIT_OK : EXIT_FAILURE;
}

function addPholdCommand(program: Command, io: CliIo, exit: { code: number }): void {
  const command = program
    .command('phold')
    .summary('run the PHOLD benchmark model over NodeControllers')
    .description(
      'Run PHOLD (Fujimoto 1990): a constant population of events hops between nodes, sent ' +
        'with sendEvent and closed per window with sendPromise. Windows are as wide as the ' +
        'lookahead; a node starts the next window only when every promise for the last one ' +
        'is matched by the events it announced. Prints a summary and checks conservation ' +
        '(exit code 1 when it fails). Ctrl-C ends the run early, still with a summary.',
    );
  for (const flag of NUMBER_FLAGS) {
    const option = new Option(flag.spec, flag.description);
    // Option.default keeps the number, so the help shows `(default: 8)`, not `"8"`.
    command.addOption(flag.value === undefined ? option : option.default(flag.value));
  }
  command
    .option('--via-wire', 'route messages between nodes through the wire codec and native verifier')
    .option('--json', 'print the full result as JSON instead of the summary')
    .option('--quiet', 'show no progress')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  disco phold --duration 3\n' +
        '  disco phold --nodes 16 --remote 0.9 --end-time 500 --seed 7 --json\n' +
        '  disco phold --via-wire --payload 4096',
    )
    .action(async (flags: Record<string, unknown>) => {
      exit.code = await runPholdCommand(flags, io);
    });
}

function buildProgram(io: CliIo, exit: { code: number }): Command {
  const program = new Command('disco')
    .description(
      'disco-transport: routing and transport of events and promises between the nodes of ' +
        'a distributed discrete-event simulation.',
    )
    .version(packageVersion(), '-V, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .showHelpAfterError('(add --help for usage)');
  addPholdCommand(program, io, exit);
  return program;
}

/**
 * Runs the `disco` command.
 * @param argv - the arguments after the program name, e.g. `['phold', '--duration', '3']`.
 * @returns the exit code: 0 success, 1 run failure, 2 usage error.
 */
export async function main(
  argv: readonly string[],
  io: CliIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const exit = { code: EXIT_OK };
  const program = buildProgram(io, exit);
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    throw err;
  }
  return exit.code;
}

/** True when this file is what `node` (or the `disco` bin link) was asked to run. */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    // An unresolvable argv[1] (e.g. `node -e`) means we were imported, not run.
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = EXIT_FAILURE;
    },
  );
}
