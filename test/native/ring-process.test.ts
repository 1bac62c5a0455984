/**
 * Two real processes through one ring: a forked producer (fixtures/ring-producer.mjs) writes
 * sequenced events, this process reads them with doorbell wake-ups (futex and pipe) and checks
 * order, loss and duplicates; a producer killed with SIGKILL is reported as PEER_DEAD, and its
 * half-written record is never delivered. /dev/shm is clean after each test.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import { BatchReader } from '../../src/native-batch.js';
import {
  NativeStatus,
  type NativeRingConsumer,
  RingEvent,
  createRing,
  loadNative,
  openRingConsumer,
  openRingProducer,
  unlinkRing,
} from '../../src/native.js';
import { ringName, testCluster } from './ring-helpers.js';

const PRODUCER = fileURLToPath(new URL('./fixtures/ring-producer.mjs', import.meta.url));
const CONSUMER = fileURLToPath(new URL('./fixtures/ring-consumer.mjs', import.meta.url));
/** Generous: PEER_DEAD is promised within 100 ms; this only catches a detection that never comes. */
const DEATH_DEADLINE_MS = 2_000;
const EXCHANGE_DEADLINE_MS = 45_000;

function startProducer(name: string, mode: string, count: number, perBatch: number, bytes = 32) {
  return fork(PRODUCER, [name, mode, String(count), String(perBatch), String(bytes)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** Reads everything the consumer gets, checking the sequence; resolves at PEER_CLOSED. */
function consume(
  consumer: NativeRingConsumer,
  reader: BatchReader,
  onWake: (drain: () => void) => void,
): Promise<{ received: number; problems: string[] }> {
  return new Promise((resolve) => {
    let expected = 0;
    const problems: string[] = [];
    const drain = () => {
      for (let batches = 0; batches < 64; batches++) {
        const s = reader.read(consumer);
        if (s === NativeStatus.RING_EMPTY) return;
        if (s === NativeStatus.PEER_CLOSED) {
          resolve({ received: expected, problems });
          return;
        }
        if (s !== NativeStatus.OK) {
          problems.push(`status ${s}`);
          resolve({ received: expected, problems });
          return;
        }
        for (let i = 0; i < reader.envelopeCount; i++) {
          const seq = new DataView(reader.view!.buffer, reader.payload(i).byteOffset).getFloat64(
            0,
            true,
          );
          if (seq !== expected && problems.length < 10)
            problems.push(`got ${seq}, want ${expected}`);
          if (reader.epoch(i) !== expected && problems.length < 10) problems.push(`epoch ${i}`);
          expected += 1;
        }
      }
      setImmediate(drain); // bounded per wake-up: yield to the event loop, then go on
    };
    onWake(drain);
    drain();
  });
}

describe('two processes through a ring', () => {
  for (const doorbell of ['futex', 'pipe'] as const) {
    it(`delivers 200k sequenced events in order, once, with ${doorbell} wake-ups`, async () => {
      const cluster = testCluster(`mp-${doorbell}`);
      const name = ringName(cluster);
      createRing(name, 1 << 18); // small: the producer must wait for space many times
      let wake: () => void = () => {};
      const consumer = openRingConsumer(
        name,
        (event) => {
          if (event === RingEvent.READY) wake();
        },
        { doorbell },
      );
      let socket: Socket | null = null;
      if (doorbell === 'pipe') {
        socket = new Socket({ fd: consumer.doorbellFd(), readable: true, writable: false });
      }
      const child = startProducer(name, 'stream', 200_000, 100);
      const exit = exited(child);
      const result = await Promise.race([
        consume(consumer, new BatchReader(), (drain) => {
          wake = drain;
          socket?.on('data', drain);
        }),
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error('exchange did not finish')), EXCHANGE_DEADLINE_MS),
        ),
      ]);
      expect(result.problems).toEqual([]);
      expect(result.received).toBe(200_000);
      expect(await exit).toEqual({ code: 0, signal: null });
      socket?.destroy();
      consumer.close();
      unlinkRing(name);
    });
  }

  it('reports a producer killed with SIGKILL as PEER_DEAD and never delivers its half record', async () => {
    const cluster = testCluster('kill');
    const name = ringName(cluster);
    createRing(name, 1 << 20);
    let deadAt = 0;
    const consumer = openRingConsumer(name, (event) => {
      if (event === RingEvent.PEER_DEAD) deadAt = Date.now();
    });
    const child = startProducer(name, 'hang', 1000, 50);
    const ready = await new Promise<{ written: number }>((resolve) =>
      child.once('message', (m) => resolve(m as { written: number })),
    );
    expect(ready.written).toBe(1000);
    const exit = exited(child);
    const killedAt = Date.now();
    child.kill('SIGKILL');
    expect((await exit).signal).toBe('SIGKILL');
    const start = Date.now();
    while (deadAt === 0 && Date.now() - start < DEATH_DEADLINE_MS) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(deadAt, 'PEER_DEAD was not reported').toBeGreaterThan(0);
    console.log(`PEER_DEAD reported ${deadAt - killedAt} ms after SIGKILL`);
    expect(consumer.checkPeer()).toBe(NativeStatus.PEER_DEAD);
    // Everything committed before the kill is there, and nothing more.
    const reader = new BatchReader();
    let received = 0;
    let s: number;
    while ((s = reader.read(consumer)) === NativeStatus.OK) received += reader.envelopeCount;
    expect(s).toBe(NativeStatus.RING_EMPTY);
    expect(received).toBe(1000);
    consumer.close();
    unlinkRing(name);
  });

  it('reports a consumer killed with SIGKILL to the producer, whose writes then fail', async () => {
    const cluster = testCluster('kill-consumer');
    const name = ringName(cluster);
    createRing(name, 1 << 16);
    let dead = false;
    const producer = openRingProducer(name, (event) => {
      if (event === RingEvent.PEER_DEAD) dead = true;
    });
    const child = fork(CONSUMER, [name], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await new Promise((resolve) => child.once('message', resolve));
    const frame = loadNative().testing.buildSampleFrame();
    expect(producer.writeFrame(frame)).toBe(NativeStatus.OK);
    const exit = exited(child);
    child.kill('SIGKILL');
    expect((await exit).signal).toBe('SIGKILL');
    const start = Date.now();
    while (!dead && Date.now() - start < DEATH_DEADLINE_MS) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(dead, 'PEER_DEAD was not reported').toBe(true);
    expect(producer.writeFrame(frame)).toBe(NativeStatus.PEER_DEAD);
    expect(producer.checkPeer()).toBe(NativeStatus.PEER_DEAD);
    producer.close();
    unlinkRing(name);
  });
});
