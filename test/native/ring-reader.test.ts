/**
 * RingReader (src/transports/ring-reader.ts), the JS reader of an inbound ring with its idle
 * strategies: polling a window after traffic (the default), a reader that always sleeps
 * (spinNs 0), and spin mode. Each delivers every record of a forked producer that writes in
 * bursts with pauses, in order and once, through both doorbells; a sleeping reader is woken; a
 * process whose only work is an open reader exits by itself. /dev/shm is clean after each test.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import type { DiscoError } from '../../src/errors.js';
import type { BatchReader } from '../../src/native-batch.js';
import {
  NativeStatus,
  type RingDoorbellOptions,
  createRing,
  loadNative,
  openRingProducer,
  unlinkRing,
} from '../../src/native.js';
import { RingReader } from '../../src/transports/ring-reader.js';
import { ringName, testCluster, waitFor } from './ring-helpers.js';

const PRODUCER = fileURLToPath(new URL('./fixtures/ring-producer.mjs', import.meta.url));
const IDLE_READER = fileURLToPath(new URL('./fixtures/ring-idle-reader.mjs', import.meta.url));
const DEADLINE_MS = 5_000;
const EXCHANGE_DEADLINE_MS = 45_000;
/** An idle spin-mode reader lets go after 100 ms; this only catches a process that never exits. */
const EXIT_DEADLINE_MS = 10_000;

function newRing(what: string, capacity = 1 << 18): string {
  const cluster = testCluster(what);
  const name = ringName(cluster);
  createRing(name, capacity);
  return name;
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** Counts what a reader delivers and checks the sequence numbers the producer fixture writes. */
class SequenceSink {
  received = 0;
  readonly problems: string[] = [];
  error: DiscoError | null = null;

  readonly handlers = {
    onBatch: (r: BatchReader) => {
      for (let i = 0; i < r.envelopeCount; i++) {
        const payload = r.payload(i) as Uint8Array;
        const seq = new DataView(payload.buffer, payload.byteOffset).getFloat64(0, true);
        if (seq !== this.received && this.problems.length < 10) {
          this.problems.push(`got ${seq}, want ${this.received}`);
        }
        this.received += 1;
      }
    },
    onError: (err: DiscoError) => {
      this.error = err;
    },
  };
}

const STRATEGIES: readonly { label: string; options: RingDoorbellOptions }[] = [
  { label: 'the default window', options: {} },
  { label: 'a reader that always sleeps', options: { spinNs: 0 } },
  { label: 'spin mode', options: { spinMode: true } },
];

describe('RingReader', () => {
  for (const { label, options } of STRATEGIES) {
    for (const doorbell of ['futex', 'pipe'] as const) {
      it(`delivers every record of a bursty producer in order, once, with ${label} (${doorbell})`, async () => {
        const name = newRing(`reader-${doorbell}`);
        const sink = new SequenceSink();
        const reader = new RingReader(name, { ...options, doorbell }, sink.handlers);
        const count = 30_000;
        const child = fork(PRODUCER, [name, 'bursts', String(count), '50', '16'], {
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        const exit = exited(child);
        await waitFor(
          () => reader.done || sink.error !== null,
          EXCHANGE_DEADLINE_MS,
          'the producer to close the ring',
        );
        expect(sink.error).toBeNull();
        expect(sink.problems).toEqual([]);
        expect(sink.received).toBe(count);
        expect(await exit).toEqual({ code: 0, signal: null });
        reader.close();
        unlinkRing(name);
      });
    }
  }

  for (const { label, options } of STRATEGIES.slice(0, 2)) {
    for (const doorbell of ['futex', 'pipe'] as const) {
      it(`wakes a sleeping reader (${label}, ${doorbell}), also after expectTraffic`, async () => {
        const name = newRing(`wake-${doorbell}`, 1 << 16);
        const sink = new SequenceSink();
        const reader = new RingReader(name, { ...options, doorbell }, sink.handlers);
        const producer = openRingProducer(name, () => {});
        const frame = loadNative().testing.buildSampleFrame();
        for (let round = 1; round <= 3; round++) {
          await waitFor(() => reader.sleeping, DEADLINE_MS, 'the reader to sleep');
          if (round === 3) reader.expectTraffic(); // polls again, then sleeps again
          await waitFor(() => reader.sleeping, DEADLINE_MS, 'the reader to sleep again');
          expect(producer.writeFrame(frame)).toBe(NativeStatus.OK);
          // The sample frame carries two envelopes.
          await waitFor(() => sink.received === 2 * round, DEADLINE_MS, 'the wake-up');
        }
        expect(sink.error).toBeNull();
        producer.close();
        await waitFor(() => reader.done, DEADLINE_MS, 'the producer close to be seen');
        reader.close();
        unlinkRing(name);
      });
    }
  }

  it('reads nothing while paused and everything after resume()', async () => {
    const name = newRing('pause', 1 << 16);
    const sink = new SequenceSink();
    const reader = new RingReader(name, { doorbell: 'pipe', spinMode: true }, sink.handlers);
    reader.pause();
    const producer = openRingProducer(name, () => {});
    expect(producer.writeFrame(loadNative().testing.buildSampleFrame())).toBe(NativeStatus.OK);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(sink.received).toBe(0);
    reader.resume();
    await waitFor(() => sink.received === 2, DEADLINE_MS, 'the records after resume');
    producer.close();
    reader.close();
    unlinkRing(name);
  });

  for (const { label, options } of STRATEGIES) {
    for (const doorbell of ['futex', 'pipe'] as const) {
      it(`lets an otherwise idle process exit with ${label} (${doorbell})`, async () => {
        const name = newRing(`idle-${doorbell}`, 1 << 16);
        const child = fork(IDLE_READER, [name, JSON.stringify({ ...options, doorbell })], {
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        const exit = exited(child);
        const result = await Promise.race([
          exit,
          new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), EXIT_DEADLINE_MS)),
        ]);
        if (result === 'hung') child.kill('SIGKILL');
        expect(result).toEqual({ code: 0, signal: null });
        unlinkRing(name);
      });
    }
  }
});
