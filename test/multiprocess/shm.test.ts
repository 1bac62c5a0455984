/**
 * The shared-memory link between real Server processes: volume, order and size.
 */
import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Application } from '../../src/runtime/application.js';
import { exchangeJob, type ExchangeResult } from './exchange.js';

let seq = 0;
const running: Application[] = [];

function app(
  options: { count: number; promiseEvery: number; payloadBytes: number },
  ringBytes?: number,
) {
  const a = new Application({
    topology: {
      cluster: `shm-mp-${process.pid}-${++seq}`,
      simprocs: ['p'],
      machines: [
        {
          name: 'm',
          servers: [
            { name: 's0', nodes: ['x'] },
            { name: 's1', nodes: ['y'] },
          ],
        },
      ],
    },
    jobModule: exchangeJob,
    jobOptions: options,
    ...(ringBytes !== undefined ? { ringBytes } : {}),
  });
  running.push(a);
  return a;
}

async function run(a: Application): Promise<ExchangeResult[]> {
  await a.start();
  const results = [...((await a.wait()) as Map<string, ExchangeResult>).values()];
  await a.stop();
  expect(
    readdirSync('/dev/shm').filter((f) => f.startsWith(`disco.${a.topology.cluster}.`)),
  ).toEqual([]);
  return results;
}

describe('shared-memory rings between Server processes', () => {
  afterEach(async () => {
    await Promise.all(running.splice(0).map((a) => a.stop()));
  });

  it('delivers 1,000,000 events with interleaved promises exactly once and in order', async () => {
    // Each of the two processes sends 500,000 events (and 5,000 promises) to the other.
    const results = await run(app({ count: 500_000, promiseEvery: 100, payloadBytes: 16 }));
    let events = 0;
    for (const r of results) {
      expect(r.problems).toEqual([]);
      expect(r.received).toBe(r.expectedEvents);
      expect(r.promises).toBe(r.expectedPromises);
      events += r.received;
    }
    expect(events).toBe(1_000_000);
  }, 120_000);

  it('moves 64 MiB events through a 4 MiB ring, intact and in order', async () => {
    const results = await run(
      app({ count: 3, promiseEvery: 1, payloadBytes: 64 * 1024 * 1024 }, 4 << 20),
    );
    for (const r of results) {
      expect(r.problems).toEqual([]);
      expect(r.received).toBe(3);
    }
  }, 120_000);
});
