import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runPhold, type PholdResult } from '../../src/demo/phold.js';
import { runPholdAcrossProcesses } from '../../src/demo/phold-coordinator.js';

const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
/** Longest a spawned command may take before the test kills it. */
const COMMAND_DEADLINE_MS = 30_000;

function handledPerNode(result: PholdResult): number[][] {
  return result.replications.map((r) => r.nodes.map((n) => n.handled));
}

/** What every finished run across processes must satisfy. */
function expectConsistent(result: PholdResult): void {
  expect(result.conservation).toEqual({ ok: true, problems: [] });
  expect(result.eventsHandled).toBeGreaterThan(0);
  for (const rep of result.replications) {
    expect(rep.windows).toBeGreaterThan(0);
    expect(rep.nodes.map((n) => n.windows)).toEqual(rep.nodes.map(() => rep.windows));
    expect(rep.inFlight).toBe(0);
  }
  const routes = Object.values(result.sentVia);
  expect(routes.reduce((s, r) => s + r.events, 0)).toBe(result.eventsSent);
  // Between Server processes of one machine, events take the shared-memory rings.
  expect(result.sentVia['shm']?.events).toBeGreaterThan(0);
  const shm = result.transports.find((t) => t.name === 'shm');
  expect(shm?.eventsDelivered).toBe(result.sentVia['shm']?.events);
}

/** Process ids whose parent is `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // The process ended while we looked: not a child any more.
    }
  }
  return out;
}

/** Whether `pid` still runs (a zombie does not). */
function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Server processes seen while the command ran. */
  children: number[];
  pid: number;
}

/**
 * Runs `node dist/cli.js ...args`; `onProgress` is called on the first progress
 * line, with the command's pid, once its Server processes are running.
 */
function runCli(args: string[], onProgress?: (pid: number, stderr: () => string) => void) {
  return new Promise<CliRun>((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: COMMAND_DEADLINE_MS,
    });
    const run: CliRun = { code: null, stdout: '', stderr: '', children: [], pid: child.pid! };
    child.stdout.on('data', (d: Buffer) => (run.stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      const first = !run.stderr.includes('phold: ');
      run.stderr += d.toString();
      if (first && run.stderr.includes('phold: ')) {
        run.children = childrenOf(run.pid);
        onProgress?.(run.pid, () => run.stderr);
      }
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ ...run, code }));
  });
}

function expectCleanAfter(run: CliRun): void {
  expect(run.children.length).toBeGreaterThanOrEqual(2);
  expect(run.children.filter(isRunning)).toEqual([]);
  expect(readdirSync('/dev/shm').filter((f) => f.includes(`phold-${run.pid}-`))).toEqual([]);
}

describe('PHOLD across Server processes', () => {
  it('handles exactly the events of the single-process run for the same seed and end time', async () => {
    const options = { nodes: 6, eventsPerNode: 100, endTime: 20, seed: 11, replications: 2 };
    const single = await runPhold(options);
    const spread = await runPholdAcrossProcesses(options, { processes: 3 });
    expectConsistent(spread);
    expect(spread.processes).toBe(3);
    expect(spread.replications.map((r) => r.windows)).toEqual([20, 20]);
    expect(handledPerNode(spread)).toEqual(handledPerNode(single));
    expect(spread.remoteEvents).toBe(single.remoteEvents);
    expect(spread.promisesSent).toBe(single.promisesSent);
  });

  it('stops every node of every process on one window when the duration is up', async () => {
    const result = await runPholdAcrossProcesses(
      { nodes: 6, eventsPerNode: 100, duration: 0.5, replications: 2 },
      { processes: 3 },
    );
    expectConsistent(result);
    expect(result.options.endTime).toBeNull();
  });

  it('stops on one window when its signal aborts while windows are in flight', async () => {
    const stop = new AbortController();
    const result = await runPholdAcrossProcesses(
      { nodes: 4, eventsPerNode: 200, duration: 60 },
      { processes: 2 },
      {
        signal: stop.signal,
        progressIntervalMs: 10,
        onProgress: (p) => {
          if (p.windows >= 3) stop.abort();
        },
      },
    );
    expectConsistent(result);
    expect(result.replications[0]!.windows).toBeGreaterThanOrEqual(3);
  });

  it('aborts at once when cancelled, leaving no Server process behind', async () => {
    const cancel = new AbortController();
    let children: number[] = [];
    const err: unknown = await runPholdAcrossProcesses(
      { nodes: 4, eventsPerNode: 200, duration: 60 },
      { processes: 2 },
      {
        cancel: cancel.signal,
        progressIntervalMs: 10,
        onProgress: (p) => {
          if (p.windows < 2 || cancel.signal.aborted) return;
          children = childrenOf(process.pid);
          cancel.abort(new Error('cancelled by the test'));
        },
      },
    ).catch((e: unknown) => e);
    expect((err as Error).message).toBe('cancelled by the test');
    expect(children.length).toBeGreaterThanOrEqual(2);
    expect(children.filter(isRunning)).toEqual([]);
  });
});

describe('disco CLI across processes', () => {
  it('runs a topology file with `disco run`, one process per Server, as in one process', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'disco-run-'));
    const file = join(dir, 'cluster.json');
    const topology = {
      cluster: `run-${process.pid}`,
      simprocs: ['lp'],
      machines: [
        {
          name: 'here',
          servers: [
            { name: 'a', nodes: ['n0', 'n1', 'n2'] },
            { name: 'b', nodes: ['n3', 'n4'] },
            { name: 'idle', nodes: [] },
          ],
        },
      ],
    };
    writeFileSync(file, JSON.stringify(topology));
    const run = await runCli(['run', file, '--end-time', '20', '--seed', '3', '--json']);
    expect(run.stderr).not.toContain('error');
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout) as PholdResult;
    expectConsistent(result);
    expect(result.processes).toBe(3);
    expect(result.options.nodes).toBe(5);
    const single = await runPhold({ nodes: 5, endTime: 20, seed: 3 });
    expect(handledPerNode(result)).toEqual(handledPerNode(single));
  });

  it('runs `disco phold` across several processes by default', async () => {
    const explicit = availableParallelism() < 2 ? ['--processes', '2'] : [];
    const run = await runCli(['phold', '--duration', '1', '--json', ...explicit]);
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout) as PholdResult;
    expectConsistent(result);
    expect(result.processes).toBeGreaterThanOrEqual(2);
    expectCleanAfter(run);
  });

  it('stops cleanly on SIGINT: one window, a summary, exit code 0, no process left', async () => {
    const run = await runCli(['phold', '--processes', '2', '--duration', '60', '--json'], (pid) =>
      process.kill(pid, 'SIGINT'),
    );
    expect(run.stderr).toContain('SIGINT: stopping every node on the same window');
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout) as PholdResult;
    expectConsistent(result);
    expectCleanAfter(run);
  });

  it('aborts on a second SIGTERM with exit code 143, no process left', async () => {
    // Slow windows, so the run is still stopping when the second signal comes.
    const args = ['phold', '--processes', '2', '--nodes', '4', '--events-per-node', '50000'];
    const run = await runCli([...args, '--duration', '60', '--json'], (pid, stderr) => {
      process.kill(pid, 'SIGTERM');
      const again = setInterval(() => {
        if (!stderr().includes('SIGTERM: stopping')) return;
        clearInterval(again);
        process.kill(pid, 'SIGTERM');
      }, 1);
    });
    expect(run.code).toBe(143);
    expect(run.stderr).toContain('the PHOLD run was aborted: interrupted by a second SIGTERM');
    expect(run.stdout).toBe('');
    expectCleanAfter(run);
  });
});
