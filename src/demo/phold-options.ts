/**
 * Options of the PHOLD demo: defaults, limits and their checks.
 *
 * The limits are declared once, here, as rules that return what is wrong with a
 * value. runPhold turns a broken rule into an InvalidArgumentError naming the
 * option; the CLI turns the same rule into a message naming the flag
 * ("--remote must be between 0 and 1, got 2"). So the library and the command
 * can never disagree about what is valid.
 */

import { InvalidArgumentError } from '../index.js';
import { PAYLOAD_HEADER_BYTES } from './phold-payload.js';

/** Nodes per replication by default. */
export const DEFAULT_NODES = 8;
/** Initial events per node by default. */
export const DEFAULT_EVENTS_PER_NODE = 1000;
/** Share of new events sent to another node by default. */
export const DEFAULT_REMOTE = 0.5;
/** Lookahead (and window width), in simulated time units, by default. */
export const DEFAULT_LOOKAHEAD = 1;
/** Mean of the exponential part of the timestamp increment, in simulated time units. */
export const DEFAULT_MEAN = 1;
/** Wall-clock run time by default, in seconds, when no end time is given. */
export const DEFAULT_DURATION_SECONDS = 5;
/** Seed by default: runs are reproducible unless asked otherwise. */
export const DEFAULT_SEED = 1;
/** Replications by default. */
export const DEFAULT_REPLICATIONS = 1;
/** Name of the simproc every node runs the model on. */
export const DEFAULT_SIMPROC = 'lp';

/** Most nodes per replication: every window costs nodes^2 promises. */
export const MAX_NODES = 1024;
/** Most initial events per node. */
export const MAX_EVENTS_PER_NODE = 10_000_000;
/** Largest byte payload, in bytes. */
export const MAX_PAYLOAD_BYTES = 64 * 1024 * 1024;
/** Most replications sharing the process. */
export const MAX_REPLICATIONS = 256;
/** Largest seed (seeds are 32-bit unsigned integers). */
export const MAX_SEED = 0xffffffff;

/** Options of `runPhold`; every field is optional. */
export interface PholdOptions {
  /** Nodes per replication (1-1024). Default 8. */
  nodes?: number;
  /** Events each node starts with: the constant population per node. Default 1000. */
  eventsPerNode?: number;
  /** Probability that a new event goes to another node (0-1). Default 0.5. */
  remote?: number;
  /** Minimum timestamp increment and window width, simulated time. Default 1. */
  lookahead?: number;
  /** Mean of the exponential timestamp increment beyond the lookahead. Default 1. */
  mean?: number;
  /** Wall-clock limit in seconds. Default 5 when `endTime` is not given, else none. */
  duration?: number;
  /** Simulated-time limit: windows starting before it are run. Default none. */
  endTime?: number;
  /** PRNG seed (32-bit unsigned). Default 1. */
  seed?: number;
  /** 0: events carry a small object; else a Uint8Array of this many bytes (12 or more). */
  payload?: number;
  /** Independent replications run at once in this process. Default 1. */
  replications?: number;
  /** Route messages between nodes through the wire codec (serialize, frame, verify). */
  viaWire?: boolean;
  /** Simproc name the model runs on. Default `lp`. */
  simproc?: string;
}

/** Options with every default applied; `null` limits are absent. */
export interface ResolvedPholdOptions {
  readonly nodes: number;
  readonly eventsPerNode: number;
  readonly remote: number;
  readonly lookahead: number;
  readonly mean: number;
  readonly duration: number | null;
  readonly endTime: number | null;
  readonly seed: number;
  readonly payload: number;
  readonly replications: number;
  readonly viaWire: boolean;
  readonly simproc: string;
}

/** The numeric options, which the rules below check. */
export type NumericPholdOption = Exclude<keyof PholdOptions, 'viaWire' | 'simproc'>;

type Rule = (value: number) => string | undefined;

const integerFrom =
  (min: number, max: number): Rule =>
  (v) =>
    Number.isInteger(v) && v >= min && v <= max
      ? undefined
      : `must be an integer from ${min} to ${max}`;

const between =
  (min: number, max: number): Rule =>
  (v) =>
    v >= min && v <= max ? undefined : `must be between ${min} and ${max}`;

const positive: Rule = (v) =>
  Number.isFinite(v) && v > 0 ? undefined : 'must be a positive number';

const nonNegative: Rule = (v) =>
  Number.isFinite(v) && v >= 0 ? undefined : 'must be a number of at least 0';

const payloadBytes: Rule = (v) =>
  v === 0 || (Number.isInteger(v) && v >= PAYLOAD_HEADER_BYTES && v <= MAX_PAYLOAD_BYTES)
    ? undefined
    : `must be 0 (object payloads) or a byte count from ${PAYLOAD_HEADER_BYTES} to ${MAX_PAYLOAD_BYTES}`;

const RULES: Readonly<Record<NumericPholdOption, Rule>> = {
  nodes: integerFrom(1, MAX_NODES),
  eventsPerNode: integerFrom(1, MAX_EVENTS_PER_NODE),
  remote: between(0, 1),
  lookahead: positive,
  mean: nonNegative,
  duration: positive,
  endTime: positive,
  seed: integerFrom(0, MAX_SEED),
  payload: payloadBytes,
  replications: integerFrom(1, MAX_REPLICATIONS),
};

/**
 * What is wrong with `value` for option `name`, as the end of a sentence
 * ("must be between 0 and 1"), or undefined when it is valid.
 */
export function pholdOptionProblem(name: NumericPholdOption, value: number): string | undefined {
  // Every rule rejects NaN, so a non-number gets the rule's own message.
  return RULES[name](typeof value === 'number' ? value : Number.NaN);
}

function numeric(options: PholdOptions, name: NumericPholdOption, fallback: number): number;
function numeric(
  options: PholdOptions,
  name: NumericPholdOption,
  fallback: number | null,
): number | null;
function numeric(
  options: PholdOptions,
  name: NumericPholdOption,
  fallback: number | null,
): number | null {
  const value = options[name];
  if (value === undefined) return fallback;
  const problem = pholdOptionProblem(name, value);
  if (problem !== undefined) throw new InvalidArgumentError(name, value, `a value that ${problem}`);
  return value;
}

/**
 * Applies defaults and checks every option.
 * @throws {InvalidArgumentError} naming the first invalid option and its value.
 */
export function resolvePholdOptions(options: PholdOptions = {}): ResolvedPholdOptions {
  const endTime = numeric(options, 'endTime', null);
  const duration = numeric(options, 'duration', endTime === null ? DEFAULT_DURATION_SECONDS : null);
  const simproc = options.simproc ?? DEFAULT_SIMPROC;
  if (typeof simproc !== 'string' || simproc.length === 0 || simproc.includes('/')) {
    throw new InvalidArgumentError('simproc', simproc, 'a non-empty name without "/"');
  }
  return Object.freeze({
    nodes: numeric(options, 'nodes', DEFAULT_NODES),
    eventsPerNode: numeric(options, 'eventsPerNode', DEFAULT_EVENTS_PER_NODE),
    remote: numeric(options, 'remote', DEFAULT_REMOTE),
    lookahead: numeric(options, 'lookahead', DEFAULT_LOOKAHEAD),
    mean: numeric(options, 'mean', DEFAULT_MEAN),
    duration,
    endTime,
    seed: numeric(options, 'seed', DEFAULT_SEED),
    payload: numeric(options, 'payload', 0),
    replications: numeric(options, 'replications', DEFAULT_REPLICATIONS),
    viaWire: options.viaWire === true,
    simproc,
  });
}
