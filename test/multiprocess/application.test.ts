import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { Application, JobFailedError, StoppedError } from '../../src/runtime/application.js';
import { PeerDeadError, TimeoutError } from '../../src/errors.js';
import { exchangeJob, type ExchangeResult } from './exchange.js';

const echoJob = fileURLToPath(new URL('./fixtures/echo-job.mjs', import.meta.url));
const slowLoadJob = fileURLToPath(new URL('./fixtures/slow-load-job.mjs', import.meta.url));
const lateGoJob = fileURLToPath(new URL('./fixtures/late-go-job.mjs', import.meta.url));
const noInboxJob = fileURLToPath(new URL('./fixtures/no-inbox-job.mjs', import.meta.url));
const failJob = fileURLToPath(new URL('./fixtures/fail-job.mjs', import.meta.url));
let seq = 0;

function topology(servers: number, nodesPerServer: number) {
  return {
    cluster: `mp-${process.pid}-${++seq}`,
    simprocs: ['p'],
    machines: [
      {
        name: 'm',
        servers: Array.from({ length: servers }, (_, s) => ({
          name: `s${s}`,
          nodes: Array.from({ length: nodesPerServer }, (_, n) => `n${s}_${n}`),
        })),
      },
    ],
  };
}

/** Shared-memory segments of a cluster still in /dev/shm. */
function segmentsOf(cluster: string): string[] {
  return readdirSync('/dev/shm').filter((f) => f.startsWith(`disco.${cluster}.`));
}

const markers: string[] = [];
/**
 * Environment for slow-load-job.mjs and late-go-job.mjs: the second Server to load them is
 * late by `delayMs`. The marker file is removed after the test.
 */
function slowLoad(delayMs: number): NodeJS.ProcessEnv {
  const marker = join(tmpdir(), `disco-slow-load-${process.pid}-${++seq}`);
  markers.push(marker);
  return { DISCO_TEST_LOAD_MARKER: marker, DISCO_TEST_LOAD_DELAY_MS: String(delayMs) };
}

const running: Application[] = [];
/** Every Application a test starts is stopped, also when an assertion fails first. */
function track(app: Application): Application {
  running.push(app);
  return app;
}

describe('Application with real Server processes', () => {
  afterEach(async () => {
    await Promise.all(running.splice(0).map((a) => a.stop()));
    for (const marker of markers.splice(0)) rmSync(marker, { force: true });
  });

  it('runs a job in every Server; events cross processes exactly once and in order', async () => {
    const app = track(
      new Application({
        topology: topology(3, 2),
        jobModule: exchangeJob,
        jobOptions: { count: 5000, promiseEvery: 100, payloadBytes: 64 },
      }),
    );
    await app.start();
    expect(app.link).toBe('shm');
    expect(app.ringNames()).toHaveLength(6); // one per ordered pair of 3 Servers
    const results = (await app.wait()) as Map<string, ExchangeResult>;
    await app.stop();
    expect(segmentsOf(app.topology.cluster)).toEqual([]);
    expect([...results.keys()].sort()).toEqual(['s0', 's1', 's2']);
    for (const r of results.values()) {
      expect(r.problems).toEqual([]);
      expect(r.received).toBe(r.expectedEvents);
      expect(r.promises).toBe(r.expectedPromises);
      expect(r.expectedEvents).toBe(2 * 4 * 5000);
    }
  });

  it('reports a job failure with the child error name and message', async () => {
    const app = track(
      new Application({
        topology: topology(2, 1),
        jobModule: exchangeJob,
        jobOptions: { count: 'ten' },
      }),
    );
    await app.start();
    await expect(app.wait()).rejects.toThrow(JobFailedError);
    await expect(app.wait()).rejects.toThrow(/server s\d failed: TypeError: option count/);
    await app.stop();
  });

  it('reports the earliest failure, not the first Server to fail in topology order', async () => {
    // s1 fails first; s0 fails 150 ms later, within the 200 ms wait for a root cause.
    const app = track(
      new Application({
        topology: topology(2, 1),
        jobModule: failJob,
        jobOptions: { delayMs: { s0: 150, s1: 0 } },
      }),
    );
    await app.start();
    await expect(app.wait()).rejects.toThrow(/^server s1 failed: Error: s1 failed on purpose$/);
    await app.stop();
  });

  it('reports a Server killed with SIGKILL, with the signal, and tells its siblings', async () => {
    const app = track(
      new Application({
        topology: topology(2, 1),
        jobModule: exchangeJob,
        // Far more than fits in the deadline, so the job is still running when killed.
        jobOptions: { count: 10_000_000, promiseEvery: 1000, payloadBytes: 8 },
      }),
    );
    const exits: [string, number | null, string | null][] = [];
    app.on('exit', (name: string, code: number | null, signal: string | null) =>
      exits.push([name, code, signal]),
    );
    await app.start();
    process.kill(app.pidOf('s1')!, 'SIGKILL');
    const err = await app.wait().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PeerDeadError);
    expect((err as Error).message).toMatch(/server s1 \(pid \d+\) is dead: killed by SIGKILL/);
    await app.stop();
    expect(segmentsOf(app.topology.cluster)).toEqual([]);
    expect(exits.find(([n]) => n === 's1')?.[2]).toBe('SIGKILL');
    expect(exits.find(([n]) => n === 's0')).toBeDefined(); // the sibling ended too, not hung
  });

  // 100,000 events sent at once are more than a controller holds for a simproc with no inbox
  // yet (65,536): each case makes one Server late by a second, and every event must still
  // reach its inbox. A job module that loads late: the job is loaded before the run starts.
  // A 'go' that comes late: the Server leaves its peers' events unread (in the rings, or the
  // sockets) until its job has set its inboxes.
  it.each([
    ['its job module loads', 'shm', slowLoadJob],
    ["'go' comes", 'shm', lateGoJob],
    ["'go' comes", 'uds', lateGoJob],
  ] as const)(
    'delivers all a peer sent at once to a Server where %s late (%s)',
    async (_late, link, job) => {
      const app = track(
        new Application({
          topology: topology(2, 1),
          link,
          jobModule: job,
          jobOptions: { count: 100_000, promiseEvery: 100, payloadBytes: 16 },
          env: slowLoad(1000),
        }),
      );
      await app.start();
      const results = (await app.wait()) as Map<string, ExchangeResult>;
      await app.stop();
      for (const r of results.values()) {
        expect(r.problems).toEqual([]);
        expect(r.received).toBe(100_000);
        expect(r.promises).toBe(1000);
      }
    },
  );

  it('names the Server that was not ready in time, and stops all without killing any', async () => {
    // One Server's job module takes a minute to load (slow-load-job.mjs): start() must give up
    // after startTimeoutMs naming that Server, and stop() must end both children (the one
    // still loading and the one ready but never started) by asking them, not by SIGKILL at
    // the stop timeout.
    const app = track(
      new Application({
        topology: topology(2, 1),
        jobModule: slowLoadJob,
        jobOptions: { count: 10, promiseEvery: 5, payloadBytes: 8 },
        env: slowLoad(60_000),
        // Room for the other Server to be ready even under the sanitizers on a loaded machine
        // (it once took more than 2 s there), far below the minute of the slow one.
        startTimeoutMs: 15_000,
        stopTimeoutMs: 20_000,
      }),
    );
    const exits: [string, number | null, string | null][] = [];
    app.on('exit', (name: string, code: number | null, signal: string | null) =>
      exits.push([name, code, signal]),
    );
    const err = await app.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as Error).message).toMatch(
      /^starting the Server processes \(not ready: s[01]\) did not finish within 15000 ms$/,
    );
    await app.stop();
    expect(exits.sort()).toEqual([
      ['s0', 0, null],
      ['s1', 0, null],
    ]);
    expect(segmentsOf(app.topology.cluster)).toEqual([]);
  }, 60_000);

  it('gives up starting when stopped first; start() and wait() both say so', async () => {
    const app = track(
      new Application({
        topology: topology(2, 1),
        jobModule: exchangeJob,
        jobOptions: { count: 10, promiseEvery: 5, payloadBytes: 8 },
        startTimeoutMs: 60_000,
        stopTimeoutMs: 20_000,
      }),
    );
    const exits: [string, number | null, string | null][] = [];
    app.on('exit', (name: string, code: number | null, signal: string | null) =>
      exits.push([name, code, signal]),
    );
    const started = app.start().catch((e: unknown) => e);
    await app.stop();
    const err = await started;
    expect(err).toBeInstanceOf(StoppedError);
    expect((err as Error).message).toBe(
      'starting the Server processes: the Application was stopped first',
    );
    expect(exits.sort()).toEqual([
      ['s0', 0, null],
      ['s1', 0, null],
    ]);
    // No job ran, so none reports: wait() says why instead of waiting for ever.
    const waited = await app.wait().catch((e: unknown) => e);
    expect(waited).toBeInstanceOf(StoppedError);
    expect((waited as Error).message).toBe('the run: the Application was stopped first');
    expect(segmentsOf(app.topology.cluster)).toEqual([]);
  }, 30_000);

  it('fails the job, not the process, when a controller error goes unhandled', async () => {
    const app = track(
      new Application({
        topology: topology(2, 1),
        jobModule: noInboxJob,
        jobOptions: { count: 70_000, idle: 's1' },
      }),
    );
    const exits: [string, number | null][] = [];
    app.on('exit', (name: string, code: number | null) => exits.push([name, code]));
    await app.start();
    const err = await app.wait().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobFailedError);
    expect((err as Error).message).toMatch(
      /^server s1 failed: UndeliverableError: .*n1_0\/p.*maxHeldMessages/,
    );
    await app.stop();
    expect(exits.find(([n]) => n === 's1')?.[1]).toBe(0);
  });

  it('keeps job messages that arrive before the job listens, in order', async () => {
    const app = track(
      new Application({
        topology: topology(2, 1),
        jobModule: echoJob,
        jobOptions: { expect: 3 },
      }),
    );
    const echoed: [string, unknown][] = [];
    app.on('job', (server: string, payload: unknown) => echoed.push([server, payload]));
    await app.start();
    for (const m of ['a', 'b', 'c']) app.send('s0', m);
    app.send('s1', 'x');
    app.send('s1', 'y');
    app.send('s1', 'z');
    const results = await app.wait();
    await app.stop();
    expect(results.get('s0')).toEqual(['a', 'b', 'c']);
    expect(results.get('s1')).toEqual(['x', 'y', 'z']);
    expect(echoed.filter(([s]) => s === 's0').map(([, p]) => p)).toEqual(['a', 'b', 'c']);
  });

  it('runs the same job over Unix sockets when asked to', async () => {
    const app = track(
      new Application({
        topology: topology(2, 2),
        link: 'uds',
        jobModule: exchangeJob,
        jobOptions: { count: 2000, promiseEvery: 100, payloadBytes: 16 },
      }),
    );
    await app.start();
    expect(app.ringNames()).toEqual([]);
    const results = (await app.wait()) as Map<string, ExchangeResult>;
    await app.stop();
    for (const r of results.values()) {
      expect(r.problems).toEqual([]);
      expect(r.received).toBe(r.expectedEvents);
    }
  });

  it('removes segments a dead run of the same cluster left behind', async () => {
    const topo = topology(2, 1);
    const stale = `disco.${topo.cluster}.9.9-9.8`;
    const native = new URL('../../dist/native.js', import.meta.url).href;
    // A process that creates a segment and dies: its creator identity is then dead.
    execFileSync(process.execPath, [
      '--input-type=module',
      '-e',
      `const { createRing } = await import(${JSON.stringify(native)}); createRing(${JSON.stringify(stale)}, 65536);`,
    ]);
    expect(segmentsOf(topo.cluster)).toEqual([stale]);
    const app = track(
      new Application({
        topology: topo,
        jobModule: exchangeJob,
        jobOptions: { count: 10, promiseEvery: 5, payloadBytes: 8 },
      }),
    );
    await app.start();
    expect(segmentsOf(topo.cluster)).not.toContain(stale);
    await app.wait();
    await app.stop();
    expect(segmentsOf(topo.cluster)).toEqual([]);
  });
});
