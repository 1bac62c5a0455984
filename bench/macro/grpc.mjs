/**
 * The gRPC benchmarks (DESIGN §12, STYLE §8, the "Benchmarks" section of the gRPC issue): two
 * processes on 127.0.0.1, ports chosen by the OS, baselines of plain @grpc/grpc-js in the same
 * run, results as ratios against them and against the goals.
 *
 *   node bench/run.mjs grpc                       every case, 5 rounds, each in fresh processes
 *   node bench/run.mjs grpc --filter size=64B     some cases (and their baselines)
 *   node bench/run.mjs grpc --quick               smoke run (CI)
 *
 * One-way throughput (tput.grpc.*) at 64 B, 1 KiB, 64 KiB and 1 MiB: NodeController events
 * through GrpcTransport, with its reliability machinery (acks, resend buffer) on and off
 * (cases/grpc-link.mjs), and raw grpc-js with one message per payload and with payloads
 * hand-packed into one message (cases/grpc-raw.mjs). Round trips (rtt.grpc.*) of 64 B: between
 * two NodeControllers over GrpcTransport, and a raw bidi ping-pong. An op is one message (or one
 * round trip): ops/s are messages/s.
 */

import { grpcLinkRoundTripCase, grpcLinkThroughputCase } from './cases/grpc-link.mjs';
import {
  grpcRawPairRoundTripCase,
  grpcRawRoundTripCase,
  grpcRawThroughputCase,
} from './cases/grpc-raw.mjs';
import { batchFor } from './lib/frames.mjs';
import { sizeLabel } from './lib/sizes.mjs';
import { grpcSections } from './grpc-report.mjs';
import { TRANSPORT_OVERRIDES } from './lib/grpc-node.mjs';

const KiB = 1024;
const MiB = 1024 * KiB;
/** The payloads of the gRPC benchmarks. */
const SIZES = [64, KiB, 64 * KiB, MiB];

export const suite = {
  name: 'grpc',
  title: 'two processes on 127.0.0.1: GrpcTransport against plain @grpc/grpc-js bidi streaming',
  notes: [
    '',
    'One op is one message (tput.*) or one round trip (rtt.*): ops/s are messages/s; MB/s counts',
    'payload bytes only. Each round of each case runs in fresh processes (the case process, which',
    'receives, and its peer, which sends); rounds are interleaved across cases.',
    'Each case first warms up until its rate settles (bench/macro/lib/warmup.mjs): GrpcTransport',
    'starts slow for its first ~100 k small events, and the calibration alone would time them.',
    'tput.grpc.raw.write: one gRPC message per payload on one bidi call, identity serializers, the',
    'writer waiting for `drain` whenever write() returns false (grpc-js defaults, retries off).',
    'tput.grpc.raw.packed: `batch` payloads per message, each behind a 4-byte length; the reader',
    'walks the lengths. rtt.grpc.raw: 64 B ping-pong on one bidi call, the server echoing.',
    'rtt.grpc.raw.pair: the same on two calls, one per direction, each process the client of one',
    "(the call structure of GrpcTransport's links, without the link).",
    'tput.grpc.link: sendEvent on n0 in one process to the inbox of n1 in the other, each a',
    'Server with its own GrpcTransport (default options); reliability=off: `reliability: {',
    'enabled: false }` on both ends (no acks, no resend buffer). rtt.grpc.link: 64 B events',
    'n0 -> n1 -> n0, one at a time.',
    ...(Object.keys(TRANSPORT_OVERRIDES).length === 0
      ? []
      : [`GrpcTransport options over the defaults: ${JSON.stringify(TRANSPORT_OVERRIDES)}.`]),
  ],
  sections: grpcSections,
};

/** The link cases' ratio column: GrpcTransport over raw grpc-js with a write per message. */
function throughputCases(size, quick) {
  const share = quick;
  const warm = !quick;
  const batch = batchFor(size);
  const write = grpcRawThroughputCase({ size, mode: 'write', share, warm });
  const out = [write];
  if (batch > 1) out.push(grpcRawThroughputCase({ size, mode: 'packed', batch, share, warm }));
  out.push(
    { ...grpcLinkThroughputCase({ size, reliability: false, share, warm }), baseline: write.name },
    { ...grpcLinkThroughputCase({ size, reliability: true, share, warm }), baseline: write.name },
  );
  return out;
}

function roundTripCases(quick) {
  const options = { share: quick, warm: !quick };
  const raw = grpcRawRoundTripCase(options);
  return [
    raw,
    { ...grpcRawPairRoundTripCase(options), baseline: raw.name },
    { ...grpcLinkRoundTripCase({ reliability: true, ...options }), baseline: raw.name },
  ];
}

/** The processes a smoke-run case shares with its kind: raw, or a link pair per reliability. */
function groupOf(spec) {
  return /^\w+\.grpc\.link .*(reliability=\w+)/.exec(spec.name)?.[1] ?? 'raw';
}

/**
 * Every case: throughput per payload size, then the round trips. A smoke run (`quick`, every
 * case in one process) runs them grouped by the processes they can share (lib/shared.mjs): one
 * raw peer, and one pair of GrpcTransport ends per reliability setting.
 */
export function cases({ quick = false } = {}) {
  const all = [...SIZES.flatMap((s) => throughputCases(s, quick)), ...roundTripCases(quick)];
  if (!quick) return all;
  return all
    .map((spec, i) => ({ spec, i }))
    .sort((a, b) => groupOf(a.spec).localeCompare(groupOf(b.spec)) || a.i - b.i)
    .map(({ spec }) => spec);
}

const rawWrite = (size) => grpcRawThroughputCase({ size, mode: 'write' }).name;
const rawPacked = (size) =>
  grpcRawThroughputCase({ size, mode: 'packed', batch: batchFor(size) }).name;
const link = (size, reliability = true) => grpcLinkThroughputCase({ size, reliability }).name;

/** Reliability on against off at `size`: the machinery costs under 10% of the events/s. */
function reliabilityGoal(size) {
  return {
    label: `GrpcTransport, ${sizeLabel(size)}: reliability on ≥ 0.9× off (costs under 10%)`,
    short: `reliability on / off ${sizeLabel(size)}`,
    case: link(size, true),
    baseline: link(size, false),
    metric: 'rate',
    at: '>=',
    target: 0.9,
  };
}

/**
 * The goals of the gRPC issue, as measured ratios in one run (bench/lib/goals.mjs); `short`
 * names a goal in the chart.
 */
export const goals = [
  {
    label: 'GrpcTransport events, 64 B ≥ 25× raw grpc-js with a write per message',
    short: 'link 64 B / raw write',
    case: link(64),
    baseline: rawWrite(64),
    metric: 'rate',
    at: '>=',
    target: 25,
  },
  {
    label: 'GrpcTransport events, 64 B ≥ 0.8× raw grpc-js hand-packed 256 per write',
    short: 'link 64 B / raw packed',
    case: link(64),
    baseline: rawPacked(64),
    metric: 'rate',
    at: '>=',
    target: 0.8,
  },
  {
    label: 'GrpcTransport events, 1 MiB ≥ 1× raw grpc-js',
    short: 'link 1 MiB / raw write',
    case: link(MiB),
    baseline: rawWrite(MiB),
    metric: 'rate',
    at: '>=',
    target: 1,
  },
  {
    label: 'round trip p50, GrpcTransport ≤ 1.2× raw bidi ping-pong',
    short: 'RTT p50 link / raw ping-pong',
    case: grpcLinkRoundTripCase({ reliability: true }).name,
    baseline: grpcRawRoundTripCase().name,
    metric: 'p50',
    at: '<=',
    target: 1.2,
  },
  ...SIZES.map(reliabilityGoal),
];
