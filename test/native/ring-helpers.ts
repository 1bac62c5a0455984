/**
 * Helpers for the ring tests: a unique cluster per test, a check that it left nothing in
 * /dev/shm, decode arrays, and waiting with a deadline.
 */
import { readdirSync } from 'node:fs';
import { expect, onTestFinished } from 'vitest';

import { clusterSegmentPrefix, ringSegmentName, unlinkRing } from '../../src/native.js';
import { until } from '../unit/helpers.js';

let counter = 0;

/** A cluster name no other test (or test process) uses. */
export function uniqueCluster(what: string): string {
  counter += 1;
  return `t${process.pid}x${counter}-${what}`;
}

/**
 * A unique cluster for the running test. When the test ends, pass or fail, every segment of
 * the cluster is removed, and the test fails if it left any behind.
 */
export function testCluster(what: string): string {
  const cluster = uniqueCluster(what);
  onTestFinished(() => {
    const left = leftovers(cluster);
    removeCluster(cluster);
    expect(left, `cluster ${cluster} left segments behind`).toEqual([]);
  });
  return cluster;
}

/** Entries of /dev/shm that belong to `cluster`. */
export function leftovers(cluster: string): string[] {
  const prefix = clusterSegmentPrefix(cluster);
  return readdirSync('/dev/shm').filter((name) => name.startsWith(prefix));
}

/** A ring name in `cluster`, from endpoint 0 to endpoint 1 unless told otherwise. */
export function ringName(cluster: string, from: string | number = 0, to: string | number = 1) {
  return ringSegmentName(cluster, from, to);
}

/** Unlinks every segment of `cluster` (cleanup after a failed assertion). */
export function removeCluster(cluster: string): void {
  for (const name of leftovers(cluster)) {
    if (!name.endsWith('.bell')) unlinkRing(name);
  }
}

/** Resolves when `check()` is true; rejects after `deadlineMs` (never a timing assertion). */
export function waitFor(check: () => boolean, deadlineMs: number, what: string): Promise<void> {
  return until(check, deadlineMs, what, 2);
}
