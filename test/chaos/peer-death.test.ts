import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { LinkClosedError } from '../../src/errors.js';
import { Directory, startTransport, uniqueCluster } from '../fixtures/grpc/pair.js';
import { seqEvent, until } from '../fixtures/grpc/recording-node.js';
import type { GrpcTransport } from '../../src/transports/grpc.js';

const RECEIVER = fileURLToPath(new URL('../fixtures/grpc/receiver.mjs', import.meta.url));

interface Progress {
  count: number;
  first: number;
  last: number;
  violations: string[];
}

/** A receiver process (test/fixtures/grpc/receiver.mjs) and what it last reported. */
class Receiver {
  readonly child: ChildProcess;
  progress: Progress = { count: 0, first: -1, last: -1, violations: [] };
  errors: string[] = [];
  readonly port: Promise<number>;

  constructor(cluster: string, port: number) {
    this.child = fork(RECEIVER, [cluster, String(port)], { stdio: 'inherit' });
    this.port = new Promise((resolve, reject) => {
      this.child.once('exit', (code) => reject(new Error(`receiver exited with ${code}`)));
      this.child.on(
        'message',
        (m: { type: string } & Progress & { port: number; message: string }) => {
          if (m.type === 'listening') resolve(m.port);
          else if (m.type === 'progress') this.progress = m;
          else if (m.type === 'error') this.errors.push(m.message);
        },
      );
    });
  }

  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }
}

const children: Receiver[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) await c.kill();
});

/** Sends events 0..n-1 to b1 as fast as the link takes them; stops at the first error. */
async function pump(t: GrpcTransport, n: number): Promise<{ sent: number; error?: unknown }> {
  for (let i = 0; i < n; i++) {
    if (!t.writable) await new Promise((resolve) => t.once('drain', resolve));
    try {
      t.sendEvent(seqEvent('a1', 'b1', i, 64));
    } catch (error) {
      return { sent: i, error };
    }
  }
  return { sent: n };
}

async function setup(prefix: string, peerDeadlineMs: number) {
  const cluster = uniqueCluster(prefix);
  const first = new Receiver(cluster, 0);
  children.push(first);
  const port = await first.port;
  const dir = new Directory();
  dir.placement.set('b1', 'B');
  dir.addresses.set('B', `127.0.0.1:${port}`);
  const A = await startTransport(dir, cluster, 'A', { reliability: { peerDeadlineMs } });
  return { cluster, first, port, A };
}

describe('GrpcTransport when the receiving process dies', () => {
  it('fails the link with LinkClosedError counting unacknowledged messages after kill -9', async () => {
    const { first, A } = await setup('chaos-death', 1500);
    const sending = pump(A.t, 2_000_000);
    await until(() => first.progress.count > 50_000, 30_000, 'the receiver to get 50k events');
    await first.kill();
    await until(() => A.errors.length > 0, 15_000, 'the link to fail');
    const err = A.errors[0] as LinkClosedError;
    expect(err).toBeInstanceOf(LinkClosedError);
    expect(err.link).toBe('grpc:B');
    expect(err.message).toMatch(/no call to 127\.0\.0\.1:\d+ was established for 1500 ms/);
    expect(err.unacknowledged).toBeGreaterThan(0);
    const result = await sending;
    expect(result.error).toBe(err); // later sends throw the link's error
    expect(A.errors).toHaveLength(1);
    await A.t.close();
  });

  it('resumes with a receiver restarted on the same port: it gets exactly what was not acknowledged', async () => {
    const total = 300_000;
    const { cluster, first, port, A } = await setup('chaos-restart', 10_000);
    const sending = pump(A.t, total);
    await until(() => first.progress.count > total / 4, 30_000, 'a quarter delivered');
    const reconnects = A.t.linkMetrics()[0]!.reconnects;
    await first.kill();
    // Once the link has opened a new call, the dead call is gone and no ack can still arrive.
    await until(() => A.t.linkMetrics()[0]!.reconnects > reconnects, 10_000, 'a reconnect attempt');
    const acked = A.t.linkMetrics()[0]!.acked;
    expect(acked).toBeLessThan(total);

    const second = new Receiver(cluster, port);
    children.push(second);
    expect(await second.port).toBe(port);
    expect(await sending).toEqual({ sent: total });
    await until(() => second.progress.last === total - 1, 60_000, 'the rest delivered');
    await A.t.flush();

    expect(second.progress.violations).toEqual([]);
    expect(second.progress.first).toBe(acked); // nothing acknowledged is delivered again
    expect(second.progress.count).toBe(total - acked); // and nothing unacknowledged is lost
    // The first receiver reports every 20 ms and acks on its own cadence, and the kill can fall
    // between an ack and the next report: its last report may lag what it acknowledged. What it
    // did report arrived in order, once each.
    expect(first.progress.violations).toEqual([]);
    expect(first.progress.first).toBe(0);
    expect(first.progress.last).toBe(first.progress.count - 1);
    const m = A.t.linkMetrics()[0]!;
    expect(m).toMatchObject({ peer: 'B', unacknowledged: 0, acked: total });
    expect(m.resends).toBeGreaterThan(0);
    expect(A.errors).toEqual([]);
    expect(second.errors).toEqual([]);
    await A.t.close();
  });
});
