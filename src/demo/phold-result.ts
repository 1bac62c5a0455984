/**
 * The result of a PHOLD run: its types, and how it is computed from the nodes
 * once every queue has been flushed.
 *
 * Besides the model's own conservation check (src/demo/conservation.ts), the
 * result cross-checks the library's counters (NodeController metrics) against
 * the model's, and the number of promises each node received from each sender
 * against the windows that sender ran: each promise must arrive exactly once.
 */

import type { NodeControllerMetrics, Server, TransportMetrics } from '../index.js';
import {
  checkConservation,
  type ConservationReport,
  type ReplicationTally,
} from './conservation.js';
import type { PholdNode } from './phold-node.js';
import type { ResolvedPholdOptions } from './phold-options.js';
import type { WindowClock } from './phold-payload.js';

/** The nodes of one replication, as the result is computed from them. */
export interface ReplicationNodes {
  readonly repid: number;
  readonly nodes: readonly PholdNode[];
}

/** Per-node figures of one replication. */
export interface PholdNodeSummary {
  readonly node: string;
  readonly handled: number;
  readonly pending: number;
}

/** Figures of one replication. */
export interface ReplicationSummary {
  readonly repid: number;
  /** Windows run by every node of the replication. */
  readonly windows: number;
  /** Simulated time at the end of the last window. */
  readonly simTime: number;
  readonly eventsHandled: number;
  readonly eventsSent: number;
  /** Events sent to another node (the rest went to the sender itself). */
  readonly remoteEvents: number;
  readonly promisesSent: number;
  readonly pending: number;
  readonly inFlight: number;
  readonly nodes: readonly PholdNodeSummary[];
}

/** Everything a run measured; plain data (JSON-serializable). */
export interface PholdResult {
  readonly options: ResolvedPholdOptions;
  /** From the first window to the end of the final flush, in seconds. */
  readonly wallSeconds: number;
  readonly eventsHandled: number;
  readonly eventsPerSecond: number;
  readonly eventsSent: number;
  readonly remoteEvents: number;
  readonly promisesSent: number;
  readonly promisesPerSecond: number;
  readonly replications: readonly ReplicationSummary[];
  /** Sends by route over every controller: `local` (a node to itself) or a transport name. */
  readonly sentVia: Readonly<Record<string, { events: number; promises: number }>>;
  /** Counters of the Server's transports. */
  readonly transports: readonly TransportMetrics[];
  readonly conservation: ConservationReport;
}

function tally(rep: ReplicationNodes, opts: ResolvedPholdOptions): ReplicationTally {
  const pairs = rep.nodes.flatMap((target) =>
    rep.nodes.map((sender) => {
      const got = target.receivedFrom(sender.index);
      return {
        sender: sender.name,
        target: target.name,
        sent: sender.sentTo(target.index),
        received: got.events,
        promised: got.promised,
      };
    }),
  );
  return {
    repid: rep.repid,
    population: rep.nodes.length * opts.eventsPerNode,
    handled: rep.nodes.reduce((sum, n) => sum + n.handled, 0),
    pending: rep.nodes.reduce((sum, n) => sum + n.pendingCount, 0),
    pairs,
  };
}

/** Checks the library's own counters against the model's, and promise counts per pair. */
function crossCheck(rep: ReplicationNodes): string[] {
  const problems: string[] = [];
  for (const node of rep.nodes) {
    const m: NodeControllerMetrics = node.controller.metrics();
    const model = node.totals();
    const where = `repid ${rep.repid}: ${node.name}`;
    if (m.eventsSent !== model.eventsSent) {
      problems.push(
        `${where}: controller counted ${m.eventsSent} events sent, the model ${model.eventsSent}`,
      );
    }
    if (m.eventsReceived !== model.eventsReceived) {
      problems.push(
        `${where}: controller counted ${m.eventsReceived} events received, the model ${model.eventsReceived}`,
      );
    }
    if (m.heldMessages !== 0)
      problems.push(`${where}: ${m.heldMessages} messages held without an inbox`);
    for (const sender of rep.nodes) {
      const promises = node.receivedFrom(sender.index).promises;
      if (promises !== sender.windowsDone) {
        problems.push(
          `${where}: ${promises} promises from ${sender.name}, which ran ${sender.windowsDone} windows`,
        );
      }
    }
  }
  return problems;
}

function summarizeReplication(rep: ReplicationNodes, clock: WindowClock): ReplicationSummary {
  const windows = Math.min(...rep.nodes.map((n) => n.windowsDone));
  let eventsSent = 0;
  let remoteEvents = 0;
  let eventsReceived = 0;
  for (const node of rep.nodes) {
    const t = node.totals();
    eventsSent += t.eventsSent;
    remoteEvents += t.eventsSent - node.sentTo(node.index);
    eventsReceived += t.eventsReceived;
  }
  return {
    repid: rep.repid,
    windows,
    simTime: clock.start(windows),
    eventsHandled: rep.nodes.reduce((sum, n) => sum + n.handled, 0),
    eventsSent,
    remoteEvents,
    promisesSent: rep.nodes.reduce((sum, n) => sum + n.promisesSent, 0),
    pending: rep.nodes.reduce((sum, n) => sum + n.pendingCount, 0),
    inFlight: eventsSent - eventsReceived,
    nodes: rep.nodes.map((n) => ({ node: n.name, handled: n.handled, pending: n.pendingCount })),
  };
}

function sumSentVia(metrics: readonly NodeControllerMetrics[]): PholdResult['sentVia'] {
  const out: Record<string, { events: number; promises: number }> = {};
  for (const m of metrics) {
    for (const [route, c] of Object.entries(m.sentVia)) {
      const acc = (out[route] ??= { events: 0, promises: 0 });
      acc.events += c.events;
      acc.promises += c.promises;
    }
  }
  return out;
}

/** Computes the result of a finished, flushed run. */
export function summarize(
  server: Server,
  reps: readonly ReplicationNodes[],
  opts: ResolvedPholdOptions,
  clock: WindowClock,
  wallSeconds: number,
): PholdResult {
  const replications = reps.map((r) => summarizeReplication(r, clock));
  const nodeProblems = reps.flatMap((r) => [
    ...r.nodes.flatMap((n) => n.problems),
    ...crossCheck(r),
  ]);
  const conservation = checkConservation(
    reps.map((r) => tally(r, opts)),
    nodeProblems,
  );
  const metrics = server.metrics();
  const sum = (pick: (r: ReplicationSummary) => number): number =>
    replications.reduce((acc, r) => acc + pick(r), 0);
  const eventsHandled = sum((r) => r.eventsHandled);
  const promisesSent = sum((r) => r.promisesSent);
  return {
    options: opts,
    wallSeconds,
    eventsHandled,
    eventsPerSecond: eventsHandled / wallSeconds,
    eventsSent: sum((r) => r.eventsSent),
    remoteEvents: sum((r) => r.remoteEvents),
    promisesSent,
    promisesPerSecond: promisesSent / wallSeconds,
    replications,
    sentVia: sumSentVia(metrics),
    transports: metrics[0]?.transports ?? [],
    conservation,
  };
}
