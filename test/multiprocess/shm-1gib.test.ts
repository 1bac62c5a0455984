/**
 * Slow: a 1 GiB event each way between two Server processes (no cap below 1 GiB).
 * About 15 s and a few GiB of memory; kept out of the sanitizer run, which runs the
 * other shared-memory tests against the instrumented addon.
 */
import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Application } from '../../src/runtime/application.js';
import { exchangeJob } from './exchange.js';

let app: Application | null = null;

describe('shared-memory rings between Server processes, at the size limit', () => {
  afterEach(async () => {
    await app?.stop();
  });

  it('moves a 1 GiB event each way through a 16 MiB ring', async () => {
    app = new Application({
      topology: {
        cluster: `shm-gib-${process.pid}`,
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
      jobOptions: { count: 1, promiseEvery: 1, payloadBytes: 2 ** 30 },
      ringBytes: 16 << 20,
    });
    await app.start();
    const results = (await app.wait()) as Map<string, { received: number; problems: string[] }>;
    await app.stop();
    for (const r of results.values()) {
      expect(r.problems).toEqual([]);
      expect(r.received).toBe(1);
    }
    expect(
      readdirSync('/dev/shm').filter((f) => f.startsWith(`disco.shm-gib-${process.pid}.`)),
    ).toEqual([]);
  }, 300_000);
});
