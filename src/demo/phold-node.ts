/**
 * One PHOLD node (Fujimoto 1990), run as a conservative, windowed simulation
 * that talks to the rest of the model only through its NodeController.
 *
 * Time is cut into windows as wide as the lookahead. In window `w` a node handles
 * its pending events with timestamps in the window, in (timestamp, id) order; each
 * schedules one new event at `ts + lookahead + Exp(mean)` — so never in the same
 * window — on a uniformly random other node with probability `remote`, else on
 * itself. At the end of the window the node promises every node (itself included)
 * the number of events it sent there during `w`, with a seqnr that grows per pair.
 *
 * Before it starts window `w + 1` a node waits until, for every sender, the promise
 * for window `w` has arrived and as many events sent in `w` as it announced. Events
 * due in `w + 1` can only have been sent in windows up to `w`, so after that wait
 * the node's pending set is complete for the window: that is what promises are
 * for. Promises may overtake events; counting per sending window tolerates it.
 *
 * Invariants: a sender is never more than one window ahead of any receiver (it
 * needs the receiver's promise first); more events than promised, a second promise
 * for a window or an undecodable event fail the run; a promise seqnr that does not
 * grow, or an event earlier than the node's clock, is recorded as a problem.
 *
 * A run ends when the gate refuses the next window; the node then still waits
 * for every sender's last window, so whatever was sent to it has arrived.
 *
 * Called by src/demo/phold-nodes.ts, for runPhold (one process) and for the job
 * of each Server process (src/demo/phold-job.ts); the gate is the stop rule.
 */

import {
  SELF_NODE,
  type Inbox,
  type NodeController,
  type ReceivedEvent,
  type ReceivedPromise,
  type Seqnr,
} from '../index.js';
import { EventHeap, type PendingEvent } from './event-heap.js';
import {
  decodePayload,
  PayloadEncoder,
  WindowClock,
  type DecodedPayload,
} from './phold-payload.js';
import type { Prng } from './prng.js';

/** Problems one node records in detail; beyond that they are only counted. */
export const MAX_RECORDED_PROBLEMS = 100;

/**
 * Decides, per replication, whether a node may start window `w`. In one process
 * the answer is immediate; across processes it may have to wait for the
 * coordinator (src/demo/phold-lease.ts), and then it is a promise.
 */
export interface WindowGate {
  /** Called right before a node starts window `w`; false ends that node's run. */
  begin(w: number): boolean | Promise<boolean>;
}

/** Model parameters and collaborators of one node. */
export interface PholdNodeConfig {
  controller: NodeController;
  /** Every node of the replication, in the same order on every node. */
  nodes: readonly string[];
  simproc: string;
  clock: WindowClock;
  eventsPerNode: number;
  remote: number;
  mean: number;
  /** 0: object payloads; else the size of byte payloads. */
  payloadBytes: number;
  rng: Prng;
  gate: WindowGate;
}

/** A failure of the window protocol; ends the run. */
export class PholdProtocolError extends Error {
  override readonly name = 'PholdProtocolError';
}

/** What one node knows about one sender. */
class Inbound {
  /** Events received, by the window in which they were sent; cleared once consumed. */
  readonly received = new Map<number, number>();
  /** Promised counts, by window; cleared once consumed. */
  readonly promised = new Map<number, number>();
  receivedTotal = 0;
  promisedTotal = 0;
  promises = 0;
  lastSeqnr: Seqnr = 0;

  complete(w: number): boolean {
    const promised = this.promised.get(w);
    return promised !== undefined && (this.received.get(w) ?? 0) === promised;
  }
}

interface Waiter {
  readonly window: number;
  readonly satisfied: Uint8Array;
  missing: number;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/** One node of the model; see the file header. */
export class PholdNode implements Inbox {
  readonly name: string;
  readonly index: number;
  /** Events handled so far. */
  handled = 0;
  /** Windows fully handled and promised. */
  windowsDone = 0;
  promisesSent = 0;
  /** Non-fatal anomalies seen by this node. */
  readonly problems: string[] = [];
  readonly controller: NodeController;
  private readonly config: PholdNodeConfig;
  private readonly targets: string[];
  private readonly sentInWindow: number[];
  private readonly sentTotal: number[];
  private readonly seqnrs: number[];
  private readonly inbound: Inbound[];
  private readonly senderIndex: Map<string, number>;
  private readonly pending = new EventHeap();
  private readonly next: PendingEvent = { ts: 0, id: 0, hops: 0 };
  private readonly decoded: DecodedPayload = { id: 0, window: 0, hops: 0 };
  private readonly payloads: PayloadEncoder;
  private now = Number.NEGATIVE_INFINITY;
  private waiter: Waiter | null = null;
  private failure: Error | null = null;
  private problemCount = 0;

  /** Installs itself as the inbox of `config.simproc` and seeds the initial events. */
  constructor(config: PholdNodeConfig) {
    this.config = config;
    this.controller = config.controller;
    this.name = this.controller.nodeName;
    this.index = config.nodes.indexOf(this.name);
    if (this.index < 0) throw new RangeError(`node ${this.name} is not in the node list`);
    const n = config.nodes.length;
    this.targets = config.nodes.map(
      (node, i) => `${i === this.index ? SELF_NODE : node}/${config.simproc}`,
    );
    this.sentInWindow = new Array<number>(n).fill(0);
    this.sentTotal = new Array<number>(n).fill(0);
    this.seqnrs = new Array<number>(n).fill(0);
    this.inbound = Array.from({ length: n }, () => new Inbound());
    this.senderIndex = new Map(config.nodes.map((node, i) => [node, i]));
    this.payloads = new PayloadEncoder(config.payloadBytes);
    for (let k = 0; k < config.eventsPerNode; k++) {
      this.pending.push(
        config.rng.exponential(config.mean),
        this.index * config.eventsPerNode + k,
        0,
      );
    }
    this.controller.setInbox(config.simproc, this);
  }

  /** Nodes of the replication, this one included. */
  get nodeCount(): number {
    return this.targets.length;
  }

  /** Events waiting in the pending set. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Events this node sent to node `target` (by index) over the run. */
  sentTo(target: number): number {
    return this.sentTotal[target]!;
  }

  /** Events this node sent and received over the run, all peers together. */
  totals(): { eventsSent: number; eventsReceived: number } {
    let eventsSent = 0;
    let eventsReceived = 0;
    for (const n of this.sentTotal) eventsSent += n;
    for (const i of this.inbound) eventsReceived += i.receivedTotal;
    return { eventsSent, eventsReceived };
  }

  /** Events and the sum of promised counts this node received from `sender` (by index). */
  receivedFrom(sender: number): { events: number; promised: number; promises: number } {
    const i = this.inbound[sender]!;
    return { events: i.receivedTotal, promised: i.promisedTotal, promises: i.promises };
  }

  /**
   * Runs windows until the gate says stop, then waits for what the other nodes
   * sent in the last window, so that nothing addressed to this node is still on
   * its way when the run is tallied (across processes a flush of the sender does
   * not mean the receiver has it).
   * @throws {PholdProtocolError} when the window protocol is violated, or the error given to `abort`.
   */
  async run(): Promise<void> {
    const gate = this.config.gate;
    for (let w = 0; ; w++) {
      const verdict = gate.begin(w);
      // The in-process gate answers synchronously: no await, no extra turn per window.
      if (!(typeof verdict === 'boolean' ? verdict : await verdict)) break;
      if (w > 0) await this.settle(w - 1);
      await this.handleWindow(w);
      if (this.failure !== null) throw this.failure;
      this.windowsDone = w + 1;
    }
    if (this.windowsDone > 0) await this.settle(this.windowsDone - 1);
    if (this.failure !== null) throw this.failure;
  }

  /** Ends the run with `err` (at the next wait, or at once if waiting). */
  abort(err: Error): void {
    if (this.failure === null) this.failure = err;
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.reject(err);
  }

  /** For stall reports: which senders this node waits for, and why. */
  describeWait(): string | null {
    const waiter = this.waiter;
    if (waiter === null) return null;
    const missing: string[] = [];
    this.inbound.forEach((inbound, s) => {
      if (waiter.satisfied[s] === 1) return;
      const promised = inbound.promised.get(waiter.window);
      const received = inbound.received.get(waiter.window) ?? 0;
      const detail = promised === undefined ? 'no promise' : `promised ${promised}`;
      missing.push(`${this.config.nodes[s]} (${detail}, received ${received})`);
    });
    return `${this.name} waits for window ${waiter.window} from ${missing.join(', ')}`;
  }

  /** Inbox: an event for this node. */
  onEvent(event: ReceivedEvent): void {
    const s = this.sender(event.sender.node);
    if (s < 0) return;
    if (!decodePayload(event.data, this.decoded)) {
      this.fail(`undecodable event data from ${event.sender.node}`);
      return;
    }
    const { id, window, hops } = this.decoded;
    const inbound = this.inbound[s]!;
    const count = (inbound.received.get(window) ?? 0) + 1;
    inbound.received.set(window, count);
    inbound.receivedTotal++;
    const promised = inbound.promised.get(window);
    if (promised !== undefined && count > promised) {
      this.fail(
        `${event.sender.node} sent more than the ${promised} events it promised for window ${window}`,
      );
      return;
    }
    if (event.epoch < this.now) {
      this.note(`event ${id} for t=${event.epoch} arrived after t=${this.now}`);
    }
    this.pending.push(event.epoch, id, hops);
    this.wake(s, window);
  }

  /** Inbox: a promise for this node. */
  onPromise(promise: ReceivedPromise): void {
    const s = this.sender(promise.sender.node);
    if (s < 0) return;
    const inbound = this.inbound[s]!;
    if (promise.seqnr <= inbound.lastSeqnr) {
      this.note(
        `promise seqnr ${promise.seqnr} from ${promise.sender.node} does not follow ${inbound.lastSeqnr}`,
      );
    }
    inbound.lastSeqnr = promise.seqnr;
    const window = this.config.clock.of(promise.epoch);
    if (inbound.promised.has(window)) {
      this.fail(`second promise from ${promise.sender.node} for window ${window}`);
      return;
    }
    inbound.promised.set(window, promise.numEvents);
    inbound.promisedTotal += promise.numEvents;
    inbound.promises++;
    if ((inbound.received.get(window) ?? 0) > promise.numEvents) {
      this.fail(
        `${promise.sender.node} promised ${promise.numEvents} events for window ${window} but sent more`,
      );
      return;
    }
    this.wake(s, window);
  }

  private sender(node: string): number {
    const s = this.senderIndex.get(node);
    if (s === undefined) {
      this.fail(`message from ${node}, which is not a node of this replication`);
      return -1;
    }
    return s;
  }

  /** Handles every pending event of window `w`, then promises every node. */
  private async handleWindow(w: number): Promise<void> {
    const c = this.controller;
    const end = this.config.clock.start(w + 1);
    const next = this.next;
    while (this.pending.peekTs() < end) {
      if (!c.writable) await c.drained();
      this.pending.popInto(next);
      this.handle(next, w, end);
    }
    const epoch = this.config.clock.start(w);
    for (let t = 0; t < this.targets.length; t++) {
      if (!c.writable) await c.drained();
      c.sendPromise(this.targets[t]!, ++this.seqnrs[t]!, epoch, this.sentInWindow[t]!);
      this.sentInWindow[t] = 0;
      this.promisesSent++;
    }
  }

  /** Handles one event: schedules its successor. `end` is the start of the next window. */
  private handle(ev: PendingEvent, w: number, end: number): void {
    const { rng, remote, mean } = this.config;
    this.handled++;
    this.now = ev.ts;
    const n = this.targets.length;
    let t = this.index;
    if (rng.next() < remote && n > 1) {
      t = rng.below(n - 1);
      if (t >= this.index) t++;
    }
    // The clamp only matters when float rounding would land exactly on the boundary.
    const ts = Math.max(ev.ts + this.config.clock.width + rng.exponential(mean), end);
    this.controller.sendEvent(this.targets[t]!, ts, this.payloads.encode(ev.id, w, ev.hops + 1));
    this.sentInWindow[t]!++;
    this.sentTotal[t]!++;
  }

  /** Waits until every sender's window `w` is complete, then forgets its counts. */
  private async settle(w: number): Promise<void> {
    const wait = this.waitFor(w);
    if (wait !== null) await wait;
    this.consume(w);
  }

  /** A promise for the wait on window `w`, or null when every sender is already complete. */
  private waitFor(w: number): Promise<void> | null {
    if (this.failure !== null) return Promise.reject(this.failure);
    const satisfied = new Uint8Array(this.inbound.length);
    let missing = 0;
    this.inbound.forEach((inbound, s) => {
      if (inbound.complete(w)) satisfied[s] = 1;
      else missing++;
    });
    if (missing === 0) return null;
    return new Promise((resolve, reject) => {
      this.waiter = { window: w, satisfied, missing, resolve, reject };
    });
  }

  private wake(s: number, window: number): void {
    const waiter = this.waiter;
    if (waiter === null || waiter.window !== window || waiter.satisfied[s] === 1) return;
    if (!this.inbound[s]!.complete(window)) return;
    waiter.satisfied[s] = 1;
    if (--waiter.missing > 0) return;
    this.waiter = null;
    waiter.resolve();
  }

  private consume(w: number): void {
    for (const inbound of this.inbound) {
      inbound.received.delete(w);
      inbound.promised.delete(w);
    }
  }

  /** Records a non-fatal problem; past MAX_RECORDED_PROBLEMS only the count grows. */
  private note(message: string): void {
    this.problemCount++;
    if (this.problemCount <= MAX_RECORDED_PROBLEMS) this.problems.push(`${this.name}: ${message}`);
    else
      this.problems[MAX_RECORDED_PROBLEMS] =
        `${this.name}: ... and ${this.problemCount - MAX_RECORDED_PROBLEMS} more problems`;
  }

  private fail(message: string): void {
    this.note(message);
    this.abort(new PholdProtocolError(`${this.name}: ${message}`));
  }
}
