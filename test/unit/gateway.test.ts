import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { UndeliverableError } from '../../src/errors.js';
import { meshLocator } from '../../src/mesh.js';
import {
  gatewayEndpoint,
  gatewayLocator,
  sameMachineLocator,
  serverEndpoint,
} from '../../src/runtime/endpoints.js';
import { Gateway } from '../../src/runtime/gateway.js';
import { Server } from '../../src/runtime/server.js';
import { loadTopology, type Topology, type TopologyInput } from '../../src/topology.js';
import type { LinkLimits } from '../../src/transports/outbound-queue.js';
import { UnixSocketTransport } from '../../src/transports/unix-socket.js';
import { RecordingInbox, until } from './helpers.js';

let clusterSeq = 0;

/**
 * A cluster of machines in this process with real sockets everywhere: each machine
 * has one Server and a gateway; the gateways' machine-to-machine links are Unix
 * sockets here (the gateway does not care which transport carries them), so the
 * forwarding logic is tested without gRPC.
 */
async function cluster(
  machines: string[],
  extra: Partial<TopologyInput> = {},
  gatewayLimits?: LinkLimits,
): Promise<{
  topology: Topology;
  servers: Map<string, Server>;
  serverLinks: Map<string, UnixSocketTransport>;
  gateways: Map<string, Gateway>;
  close: () => Promise<void>;
}> {
  const name = `gw-test-${process.pid}-${++clusterSeq}`;
  const topology = loadTopology({
    cluster: name,
    simprocs: ['lp'],
    machines: machines.map((m, i) => ({
      name: m,
      grpcPort: 20000 + i,
      servers: [{ name: 's', nodes: [`${m}0`, `${m}1`] }],
    })),
    ...extra,
  });
  const servers = new Map<string, Server>();
  const serverLinks = new Map<string, UnixSocketTransport>();
  const gateways = new Map<string, Gateway>();
  const transports: UnixSocketTransport[] = [];
  const meshEndpoint = (m: string): string => `${name}.mesh.${m}`;
  for (const m of machines) {
    const uds = new UnixSocketTransport({
      endpoint: serverEndpoint(topology, m, 's'),
      locate: sameMachineLocator(topology, m, 's'),
      connectTimeoutMs: 5000,
    });
    await uds.listen();
    serverLinks.set(m, uds);
    servers.set(m, new Server({ topology, machine: m, server: 's', transports: [uds] }));
    const local = new UnixSocketTransport({
      endpoint: gatewayEndpoint(topology, m),
      locate: gatewayLocator(topology, m),
      connectTimeoutMs: 5000,
      limits: gatewayLimits,
    });
    await local.listen();
    const next = meshLocator(topology, m);
    const remote = new UnixSocketTransport({
      endpoint: meshEndpoint(m),
      name: 'mesh',
      locate: (repid, node) => {
        const via = next(repid, node);
        return via === undefined ? undefined : meshEndpoint(via);
      },
      connectTimeoutMs: 5000,
      limits: gatewayLimits,
    });
    await remote.listen();
    transports.push(uds, local, remote);
    gateways.set(m, new Gateway({ topology, machine: m, local, remote }));
  }
  return {
    topology,
    servers,
    serverLinks,
    gateways,
    close: async () => {
      await Promise.all([...servers.values()].map((s) => s.close()));
      await Promise.all([...gateways.values()].map((g) => g.close()));
    },
  };
}

describe('Gateway', () => {
  it('forwards events and promises between machines, in order, exactly once, one hop per gateway', async () => {
    const c = await cluster(['a', 'b']);
    const inbox = new RecordingInbox();
    c.servers.get('b')!.controller('b1').setInbox('lp', inbox);
    const sender = c.servers.get('a')!.controller('a0');
    const count = 5000;
    for (let i = 0; i < count; i++) {
      sender.sendEvent('b1/lp', i, { i });
      if (i % 100 === 99) sender.sendPromise('b1/lp', i, i, 100);
    }
    await until(() => inbox.events.length === count && inbox.promises.length === count / 100);
    expect(inbox.events.map((e) => (e.data as { i: number }).i)).toEqual(
      Array.from({ length: count }, (_, i) => i),
    );
    expect(inbox.promises.map((p) => Number(p.seqnr))).toEqual(
      Array.from({ length: count / 100 }, (_, i) => i * 100 + 99),
    );
    expect(inbox.events[0]!.sender).toEqual({ node: 'a0', simproc: 'lp' });
    // Gateway a forwarded (hop 1), then gateway b (hop 2).
    expect((inbox.events[0] as unknown as { hops: number }).hops).toBe(2);
    expect(c.gateways.get('a')!.metrics().forwardedEvents).toBe(count);
    expect(c.gateways.get('b')!.metrics().forwardedPromises).toBe(count / 100);
    await c.close();
  });

  it('routes through an intermediate machine over a partial mesh', async () => {
    const c = await cluster(['a', 'b', 'c'], {
      links: [
        ['a', 'b'],
        ['b', 'c'],
      ],
    });
    const inbox = new RecordingInbox();
    c.servers.get('c')!.controller('c0').setInbox('lp', inbox);
    const sender = c.servers.get('a')!.controller('a1');
    for (let i = 0; i < 100; i++) sender.sendEvent('c0/lp', i, i);
    await until(() => inbox.events.length === 100);
    expect(inbox.events.map((e) => e.data)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect((inbox.events[0] as unknown as { hops: number }).hops).toBe(3);
    expect(c.gateways.get('b')!.metrics().forwardedEvents).toBe(100);
    await c.close();
  });

  it('refuses an envelope past the hop limit, naming the target and the limit', async () => {
    const c = await cluster(['a', 'b', 'c'], {
      links: [
        ['a', 'b'],
        ['b', 'c'],
      ],
      maxHops: 2,
    });
    const errors: Error[] = [];
    c.gateways.get('c')!.on('error', (e: Error) => errors.push(e));
    const inbox = new RecordingInbox();
    c.servers.get('c')!.controller('c0').setInbox('lp', inbox);
    c.servers.get('a')!.controller('a0').sendEvent('c0/lp', 1, 'too far');
    await until(() => errors.length === 1);
    expect(errors[0]).toBeInstanceOf(UndeliverableError);
    expect(errors[0]!.message).toContain('c0/lp');
    expect(errors[0]!.message).toContain('the limit (maxHops) is 2');
    expect(inbox.events).toHaveLength(0);
    expect(c.gateways.get('c')!.metrics().refused).toBe(1);
    await c.close();
  });

  it('carries control messages between gateways, also across an intermediate machine', async () => {
    const c = await cluster(['a', 'b', 'c'], {
      links: [
        ['a', 'b'],
        ['b', 'c'],
      ],
    });
    const got: [string, unknown][] = [];
    c.gateways.get('c')!.on('control', (from: string, msg: unknown) => got.push([from, msg]));
    for (let i = 0; i < 10; i++)
      c.gateways.get('a')!.sendControl('c', { i, m: new Map([[i, 'x']]) });
    await until(() => got.length === 10);
    expect(got.map(([from]) => from)).toEqual(Array(10).fill('a'));
    expect(got.map(([, m]) => (m as { i: number }).i)).toEqual([...Array(10).keys()]);
    expect((got[3]![1] as { m: Map<number, string> }).m.get(3)).toBe('x');
    await c.close();
  });

  it('stops reading while its next link is full, so a stalled receiver slows the sender, losing nothing', async () => {
    // Each gateway link refuses sends beyond 3000 queued messages: without pausing,
    // gateway b would queue everything a sends while b's Server does not read.
    const c = await cluster(
      ['a', 'b'],
      {},
      { highWaterMarkMessages: 100, hardLimitMessages: 3000 },
    );
    const errors: Error[] = [];
    for (const g of c.gateways.values()) g.on('error', (e: Error) => errors.push(e));
    const inbox = new RecordingInbox();
    c.servers.get('b')!.controller('b0').setInbox('lp', inbox);
    c.serverLinks.get('b')!.pauseInbound(); // b's Server stops reading
    const sender = c.servers.get('a')!.controller('a0');
    const count = 30_000;
    const payload = new Uint8Array(256);
    for (let i = 0; i < count; i++) sender.sendEvent('b0/lp', i, payload);
    await until(() => c.gateways.get('b')!.metrics().pauses > 0);
    await sleep(200); // b's Server still reads nothing: the queues must stay under their limits
    c.serverLinks.get('b')!.resumeInbound();
    await until(() => inbox.events.length === count, 30_000);
    expect(inbox.events.every((e, i) => e.epoch === i)).toBe(true);
    expect(errors).toEqual([]);
    await c.close();
  });

  it('routes a reply to the replyTo address, by another path than the request came', async () => {
    const c = await cluster(['a', 'b', 'c'], {
      links: [
        ['a', 'b'],
        ['b', 'c'],
      ],
    });
    const atC = new RecordingInbox();
    const atB = new RecordingInbox();
    c.servers.get('c')!.controller('c0').setInbox('lp', atC);
    c.servers.get('b')!.controller('b1').setInbox('lp', atB);
    c.servers.get('a')!.controller('a0').sendEvent('c0/lp', 1, 'question', undefined, {
      replyTo: 'b1/lp',
    });
    await until(() => atC.events.length === 1);
    const request = atC.events[0]!;
    expect(request.sender).toEqual({ node: 'a0', simproc: 'lp' });
    expect(request.replyTo).toEqual({ node: 'b1', simproc: 'lp' });
    c.servers.get('c')!.controller('c0').reply(request, 2, 'answer');
    await until(() => atB.events.length === 1);
    expect(atB.events[0]!.data).toBe('answer');
    expect(atB.events[0]!.sender).toEqual({ node: 'c0', simproc: 'lp' });
    await c.close();
  });
});
