/**
 * Human-readable text for PHOLD runs: the one-line progress detail and the
 * summary table printed by `disco phold`. Pure formatting of a PholdResult;
 * machines read the result as JSON instead (`--json`).
 */

import type { PholdProgress, PholdResult } from './phold.js';

/** Problems listed in a summary before the rest are only counted. */
export const MAX_LISTED_PROBLEMS = 20;

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

/** A rate with a metric suffix: 1234567 -> "1.23M". */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '-';
  if (perSecond >= 1e6) return `${decimal.format(perSecond / 1e6)}M`;
  if (perSecond >= 1e3) return `${decimal.format(perSecond / 1e3)}k`;
  return decimal.format(perSecond);
}

/** The detail line shown next to the progress bar. */
export function formatProgress(p: PholdProgress): string {
  return (
    `${integer.format(p.eventsHandled)} events | ${formatRate(p.eventsPerSecond)} events/s | ` +
    `t=${decimal.format(p.simTime)}`
  );
}

function describeRun(r: PholdResult): string {
  const o = r.options;
  const reps = o.replications === 1 ? '1 replication' : `${o.replications} replications`;
  const payload =
    o.payload === 0 ? 'object payloads' : `${integer.format(o.payload)}-byte payloads`;
  return (
    `PHOLD: ${o.nodes} nodes x ${integer.format(o.eventsPerNode)} events, remote ${o.remote}, ` +
    `lookahead ${o.lookahead}, mean ${o.mean}, seed ${o.seed}, ${reps}, ${payload}` +
    (o.viaWire ? ', via the wire codec' : '')
  );
}

function routeRows(r: PholdResult): [string, string][] {
  const rows: [string, string][] = Object.entries(r.sentVia).map(([route, c]) => [
    `sent via ${route}`,
    `${integer.format(c.events)} events, ${integer.format(c.promises)} promises`,
  ]);
  for (const t of r.transports) {
    rows.push([
      `transport ${t.name}`,
      `${integer.format(t.eventsDelivered)} events, ${integer.format(t.promisesDelivered)} promises ` +
        `delivered, ${integer.format(t.bytesSent)} bytes framed, ` +
        `${integer.format(t.backpressureEvents)} back-pressure episodes`,
    ]);
  }
  return rows;
}

function conservationRows(r: PholdResult): [string, string][] {
  const o = r.options;
  const pending = r.replications.reduce((s, x) => s + x.pending, 0);
  const inFlight = r.replications.reduce((s, x) => s + x.inFlight, 0);
  if (r.conservation.ok) {
    const pairs = o.nodes * o.nodes * o.replications;
    const detail =
      `OK: ${integer.format(pairs)} sender/target pairs balanced, population ` +
      `${integer.format(o.nodes * o.eventsPerNode * o.replications)} intact ` +
      `(${integer.format(pending)} pending, ${integer.format(inFlight)} in flight)`;
    return [['conservation', detail]];
  }
  const problems = r.conservation.problems;
  const rows: [string, string][] = [['conservation', `FAILED: ${problems.length} problems`]];
  for (const p of problems.slice(0, MAX_LISTED_PROBLEMS)) rows.push(['', `- ${p}`]);
  if (problems.length > MAX_LISTED_PROBLEMS) {
    rows.push(['', `... and ${problems.length - MAX_LISTED_PROBLEMS} more (see --json)`]);
  }
  return rows;
}

/** The summary table printed after a run. */
export function formatSummary(r: PholdResult): string {
  const windows = Math.min(...r.replications.map((x) => x.windows));
  const simTime = Math.min(...r.replications.map((x) => x.simTime));
  const rows: [string, string][] = [
    ['processes', r.processes === 1 ? '1' : `${r.processes} Server processes`],
    ['wall time', `${decimal.format(r.wallSeconds)} s`],
    ['simulated time', `${decimal.format(simTime)} (${integer.format(windows)} windows)`],
    [
      'events handled',
      `${integer.format(r.eventsHandled)} (${formatRate(r.eventsPerSecond)} events/s)`,
    ],
    [
      'events sent',
      `${integer.format(r.eventsSent)} (${integer.format(r.remoteEvents)} to other nodes)`,
    ],
    [
      'promises sent',
      `${integer.format(r.promisesSent)} (${formatRate(r.promisesPerSecond)} promises/s)`,
    ],
    ...routeRows(r),
    ...conservationRows(r),
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  const lines = rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`);
  return `${describeRun(r)}\n${lines.join('\n')}\n`;
}
