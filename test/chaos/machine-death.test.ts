/**
 * A whole machine dies: its Application (the member of a two-machine cluster, started
 * by the CLI as a machine would run it) is killed with SIGKILL in the middle of a job.
 * The leader's gateway keeps trying to reach it until the link's deadline, then the
 * run fails with LinkClosedError instead of hanging; nothing is left in /dev/shm
 * once the next run of the cluster starts.
 */

import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LinkClosedError } from '../../src/errors.js';
import { clusterSegmentPrefix, removeStaleRings } from '../../src/native.js';
import { Application } from '../../src/runtime/application.js';
import { freePort, portOpen } from '../fixtures/grpc/pair.js';
import { exchangeJob } from '../multiprocess/exchange.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

describe('a member machine killed mid-run', () => {
  it('fails the leader run with LinkClosedError after the link deadline', async () => {
    const cluster = `machine-death-${process.pid}`;
    const file = join(mkdtempSync(join(tmpdir(), 'disco-death-')), 'cluster.json');
    const ports = [await freePort(), await freePort()];
    writeFileSync(
      file,
      JSON.stringify({
        cluster,
        simprocs: ['p'],
        machines: ['a', 'b'].map((m, i) => ({
          name: m,
          grpcPort: ports[i],
          servers: [{ name: 's0', nodes: [`${m}0`, `${m}1`] }],
        })),
        grpc: { peerDeadlineMs: 2000 },
      }),
    );

    const member = spawn(process.execPath, [CLI, 'run', file, '--machine', 'b', '--quiet'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const leader = new Application({
      topology: file,
      machine: 'a',
      jobModule: exchangeJob,
      // Far more than fits before the kill: the job is mid-stream when b dies.
      jobOptions: { count: 10_000_000, promiseEvery: 1000, payloadBytes: 64 },
    });
    try {
      // The deadline under test is the one after the kill: a member still starting (slow on
      // a loaded machine) would fail the leader's start against the same 2 s deadline.
      await portOpen(ports[1]!);
      await leader.start();
      await sleep(500);
      member.kill('SIGKILL');
      const failure = await leader.wait().then(
        () => null,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(LinkClosedError);
      expect((failure as LinkClosedError).message).toContain('grpc:b');
    } finally {
      member.kill('SIGKILL');
      await leader.stop();
    }
    // b's Servers saw their parent die and exited; its rings are a dead run's leftovers.
    await sleep(200);
    removeStaleRings(clusterSegmentPrefix(cluster));
    expect(readdirSync('/dev/shm').filter((f) => f.startsWith(`disco.${cluster}.`))).toEqual([]);
  }, 60_000);
});
