#!/usr/bin/env node
/**
 * The `disco` command.
 *
 * `disco phold` runs the PHOLD demo over real NodeControllers, by default across
 * Server processes (one per core, src/demo/phold-coordinator.ts), or in this
 * process with `--in-process` / `--processes 1` (src/demo/phold.ts). `disco run
 * <topology.json>` runs PHOLD on the Servers of a topology file, one process per
 * Server. Both print a summary (or JSON with `--json`); progress goes to stderr.
 *
 * Exit codes: 0 success, 1 the run failed or its conservation check did not hold,
 * 2 bad usage (unknown flag, invalid value, unusable topology), 128 + signal
 * number (130, 143) when a second SIGINT/SIGTERM aborted the run. The first
 * SIGINT/SIGTERM stops the run early and cleanly: every node of a replication
 * stops on the same window, and the summary is still printed.
 *
 * `main` takes its arguments and output streams as parameters and returns the exit
 * code, so tests drive it in-process; it runs by itself only when this file is the
 * entry point.
 */

import { readFileSync, realpathSync } from 'node:fs';
import { availableParallelism, constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { InvalidArgumentError, TopologyError } from './errors.js';
import {
  DEFAULT_NODES,
  runPhold,
  type PholdHooks,
  type PholdOptions,
  type PholdResult,
} from './demo/phold.js';
import {
  MAX_PROCESSES,
  planPholdProcesses,
  runPholdAcrossProcesses,
  runPholdMember,
  isMemberPlacement,
  type PholdMemberResult,
  UnsupportedTopologyError,
  type PholdPlacement,
} from './demo/phold-coordinator.js';
import { addModelFlags, pholdOptionsFromFlags, toNumber } from './demo/phold-flags.js';
import { formatProgress, formatSummary } from './demo/phold-report.js';
import { createProgress, type ProgressStream } from './demo/progress.js';

export { pholdOptionsFromFlags } from './demo/phold-flags.js';

/** Exit code of a successful command. */
export const EXIT_OK = 0;
/** Exit code when a run fails or its conservation check does not hold. */
export const EXIT_FAILURE = 1;
/** Exit code for bad usage: unknown flags, invalid values, unusable topologies. */
export const EXIT_USAGE = 2;
/** Exit codes for a signal are this plus the signal number (SIGINT 130, SIGTERM 143). */
const EXIT_SIGNAL_BASE = 128;
/** Signals that stop a run early (first) or abort it (second). */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/** Where the command writes; process.stdout and process.stderr by default. */
export interface CliIo {
  readonly stdout: ProgressStream;
  readonly stderr: ProgressStream;
}

/** A way to run PHOLD with the CLI's hooks. */
type Runner = (hooks: PholdHooks) => Promise<PholdResult>;

/** A run as the command decided it, or a usage problem. */
type Plan =
  | { run: Runner }
  | { member: (hooks: { cancel: AbortSignal }) => Promise<PholdMemberResult> }
  | { error: string };

function packageVersion(): string {
  const url = new URL('../package.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

/**
 * First SIGINT/SIGTERM: stop the run early (`stop`). Second: abort it (`cancel`)
 * and remember the exit code. Installed for the length of one run.
 */
class Interrupts {
  readonly stop = new AbortController();
  readonly cancel = new AbortController();
  exitCode: number | null = null;

  constructor(
    private readonly stderr: ProgressStream,
    private readonly label: string,
  ) {
    for (const s of STOP_SIGNALS) process.on(s, this.onSignal);
  }

  dispose(): void {
    for (const s of STOP_SIGNALS) process.off(s, this.onSignal);
  }

  private readonly onSignal = (signal: NodeJS.Signals): void => {
    if (!this.stop.signal.aborted) {
      this.stderr.write(`\n${this.label}: ${signal}: stopping every node on the same window\n`);
      this.stop.abort();
      return;
    }
    if (this.cancel.signal.aborted) return;
    this.exitCode = EXIT_SIGNAL_BASE + constants.signals[signal];
    this.cancel.abort(new Error(`interrupted by a second ${signal}`));
  };
}

/** Whether `err` says the input cannot be run (exit 2) rather than that a run failed. */
function isUsageError(err: unknown): err is Error {
  return (
    err instanceof InvalidArgumentError ||
    err instanceof TopologyError ||
    err instanceof UnsupportedTopologyError
  );
}

/** Runs with progress on stderr and signal handling; prints the result; returns the exit code. */
async function execute(run: Runner, flags: Record<string, unknown>, io: CliIo): Promise<number> {
  const progress = createProgress({
    stream: io.stderr,
    label: 'phold',
    quiet: flags['quiet'] === true,
  });
  const interrupts = new Interrupts(io.stderr, 'phold');
  let result: PholdResult;
  try {
    result = await run({
      onProgress: (p) => progress.update(p.fraction, formatProgress(p)),
      signal: interrupts.stop.signal,
      cancel: interrupts.cancel.signal,
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (interrupts.exitCode !== null) {
      io.stderr.write(`error: the PHOLD run was aborted: ${message}\n`);
      return interrupts.exitCode;
    }
    io.stderr.write(`error: the PHOLD run failed: ${message}\n`);
    return EXIT_FAILURE;
  } finally {
    progress.stop();
    interrupts.dispose();
  }
  const json = flags['json'] === true;
  io.stdout.write(json ? `${JSON.stringify(result, null, 2)}\n` : formatSummary(result));
  return result.conservation.ok ? EXIT_OK : EXIT_FAILURE;
}

/** Checks a multi-process plan up front, so bad input is a usage error, not a failed run. */
function acrossProcesses(options: PholdOptions, placement: PholdPlacement): Plan {
  try {
    planPholdProcesses(options, placement);
  } catch (err) {
    if (isUsageError(err)) return { error: err.message };
    throw err;
  }
  return { run: (hooks) => runPholdAcrossProcesses(options, placement, hooks) };
}

/** `--processes` as a count, undefined when absent, or a problem. */
function processesFlag(raw: unknown): number | undefined | { error: string } {
  if (raw === undefined) return undefined;
  const n = toNumber(raw);
  if (Number.isInteger(n) && n >= 1 && n <= MAX_PROCESSES) return n;
  return { error: `--processes must be an integer from 1 to ${MAX_PROCESSES}, got ${String(raw)}` };
}

/** Decides how `disco phold` runs: in this process, or across Server processes. */
function planPhold(flags: Record<string, unknown>): Plan {
  const parsed = pholdOptionsFromFlags(flags);
  if ('error' in parsed) return parsed;
  const processes = processesFlag(flags['processes']);
  if (typeof processes === 'object') return processes;
  const inProcess = flags['inProcess'] === true || parsed.options.viaWire === true;
  if (inProcess && processes !== undefined && processes > 1) {
    const why = flags['inProcess'] === true ? '--in-process' : '--via-wire (an in-process option)';
    return { error: `${why} contradicts --processes ${processes}` };
  }
  const options = parsed.options;
  const nodes = options.nodes ?? DEFAULT_NODES;
  const count = inProcess ? 1 : Math.min(processes ?? availableParallelism(), nodes);
  if (count === 1) return { run: (hooks) => runPhold(options, hooks) };
  return acrossProcesses(options, { processes: count });
}

/** Decides how `disco run <topology>` runs. */
function planTopologyRun(file: string, flags: Record<string, unknown>): Plan {
  const parsed = pholdOptionsFromFlags(flags);
  if ('error' in parsed) return parsed;
  const machine = typeof flags['machine'] === 'string' ? flags['machine'] : undefined;
  const placement = { topology: file, machine };
  const plan = acrossProcesses(parsed.options, placement);
  if ('error' in plan || !isMemberPlacement(parsed.options, placement)) return plan;
  return { member: (hooks) => runPholdMember(parsed.options, placement, hooks) };
}

async function runPlanned(
  plan: Plan,
  command: string,
  flags: Record<string, unknown>,
  io: CliIo,
): Promise<number> {
  if ('error' in plan) {
    io.stderr.write(`error: ${plan.error}\n(run "disco ${command} --help" for the options)\n`);
    return EXIT_USAGE;
  }
  if ('member' in plan) return executeMember(plan.member, io);
  return execute(plan.run, flags, io);
}

/** Runs a member machine until its leader stops the run; one line before, one after. */
async function executeMember(
  run: (hooks: { cancel: AbortSignal }) => Promise<PholdMemberResult>,
  io: CliIo,
): Promise<number> {
  const interrupts = new Interrupts(io.stderr, 'member');
  // A member has no run of its own to stop cleanly: the first signal stops its Servers.
  interrupts.stop.signal.addEventListener('abort', () =>
    interrupts.cancel.abort(new Error('interrupted')),
  );
  io.stderr.write('member: serving this machine until the leader stops the run\n');
  try {
    const r = await run({ cancel: interrupts.cancel.signal });
    io.stdout.write(
      `machine ${r.machine}: ${r.servers} Servers ran until ${r.leader} stopped the run; ` +
        `the gateway forwarded ${r.forwarded} envelopes\n`,
    );
    return EXIT_OK;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    io.stderr.write(`error: machine run failed: ${message}\n`);
    return interrupts.exitCode ?? EXIT_FAILURE;
  } finally {
    interrupts.dispose();
  }
}

function addOutputFlags(command: Command): Command {
  return command
    .option('--json', 'print the full result as JSON instead of the summary')
    .option('--quiet', 'show no progress');
}

function addPholdCommand(program: Command, io: CliIo, exit: { code: number }): void {
  const command = program
    .command('phold')
    .summary('run the PHOLD benchmark model over NodeControllers')
    .description(
      'Run PHOLD (Fujimoto 1990): a constant population of events hops between nodes, sent ' +
        'with sendEvent and closed per window with sendPromise. Windows are as wide as the ' +
        'lookahead; a node starts the next window only when every promise for the last one ' +
        'is matched by the events it announced. The nodes run in Server processes, one per ' +
        'core (nodes dealt round-robin), unless --in-process or --processes says otherwise. ' +
        'Prints a summary and checks conservation (exit code 1 when it fails). Ctrl-C ends ' +
        'the run early, still with a summary; a second Ctrl-C aborts it.',
    );
  addModelFlags(command, false);
  command
    .option(
      '--processes <count>',
      `Server processes, at most one per node (default: one per core, ${availableParallelism()} here)`,
    )
    .option('--in-process', 'run every node in this process (the same as --processes 1)')
    .option('--via-wire', 'in-process run, routing messages through the wire codec and verifier');
  addOutputFlags(command)
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  disco phold --duration 3\n' +
        '  disco phold --nodes 16 --remote 0.9 --end-time 500 --seed 7 --json\n' +
        '  disco phold --processes 1 --via-wire --payload 4096',
    )
    .action(async (flags: Record<string, unknown>) => {
      exit.code = await runPlanned(planPhold(flags), 'phold', flags, io);
    });
}

function addRunCommand(program: Command, io: CliIo, exit: { code: number }): void {
  const command = program
    .command('run')
    .summary('run PHOLD on the Servers of a topology file, one process per Server')
    .description(
      'Run PHOLD on a topology file: one Server process per Server of the machine, each ' +
        'running the nodes placed on it, with the model on the first simproc. Flags as for ' +
        '"disco phold", except that the nodes (and by default the replications) come from ' +
        'the file. With several machines, run the same command on each with --machine: ' +
        "the file's first machine leads the run and prints the summary, the others serve " +
        'their Servers until it stops.',
    )
    .argument('<topology>', 'topology JSON file')
    .option('--machine <name>', "the machine whose Servers run here (default: the file's first)");
  addModelFlags(command, true);
  addOutputFlags(command)
    .addHelpText('after', '\nExample:\n  disco run cluster.json --end-time 100 --seed 7 --json')
    .action(async (file: string, flags: Record<string, unknown>) => {
      exit.code = await runPlanned(planTopologyRun(file, flags), 'run', flags, io);
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
  addRunCommand(program, io, exit);
  return program;
}

/**
 * Runs the `disco` command.
 * @param argv - the arguments after the program name, e.g. `['phold', '--duration', '3']`.
 * @returns the exit code: 0 success, 1 run failure, 2 usage error, 128 + n after a second signal n.
 * @throws only for a bug: every failure of a run is turned into an exit code.
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
