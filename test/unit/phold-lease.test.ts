import { describe, expect, it } from 'vitest';
import {
  INITIAL_LEASE,
  LeaseGrantor,
  LeasedReplication,
  MIN_LEASE_AHEAD_WINDOWS,
} from '../../src/demo/phold-lease.js';
import type { CoordinatorMessage } from '../../src/demo/phold-messages.js';
import type { WindowGate } from '../../src/demo/phold-node.js';
import { Prng } from '../../src/demo/prng.js';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A one-way channel that delivers in order, each message after 0-3 event-loop turns. */
class DelayedChannel<T> {
  private readonly queue: T[] = [];
  private pumping = false;

  constructor(
    private readonly rng: Prng,
    private readonly deliver: (msg: T) => void,
  ) {}

  send(msg: T): void {
    this.queue.push(msg);
    if (!this.pumping) void this.pump();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    while (this.queue.length > 0) {
      for (let i = this.rng.below(4); i > 0; i--) await tick();
      this.deliver(this.queue.shift()!);
    }
    this.pumping = false;
  }
}

interface ClusterOptions {
  seed: number;
  processes: number;
  nodesPerProcess: number;
  endWindows?: number;
  /** Event-loop turns after which the coordinator stops; undefined: never. */
  stopAfterTurns?: number;
  /** Milliseconds the coordinator's clock advances per reading: large means slow windows. */
  msPerReading: number;
}

interface ClusterRun {
  windowsDone: number[];
  highestBegun: number[];
  stopAt: readonly number[] | null;
}

/** Gates of every node of every process, wired to one LeaseGrantor by delayed channels. */
function buildCluster(
  o: ClusterOptions,
  rng: Prng,
): { grantor: LeaseGrantor; gates: WindowGate[] } {
  const servers = Array.from({ length: o.processes }, (_, p) => `s${p}`);
  let clock = 0;
  const toProcess = new Map<string, DelayedChannel<CoordinatorMessage>>();
  const grantor = new LeaseGrantor(
    servers,
    1,
    (server, msg) => toProcess.get(server)!.send(msg),
    () => (clock += o.msPerReading),
  );
  const gates: WindowGate[] = [];
  for (const server of servers) {
    const up = new DelayedChannel<[number, number]>(rng, ([repid, frontier]) =>
      grantor.onFrontier(server, repid, frontier),
    );
    const lease = new LeasedReplication(
      0,
      o.nodesPerProcess,
      INITIAL_LEASE,
      o.endWindows ?? Number.POSITIVE_INFINITY,
      (repid, frontier) => up.send([repid, frontier]),
    );
    toProcess.set(server, new DelayedChannel(rng, (msg) => lease.apply(msg)));
    for (let slot = 0; slot < o.nodesPerProcess; slot++) gates.push(lease.gate(slot));
  }
  return { grantor, gates };
}

/**
 * Runs a simulated cluster whose nodes depend on each other as PHOLD nodes do:
 * window w may only run once every node has finished window w - 1.
 */
async function runCluster(o: ClusterOptions): Promise<ClusterRun> {
  const rng = new Prng(o.seed);
  const { grantor, gates } = buildCluster(o, rng);
  const windowsDone = gates.map(() => 0);
  const highestBegun = gates.map(() => -1);
  const node = async (i: number): Promise<void> => {
    for (let w = 0; ; w++) {
      const verdict = gates[i]!.begin(w);
      if (!(typeof verdict === 'boolean' ? verdict : await verdict)) return;
      highestBegun[i] = w;
      while (Math.min(...windowsDone) < w) await tick();
      for (let t = rng.below(3); t > 0; t--) await tick();
      windowsDone[i] = w + 1;
    }
  };
  let stopAt: readonly number[] | null = null;
  const stopper = async (): Promise<void> => {
    if (o.stopAfterTurns === undefined) return;
    for (let t = 0; t < o.stopAfterTurns; t++) await tick();
    stopAt = grantor.stop();
  };
  await Promise.all([...gates.map((_, i) => node(i)), stopper()]);
  return { windowsDone, highestBegun, stopAt };
}

describe('window leases across processes', () => {
  it('stops every node on the last lease granted, whenever the stop comes', async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const stopAfterTurns = new Prng(seed, 99).below(400);
      // Slow windows (small leases, nodes often wait at the lease) and fast ones.
      const msPerReading = seed % 2 === 0 ? 1000 : 5;
      const run = await runCluster({
        seed,
        processes: 3,
        nodesPerProcess: 2,
        stopAfterTurns,
        msPerReading,
      });
      const stopAt = run.stopAt![0]!;
      expect(run.windowsDone, `seed ${seed}`).toEqual(run.windowsDone.map(() => stopAt));
      expect(Math.max(...run.highestBegun), `seed ${seed}`).toBe(stopAt - 1);
    }
  });

  it('stops on the initial lease when the stop comes before any report', async () => {
    const run = await runCluster({
      seed: 7,
      processes: 2,
      nodesPerProcess: 3,
      stopAfterTurns: 0,
      msPerReading: 1,
    });
    expect(run.stopAt).toEqual([INITIAL_LEASE.lease]);
    expect(run.windowsDone).toEqual(run.windowsDone.map(() => INITIAL_LEASE.lease));
  });

  it('keeps granting while every node waits at the lease, so a bounded run reaches its end', async () => {
    const run = await runCluster({
      seed: 3,
      processes: 3,
      nodesPerProcess: 2,
      endWindows: 120,
      msPerReading: 1e6, // the slowest rate there is: every lease is the minimum ahead
    });
    expect(run.windowsDone).toEqual(run.windowsDone.map(() => 120));
    expect(run.stopAt).toBeNull();
  });
});

describe('LeasedReplication', () => {
  it('answers below the lease at once, waits at it, and reports its frontier', async () => {
    const reports: number[] = [];
    const rep = new LeasedReplication(0, 1, { lease: 3, step: 1 }, Infinity, (_, f) =>
      reports.push(f),
    );
    const gate = rep.gate(0);
    expect(gate.begin(0)).toBe(true);
    expect(gate.begin(1)).toBe(true);
    expect(gate.begin(2)).toBe(true);
    const waiting = gate.begin(3);
    expect(waiting).toBeInstanceOf(Promise);
    expect(reports).toEqual([1, 2, 3]);
    rep.apply({ kind: 'lease', repid: 0, lease: 10, step: 4 });
    await expect(waiting).resolves.toBe(true);
  });

  it('reports its frontier when its nodes have to wait, even between report steps', () => {
    const reports: number[] = [];
    const rep = new LeasedReplication(0, 2, { lease: 2, step: 50 }, Infinity, (_, f) =>
      reports.push(f),
    );
    const [a, b] = [rep.gate(0), rep.gate(1)];
    for (const gate of [a, b]) {
      expect(gate.begin(0)).toBe(true);
      expect(gate.begin(1)).toBe(true);
    }
    expect(reports).toEqual([]);
    expect(a.begin(2)).toBeInstanceOf(Promise);
    expect(reports).toEqual([1]); // b still asks for window 1
    expect(b.begin(2)).toBeInstanceOf(Promise);
    expect(reports).toEqual([1, 2]); // both wait at the lease: the coordinator must know
  });

  it('refuses windows at and past stopAt, and releases waiting nodes either way', async () => {
    const rep = new LeasedReplication(0, 2, { lease: 2, step: 1 }, Infinity, () => {});
    const [a, b] = [rep.gate(0), rep.gate(1)];
    expect(a.begin(0)).toBe(true);
    const waitingA = a.begin(2);
    expect(b.begin(0)).toBe(true);
    expect(b.begin(1)).toBe(true);
    const waitingB = b.begin(2);
    rep.apply({ kind: 'stop', stopAt: [2] });
    await expect(waitingA).resolves.toBe(false);
    await expect(waitingB).resolves.toBe(false);
    expect(a.begin(5)).toBe(false);
  });

  it('lets every window below stopAt begin once the stop has arrived', async () => {
    const rep = new LeasedReplication(0, 1, { lease: 1, step: 1 }, Infinity, () => {});
    const gate = rep.gate(0);
    expect(gate.begin(0)).toBe(true);
    const waiting = gate.begin(1);
    rep.apply({ kind: 'stop', stopAt: [3] });
    await expect(waiting).resolves.toBe(true);
    expect(gate.begin(2)).toBe(true);
    expect(gate.begin(3)).toBe(false);
  });

  it('applies the end time itself and releases every waiting node on cancel', async () => {
    const rep = new LeasedReplication(0, 1, { lease: 1, step: 1 }, 5, () => {});
    const gate = rep.gate(0);
    expect(gate.begin(5)).toBe(false);
    expect(gate.begin(0)).toBe(true);
    const waiting = gate.begin(1);
    rep.cancel();
    await expect(waiting).resolves.toBe(false);
    expect(gate.begin(0)).toBe(false);
  });
});

describe('LeaseGrantor', () => {
  it('extends to the slowest frontier plus the ahead, and not after the stop', () => {
    const sent: [string, CoordinatorMessage][] = [];
    let now = 0;
    const grantor = new LeaseGrantor(
      ['a', 'b'],
      2,
      (s, m) => sent.push([s, m]),
      () => now,
    );
    now = 1e9; // a very slow run: the minimum ahead
    grantor.onFrontier('a', 1, 3);
    expect(sent).toEqual([]); // b is still at 0: 0 + 2 does not pass the initial lease
    grantor.onFrontier('b', 1, 4);
    const lease = 3 + MIN_LEASE_AHEAD_WINDOWS;
    expect(sent).toEqual([
      ['a', { kind: 'lease', repid: 1, lease, step: 1 }],
      ['b', { kind: 'lease', repid: 1, lease, step: 1 }],
    ]);
    expect(grantor.leases()).toEqual([INITIAL_LEASE.lease, lease]);
    expect(grantor.stop()).toEqual([INITIAL_LEASE.lease, lease]);
    expect(grantor.stop()).toEqual([INITIAL_LEASE.lease, lease]);
    sent.length = 0;
    grantor.onFrontier('a', 1, 50);
    grantor.onFrontier('b', 1, 50);
    expect(sent).toEqual([]);
    expect(grantor.leases()).toEqual([INITIAL_LEASE.lease, lease]);
  });

  it('grants more windows ahead when windows are fast', () => {
    const sent: CoordinatorMessage[] = [];
    let now = 0;
    const grantor = new LeaseGrantor(
      ['a'],
      1,
      (_, m) => sent.push(m),
      () => now,
    );
    now = 10; // 100 windows in 10 ms: 10 windows per ms
    grantor.onFrontier('a', 0, 100);
    expect(sent).toEqual([{ kind: 'lease', repid: 0, lease: 1100, step: 250 }]);
  });

  it('rejects reports from a process or replication it does not know', () => {
    const grantor = new LeaseGrantor(['a'], 1, () => {});
    expect(() => grantor.onFrontier('zz', 0, 1)).toThrow(RangeError);
    expect(() => grantor.onFrontier('a', 4, 1)).toThrow(/unknown here/);
  });
});
