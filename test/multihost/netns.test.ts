/**
 * Three "machines" on one host: network namespaces joined through a bridge, each
 * running its own Application of one cluster (`disco run --machine`), so every
 * envelope between machines crosses a real network interface and a real gRPC link.
 *
 * Needs root (ip netns); CI runs as root. Everything created here is named after
 * this process and removed afterwards, also when a test fails.
 */

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const TAG = `d${process.pid % 100000}`;
const HUB = `${TAG}-hub`;
const MACHINES = ['a', 'b', 'c'] as const;
const ns = (m: string): string => `${TAG}-${m}`;
const address = (i: number): string => `10.231.${process.pid % 200}.${i + 1}`;

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function setUpNetwork(): void {
  ip('netns', 'add', HUB);
  ip('-n', HUB, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', HUB, 'link', 'set', 'br0', 'up');
  MACHINES.forEach((m, i) => {
    ip('netns', 'add', ns(m));
    ip('-n', ns(m), 'link', 'set', 'lo', 'up');
    // One veth pair per machine: eth0 in the machine, its peer on the hub's bridge.
    ip('-n', ns(m), 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `p${m}`, 'netns', HUB);
    ip('-n', HUB, 'link', 'set', `p${m}`, 'master', 'br0');
    ip('-n', HUB, 'link', 'set', `p${m}`, 'up');
    ip('-n', ns(m), 'addr', 'add', `${address(i)}/24`, 'dev', 'eth0');
    ip('-n', ns(m), 'link', 'set', 'eth0', 'up');
  });
}

function tearDownNetwork(): void {
  for (const name of [...MACHINES.map(ns), HUB]) {
    try {
      ip('netns', 'del', name);
    } catch {
      // Not created (set-up failed part way): nothing to remove.
    }
  }
}

interface Run {
  readonly proc: ChildProcess;
  readonly exit: Promise<number | null>;
  stdout: string;
  stderr: string;
}

function runIn(machine: string, args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const proc = spawn('ip', ['netns', 'exec', ns(machine), process.execPath, CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const run: Run = {
    proc,
    stdout: '',
    stderr: '',
    exit: new Promise((resolve) => proc.on('exit', (code) => resolve(code))),
  };
  proc.stdout!.on('data', (d: Buffer) => (run.stdout += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (run.stderr += d.toString()));
  return run;
}

/** Longer than a run takes on a loaded machine; short of the test's own timeout. */
const LEADER_DEADLINE_MS = 120_000;
/** How long members may take to stop after the leader has exited. */
const MEMBER_DEADLINE_MS = 30_000;

/**
 * The exit code of `run`; if it has not exited after `ms`, kills every run and fails with
 * what each one printed (runs numbered as in `all`), so that a hang says where it stopped.
 */
async function exitWithin(run: Run, all: Run[], ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)));
  const code = await Promise.race([run.exit, late]);
  clearTimeout(timer);
  if (code !== 'late') return code;
  for (const r of all) r.proc.kill('SIGKILL');
  const printed = all
    .map((r, i) => `--- run ${i}: stdout\n${r.stdout}\n--- run ${i}: stderr\n${r.stderr}`)
    .join('\n');
  throw new Error(`run ${all.indexOf(run)} did not exit within ${ms} ms\n${printed}`);
}

describe('PHOLD across three machines (network namespaces)', () => {
  const cluster = `netns-${process.pid}`;
  let file = '';

  beforeAll(() => {
    tearDownNetwork(); // leftovers of a killed earlier run with the same pid
    setUpNetwork();
    const dir = mkdtempSync(join(tmpdir(), 'disco-netns-'));
    file = join(dir, 'cluster.json');
    writeFileSync(
      file,
      JSON.stringify({
        cluster,
        simprocs: ['lp'],
        replications: 2,
        machines: MACHINES.map((m, i) => ({
          name: m,
          host: address(i),
          grpcPort: 7700,
          servers: [0, 1].map((s) => ({
            name: `s${s}`,
            nodes: [0, 1].map((n) => `${m}${s}${n}`),
          })),
        })),
        // A line a - b - c: everything between a and c is forwarded by b's gateway.
        links: [
          ['a', 'b'],
          ['b', 'c'],
        ],
        security: { insecure: true },
        grpc: { peerDeadlineMs: 20_000 },
      }),
    );
  });

  afterAll(() => tearDownNetwork());

  it('runs one cluster from three Applications and conserves every event', async () => {
    const args = ['run', file, '--end-time', '40', '--seed', '11', '--remote', '0.8', '--quiet'];
    // Members trace their links (on stderr), shown if one does not stop.
    const trace = { DISCO_TRACE: 'grpc,gateway' };
    const members = [
      runIn('b', [...args, '--machine', 'b'], trace),
      runIn('c', [...args, '--machine', 'c'], trace),
    ];
    const leader = runIn('a', [...args, '--machine', 'a', '--json']);
    const code = await exitWithin(leader, [...members, leader], LEADER_DEADLINE_MS);
    expect(leader.stderr).toBe('');
    expect(code).toBe(0);
    const result = JSON.parse(leader.stdout) as {
      conservation: { ok: boolean };
      eventsHandled: number;
    };
    expect(result.conservation.ok).toBe(true);
    expect(result.eventsHandled).toBeGreaterThan(1000);
    const codes = await Promise.all(
      members.map((m) => exitWithin(m, [...members, leader], MEMBER_DEADLINE_MS)),
    );
    expect(codes).toEqual([0, 0]);
    // b forwarded traffic between a and c, and its own.
    expect(members[0]!.stdout).toMatch(/machine b: 2 Servers ran until a stopped the run/);
    const forwarded = Number(/forwarded (\d+) envelopes/.exec(members[0]!.stdout)?.[1]);
    expect(forwarded).toBeGreaterThan(0);
    expect(readdirSync('/dev/shm').filter((f) => f.startsWith(`disco.${cluster}.`))).toEqual([]);
  }, 180_000);
});
