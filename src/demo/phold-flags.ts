/**
 * The command-line flags of the PHOLD commands (`disco phold`, `disco run`) and
 * their translation into runPhold options.
 *
 * Flag values are checked against the same rules runPhold applies
 * (src/demo/phold-options.ts), with messages naming the flag
 * ("--remote must be between 0 and 1, got 2"). Used by src/cli.ts.
 */

import { Option, type Command } from 'commander';
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
  type NumericPholdOption,
  type PholdOptions,
} from './phold-options.js';

/** A numeric flag and the runPhold option it sets. */
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

/** Flags whose defaults come from a topology file in `disco run`. */
const FROM_TOPOLOGY: readonly NumericPholdOption[] = ['nodes', 'replications'];

/**
 * Adds the model's numeric flags to `command`.
 * @param withTopology - for `disco run`: no --nodes (the file lists them), and
 *   --replications defaults to the file's.
 */
export function addModelFlags(command: Command, withTopology: boolean): void {
  for (const flag of NUMBER_FLAGS) {
    if (withTopology && flag.option === 'nodes') continue;
    const option = new Option(flag.spec, flag.description);
    const fixed = !(withTopology && FROM_TOPOLOGY.includes(flag.option));
    // Option.default keeps the number, so the help shows `(default: 8)`, not `"8"`.
    command.addOption(flag.value === undefined || !fixed ? option : option.default(flag.value));
  }
}

/** A flag value as a number: strings are parsed strictly (empty or junk gives NaN). */
export function toNumber(raw: unknown): number {
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
