/**
 * The macro suite's own summaries under the standard tables (bench/lib/report.mjs calls
 * `suite.sections(run)`): throughput by payload size, one column per link, and the round
 * trips' percentiles with their paired ratio to their baseline's.
 */

import { formatMegabytes, formatRate, formatRatio, formatSeconds, median } from '../lib/stats.mjs';

/** 'tput.ring.batch size=64B batch=256 ring=4MiB' -> { kind, size, batch, ring }. */
function parse(name) {
  const [kind, ...params] = name.split(' ');
  const p = Object.fromEntries(params.map((kv) => kv.split('=')));
  return { kind, size: p.size, batch: p.batch, ring: p.ring };
}

/** The column of a throughput case: its kind, with what sets it apart from its siblings. */
function column(name) {
  const { kind, batch, ring } = parse(name);
  const short = kind.replace(/^tput\./, '');
  if (ring === '256MiB') return `${short} (256 MiB ring)`;
  if (short === 'ring.frame')
    return batch === '1' ? 'ring.frame (1 per write)' : 'ring.frame (batched)';
  return short;
}

function throughputLines(cases) {
  const tput = cases.filter((c) => c.name.startsWith('tput.'));
  if (tput.length === 0) return [];
  const columns = [...new Set(tput.map((c) => column(c.name)))];
  const sizes = [...new Set(tput.map((c) => parse(c.name).size))];
  const lines = [
    '',
    'Throughput by payload: MB/s of payload (messages/s), median of the rounds:',
    '',
    `| payload | ${columns.join(' | ')} |`,
    `|---|${columns.map(() => '--:').join('|')}|`,
  ];
  for (const size of sizes) {
    const cells = columns.map((col) => {
      const c = tput.find((x) => parse(x.name).size === size && column(x.name) === col);
      if (c === undefined) return '';
      return `${formatMegabytes((c.hz * c.bytesPerOp) / 1e6)} (${formatRate(c.hz)})`;
    });
    lines.push(`| ${size} | ${cells.join(' | ')} |`);
  }
  return lines;
}

function pairedLatencyRatio(c, b, key) {
  const n = Math.min(c.rounds.length, b.rounds.length);
  const ratios = [];
  for (let i = 0; i < n; i++) ratios.push(c.rounds[i].latency[key] / b.rounds[i].latency[key]);
  return median(ratios);
}

function roundTripLines(cases) {
  const rtt = cases.filter((c) => c.name.startsWith('rtt.') && c.latency !== undefined);
  if (rtt.length === 0) return [];
  const byName = new Map(cases.map((c) => [c.name, c]));
  const lines = [
    '',
    'Round trips (64 B): percentiles in µs, median over rounds; ratio: p50 over the p50 of the',
    'case in "vs", round by round (< 1: faster):',
    '',
    '| case | p50 | p99 | p50 ratio | vs |',
    '|---|--:|--:|--:|---|',
  ];
  for (const c of rtt) {
    const b = c.baseline === undefined ? undefined : byName.get(c.baseline);
    const ratio = b === undefined ? '' : formatRatio(pairedLatencyRatio(c, b, 'p50'));
    const us = (v) => formatSeconds(v / 1e6);
    lines.push(
      `| ${c.name} | ${us(c.latency.p50)} | ${us(c.latency.p99)} | ${ratio} | ${b?.name ?? ''} |`,
    );
  }
  return lines;
}

/** Markdown lines the macro report adds after the standard tables. */
export function payloadSections(run) {
  return [...throughputLines(run.cases), ...roundTripLines(run.cases)];
}
