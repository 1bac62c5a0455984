import { describe, expect, it } from 'vitest';
import { TcpProxy } from '../fixtures/grpc/tcp-proxy.js';
import { Directory, sendAll, startTransport, uniqueCluster } from '../fixtures/grpc/pair.js';
import {
  fifoViolation,
  RecordingNode,
  seqEvent,
  seqPromise,
  until,
} from '../fixtures/grpc/recording-node.js';

const EVENTS = 1_000_000;
/** One promise after every PROMISE_EVERY events. */
const PROMISE_EVERY = 100;

describe('GrpcTransport through a TCP proxy that cuts connections', () => {
  it(`delivers ${EVENTS} events and their promises exactly once and in order while connections are cut`, async () => {
    const cluster = uniqueCluster('chaos-proxy');
    const dir = new Directory();
    dir.placement.set('b1', 'B');
    const B = await startTransport(dir, cluster, 'B');
    const b1 = new RecordingNode('b1');
    B.t.attach(b1);
    const [host, port] = dir.addressOf('B').split(':') as [string, string];
    const proxy = new TcpProxy(host, Number(port));
    dir.addresses.set('B', `127.0.0.1:${await proxy.listen()}`);
    const A = await startTransport(dir, cluster, 'A');

    // Chaos: at random intervals cut every connection, sometimes refuse new ones a while.
    let chaos = true;
    let cuts = 0;
    const chaosLoop = (async () => {
      while (chaos) {
        await sleep(20 + Math.random() * 150);
        if (!chaos) break;
        proxy.cut();
        cuts++;
        if (Math.random() < 0.3) {
          proxy.refuse();
          await sleep(Math.random() * 200);
          proxy.accept();
        }
      }
    })();

    const started = Date.now();
    const total = EVENTS + EVENTS / PROMISE_EVERY;
    const per = PROMISE_EVERY + 1;
    await sendAll(A.t, total, (i) =>
      i % per === PROMISE_EVERY
        ? seqPromise('a1', 'b1', Math.floor(i / per))
        : seqEvent('a1', 'b1', i - Math.floor(i / per)),
    );
    // Keep cutting until most has arrived, so resends happen under load.
    await until(() => b1.eventCount >= EVENTS * 0.9, 120_000, '90% delivered');
    chaos = false;
    await chaosLoop;
    proxy.accept();
    await until(
      () => b1.eventCount >= EVENTS && b1.promiseCount >= EVENTS / PROMISE_EVERY,
      60_000,
      'everything delivered',
    );
    await A.t.flush();
    const seconds = (Date.now() - started) / 1000;

    expect(fifoViolation(b1.events.get('a1')!, EVENTS)).toBeNull();
    expect(fifoViolation(b1.promises.get('a1')!, EVENTS / PROMISE_EVERY)).toBeNull();
    const [m] = A.t.linkMetrics();
    const [r] = B.t.linkMetrics();
    console.log(
      `chaos: ${EVENTS} events + ${EVENTS / PROMISE_EVERY} promises in ${seconds.toFixed(1)} s, ` +
        `${cuts} cuts, ${m!.reconnects} reconnects, ${m!.resends} frames resent, ` +
        `${r!.duplicatesDropped} duplicates dropped`,
    );
    expect(cuts).toBeGreaterThan(0);
    expect(m!.reconnects).toBeGreaterThan(0);
    expect(m!.resends).toBeGreaterThan(0);
    // duplicatesDropped is logged, not asserted: the receiver acks at once on every new call,
    // so the sender trims before it resends and duplicates need an ack lost in between
    // (test/grpc/link.test.ts drives that case by hand).
    expect(m!.unacknowledged).toBe(0);
    expect(m!.acked).toBe(total);
    expect(A.errors).toEqual([]);
    expect(B.errors).toEqual([]);
    await A.t.close();
    await B.t.close();
    await proxy.close();
  }, 180_000);

  it('fails an unreliable link when its call breaks instead of losing messages silently', async () => {
    const cluster = uniqueCluster('chaos-unreliable');
    const dir = new Directory();
    dir.placement.set('b1', 'B');
    const B = await startTransport(dir, cluster, 'B');
    const b1 = new RecordingNode('b1');
    B.t.attach(b1);
    const [host, port] = dir.addressOf('B').split(':') as [string, string];
    const proxy = new TcpProxy(host, Number(port));
    dir.addresses.set('B', `127.0.0.1:${await proxy.listen()}`);
    const A = await startTransport(dir, cluster, 'A', { reliability: { enabled: false } });
    A.t.sendEvent(seqEvent('a1', 'b1', 0));
    await until(() => b1.eventCount === 1, 10_000, 'the first event');
    proxy.cut();
    await until(() => A.errors.length > 0, 10_000, 'the link to fail');
    expect(A.errors[0]!.message).toMatch(/reliability is off: frames in flight may be lost/);
    await A.t.close();
    await B.t.close();
    await proxy.close();
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
