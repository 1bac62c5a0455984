#!/usr/bin/env node
/**
 * Summarises V8 CPU profiles (`node --cpu-prof`, or `bench/run.mjs --profile`): the
 * functions with the most self time, and the most total time (self plus callees),
 * as percentages of the sampled time. Several files (the rounds of one case) are
 * added up.
 *
 *   node bench/lib/profile-summary.mjs <file.cpuprofile> ... [--top N]
 */

import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const DEFAULT_TOP = 25;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** "name file:line" of a profile node's call frame, with paths relative to the package. */
function frameLabel({ functionName, url, lineNumber }) {
  const file = url.startsWith('file://') ? relative(ROOT, fileURLToPath(url)) : url;
  const name = functionName === '' ? '(anonymous)' : functionName;
  return file === '' ? name : `${name} ${file}:${lineNumber + 1}`;
}

/** Adds the self and total sample counts of `profile` to `self` and `total`, per function. */
function tally(profile, self, total) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfSamples = new Map();
  for (const id of profile.samples) selfSamples.set(id, (selfSamples.get(id) ?? 0) + 1);
  for (const [id, count] of selfSamples) {
    const label = frameLabel(byId.get(id).callFrame);
    self.set(label, (self.get(label) ?? 0) + count);
    // Total time: a sample counts once for every distinct function on its stack.
    const seen = new Set();
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const l = frameLabel(byId.get(at).callFrame);
      if (seen.has(l)) continue;
      seen.add(l);
      total.set(l, (total.get(l) ?? 0) + count);
    }
  }
  return profile.samples.length;
}

function printTop(title, counts, samples, top) {
  console.log(`\n${title}`);
  const rows = [...counts].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [label, n] of rows)
    console.log(`${((n / samples) * 100).toFixed(1).padStart(6)}%  ${label}`);
}

function main() {
  const args = process.argv.slice(2);
  const topAt = args.indexOf('--top');
  const top = topAt >= 0 ? Number(args[topAt + 1]) : DEFAULT_TOP;
  const files = args.filter((a, i) => !a.startsWith('--') && (topAt < 0 || i !== topAt + 1));
  if (files.length === 0) {
    console.error('usage: node bench/lib/profile-summary.mjs <file.cpuprofile> ... [--top N]');
    process.exitCode = 2;
    return;
  }
  const self = new Map();
  const total = new Map();
  let samples = 0;
  for (const file of files) samples += tally(JSON.parse(readFileSync(file, 'utf8')), self, total);
  console.log(`${files.length} profile(s), ${samples} samples`);
  printTop('self time', self, samples, top);
  printTop('total time (self + callees)', total, samples, top);
}

main();
