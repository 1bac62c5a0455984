import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createProgress } from '../../src/demo/progress.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main, type CliIo } from '../../src/cli.js';
import type { PholdResult } from '../../src/demo/phold.js';

/** An in-memory stdout/stderr pair; `terminal` makes stderr claim to be a TTY. */
function capture(terminal = false): CliIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    stdout: { write: (s: string) => (out += s), isTTY: false },
    stderr: { write: (s: string) => (err += s), isTTY: terminal },
    out: () => out,
    err: () => err,
  };
}

/** In-process, so these tests need no child processes (test/multiprocess covers those). */
const smallRun = [
  'phold',
  '--nodes',
  '4',
  '--events-per-node',
  '50',
  '--end-time',
  '10',
  '--in-process',
];

/** Writes a topology file into a fresh temp dir; returns its path. */
function topologyFile(topology: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'disco-cli-'));
  const file = join(dir, 'topology.json');
  writeFileSync(file, JSON.stringify(topology));
  return file;
}

const twoMachines = {
  cluster: 'cli-two-machines',
  simprocs: ['lp'],
  machines: [
    { name: 'a', grpcPort: 17001, servers: [{ name: 's0', nodes: ['n0'] }] },
    { name: 'b', grpcPort: 17002, servers: [{ name: 's0', nodes: ['n1'] }] },
  ],
};

describe('disco phold', () => {
  it.each([
    [['--remote', '2'], '--remote must be between 0 and 1, got 2'],
    [['--remote', 'half'], '--remote must be between 0 and 1, got half'],
    [['--nodes', '0'], '--nodes must be an integer from 1 to 1024, got 0'],
    [['--nodes', '2.5'], '--nodes must be an integer from 1 to 1024, got 2.5'],
    [['--events-per-node', ''], '--events-per-node must be an integer from 1 to'],
    [['--lookahead', '0'], '--lookahead must be a positive number, got 0'],
    [['--mean', '-1'], '--mean must be a number of at least 0, got -1'],
    [['--duration', 'Infinity'], '--duration must be a positive number, got Infinity'],
    [['--end-time', '-3'], '--end-time must be a positive number, got -3'],
    [['--seed', '-1'], '--seed must be an integer from 0 to 4294967295, got -1'],
    [['--payload', '5'], '--payload must be 0 (object payloads) or a byte count from 12 to'],
    [['--replications', '0'], '--replications must be an integer from 1 to 256, got 0'],
    [['--processes', '0'], '--processes must be an integer from 1 to 256, got 0'],
    [['--processes', 'many'], '--processes must be an integer from 1 to 256, got many'],
    [['--in-process', '--processes', '2'], '--in-process contradicts --processes 2'],
    [
      ['--via-wire', '--processes', '3'],
      '--via-wire (an in-process option) contradicts --processes 3',
    ],
  ])('rejects %j with exit code 2 and a message naming the flag', async (flags, message) => {
    const io = capture();
    expect(await main(['phold', ...flags], io)).toBe(EXIT_USAGE);
    expect(io.err()).toContain(`error: ${message}`);
    expect(io.out()).toBe('');
  });

  it.each([
    [['--bogus'], "unknown option '--bogus'"],
    [['--nodes'], "option '--nodes <count>' argument missing"],
    [['extra'], 'too many arguments'],
  ])('rejects malformed command lines %j with exit code 2', async (flags, message) => {
    const io = capture();
    expect(await main(['phold', ...flags], io)).toBe(EXIT_USAGE);
    expect(io.err()).toContain(message);
  });

  it('prints the result as JSON with --json', async () => {
    const io = capture();
    expect(await main([...smallRun, '--seed', '9', '--json', '--quiet'], io)).toBe(EXIT_OK);
    const result = JSON.parse(io.out()) as PholdResult;
    expect(result.conservation).toEqual({ ok: true, problems: [] });
    expect(result.options).toMatchObject({ nodes: 4, eventsPerNode: 50, endTime: 10, seed: 9 });
    expect(result.options.duration).toBeNull();
    expect(result.processes).toBe(1);
    expect(result.replications[0]!.promisesSent).toBe(result.replications[0]!.windows * 16);
    expect(io.err()).toBe('');
  });

  it('prints a summary table and plain progress lines when stderr is not a terminal', async () => {
    const io = capture();
    expect(await main([...smallRun, '--via-wire', '--payload', '32'], io)).toBe(EXIT_OK);
    expect(io.out()).toMatch(/^PHOLD: 4 nodes x 50 events, .*via the wire codec\n/);
    expect(io.out()).toMatch(/\n {2}processes +1\n/);
    expect(io.out()).toMatch(/\n {2}sent via inprocess +[\d,]+ events, [\d,]+ promises\n/);
    expect(io.out()).toMatch(/\n {2}events handled +[\d,]+ \(/);
    expect(io.out()).toMatch(/\n {2}conservation +OK: 16 sender\/target pairs balanced/);
    expect(io.err()).toMatch(/^phold: 100% \| [\d,]+ events \| .* events\/s \| t=10\n$/m);
  });

  it('draws a progress bar when stderr is a terminal', async () => {
    const io = capture(true);
    expect(await main([...smallRun], io)).toBe(EXIT_OK);
    expect(io.err()).toMatch(/phold \[[^\]]+\] 100% \| /);
    expect(io.out()).toContain('conservation');
  });

  it('shows useful help', async () => {
    const top = capture();
    expect(await main(['--help'], top)).toBe(EXIT_OK);
    expect(top.out()).toContain('Usage: disco');
    expect(top.out()).toMatch(/phold \[options\] +run the PHOLD/);
    expect(top.out()).toMatch(/run \[options\] <topology> +run PHOLD on the Servers/);
    const sub = capture();
    expect(await main(['phold', '--help'], sub)).toBe(EXIT_OK);
    const flags = ['--events-per-node', '--end-time', '--via-wire', '--processes', '--in-process'];
    for (const flag of [...flags, '--json', '--quiet']) expect(sub.out()).toContain(flag);
    expect(sub.out()).toContain('(default: 8)');
    const run = capture();
    expect(await main(['run', '--help'], run)).toBe(EXIT_OK);
    expect(run.out()).toContain('--machine <name>');
    expect(run.out()).not.toContain('--nodes');
  });

  it('prints the package version', async () => {
    const io = capture();
    expect(await main(['--version'], io)).toBe(EXIT_OK);
    expect(io.out()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('asks for a command when given none', async () => {
    const io = capture();
    expect(await main([], io)).toBe(EXIT_USAGE);
    expect(io.err()).toContain('Usage: disco');
  });
});

describe('disco run', () => {
  it('rejects a missing topology file with exit code 2', async () => {
    const io = capture();
    const missing = join(tmpdir(), `disco-no-such-${process.pid}.json`);
    expect(await main(['run', missing, '--end-time', '5'], io)).toBe(EXIT_USAGE);
    expect(io.err()).toContain(`error: invalid topology ${missing}`);
    expect(io.out()).toBe('');
  });

  it('refuses a cluster whose gRPC links would be plaintext off loopback, naming the field', async () => {
    const io = capture();
    const offLoopback = {
      ...twoMachines,
      machines: twoMachines.machines.map((m) => ({ ...m, host: '10.9.9.9' })),
    };
    const file = topologyFile(offLoopback);
    expect(await main(['run', file, '--machine', 'b', '--end-time', '5'], io)).toBe(EXIT_USAGE);
    expect(io.err()).toContain('machines[0].tls');
    expect(io.err()).toContain('"insecure": true');
  });

  it('rejects an unknown machine and the --nodes flag', async () => {
    const file = topologyFile({ ...twoMachines, machines: [twoMachines.machines[0]] });
    const io = capture();
    expect(await main(['run', file, '--machine', 'zz', '--end-time', '5'], io)).toBe(EXIT_USAGE);
    expect(io.err()).toContain('invalid machine "zz"');
    const nodes = capture();
    expect(await main(['run', file, '--nodes', '4'], nodes)).toBe(EXIT_USAGE);
    expect(nodes.err()).toContain("unknown option '--nodes'");
  });
});

describe('disco phold exit codes for failed runs', () => {
  afterEach(() => {
    vi.doUnmock('../../src/demo/phold.js');
    vi.resetModules();
  });

  /** Imports the CLI with runPhold replaced by `fake`. */
  async function mainWith(fake: (real: PholdResult) => PholdResult): Promise<typeof main> {
    vi.resetModules();
    vi.doMock('../../src/demo/phold.js', async (importOriginal) => {
      const real = await importOriginal<typeof import('../../src/demo/phold.js')>();
      return {
        ...real,
        runPhold: async (...args: Parameters<typeof real.runPhold>) =>
          fake(await real.runPhold(...args)),
      };
    });
    return (await import('../../src/cli.js')).main;
  }

  it('exits 1 and lists the problems when conservation fails', async () => {
    const broken = await mainWith((r) => ({
      ...r,
      conservation: {
        ok: false,
        problems: ['repid 0: n0 -> n1: promised 3 events in total, received 2'],
      },
    }));
    const io = capture();
    expect(await broken([...smallRun, '--quiet'], io)).toBe(EXIT_FAILURE);
    expect(io.out()).toContain('conservation');
    expect(io.out()).toContain('FAILED: 1 problems');
    expect(io.out()).toContain('- repid 0: n0 -> n1: promised 3 events in total, received 2');
  });

  it('exits 1 with the error message when the run throws', async () => {
    const failing = await mainWith(() => {
      throw new Error('link n3 is gone');
    });
    const io = capture();
    expect(await failing([...smallRun, '--quiet'], io)).toBe(EXIT_FAILURE);
    expect(io.err()).toContain('error: the PHOLD run failed: link n3 is gone');
  });
});

describe('createProgress', () => {
  function sink(isTTY: boolean): {
    write: (s: string) => void;
    isTTY: boolean;
    text: () => string;
  } {
    let text = '';
    return { write: (s) => void (text += s), isTTY, text: () => text };
  }

  it('writes at most one plain line per interval, and always the final one', () => {
    const stream = sink(false);
    const progress = createProgress({ stream, label: 'job', lineIntervalMs: 60_000 });
    progress.update(0.1, 'first');
    progress.update(0.5, 'throttled');
    progress.update(1, 'done');
    progress.update(1, 'after the end');
    progress.stop();
    expect(stream.text()).toBe('job: 10% | first\njob: 100% | done\n');
  });

  it('writes nothing when quiet, even on a terminal', () => {
    const stream = sink(true);
    const progress = createProgress({ stream, label: 'job', quiet: true });
    progress.update(0.5, 'half');
    progress.stop();
    expect(stream.text()).toBe('');
  });
});
