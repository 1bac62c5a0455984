/**
 * An idle link must not fail its next send: keepalive pings run on a link that
 * carries nothing, and the server accepts them (grpc-js servers refuse pings that come
 * too often and then close the connection, which a link would see as a broken call).
 * Keepalive is shortened here so that several pings fall into a short idle time.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { Directory, sendAll, startTransport, uniqueCluster } from '../fixtures/grpc/pair.js';
import { RecordingNode, seqEvent, until } from '../fixtures/grpc/recording-node.js';

describe('an idle gRPC link', () => {
  it('keeps its call through keepalive pings and delivers the next send without reconnecting', async () => {
    const cluster = uniqueCluster('grpc-idle');
    const dir = new Directory();
    dir.placement.set('b1', 'B');
    const keepalive = { 'grpc.keepalive_time_ms': 200, 'grpc.keepalive_timeout_ms': 1000 };
    const A = await startTransport(dir, cluster, 'A', { channelOptions: keepalive });
    const B = await startTransport(dir, cluster, 'B', { channelOptions: keepalive });
    const b1 = new RecordingNode('b1');
    B.t.attach(b1);
    await sendAll(A.t, 10, (i) => seqEvent('a1', 'b1', i));
    await until(() => b1.eventCount === 10, 10_000, 'the first events');
    await sleep(3000); // about 15 keepalive intervals with nothing to send
    await sendAll(A.t, 10, (i) => seqEvent('a1', 'b1', 10 + i));
    await until(() => b1.eventCount === 20, 10_000, 'the events after the idle time');
    await A.t.flush(); // the acknowledgement follows the delivery
    expect(A.t.linkMetrics()[0]).toMatchObject({ peer: 'B', reconnects: 0, unacknowledged: 0 });
    expect(A.errors).toEqual([]);
    expect(B.errors).toEqual([]);
    await Promise.all([A.t.close(), B.t.close()]);
  });
});
