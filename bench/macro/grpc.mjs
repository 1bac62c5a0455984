/**
 * The gRPC benchmarks (DESIGN §12, STYLE §8, the "Benchmarks" section of the gRPC issue): two
 * processes on 127.0.0.1, ports chosen by the OS, baselines of plain @grpc/grpc-js in the same
 * run, results as ratios against them and against the goals.
 *
 *   node bench/run.mjs grpc                       every case, 5 rounds, each in fresh processes
 *   node bench/run.mjs grpc --filter size=64B     some cases (and their baselines)
 *   node bench/run.mjs grpc --quick               smoke run (CI)
 *
 * One-way throughput (tput.grpc.*) at 64 B, 1 KiB, 64 KiB and 1 MiB: raw grpc-js with one
 * message per payload and with payloads hand-packed into one message (cases/grpc-raw.mjs).
 * Round trips (rtt.grpc.*) of 64 B: a raw bidi ping-pong. An op is one message (or one round
 * trip): ops/s are messages/s.
 */

import { grpcRawRoundTripCase, grpcRawThroughputCase } from './cases/grpc-raw.mjs';
import { batchFor } from './lib/frames.mjs';
import { sizeLabel } from './lib/sizes.mjs';
import { grpcSections } from './grpc-report.mjs';

const KiB = 1024;
const MiB = 1024 * KiB;
/** The payloads of the gRPC benchmarks. */
const SIZES = [64, KiB, 64 * KiB, MiB];

export const suite = {
  name: 'grpc',
  title: 'two processes on 127.0.0.1: plain @grpc/grpc-js bidi streaming',
  notes: [
    '',
    'One op is one message (tput.*) or one round trip (rtt.*): ops/s are messages/s; MB/s counts',
    'payload bytes only. Each round of each case runs in fresh processes (the case process, which',
    'receives, and its peer, which sends); rounds are interleaved across cases.',
    'tput.grpc.raw.write: one gRPC message per payload on one bidi call, identity serializers, the',
    'writer waiting for `drain` whenever write() returns false (grpc-js defaults, retries off).',
    'tput.grpc.raw.packed: `batch` payloads per message, each behind a 4-byte length; the reader',
    'walks the lengths. rtt.grpc.raw: 64 B ping-pong on one bidi call, the server echoing.',
  ],
  sections: grpcSections,
};

function throughputCases(size) {
  const batch = batchFor(size);
  const out = [grpcRawThroughputCase({ size, mode: 'write' })];
  if (batch > 1) out.push(grpcRawThroughputCase({ size, mode: 'packed', batch }));
  return out;
}

/** Every case: throughput per payload size, then the round trips. */
export function cases() {
  return [...SIZES.flatMap(throughputCases), grpcRawRoundTripCase()];
}

/** Case names by what they measure, for the goals. */
export const names = {
  rawWrite: (size) => grpcRawThroughputCase({ size, mode: 'write' }).name,
  rawPacked: (size) => grpcRawThroughputCase({ size, mode: 'packed', batch: batchFor(size) }).name,
  rawRoundTrip: grpcRawRoundTripCase().name,
  size: sizeLabel,
};
