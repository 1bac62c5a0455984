/**
 * GrpcTransport with TLS from the security module, end to end: mutual TLS with the
 * test CA and an allow-list on both machines. The right certificates carry events;
 * a machine outside the allow-list, or one whose certificate comes from another CA,
 * gets nothing through and its link fails at the deadline, naming the peer.
 */

import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LinkClosedError, type DiscoError } from '../../src/errors.js';
import type { GrpcSecurityOptions } from '../../src/transports/grpc-security.js';
import { Directory, sendAll, startTransport, uniqueCluster } from '../fixtures/grpc/pair.js';
import { RecordingNode, seqEvent, until } from '../fixtures/grpc/recording-node.js';

const tls = (name: string): string =>
  fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url));

function security(cert: string, allow: string[]): GrpcSecurityOptions {
  return {
    tls: { ca: tls('ca.pem'), cert: tls(`${cert}.pem`), key: tls(`${cert}.key`) },
    allow,
  };
}

/**
 * Machine identities are the certificates' names (`machine-a`, `machine-b`); both
 * listen on 127.0.0.1, so each verifies its peer's certificate against the peer's name.
 */
async function machines(
  aAllows: string[],
  bCert = 'machine-b',
  aIdentities?: Record<string, string>,
) {
  const cluster = uniqueCluster('grpc-tls');
  const dir = new Directory();
  dir.placement.set('a1', 'machine-a').set('b1', 'machine-b');
  const serverNameOf = (peer: string): string => peer;
  const A = await startTransport(dir, cluster, 'machine-a', {
    security: { ...security('machine-a', aAllows), identities: aIdentities },
    serverNameOf,
    reliability: { peerDeadlineMs: 1500 },
  });
  const B = await startTransport(dir, cluster, 'machine-b', {
    security: security(bCert, ['machine-a', 'machine-b']),
    serverNameOf,
    reliability: { peerDeadlineMs: 1500 },
  });
  const a1 = new RecordingNode('a1');
  const b1 = new RecordingNode('b1');
  A.t.attach(a1);
  B.t.attach(b1);
  return { A, B, a1, b1 };
}

const linkFailure = (errors: DiscoError[]): LinkClosedError | undefined =>
  errors.find((e): e is LinkClosedError => e instanceof LinkClosedError);

describe('GrpcTransport with mutual TLS and an allow-list', () => {
  it('carries events both ways between allowed machines', async () => {
    const { A, B, a1, b1 } = await machines(['machine-a', 'machine-b']);
    await Promise.all([
      sendAll(A.t, 1000, (i) => seqEvent('a1', 'b1', i)),
      sendAll(B.t, 1000, (i) => seqEvent('b1', 'a1', i)),
    ]);
    await until(() => a1.eventCount === 1000 && b1.eventCount === 1000, 20_000, 'events');
    expect(A.errors).toEqual([]);
    expect(B.errors).toEqual([]);
    await Promise.all([A.t.close(), B.t.close()]);
  });

  it('refuses a trusted machine outside the allow-list, and the refused link fails at its deadline', async () => {
    const { A, B, a1 } = await machines(['machine-a']);
    await sendAll(B.t, 10, (i) => seqEvent('b1', 'a1', i));
    await until(() => linkFailure(B.errors) !== undefined, 20_000, 'the link of machine-b to fail');
    expect(a1.eventCount).toBe(0);
    expect(linkFailure(B.errors)!.unacknowledged).toBe(10);
    const refusal = A.errors.find((e) => e.message.includes('is not allowed'));
    expect(refusal?.message).toContain('machine-b');
    await Promise.all([A.t.close(), B.t.close()]);
  });

  it('refuses an allowed certificate that claims to be another machine', async () => {
    // The process of machine-b holds machine-a's certificate, which the allow-list admits.
    const bound = { 'machine-a': 'machine-a', 'machine-b': 'machine-b' };
    const { A, B, a1 } = await machines(['machine-a', 'machine-b'], 'machine-a', bound);
    await sendAll(B.t, 10, (i) => seqEvent('b1', 'a1', i));
    await until(() => linkFailure(B.errors) !== undefined, 20_000, 'the impostor link to fail');
    expect(a1.eventCount).toBe(0);
    expect(linkFailure(B.errors)!.unacknowledged).toBe(10);
    const refusal = A.errors.find((e) => e.message.includes('claims to be'));
    expect(refusal?.message).toContain(
      'claims to be "machine-b", whose certificate must name machine-b, but its certificate ' +
        'names machine-a, spiffe://disco-test/machine-a',
    );
    await Promise.all([A.t.close(), B.t.close()]);
  });

  it('refuses a certificate signed by another CA, even with an allowed name', async () => {
    // client-untrusted says CN=machine-a, but the test CA did not sign it.
    const { A, B, a1 } = await machines(['machine-a', 'machine-b'], 'client-untrusted');
    await sendAll(B.t, 10, (i) => seqEvent('b1', 'a1', i));
    await until(() => linkFailure(B.errors) !== undefined, 20_000, 'the untrusted link to fail');
    expect(a1.eventCount).toBe(0);
    expect(linkFailure(B.errors)!.message).toContain('grpc:machine-a');
    await Promise.all([A.t.close(), B.t.close()]);
  });
});
