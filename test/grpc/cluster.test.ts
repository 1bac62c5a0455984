/**
 * Two Applications of one cluster on loopback, each with its gateway, as two
 * machines would run them: the leader starts every Server of the cluster through
 * the gateways, events cross the gRPC link between them, and the run stops
 * everywhere when the leader stops it.
 */

import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { Application } from '../../src/runtime/application.js';
import type { TopologyInput } from '../../src/topology.js';
import { freePort } from '../fixtures/grpc/pair.js';
import { exchangeJob, type ExchangeResult } from '../multiprocess/exchange.js';

let seq = 0;
const fixture = (name: string): string =>
  fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url));

/**
 * Two machines; with `tls`, mutual TLS from the test CA, an allow-list of both, and each
 * machine bound to its certificate's identity.
 */
async function twoMachines(tls = false): Promise<TopologyInput> {
  const machine = async (name: string) => ({
    name,
    grpcPort: await freePort(),
    ...(tls
      ? {
          tls: {
            ca: fixture('ca.pem'),
            cert: fixture(`machine-${name}.pem`),
            key: fixture(`machine-${name}.key`),
            // The test certificates name the machine, not 127.0.0.1.
            serverNameOverride: `machine-${name}`,
          },
          identity: `machine-${name}`,
        }
      : {}),
    servers: [0, 1].map((s) => ({ name: `s${s}`, nodes: [`${name}${s}x`, `${name}${s}y`] })),
  });
  return {
    cluster: `grpc-cluster-${process.pid}-${++seq}`,
    simprocs: ['p'],
    machines: [await machine('a'), await machine('b')],
    ...(tls ? { security: { allow: ['machine-a', 'machine-b'] } } : {}),
  };
}

const running: Application[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((a) => a.stop()));
});

describe('Applications on two machines (loopback)', () => {
  it.each([
    ['shm', false],
    ['uds', false],
    ['shm', true],
  ] as const)(
    'runs a job on every Server of the cluster; events cross machines exactly once and in order (%s, TLS %s)',
    async (link, tls) => {
      const topology = await twoMachines(tls);
      const jobOptions = { count: 2000, promiseEvery: 100, payloadBytes: 100 };
      const leader = new Application({
        topology,
        machine: 'a',
        jobModule: exchangeJob,
        jobOptions,
        link,
      });
      const member = new Application({ topology, machine: 'b', jobModule: exchangeJob, link });
      running.push(leader, member);
      expect(leader.role).toBe('leader');
      expect(member.role).toBe('member');
      await member.start();
      await leader.start();
      const results = (await leader.wait()) as Map<string, ExchangeResult>;
      expect([...results.keys()].sort()).toEqual(['a/s0', 'a/s1', 'b/s0', 'b/s1']);
      for (const r of results.values()) {
        expect(r.problems).toEqual([]);
        expect(r.received).toBe(r.expectedEvents);
        expect(r.promises).toBe(r.expectedPromises);
        // Two local nodes, each hearing from the 6 nodes of the other Servers.
        expect(r.expectedEvents).toBe(2 * 6 * 2000);
      }
      const forwarded = leader.gatewayMetrics()!;
      expect(forwarded.forwardedEvents).toBe(2 * 2 * 4 * 2000 * 2); // both directions
      await leader.stop();
      expect(await member.wait()).toEqual(new Map());
      await member.stop();
      expect(
        readdirSync('/dev/shm').filter((f) => f.startsWith(`disco.${topology.cluster}.`)),
      ).toEqual([]);
    },
    120_000,
  );

  it('with directLinks, Servers exchange events over their own gRPC links, not the gateways', async () => {
    const topology = await twoMachines();
    for (const m of topology.machines) {
      m.servers = await Promise.all(
        m.servers.map(async (s) => ({ ...s, grpcPort: await freePort() })),
      );
    }
    topology.directLinks = true;
    const jobOptions = { count: 1000, promiseEvery: 100, payloadBytes: 100 };
    const leader = new Application({ topology, machine: 'a', jobModule: exchangeJob, jobOptions });
    const member = new Application({ topology, machine: 'b', jobModule: exchangeJob });
    running.push(leader, member);
    await member.start();
    await leader.start();
    const results = (await leader.wait()) as Map<string, ExchangeResult>;
    for (const r of results.values()) {
      expect(r.problems).toEqual([]);
      expect(r.received).toBe(r.expectedEvents);
      expect(r.promises).toBe(r.expectedPromises);
    }
    // The gateways carried only the Applications' control messages.
    expect(leader.gatewayMetrics()!.forwardedEvents).toBe(0);
    await leader.stop();
    await member.wait();
  }, 120_000);

  it('stops a line of three machines from its far end, so the middle one forwards every stop', async () => {
    // a - b - c: the leader reaches c only through b's gateway. b must not close it before
    // c has had its 'stop', or c waits for a 'stop' that never comes.
    const topology = await twoMachines();
    const c = { ...topology.machines[1]!, name: 'c', grpcPort: await freePort() };
    c.servers = c.servers.map((s) => ({ ...s, nodes: s.nodes.map((n) => `c${n.slice(1)}`) }));
    topology.machines.push(c);
    topology.links = [
      ['a', 'b'],
      ['b', 'c'],
    ];
    const jobOptions = { count: 500, promiseEvery: 100, payloadBytes: 100 };
    const leader = new Application({ topology, machine: 'a', jobModule: exchangeJob, jobOptions });
    // The members would give up waiting for 'stop' only after four stop timeouts: 20 min,
    // far beyond this test's own timeout, so ending at all means ending on the leader's 'stop'.
    const members = ['b', 'c'].map(
      (machine) =>
        new Application({ topology, machine, jobModule: exchangeJob, stopTimeoutMs: 300_000 }),
    );
    running.push(leader, ...members);
    const errors: Error[] = [];
    for (const app of [leader, ...members]) app.on('error', (err: Error) => errors.push(err));
    for (const m of members) await m.start();
    await leader.start();
    const results = (await leader.wait()) as Map<string, ExchangeResult>;
    expect(results.size).toBe(6);
    for (const r of results.values()) expect(r.problems).toEqual([]);
    const done = members.map((m) => m.wait());
    const stopOrder: string[] = [];
    for (const m of members) m.on('stop-requested', () => stopOrder.push(m.machine));
    await leader.stop();
    expect(await Promise.all(done)).toEqual([new Map(), new Map()]);
    // b forwards c's 'stop': it gets its own only once c has answered 'stopped'.
    expect(stopOrder).toEqual(['c', 'b']);
    expect(errors).toEqual([]);
  }, 120_000);
});
