/**
 * The gRPC suite's own summaries under the standard tables (bench/lib/report.mjs calls
 * `suite.sections(run)`): one row per payload with each kind of case side by side and the
 * paired ratios the goals are about, then the round trips.
 */

import { formatMegabytes, formatRate, formatRatio, formatSeconds, median } from '../lib/stats.mjs';

/** 'tput.grpc.link size=64B reliability=on' -> { kind: 'tput.grpc.link', size: '64B', ... }. */
function parse(name) {
  const [kind, ...params] = name.split(' ');
  return { kind, ...Object.fromEntries(params.map((kv) => kv.split('='))) };
}

/** Columns of the throughput table: a title and which case of a payload fills it. */
const COLUMNS = [
  { title: 'raw, a write per message', is: (p) => p.kind === 'tput.grpc.raw.write' },
  { title: 'raw, hand-packed', is: (p) => p.kind === 'tput.grpc.raw.packed' },
  {
    title: 'GrpcTransport, reliability off',
    is: (p) => p.kind === 'tput.grpc.link' && p.reliability === 'off',
  },
  {
    title: 'GrpcTransport',
    is: (p) => p.kind === 'tput.grpc.link' && p.reliability === 'on',
  },
];
const [RAW_WRITE, RAW_PACKED, LINK_OFF, LINK_ON] = COLUMNS;
/** Ratio columns: the first column's case over the second's, round by round. */
const RATIOS = [
  { title: 'link / raw write', of: LINK_ON, over: RAW_WRITE },
  { title: 'link / raw packed', of: LINK_ON, over: RAW_PACKED },
  { title: 'reliability on / off', of: LINK_ON, over: LINK_OFF },
];

/** Median over rounds of `pick(case round) / pick(baseline round)`, paired by round index. */
export function pairedRatio(c, b, pick) {
  const n = Math.min(c.rounds.length, b.rounds.length);
  const ratios = [];
  for (let i = 0; i < n; i++) ratios.push(pick(c.rounds[i]) / pick(b.rounds[i]));
  return median(ratios);
}

function throughputLines(cases) {
  const tput = cases.filter((c) => c.name.startsWith('tput.grpc.'));
  if (tput.length === 0) return [];
  const sizes = [...new Set(tput.map((c) => parse(c.name).size))];
  const titles = [...COLUMNS.map((c) => c.title), ...RATIOS.map((r) => r.title)];
  const lines = [
    '',
    'Throughput by payload, one way: MB/s of payload (events/s), median of the rounds; ratios of',
    'events/s paired round by round, median over rounds:',
    '',
    `| payload | ${titles.join(' | ')} |`,
    `|---|${titles.map(() => '--:').join('|')}|`,
  ];
  for (const size of sizes) {
    const find = (col) => tput.find((x) => parse(x.name).size === size && col.is(parse(x.name)));
    const cells = COLUMNS.map((col) => {
      const c = find(col);
      if (c === undefined) return '';
      return `${formatMegabytes((c.hz * c.bytesPerOp) / 1e6)} (${formatRate(c.hz)})`;
    });
    for (const r of RATIOS) {
      const c = find(r.of);
      const b = find(r.over);
      cells.push(c && b ? formatRatio(pairedRatio(c, b, (round) => round.hz)) : '');
    }
    lines.push(`| ${size} | ${cells.join(' | ')} |`);
  }
  return lines;
}

function roundTripLines(cases) {
  const rtt = cases.filter((c) => c.name.startsWith('rtt.grpc.') && c.latency !== undefined);
  if (rtt.length === 0) return [];
  const byName = new Map(cases.map((c) => [c.name, c]));
  const us = (v) => formatSeconds(v / 1e6);
  const lines = [
    '',
    'Round trips (64 B): percentiles of a histogram, median over rounds; ratio: p50 over the p50',
    'of the case in "vs", round by round (< 1: faster):',
    '',
    '| case | p50 | p99 | p50 ratio | vs |',
    '|---|--:|--:|--:|---|',
  ];
  for (const c of rtt) {
    const b = c.baseline === undefined ? undefined : byName.get(c.baseline);
    const ratio = b === undefined ? '' : formatRatio(pairedRatio(c, b, (r) => r.latency.p50));
    lines.push(
      `| ${c.name} | ${us(c.latency.p50)} | ${us(c.latency.p99)} | ${ratio} | ${b?.name ?? ''} |`,
    );
  }
  return lines;
}

/** Markdown lines the gRPC report adds after the standard tables. */
export function grpcSections(run) {
  return [...throughputLines(run.cases), ...roundTripLines(run.cases)];
}
