/**
 * The PHOLD job's own messages between the coordinator (the parent process,
 * src/demo/phold-coordinator.ts) and the job in each Server process
 * (src/demo/phold-job.ts). They ride the Application's 'job' messages
 * (src/runtime/protocol.ts), so they inherit its properties: structured clone,
 * and in-order delivery per process in each direction.
 *
 *   coordinator                               Server process (job)
 *     job options {model, nodes, lease, ...}  (with the Application's start)
 *                                          <- joined              (handler installed)
 *                                          <- frontier {repid, frontier}
 *     lease {repid, lease, step}           ->
 *                                          <- progress {handled, windows}   (periodic)
 *     stop {stopAt[]}                      ->
 *                                          <- (the job's result: ProcessTally,
 *                                              checked with isProcessTally)
 *
 * Each side checks what it receives with the guards below: the channel is local
 * and trusted, but a malformed message must fail the run with a clear error, not
 * deep inside a handler. The meaning of leases and the stop is in
 * src/demo/phold-lease.ts.
 */

import type { ResolvedPholdOptions } from './phold-options.js';
import type { NodeTally, ProcessTally } from './phold-result.js';

/** A lease as granted: nodes may begin windows below `lease`; report every `step` windows. */
export interface LeaseTerms {
  readonly lease: number;
  readonly step: number;
}

/** What the coordinator gives each Server process's job to start with. */
export interface PholdJobOptions {
  readonly model: ResolvedPholdOptions;
  /** Every node of a replication, in the order that fixes node indices. */
  readonly nodes: readonly string[];
  /** The lease every replication starts with. */
  readonly lease: LeaseTerms;
  readonly progressIntervalMs: number;
  readonly stallTimeoutMs: number;
}

/** Coordinator -> job. */
export type CoordinatorMessage =
  | {
      readonly kind: 'lease';
      readonly repid: number;
      readonly lease: number;
      readonly step: number;
    }
  | { readonly kind: 'stop'; readonly stopAt: readonly number[] };

/** Job -> coordinator. */
export type JobMessage =
  | { readonly kind: 'joined' }
  | { readonly kind: 'frontier'; readonly repid: number; readonly frontier: number }
  | { readonly kind: 'progress'; readonly handled: number; readonly windows: number };

function record(m: unknown): Record<string, unknown> | null {
  return typeof m === 'object' && m !== null ? (m as Record<string, unknown>) : null;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

/** A window bound: a count, or +Infinity for "no bound". */
function isBound(v: unknown): v is number {
  return isCount(v) || v === Number.POSITIVE_INFINITY;
}

/** Whether `m` is a message the coordinator sends. */
export function isCoordinatorMessage(m: unknown): m is CoordinatorMessage {
  const r = record(m);
  if (r?.['kind'] === 'lease')
    return isCount(r['repid']) && isBound(r['lease']) && isCount(r['step']);
  if (r?.['kind'] === 'stop') return Array.isArray(r['stopAt']) && r['stopAt'].every(isBound);
  return false;
}

/** Whether `m` is a message a job sends. */
export function isJobMessage(m: unknown): m is JobMessage {
  const r = record(m);
  if (r?.['kind'] === 'joined') return true;
  if (r?.['kind'] === 'frontier') return isCount(r['repid']) && isCount(r['frontier']);
  if (r?.['kind'] === 'progress') return isCount(r['handled']) && isCount(r['windows']);
  return false;
}

/** What is wrong with job options received from the coordinator, or undefined. */
export function jobOptionsProblem(o: unknown): string | undefined {
  const r = record(o);
  if (r === null) return 'job options must be an object';
  if (record(r['model']) === null) return 'job options lack the model options';
  const nodes = r['nodes'];
  if (!Array.isArray(nodes) || nodes.length === 0 || !nodes.every((n) => typeof n === 'string')) {
    return 'job options must list the node names';
  }
  const lease = record(r['lease']);
  if (lease === null || !isBound(lease['lease']) || !isCount(lease['step'])) {
    return 'job options lack a valid initial lease';
  }
  if (!isCount(r['progressIntervalMs']) || !isCount(r['stallTimeoutMs'])) {
    return 'job options lack the progress interval or the stall timeout';
  }
  return undefined;
}

function isCounts(v: unknown, length: number): boolean {
  return Array.isArray(v) && v.length === length && v.every(isCount);
}

function isNodeTally(v: unknown): v is NodeTally {
  const r = record(v);
  if (r === null || typeof r['node'] !== 'string' || !isCount(r['repid'])) return false;
  const n = Array.isArray(r['sentTo']) ? r['sentTo'].length : -1;
  const counts = ['index', 'handled', 'pending', 'windowsDone', 'promisesSent'];
  return (
    counts.every((k) => isCount(r[k])) &&
    ['sentTo', 'received', 'promised', 'promises'].every((k) => isCounts(r[k], n)) &&
    Array.isArray(r['problems']) &&
    record(r['controller']) !== null
  );
}

/** Whether `v` is the result a job returns: its process's tallies. */
export function isProcessTally(v: unknown): v is ProcessTally {
  const r = record(v);
  return (
    r !== null &&
    typeof r['server'] === 'string' &&
    isCount(r['pid']) &&
    Array.isArray(r['nodes']) &&
    r['nodes'].every(isNodeTally) &&
    record(r['sentVia']) !== null &&
    Array.isArray(r['transports'])
  );
}
