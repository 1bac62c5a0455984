/**
 * The multi-process benchmarks (DESIGN §12, STYLE §8): two processes per case, baselines in the
 * same run, results as ratios against them and against the goals of the shared-memory issue.
 *
 *   node bench/run.mjs macro                      every case, 5 rounds, each in a fresh process
 *   node bench/run.mjs macro --filter tput.ring   some cases (and their baselines)
 *   node bench/run.mjs macro --quick              smoke run (CI)
 *
 * One-way throughput (tput.*), per payload size: the raw ring (cases/ring.mjs), NodeController
 * events over ShmTransport and over UnixSocketTransport (cases/controller.mjs), a Unix socket
 * carrying the same frames (cases/uds.mjs), a worker_threads MessagePort and memcpy
 * (cases/port.mjs). Round trips (rtt.*) of 64 B: the ring with each idle strategy and doorbell,
 * a Unix socket, and NodeController over both links. An op is one message (or one round trip):
 * ops/s are messages/s.
 */

import { controllerRoundTripCase, controllerThroughputCase } from './cases/controller.mjs';
import { memcpyCase, portThroughputCase } from './cases/port.mjs';
import { ringRoundTripCase, ringThroughputCase } from './cases/ring.mjs';
import { udsRoundTripCase, udsThroughputCase } from './cases/uds.mjs';
import { batchFor } from './lib/frames.mjs';
import { removeRunSegments } from './lib/peer.mjs';
import { SIZES } from './lib/sizes.mjs';
import { payloadSections } from './report.mjs';

/** Ring capacity of the raw cases: the Application's default, so both layers see the same ring. */
const RING_BYTES = 4 * 1024 * 1024;
/** A ring that holds a 64 MiB message in one record (no chunking), for comparison. */
const BIG_RING_BYTES = 256 * 1024 * 1024;
const BIG_PAYLOAD = 64 * 1024 * 1024;
/** Payloads up to this size get the concatenated-writes socket baseline (larger: one write each). */
const CONCAT_MAX = 64 * 1024;

export const suite = {
  name: 'macro',
  title:
    'two processes: shared-memory ring and NodeController against Unix socket, MessagePort, memcpy',
  notes: [
    '',
    'One op is one message (tput.*) or one round trip (rtt.*): ops/s are messages/s. MB/s counts',
    'payload bytes only. Each round of each case runs in fresh processes (the case process and',
    'its peer, or the Application and its two Servers); rounds are interleaved across cases.',
    'tput.ring.frame: a writeFrame per prebuilt sealed frame of `batch` events (batch=1: one per',
    'message; batch>1: the bytes tput.uds.concat writes); tput.ring.batch: a writeBatch of a',
    'prebuilt staging layout per `batch` messages (the addon builds the frame in the ring slot).',
    'tput.uds.write: a write per message (one-event frame), `batch` writes corked;',
    'tput.uds.concat: one write of the `batch`-event frame tput.ring.batch carries. The socket',
    'readers only delimit frames; the ring reader verifies (checksum, FlatBuffers verifier) and',
    'decodes every frame. tput.port.postMessage: structured clone (a copy), no transfer list,',
    'between two threads of one process. tput.memcpy: TypedArray.set in one thread (the ceiling).',
    'tput.controller.*: sendEvent on n0 in one Server process to the inbox of n1 in another,',
    'over ShmTransport (4 MiB rings, its default pipe doorbell) or UnixSocketTransport.',
    'rtt.*: 64 B ping-pong, latency of each round trip in a histogram (percentiles: median over',
    "rounds). rtt.ring uses ShmTransport's reader: spinNs is how long it polls the ring from the",
    'event loop after traffic before it sleeps on the doorbell (0: a reader that always sleeps);',
    'spinMode: polls all the time. Each round-trip case first warms up until its rate settles',
    '(at least 10,000 round trips; bench/macro/lib/warmup.mjs), as the gRPC suite does.',
  ],
  sections: payloadSections,
};

function throughputCases(size, share) {
  const batch = batchFor(size);
  const label = (s) => s.name;
  const memcpy = memcpyCase({ size });
  const udsWrite = udsThroughputCase({ size, mode: 'write', batch });
  const udsConcat =
    size <= CONCAT_MAX ? udsThroughputCase({ size, mode: 'concat', batch }) : undefined;
  const port = portThroughputCase({ size });
  const ringFrame = ringThroughputCase({ size, mode: 'frame', ringBytes: RING_BYTES });
  const ringFrames =
    batch > 1
      ? ringThroughputCase({ size, mode: 'frame', batch, ringBytes: RING_BYTES })
      : undefined;
  const ringBatch = ringThroughputCase({ size, mode: 'batch', batch, ringBytes: RING_BYTES });
  const ctlUds = controllerThroughputCase({ size, link: 'uds', share });
  const ctlShm = controllerThroughputCase({ size, link: 'shm', share });
  const out = [
    memcpy,
    udsWrite,
    ...(udsConcat === undefined ? [] : [udsConcat]),
    { ...port, baseline: label(udsWrite) },
    { ...ringFrame, baseline: label(udsWrite) },
    ...(ringFrames === undefined
      ? []
      : [{ ...ringFrames, baseline: label(udsConcat ?? udsWrite) }]),
    { ...ringBatch, baseline: label(udsConcat ?? udsWrite) },
  ];
  if (size === BIG_PAYLOAD) {
    const big = ringThroughputCase({ size, mode: 'batch', batch, ringBytes: BIG_RING_BYTES });
    out.push({ ...big, baseline: label(memcpy) });
  }
  out.push(ctlUds, { ...ctlShm, baseline: label(ctlUds) });
  return out;
}

/** The round trips; `warm` (a full run) warms each up before it is measured. */
function roundTripCases(share, warm) {
  const uds = udsRoundTripCase({ warm });
  const ctlUds = controllerRoundTripCase({ link: 'uds', share, warm });
  const ring = (doorbell) => ({ ...ringRoundTripCase(doorbell, { warm }), baseline: uds.name });
  return [
    uds,
    ring({}),
    ring({ spinNs: 0 }),
    ring({ spinMode: true }),
    ring({ doorbell: 'pipe' }),
    ring({ doorbell: 'pipe', spinNs: 0 }),
    ctlUds,
    { ...controllerRoundTripCase({ link: 'shm', share, warm }), baseline: ctlUds.name },
  ];
}

const KiB = 1024;
const MiB = 1024 * KiB;
const tputName = (size, kind, extra = {}) => {
  const batch = batchFor(size);
  switch (kind) {
    case 'ring.batch':
      return ringThroughputCase({ size, mode: 'batch', batch, ringBytes: RING_BYTES, ...extra })
        .name;
    case 'ring.frames':
      return ringThroughputCase({ size, mode: 'frame', batch, ringBytes: RING_BYTES }).name;
    case 'uds.concat':
      return udsThroughputCase({ size, mode: 'concat', batch }).name;
    case 'uds.write':
      return udsThroughputCase({ size, mode: 'write', batch }).name;
    case 'port':
      return portThroughputCase({ size }).name;
    case 'memcpy':
      return memcpyCase({ size }).name;
    default:
      return controllerThroughputCase({ size, link: kind.slice('controller.'.length) }).name;
  }
};
const rttRing = (doorbell) => ringRoundTripCase(doorbell).name;
const RTT_UDS = udsRoundTripCase().name;

/**
 * The goals of the shared-memory issue, as measured ratios in one run (bench/lib/goals.mjs);
 * `short` names a goal in the chart.
 * Where the issue does not say which layer a size goal is for, the raw ring is checked and the
 * NodeController link is listed too.
 */
export const goals = [
  {
    label: 'raw ring, 64 B, batched writes ≥ 3× concatenated Unix socket',
    short: 'raw ring 64 B batched / UDS concat',
    case: tputName(64, 'ring.batch'),
    baseline: tputName(64, 'uds.concat'),
    metric: 'rate',
    at: '>=',
    target: 3,
  },
  {
    label:
      'raw ring, 64 B, prebuilt 256-event frames (the socket’s bytes) ≥ 3× concatenated Unix socket',
    short: 'raw ring 64 B prebuilt frames / UDS concat',
    case: tputName(64, 'ring.frames'),
    baseline: tputName(64, 'uds.concat'),
    metric: 'rate',
    at: '>=',
    target: 3,
  },
  {
    label: 'NodeController events over shm, 64 B ≥ 3 M events/s',
    short: 'NodeController shm 64 B events/s',
    case: tputName(64, 'controller.shm'),
    metric: 'rate',
    at: '>=',
    target: 3e6,
  },
  {
    label: 'NodeController events, 64 B: shm ≥ 2× the Unix-socket link',
    short: 'NodeController 64 B shm / uds link',
    case: tputName(64, 'controller.shm'),
    baseline: tputName(64, 'controller.uds'),
    metric: 'rate',
    at: '>=',
    target: 2,
  },
  {
    label: 'raw ring, 1 MiB ≥ 2× MessagePort',
    short: 'raw ring 1 MiB / MessagePort',
    case: tputName(MiB, 'ring.batch'),
    baseline: tputName(MiB, 'port'),
    metric: 'rate',
    at: '>=',
    target: 2,
  },
  {
    label: 'raw ring, 1 MiB ≈ 10× Unix socket',
    short: 'raw ring 1 MiB / UDS',
    case: tputName(MiB, 'ring.batch'),
    baseline: tputName(MiB, 'uds.write'),
    metric: 'rate',
    at: '>=',
    target: 10,
    approx: 0.2,
  },
  {
    label: 'raw ring, 64 MiB ≥ 50% of memcpy (4 MiB ring: chunked)',
    short: 'raw ring 64 MiB (4 MiB ring) / memcpy',
    case: tputName(BIG_PAYLOAD, 'ring.batch'),
    baseline: tputName(BIG_PAYLOAD, 'memcpy'),
    metric: 'rate',
    at: '>=',
    target: 0.5,
  },
  {
    label: 'raw ring, 64 MiB ≥ 50% of memcpy (256 MiB ring: one record)',
    short: 'raw ring 64 MiB (256 MiB ring) / memcpy',
    case: tputName(BIG_PAYLOAD, 'ring.batch', { ringBytes: BIG_RING_BYTES }),
    baseline: tputName(BIG_PAYLOAD, 'memcpy'),
    metric: 'rate',
    at: '>=',
    target: 0.5,
  },
  {
    label: 'NodeController over shm, 1 MiB ≥ 2× MessagePort',
    short: 'NodeController shm 1 MiB / MessagePort',
    case: tputName(MiB, 'controller.shm'),
    baseline: tputName(MiB, 'port'),
    metric: 'rate',
    at: '>=',
    target: 2,
  },
  {
    label: 'NodeController over shm, 64 MiB ≥ 50% of memcpy',
    short: 'NodeController shm 64 MiB / memcpy',
    case: tputName(BIG_PAYLOAD, 'controller.shm'),
    baseline: tputName(BIG_PAYLOAD, 'memcpy'),
    metric: 'rate',
    at: '>=',
    target: 0.5,
  },
  {
    label:
      'round trip p50, default idle strategy (ShmTransport: poll, then pipe) ≤ 0.25× Unix socket',
    short: 'RTT p50 default idle / UDS',
    case: rttRing({ doorbell: 'pipe' }),
    baseline: RTT_UDS,
    metric: 'p50',
    at: '<=',
    target: 0.25,
  },
  {
    label: 'round trip p50, sleeping reader, pipe doorbell (spinNs 0) ≤ 1× Unix socket',
    short: 'RTT p50 sleeping reader (pipe) / UDS',
    case: rttRing({ doorbell: 'pipe', spinNs: 0 }),
    baseline: RTT_UDS,
    metric: 'p50',
    at: '<=',
    target: 1,
  },
  // The sleeping reader's goal is the kept doorbell's (the pipe, ShmTransport's default). The
  // futex doorbell's sleeping round trip stays in the tables (rttRing({ spinNs: 0 })): it is
  // the comparison that chose the pipe, not a goal of its own.
  {
    label: 'round trip p50, spin mode ≤ 5 µs',
    short: 'RTT p50 spin mode',
    case: rttRing({ spinMode: true }),
    metric: 'p50',
    at: '<=',
    target: 5,
  },
];

/** Which shared Application a smoke-run case uses ('' for none): its link, from its name. */
function applicationOf(spec) {
  return /^\w+\.controller\.(\w+) /.exec(spec.name)?.[1] ?? '';
}

/**
 * Every case: throughput per payload size, then the round trips. A smoke run (`quick`, every
 * case in one process) runs the NodeController cases last, grouped by link, so that each group
 * shares one Application instead of starting two Server processes per case.
 */
export function cases({ quick = false } = {}) {
  const all = [
    ...SIZES.flatMap((size) => throughputCases(size, quick)),
    ...roundTripCases(quick, !quick),
  ];
  if (!quick) return all;
  return all
    .map((spec, i) => ({ spec, i }))
    .sort((a, b) => applicationOf(a.spec).localeCompare(applicationOf(b.spec)) || a.i - b.i)
    .map(({ spec }) => spec);
}

/** Removes /dev/shm entries a run left (its processes are gone by then); returns their names. */
export function cleanup(runId) {
  return runId === undefined ? [] : removeRunSegments(runId);
}
