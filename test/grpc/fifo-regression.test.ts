// SPEC E4: many concurrent sends to several nodes must arrive in FIFO order per
// (sender, target) pair. The same check is run against a channel that sends each
// message as its own unary call (SPEC E2's broken design), to show it catches reordering.
import {
  credentials,
  Client,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type sendUnaryData,
} from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { Directory, startTransport, uniqueCluster } from '../fixtures/grpc/pair.js';
import { RecordingNode, seqEvent } from '../fixtures/grpc/recording-node.js';

const SENDERS = ['a1', 'a2', 'a3'];
const TARGETS = ['b1', 'b2', 'b3', 'b4'];

/**
 * Every (sender, target) pair must have received exactly 0..perPair-1 in order.
 * @returns one line per pair that did not.
 */
function perNodeFifoViolations(nodes: readonly RecordingNode[], perPair: number): string[] {
  const out: string[] = [];
  for (const node of nodes) {
    for (const sender of SENDERS) {
      const got = node.events.get(sender) ?? [];
      const bad = got.findIndex((seq, i) => seq !== i);
      if (bad >= 0) out.push(`${sender}->${node.nodeName}: position ${bad} holds ${got[bad]}`);
      else if (got.length !== perPair)
        out.push(`${sender}->${node.nodeName}: ${got.length} of ${perPair}`);
    }
  }
  return out;
}

/**
 * Fans out concurrently: one task per sender, each sending `perPair` messages to every
 * target in a random interleaving, yielding at random points, never waiting for replies.
 */
async function fanOut(
  perPair: number,
  send: (sender: string, target: string, seq: number) => void | Promise<void>,
): Promise<void> {
  await Promise.all(
    SENDERS.map(async (sender) => {
      const next = new Map(TARGETS.map((t) => [t, 0]));
      const pending: Promise<void>[] = [];
      for (let left = perPair * TARGETS.length; left > 0;) {
        const open = TARGETS.filter((t) => next.get(t)! < perPair);
        const target = open[Math.floor(Math.random() * open.length)]!;
        const seq = next.get(target)!;
        next.set(target, seq + 1);
        left--;
        const r = send(sender, target, seq);
        if (r !== undefined) pending.push(r);
        if (Math.random() < 0.05) await new Promise((resolve) => setImmediate(resolve));
      }
      await Promise.all(pending);
    }),
  );
}

describe('FIFO per node under concurrent fan-out (SPEC E4)', () => {
  it('keeps per-(sender, target) order for concurrent sends to several nodes over one link', async () => {
    const cluster = uniqueCluster('grpc-fifo-e4');
    const dir = new Directory();
    for (const t of TARGETS) dir.placement.set(t, 'B');
    const A = await startTransport(dir, cluster, 'A');
    const B = await startTransport(dir, cluster, 'B');
    const nodes = TARGETS.map((t) => new RecordingNode(t));
    for (const n of nodes) B.t.attach(n);
    const perPair = 2500;
    await fanOut(perPair, async (sender, target, seq) => {
      if (!A.t.writable) await new Promise((resolve) => A.t.once('drain', resolve));
      A.t.sendEvent(seqEvent(sender, target, seq));
    });
    await A.t.flush();
    expect(perNodeFifoViolations(nodes, perPair)).toEqual([]);
    await A.t.close();
    await B.t.close();
  });

  it('detects the reordering of one unary call per message handled with random delays', async () => {
    // Test-only channel: each message is its own unary call; the server takes 0-3 ms per call.
    const nodes = new Map(TARGETS.map((t) => [t, new RecordingNode(t)]));
    const path = '/fifo.Unary/Send';
    const identity = (b: Buffer): Buffer => b;
    const server = new Server();
    server.addService(
      {
        Send: {
          path,
          requestStream: false,
          responseStream: false,
          requestSerialize: identity,
          requestDeserialize: identity,
          responseSerialize: identity,
          responseDeserialize: identity,
        },
      },
      {
        Send: (call: ServerUnaryCall<Buffer, Buffer>, done: sendUnaryData<Buffer>) => {
          const [sender, target, seq] = JSON.parse(call.request.toString()) as [
            string,
            string,
            number,
          ];
          setTimeout(() => {
            nodes.get(target)!.deliverEvent(seqEvent(sender, target, seq));
            done(null, Buffer.alloc(0));
          }, Math.random() * 3);
        },
      },
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
    const perPair = 300;
    await fanOut(
      perPair,
      (sender, target, seq) =>
        new Promise<void>((resolve, reject) =>
          client.makeUnaryRequest(
            path,
            identity,
            identity,
            Buffer.from(JSON.stringify([sender, target, seq])),
            (err) => (err ? reject(err) : resolve()),
          ),
        ),
    );
    const violations = perNodeFifoViolations([...nodes.values()], perPair);
    // Every message arrived (exactly once), so what the check reports is reordering.
    for (const n of nodes.values()) expect(n.eventCount).toBe(perPair * SENDERS.length);
    expect(violations.length).toBeGreaterThan(0);
    expect(violations[0]).toMatch(/position \d+ holds \d+/);
    client.close();
    server.forceShutdown();
  });
});
