/**
 * Reports of a suite run: the environment it ran in, a Markdown table (quoted by the
 * README), JSON with every round, and an SVG chart of the ratios. Files go to
 * bench/results/<suite>.{json,md,svg}; that folder is not committed.
 */

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, arch, loadavg, platform, release } from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  formatMegabytes,
  formatRate,
  formatRatio,
  formatSeconds,
  spreadPercent,
} from './stats.mjs';
import { NATIVE_PATH_ENV, nativeAddonPath } from '../../dist/native.js';
import { renderSvg } from './chart.mjs';
import { formatGoalTarget, formatGoalValue } from './goals.mjs';

export const RESULTS_DIR = fileURLToPath(new URL('../results/', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CMAKE_CACHE = `${ROOT}build/CMakeCache.txt`;
const ISOLATION_TEXT = {
  round: 'each round of each case in a fresh process, rounds interleaved across cases',
  suite: 'all cases in one process',
  none: 'all suites in one process',
};

/**
 * The addon build the benchmarks load: CMAKE_BUILD_TYPE of build/ ("Release"), or the
 * path named by the environment variable that points the loader at another build.
 */
function nativeBuild() {
  const override = process.env[NATIVE_PATH_ENV];
  if (override !== undefined && override !== '') return nativeAddonPath();
  if (!existsSync(CMAKE_CACHE)) return 'unknown';
  const match = /^CMAKE_BUILD_TYPE:\w+=(.*)$/m.exec(readFileSync(CMAKE_CACHE, 'utf8'));
  return match?.[1] || 'unknown';
}

/** The checked-out commit, with "+changes" when the tree differs from it. */
function gitRevision() {
  try {
    const opts = { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] };
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], opts).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'native'], opts);
    return dirty.trim() === '' ? head : `${head}+changes`;
  } catch {
    return 'unknown'; // not a git checkout (an unpacked tarball): nothing to record
  }
}

/** What the numbers depend on: Node, V8, CPU, OS, native build type, revision, options. */
export function environment(options) {
  const cpu = cpus();
  return {
    date: new Date().toISOString(),
    node: process.version,
    v8: process.versions.v8,
    cpu: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    /** 1-minute load average when the run started: how busy the machine was. */
    loadAverage: Number(loadavg()[0].toFixed(2)),
    os: `${platform()} ${release()} ${arch()}`,
    nativeBuild: nativeBuild(),
    revision: gitRevision(),
    rounds: options.rounds,
    maxTimeSeconds: options.maxTime,
    quick: options.quick,
    isolation: options.isolate,
  };
}

function throughputCells(r) {
  const msgs = r.messagesPerOp === 1 ? '' : formatRate(r.hz * r.messagesPerOp);
  const mb = r.bytesPerOp > 0 ? formatMegabytes((r.hz * r.bytesPerOp) / 1e6) : '';
  return [formatRate(r.hz), formatSeconds(1 / r.hz), msgs, mb];
}

function comparisonCells(r) {
  if (r.ratio === undefined) return [r.isBaseline ? 'baseline' : '', ''];
  const goal =
    r.goal === undefined ? '' : ` (goal ≥ ${r.goal}${r.ratio >= r.goal ? ', met' : ', NOT met'})`;
  return [`${formatRatio(r.ratio)}${goal}`, r.baseline];
}

function latencyLines(cases) {
  const withLatency = cases.filter((r) => r.latency !== undefined);
  if (withLatency.length === 0) return [];
  const lines = [
    '',
    'Latency of one op (histogram, median over rounds of each percentile):',
    '',
    '| case | p50 | p90 | p99 | p99.9 | max |',
    '|---|--:|--:|--:|--:|--:|',
  ];
  for (const r of withLatency) {
    const l = r.latency;
    const us = [l.p50, l.p90, l.p99, l['p99.9'], l.max].map((v) => formatSeconds(v / 1e6));
    lines.push(`| ${r.name} | ${us.join(' | ')} |`);
  }
  return lines;
}

/** The goals table: each goal, its measured value, target and whether it is met. */
function goalLines(goals, quick) {
  if (goals === undefined || goals.length === 0) return [];
  const lines = [
    '',
    `Goals${quick ? ' (quick smoke run: not evaluated meaningfully)' : ''}:`,
    '',
    '| goal | measured | target | status | case | vs |',
    '|---|--:|--:|---|---|---|',
  ];
  for (const g of goals) {
    const measured = g.value === undefined ? 'not run' : formatGoalValue(g, g.value);
    const status = g.met === undefined ? '' : g.met ? 'met' : '**NOT met**';
    lines.push(
      `| ${g.label} | ${measured} | ${formatGoalTarget(g)} | ${status} | ${g.case} | ${g.baseline ?? ''} |`,
    );
  }
  return lines;
}

/** The Markdown report of one suite run. */
export function markdown(run) {
  const { suite, cases, environment: env } = run;
  const lines = [
    `### ${suite.name}: ${suite.title}`,
    '',
    `Node ${env.node} (V8 ${env.v8}) · ${env.cpu} × ${env.cores} · ${env.os} · native build ` +
      `${env.nativeBuild} · ${env.revision} · ${env.date.slice(0, 10)}` +
      (env.loadAverage === undefined ? '' : ` · load ${env.loadAverage} at start`),
    `Median of ${env.rounds} rounds per case, ${ISOLATION_TEXT[env.isolation]}` +
      (env.quick ? ' · **quick smoke run: these numbers mean nothing**' : ''),
    ...goalLines(run.goals, env.quick),
    '',
    '| case | ops/s | time/op | msgs/s | MB/s | ± | ratio | vs |',
    '|---|--:|--:|--:|--:|--:|--:|---|',
  ];
  for (const r of cases) {
    const spread = `${spreadPercent(r.rounds.map((x) => x.hz)).toFixed(1)}%`;
    const cells = [r.name, ...throughputCells(r), spread, ...comparisonCells(r)];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  lines.push(...latencyLines(cases));
  if (typeof suite.sections === 'function') lines.push(...suite.sections(run));
  lines.push('');
  lines.push(
    'ratio: ops/s of the case over ops/s of the case in "vs", round by round, median over ' +
      'rounds (>1: faster).',
  );
  lines.push('±: half the range of the rounds, relative to the median.');
  for (const note of suite.notes ?? []) lines.push(note);
  return `${lines.join('\n')}\n`;
}

/** Writes bench/results/<suite>.json, .md and .svg; returns the Markdown. */
export function writeResults(run) {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const base = `${RESULTS_DIR}${run.suite.name}`;
  const md = markdown(run);
  writeFileSync(`${base}.json`, `${JSON.stringify(run, null, 2)}\n`);
  writeFileSync(`${base}.md`, md);
  writeFileSync(`${base}.svg`, renderSvg(run));
  return md;
}
