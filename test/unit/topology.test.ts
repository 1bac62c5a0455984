import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTopology, topologyInput, type TopologyInput } from '../../src/topology.js';
import { machineRoutes } from '../../src/mesh.js';
import { TopologyError } from '../../src/errors.js';
import { machineSecurity } from '../../src/runtime/gateway-runtime.js';

const good: TopologyInput = {
  cluster: 'test-cluster',
  simprocs: ['physics', 'render'],
  replications: 2,
  machines: [
    {
      name: 'm1',
      host: '10.0.0.1',
      grpcPort: 7000,
      servers: [
        { name: 's0', nodes: ['n0', 'n1'] },
        { name: 's1', nodes: ['n2'] },
      ],
    },
    { name: 'm2', grpcPort: 7001, servers: [{ name: 's0', nodes: ['n3'] }] },
  ],
  security: { insecure: true },
};

function issuesOf(input: unknown): { path: string; message: string }[] {
  try {
    loadTopology(input as TopologyInput);
  } catch (err) {
    expect(err).toBeInstanceOf(TopologyError);
    return [...(err as TopologyError).issues];
  }
  throw new Error('expected a TopologyError');
}

describe('loadTopology', () => {
  it('builds an address book of (repid, node) -> (machine, server)', () => {
    const topo = loadTopology(good);
    expect(topo.addressBook.lookup(0, 'n2')).toEqual({ machine: 'm1', server: 's1' });
    expect(topo.addressBook.lookup(1, 'n3')).toEqual({ machine: 'm2', server: 's0' });
    expect(topo.addressBook.lookup(2, 'n3')).toBeUndefined(); // only 2 replications
    expect(topo.addressBook.lookup(0, 'nope')).toBeUndefined();
    expect(topo.addressBook.nodesOn('m1', 's0')).toEqual(['n0', 'n1']);
    expect(topo.machines[1]!.host).toBe('127.0.0.1'); // default
  });

  it('reads a JSON file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'disco-topo-'));
    const file = join(dir, 'topo.json');
    writeFileSync(file, JSON.stringify(good));
    expect(loadTopology(file).cluster).toBe('test-cluster');
  });

  it('reports unreadable and malformed files as TopologyError', () => {
    const dir = mkdtempSync(join(tmpdir(), 'disco-topo-'));
    const file = join(dir, 'bad.json');
    writeFileSync(file, '{ not json');
    expect(() => loadTopology(file)).toThrow(TopologyError);
    expect(() => loadTopology(join(dir, 'missing.json'))).toThrow(/ENOENT/);
  });

  it('names the path of every bad field', () => {
    const issues = issuesOf({
      cluster: 'bad name!',
      simprocs: ['ok', 'a/b'],
      machines: [{ name: 'm', grpcPort: 70000, servers: [{ name: 's', nodes: ['x', 7] }] }],
    });
    const paths = issues.map((i) => i.path);
    expect(paths).toContain('cluster');
    expect(paths).toContain('simprocs[1]');
    expect(paths).toContain('machines[0].grpcPort');
    expect(paths).toContain('machines[0].servers[0].nodes[1]');
  });

  it('rejects duplicates, unknown fields, the reserved node name and an empty cluster', () => {
    const dupNode = issuesOf({
      cluster: 'c',
      simprocs: ['p', 'p'],
      machines: [
        {
          name: 'm',
          servers: [
            { name: 's', nodes: ['a'] },
            { name: 's', nodes: ['a', 'self'] },
          ],
        },
      ],
    });
    expect(dupNode).toEqual(
      expect.arrayContaining([
        { path: 'simprocs[1]', message: 'duplicate simproc' },
        { path: 'machines[0].servers[1].name', message: 'duplicate server name' },
        { path: 'machines[0].servers[1].nodes[0]', message: 'duplicate node a' },
        { path: 'machines[0].servers[1].nodes[1]', message: '"self" is reserved' },
      ]),
    );
    expect(
      issuesOf({ ...good, extra: 1 })
        .map((i) => i.message)
        .join(),
    ).toMatch(/extra/);
    expect(
      issuesOf({
        cluster: 'c',
        simprocs: ['p'],
        machines: [{ name: 'm', servers: [{ name: 's', nodes: [] }] }],
      }),
    ).toEqual([{ path: 'machines', message: 'no nodes' }]);
  });
});

describe('multi-machine topologies', () => {
  const three = (extra: Partial<TopologyInput> = {}): TopologyInput => ({
    cluster: 'mesh',
    simprocs: ['lp'],
    machines: [
      { name: 'a', grpcPort: 7101, servers: [{ name: 's', nodes: ['n0'] }] },
      { name: 'b', grpcPort: 7102, servers: [{ name: 's', nodes: ['n1'] }] },
      { name: 'c', grpcPort: 7103, servers: [{ name: 's', nodes: ['n2'] }] },
    ],
    ...extra,
  });

  it('needs a fixed gRPC port on every machine of a cluster of several', () => {
    const input = three();
    input.machines[1] = { name: 'b', servers: [{ name: 's', nodes: ['n1'] }] };
    input.machines[2] = { ...input.machines[2]!, grpcPort: 0 };
    const paths = issuesOf(input).map((i) => i.path);
    expect(paths).toEqual(['machines[1].grpcPort', 'machines[2].grpcPort']);
  });

  it('names links to unknown machines, self-links and machines the links leave unreachable', () => {
    const issues = issuesOf(
      three({
        links: [
          ['a', 'zz'],
          ['b', 'b'],
        ],
      }),
    );
    expect(issues).toEqual([
      { path: 'links[0][1]', message: 'no machine zz' },
      { path: 'links[1]', message: 'a machine linked to itself' },
      { path: 'links', message: 'machines b, c cannot be reached from a' },
    ]);
  });

  it('routes over a partial mesh by shortest paths, and directly over a full one', () => {
    const line = loadTopology(
      three({
        links: [
          ['a', 'b'],
          ['b', 'c'],
        ],
      }),
    );
    expect(Object.fromEntries(machineRoutes(line, 'a'))).toEqual({
      b: { via: 'b', hops: 1 },
      c: { via: 'b', hops: 2 },
    });
    expect(Object.fromEntries(machineRoutes(line, 'b'))).toEqual({
      a: { via: 'a', hops: 1 },
      c: { via: 'c', hops: 1 },
    });
    const full = loadTopology(three());
    expect(full.links).toBeNull();
    expect(machineRoutes(full, 'a').get('c')).toEqual({ via: 'c', hops: 1 });
  });

  it('resolves TLS files against the folder of the topology file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'disco-topo-tls-'));
    const file = join(dir, 'cluster.json');
    const input = three({ security: { allow: ['machine-a'] } });
    input.machines = input.machines.map((m) => ({
      ...m,
      tls: { ca: 'ca.pem', cert: `certs/${m.name}.pem`, key: '/abs/a.key' },
    }));
    writeFileSync(file, JSON.stringify(input));
    const topo = loadTopology(file);
    expect(topo.machines[0]!.tls).toEqual({
      ca: join(dir, 'ca.pem'),
      cert: join(dir, 'certs/a.pem'),
      key: '/abs/a.key',
    });
    expect(topo.security).toEqual({ allow: ['machine-a'], insecure: false });
    expect(loadTopology(topologyInput(topo))).toEqual(topo);
  });

  it('refuses plaintext links off loopback unless insecure, and an allow-list without mutual TLS', () => {
    const input = three({ security: { allow: ['machine-a'] } });
    input.machines[0] = { ...input.machines[0]!, host: '10.0.0.1' };
    input.machines[1] = { ...input.machines[1]!, tls: { cert: 'b.pem', key: 'b.key' } };
    input.machines[2] = {
      ...input.machines[2]!,
      tls: { ca: 'ca.pem', cert: 'c.pem', key: 'c.key' },
    };
    const issues = issuesOf(input);
    expect(issues.map((i) => i.path)).toEqual(['machines[0].tls', 'machines[1].tls.ca']);
    expect(issues[0]!.message).toContain('10.0.0.1 would be plaintext on a non-loopback address');
    expect(issues[1]!.message).toContain('security.allow needs mutual TLS');
    const insecure = three({ security: { insecure: true } });
    insecure.machines[0] = { ...insecure.machines[0]!, host: '10.0.0.1' };
    expect(() => loadTopology(insecure)).not.toThrow();
  });

  it('binds machines to identities on every machine or none, all of them allowed', () => {
    const mtls = { ca: 'ca.pem', cert: 'x.pem', key: 'x.key' };
    const input = three({ security: { allow: ['id-a', 'id-b'] } });
    input.machines = input.machines.map((m) => ({ ...m, tls: mtls }));
    input.machines[0] = { ...input.machines[0]!, identity: 'id-a' };
    input.machines[1] = { ...input.machines[1]!, identity: 'id-x' };
    const issues = issuesOf(input);
    expect(issues.map((i) => i.path)).toEqual(['machines[1].identity', 'machines[2].identity']);
    expect(issues[0]!.message).toBe('identity "id-x" is not in security.allow');
    expect(issues[1]!.message).toContain('set one on every machine, or on none');

    input.machines[1] = { ...input.machines[1]!, identity: 'id-b' };
    input.machines[2] = { ...input.machines[2]!, identity: 'id-a' };
    const topo = loadTopology(input);
    expect(topo.machines.map((m) => m.identity)).toEqual(['id-a', 'id-b', 'id-a']);
    expect(machineSecurity(topo, 'b').identities).toEqual({ a: 'id-a', b: 'id-b', c: 'id-a' });
    expect(loadTopology(topologyInput(topo))).toEqual(topo);

    const noAllow = three({ security: { insecure: true } });
    noAllow.machines = noAllow.machines.map((m) => ({ ...m, identity: 'id-a' }));
    expect(issuesOf(noAllow)[0]!.message).toContain('it needs security.allow (mutual TLS)');
  });

  it('with directLinks needs a port of its own on every Server', () => {
    const input = three({ directLinks: true });
    input.machines[0] = {
      ...input.machines[0]!,
      servers: [{ name: 's', nodes: ['n0'], grpcPort: 7101 }],
    };
    input.machines[1] = {
      ...input.machines[1]!,
      servers: [{ name: 's', nodes: ['n1'], grpcPort: 7201 }],
    };
    expect(issuesOf(input)).toEqual([
      {
        path: 'machines[0].servers[0].grpcPort',
        message: "port 7101 is the gateway's port of machine a",
      },
      {
        path: 'machines[2].servers[0].grpcPort',
        message: 'with directLinks every Server needs its own gRPC port',
      },
    ]);
  });
});
