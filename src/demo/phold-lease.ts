/**
 * The stop rule of a PHOLD run spread over Server processes: window leases.
 *
 * In one process a shared gate per replication stops every node on the same
 * window (ReplicationGate in src/demo/phold.ts). Across processes there is no
 * shared gate, and asking the coordinator before every window would put an IPC
 * round trip on every window. Instead the coordinator (LeaseGrantor, in the parent)
 * grants each replication a lease: its nodes may begin any window below the lease
 * without asking. Each Server process (LeasedReplication, one per replication)
 * reports its frontier, the lowest window its nodes have asked to begin: every
 * `step` windows, and whenever one of its nodes has to wait at the lease. The
 * coordinator extends the lease to the lowest frontier of all processes plus about
 * LEASE_AHEAD_MS worth of windows at the rate measured so far. To stop, it stops
 * extending and sends every process `stopAt` = the last lease it granted.
 *
 * Why no node begins a window >= stopAt. A node begins window w only when its
 * process holds a lease above w, or, once the stop has arrived, when w < stopAt.
 * Leases only grow; every lease a process holds is the initial one or one the
 * coordinator sent, each at most the coordinator's current lease; after the stop
 * the coordinator sends none. So no process ever holds a lease above stopAt.
 *
 * Why every node reaches stopAt (no deadlock).
 * 1. The gate never holds a window below stopAt for good: a node waiting at the
 *    lease is released by an extension or, at the latest, by the stop, which the
 *    coordinator sends to every process (queued for one that has not joined yet;
 *    the channel is in order, so it cannot overtake an extension).
 * 2. The model: before window w a node waits only for what every node sent in
 *    window w - 1 (src/demo/phold-node.ts). All windows below stopAt may begin, so
 *    by induction over w every node finishes every window below stopAt, and its
 *    final wait, for window stopAt - 1, is met too.
 * 3. Before the stop, leases keep coming: if every node of a replication waits at
 *    lease L, each process hosting them has reported frontier L (the last of its
 *    nodes to start waiting raised its frontier to L and reported it), so the
 *    lowest frontier the coordinator holds is L and it grants L + ahead, ahead >= 1.
 *
 * Costs: no message per window; a process reports about REPORTS_PER_LEASE times per
 * lease. A stop takes effect within about LEASE_AHEAD_MS of windows. End-time
 * bounds are applied by each process itself (every process computes the same one).
 */

import type { CoordinatorMessage, LeaseTerms } from './phold-messages.js';
import type { WindowGate } from './phold-node.js';

/** Wall-clock time of windows granted ahead of the slowest process, in milliseconds. */
export const LEASE_AHEAD_MS = 100;
/** Fewest windows a lease reaches beyond the slowest process's frontier. */
export const MIN_LEASE_AHEAD_WINDOWS = 2;
/** Most windows a lease reaches beyond the slowest process's frontier. */
export const MAX_LEASE_AHEAD_WINDOWS = 1 << 20;
/** The lease every replication starts with, before any rate is known: windows. */
export const INITIAL_LEASE: LeaseTerms = Object.freeze({ lease: 4, step: 1 });
/** Frontier reports a process sends per lease extension, roughly. */
const REPORTS_PER_LEASE = 4;

interface GrantedLease {
  lease: number;
  /** Latest frontier of each process hosting nodes of the replication. */
  readonly frontiers: Map<string, number>;
}

/** The coordinator's side: grants and extends leases, and stops. See the file header. */
export class LeaseGrantor {
  private readonly reps: GrantedLease[];
  private started: number;
  private stopAt: number[] | null = null;

  /**
   * @param servers - the processes that host nodes (every replication has nodes on each).
   * @param send - delivers a message to one process, in order.
   * @param now - a clock in milliseconds (tests slow it down or speed it up).
   */
  constructor(
    private readonly servers: readonly string[],
    replications: number,
    private readonly send: (server: string, msg: CoordinatorMessage) => void,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.started = now();
    this.reps = Array.from({ length: replications }, () => ({
      lease: INITIAL_LEASE.lease,
      frontiers: new Map(servers.map((s) => [s, 0])),
    }));
  }

  /** Measures the window rate from now on: call it when the nodes start running. */
  markStart(): void {
    this.started = this.now();
  }

  /** The current lease of each replication (after a stop: its stopAt). */
  leases(): number[] {
    return this.reps.map((r) => r.lease);
  }

  /**
   * A process reports that every one of its nodes of `repid` has asked to begin
   * window `frontier` or later; extends the lease when the slowest process moved.
   * @throws {RangeError} for a process or replication this grantor does not know.
   */
  onFrontier(server: string, repid: number, frontier: number): void {
    const rep = this.reps[repid];
    const before = rep?.frontiers.get(server);
    if (rep === undefined || before === undefined) {
      throw new RangeError(`frontier report from ${server} for replication ${repid}, unknown here`);
    }
    if (this.stopAt !== null || frontier <= before) return;
    rep.frontiers.set(server, frontier);
    let slowest = Number.POSITIVE_INFINITY;
    for (const f of rep.frontiers.values()) slowest = Math.min(slowest, f);
    const ahead = this.ahead(slowest);
    if (slowest + ahead <= rep.lease) return;
    rep.lease = slowest + ahead;
    const step = Math.max(1, Math.floor(ahead / REPORTS_PER_LEASE));
    for (const s of this.servers) this.send(s, { kind: 'lease', repid, lease: rep.lease, step });
  }

  /** Stops extending and tells every process where to stop; idempotent. Returns stopAt. */
  stop(): readonly number[] {
    if (this.stopAt !== null) return this.stopAt;
    const stopAt = this.leases();
    this.stopAt = stopAt;
    for (const s of this.servers) this.send(s, { kind: 'stop', stopAt });
    return stopAt;
  }

  /** Windows to grant beyond `frontier`: LEASE_AHEAD_MS at the rate so far, clamped. */
  private ahead(frontier: number): number {
    const elapsedMs = this.now() - this.started;
    const windowsPerMs = elapsedMs > 0 ? frontier / elapsedMs : 0;
    const ahead = Math.ceil(windowsPerMs * LEASE_AHEAD_MS);
    return Math.min(MAX_LEASE_AHEAD_WINDOWS, Math.max(MIN_LEASE_AHEAD_WINDOWS, ahead));
  }
}

interface Waiting {
  readonly window: number;
  readonly resolve: (go: boolean) => void;
}

/**
 * One process's side, for one replication: the gates of its nodes. See the file
 * header. The fast path (a window below the lease) is a comparison and a counter.
 */
export class LeasedReplication {
  private lease: number;
  private step: number;
  private stopAt: number;
  /** The window each local node last asked to begin (-1: none yet). */
  private readonly frontier: number[];
  /** Report once every local node's frontier reaches `target`... */
  private target = 0;
  /** ...which is when this count of nodes below it reaches 0. */
  private below = 0;
  private reported = 0;
  private waiting: Waiting[] = [];

  /**
   * @param slots - nodes of this replication in this process.
   * @param endWindows - windows before the end time (+Infinity: none).
   * @param report - sends a frontier report to the coordinator.
   */
  constructor(
    private readonly repid: number,
    slots: number,
    initial: LeaseTerms,
    endWindows: number,
    private readonly report: (repid: number, frontier: number) => void,
  ) {
    this.lease = initial.lease;
    this.step = Math.max(1, initial.step);
    this.stopAt = endWindows;
    this.frontier = new Array<number>(slots).fill(-1);
    this.retarget(0);
  }

  /** The gate of the node at `slot`. */
  gate(slot: number): WindowGate {
    return { begin: (w) => this.begin(slot, w) };
  }

  /** Applies a coordinator message meant for this replication. */
  apply(msg: CoordinatorMessage): void {
    if (msg.kind === 'lease') this.extend(msg.lease, msg.step);
    else this.stop(msg.stopAt[this.repid] ?? 0);
  }

  /** Releases every waiting node with "stop", and refuses every later window (after an abort). */
  cancel(): void {
    this.stopAt = 0;
    this.release();
  }

  private begin(slot: number, w: number): boolean | Promise<boolean> {
    if (w >= this.stopAt) return false;
    const before = this.frontier[slot]!;
    this.frontier[slot] = w;
    if (before < this.target && w >= this.target && --this.below === 0) this.reportFrontier();
    if (w < this.lease) return true;
    this.reportFrontier();
    return new Promise((resolve) => this.waiting.push({ window: w, resolve }));
  }

  private extend(lease: number, step: number): void {
    if (lease <= this.lease) return;
    this.lease = lease;
    this.step = Math.max(1, step);
    this.retarget(this.lowest());
    this.release();
  }

  /** From now on every window below stopAt may begin, whatever lease arrived last. */
  private stop(stopAt: number): void {
    this.stopAt = Math.min(this.stopAt, stopAt);
    this.lease = Math.max(this.lease, this.stopAt);
    this.release();
  }

  /** Wakes every waiting node whose window the lease or the stop now decides. */
  private release(): void {
    const still: Waiting[] = [];
    for (const w of this.waiting) {
      if (w.window >= this.stopAt) w.resolve(false);
      else if (w.window < this.lease) w.resolve(true);
      else still.push(w);
    }
    this.waiting = still;
  }

  private lowest(): number {
    let min = Number.POSITIVE_INFINITY;
    for (const f of this.frontier) min = Math.min(min, f);
    return min;
  }

  /** Reports the frontier if it moved since the last report, and sets the next target. */
  private reportFrontier(): void {
    const min = this.lowest();
    if (Number.isFinite(min) && min > this.reported) {
      this.reported = min;
      this.report(this.repid, min);
    }
    this.retarget(min);
  }

  private retarget(min: number): void {
    this.target = Math.max(min, 0) + this.step;
    this.below = 0;
    for (const f of this.frontier) if (f < this.target) this.below++;
  }
}
