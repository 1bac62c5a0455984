/**
 * The result of a PHOLD run: its types, the per-node tallies it is computed from,
 * and the computation.
 *
 * Every process tallies its own nodes into plain data (NodeTally, ProcessTally),
 * which crosses the IPC channel unchanged; `summarize` then works on the tallies
 * of the whole cluster, so one process or several go through the same code and
 * the same conservation check (src/demo/conservation.ts).
 *
 * Besides that check, the result cross-checks the library's counters (NodeController
 * metrics) against the model's, and the number of promises each node received from
 * each sender against the windows that sender ran: each promise must arrive exactly
 * once. Tallies must be taken after every node's run has ended, which includes its
 * wait for the last window (src/demo/phold-node.ts): then nothing is in flight.
 */

import type { NodeControllerMetrics, Server, TransportMetrics } from '../index.js';
import {
  checkConservation,
  type ConservationReport,
  type PairTally,
  type ReplicationTally,
} from './conservation.js';
import type { PholdNode } from './phold-node.js';
import type { LocalReplication } from './phold-nodes.js';
import type { ResolvedPholdOptions } from './phold-options.js';
import type { WindowClock } from './phold-payload.js';

/** Sends by route: `local` (a node to itself) or a transport name. */
export type SentVia = Readonly<Record<string, { events: number; promises: number }>>;

/** Everything one node counted; plain data. Arrays are indexed by node index. */
export interface NodeTally {
  readonly repid: number;
  readonly node: string;
  readonly index: number;
  readonly handled: number;
  readonly pending: number;
  readonly windowsDone: number;
  readonly promisesSent: number;
  /** Events sent to each target. */
  readonly sentTo: readonly number[];
  /** Events received from each sender. */
  readonly received: readonly number[];
  /** Sum of the promised counts received from each sender. */
  readonly promised: readonly number[];
  /** Promises received from each sender. */
  readonly promises: readonly number[];
  /** Non-fatal problems the node noticed. */
  readonly problems: readonly string[];
  /** The NodeController's own counts, to check the model's against. */
  readonly controller: {
    readonly eventsSent: number;
    readonly eventsReceived: number;
    readonly heldMessages: number;
  };
}

/** What one process reports after its run; plain data. */
export interface ProcessTally {
  readonly server: string;
  readonly pid: number;
  readonly nodes: readonly NodeTally[];
  readonly sentVia: SentVia;
  /** Counters of this process's transports. */
  readonly transports: readonly TransportMetrics[];
}

/** Per-node figures of one replication. */
export interface PholdNodeSummary {
  readonly node: string;
  readonly handled: number;
  readonly pending: number;
  readonly windows: number;
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
  /** Nodes in node-index order. */
  readonly nodes: readonly PholdNodeSummary[];
}

/** Everything a run measured; plain data (JSON-serializable). */
export interface PholdResult {
  readonly options: ResolvedPholdOptions;
  /** Processes the nodes ran in: 1 for the in-process run, else one per Server. */
  readonly processes: number;
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
  readonly sentVia: SentVia;
  /** Counters of the transports, summed by transport name over every process. */
  readonly transports: readonly TransportMetrics[];
  readonly conservation: ConservationReport;
}

/** The tally of one node whose run has ended. */
export function tallyNode(node: PholdNode, repid: number): NodeTally {
  const n = node.nodeCount;
  const from = Array.from({ length: n }, (_, s) => node.receivedFrom(s));
  const m: NodeControllerMetrics = node.controller.metrics();
  return {
    repid,
    node: node.name,
    index: node.index,
    handled: node.handled,
    pending: node.pendingCount,
    windowsDone: node.windowsDone,
    promisesSent: node.promisesSent,
    sentTo: Array.from({ length: n }, (_, t) => node.sentTo(t)),
    received: from.map((f) => f.events),
    promised: from.map((f) => f.promised),
    promises: from.map((f) => f.promises),
    problems: [...node.problems],
    controller: {
      eventsSent: m.eventsSent,
      eventsReceived: m.eventsReceived,
      heldMessages: m.heldMessages,
    },
  };
}

/** The tally of this process: its nodes, its routes and its transports. */
export function tallyProcess(server: Server, reps: readonly LocalReplication[]): ProcessTally {
  const metrics = server.metrics();
  return {
    server: server.name,
    pid: process.pid,
    nodes: reps.flatMap((r) => r.nodes.map((n) => tallyNode(n, r.repid))),
    sentVia: sumSentVia(metrics.map((m) => m.sentVia)),
    transports: metrics[0]?.transports ?? [],
  };
}

function sumSentVia(all: readonly SentVia[]): SentVia {
  const out: Record<string, { events: number; promises: number }> = {};
  for (const sentVia of all) {
    for (const [route, c] of Object.entries(sentVia)) {
      const acc = (out[route] ??= { events: 0, promises: 0 });
      acc.events += c.events;
      acc.promises += c.promises;
    }
  }
  return out;
}

/** Adds up the counters of same-named transports of different processes. */
function sumTransports(all: readonly (readonly TransportMetrics[])[]): TransportMetrics[] {
  const byName = new Map<string, Record<string, unknown>>();
  for (const list of all) {
    for (const t of list) {
      const acc = byName.get(t.name);
      if (acc === undefined) {
        byName.set(t.name, { ...t });
        continue;
      }
      for (const [key, value] of Object.entries(t)) {
        if (typeof value === 'number') acc[key] = (acc[key] as number) + value;
      }
    }
  }
  return [...byName.values()] as unknown as TransportMetrics[];
}

/**
 * The nodes of each replication in node-index order; a node missing or reported
 * twice is a problem (a process did not report, or two hosted the same node).
 */
function groupByReplication(
  tallies: readonly NodeTally[],
  opts: ResolvedPholdOptions,
  problems: string[],
): NodeTally[][] {
  const reps = Array.from({ length: opts.replications }, () => new Array<NodeTally>());
  for (const t of tallies) {
    const rep = reps[t.repid];
    if (rep === undefined || rep[t.index] !== undefined) {
      problems.push(`repid ${t.repid}: node ${t.node} reported twice or out of range`);
    } else rep[t.index] = t;
  }
  reps.forEach((rep, repid) => {
    for (let i = 0; i < opts.nodes; i++) {
      if (rep[i] === undefined) problems.push(`repid ${repid}: node index ${i} did not report`);
    }
  });
  return reps.map((rep) => rep.filter((t) => t !== undefined));
}

function conservationTally(
  repid: number,
  nodes: readonly NodeTally[],
  opts: ResolvedPholdOptions,
): ReplicationTally {
  const pairs: PairTally[] = nodes.flatMap((target) =>
    nodes.map((sender) => ({
      sender: sender.node,
      target: target.node,
      sent: sender.sentTo[target.index] ?? 0,
      received: target.received[sender.index] ?? 0,
      promised: target.promised[sender.index] ?? 0,
    })),
  );
  return {
    repid,
    population: opts.nodes * opts.eventsPerNode,
    handled: nodes.reduce((sum, n) => sum + n.handled, 0),
    pending: nodes.reduce((sum, n) => sum + n.pending, 0),
    pairs,
  };
}

function sum(values: readonly number[]): number {
  return values.reduce((acc, v) => acc + v, 0);
}

/** Checks the library's own counters against the model's, and promise counts per pair. */
function crossCheck(repid: number, nodes: readonly NodeTally[]): string[] {
  const problems: string[] = [];
  for (const node of nodes) {
    const where = `repid ${repid}: ${node.node}`;
    const sent = sum(node.sentTo);
    const received = sum(node.received);
    if (node.controller.eventsSent !== sent) {
      problems.push(
        `${where}: controller counted ${node.controller.eventsSent} events sent, the model ${sent}`,
      );
    }
    if (node.controller.eventsReceived !== received) {
      problems.push(
        `${where}: controller counted ${node.controller.eventsReceived} events received, the model ${received}`,
      );
    }
    if (node.controller.heldMessages !== 0)
      problems.push(`${where}: ${node.controller.heldMessages} messages held without an inbox`);
    for (const sender of nodes) {
      const promises = node.promises[sender.index] ?? 0;
      if (promises !== sender.windowsDone) {
        problems.push(
          `${where}: ${promises} promises from ${sender.node}, which ran ${sender.windowsDone} windows`,
        );
      }
    }
  }
  return problems;
}

function summarizeReplication(
  repid: number,
  nodes: readonly NodeTally[],
  clock: WindowClock,
): ReplicationSummary {
  const windows = nodes.length === 0 ? 0 : Math.min(...nodes.map((n) => n.windowsDone));
  const eventsSent = sum(nodes.map((n) => sum(n.sentTo)));
  const eventsReceived = sum(nodes.map((n) => sum(n.received)));
  return {
    repid,
    windows,
    simTime: clock.start(windows),
    eventsHandled: sum(nodes.map((n) => n.handled)),
    eventsSent,
    remoteEvents: eventsSent - sum(nodes.map((n) => n.sentTo[n.index] ?? 0)),
    promisesSent: sum(nodes.map((n) => n.promisesSent)),
    pending: sum(nodes.map((n) => n.pending)),
    inFlight: eventsSent - eventsReceived,
    nodes: nodes.map((n) => ({
      node: n.node,
      handled: n.handled,
      pending: n.pending,
      windows: n.windowsDone,
    })),
  };
}

/**
 * Computes the result of a finished run from the tallies of every process that
 * ran its nodes, and checks conservation over all of them.
 */
export function summarize(
  processes: readonly ProcessTally[],
  opts: ResolvedPholdOptions,
  clock: WindowClock,
  wallSeconds: number,
): PholdResult {
  const problems: string[] = [];
  const reps = groupByReplication(
    processes.flatMap((p) => p.nodes),
    opts,
    problems,
  );
  const replications = reps.map((nodes, repid) => summarizeReplication(repid, nodes, clock));
  for (const [repid, nodes] of reps.entries()) {
    problems.push(...nodes.flatMap((n) => n.problems), ...crossCheck(repid, nodes));
  }
  const tallies = reps.map((nodes, repid) => conservationTally(repid, nodes, opts));
  const total = (pick: (r: ReplicationSummary) => number): number => sum(replications.map(pick));
  const eventsHandled = total((r) => r.eventsHandled);
  const promisesSent = total((r) => r.promisesSent);
  return {
    options: opts,
    processes: processes.length,
    wallSeconds,
    eventsHandled,
    eventsPerSecond: eventsHandled / wallSeconds,
    eventsSent: total((r) => r.eventsSent),
    remoteEvents: total((r) => r.remoteEvents),
    promisesSent,
    promisesPerSecond: promisesSent / wallSeconds,
    replications,
    sentVia: sumSentVia(processes.map((p) => p.sentVia)),
    transports: sumTransports(processes.map((p) => p.transports)),
    conservation: checkConservation(tallies, problems),
  };
}
