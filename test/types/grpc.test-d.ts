import { describe, expectTypeOf, it } from 'vitest';
import {
  GrpcTransport,
  type GrpcLinkMetrics,
  type GrpcSecurityOptions,
  type GrpcTransportOptions,
  type LinkLimits,
  type Transport,
} from '../../src/index.js';

describe('GrpcTransport public types', () => {
  it('is a Transport with listen() and linkMetrics()', () => {
    expectTypeOf<GrpcTransport>().toMatchTypeOf<Transport>();
    expectTypeOf<GrpcTransport['name']>().toEqualTypeOf<'grpc'>();
    expectTypeOf<GrpcTransport['carriesObjects']>().toEqualTypeOf<false>();
    expectTypeOf<GrpcTransport['listen']>().returns.toEqualTypeOf<Promise<number>>();
    expectTypeOf<GrpcTransport['linkMetrics']>().returns.toEqualTypeOf<GrpcLinkMetrics[]>();
  });

  it('takes the options the other modules build on', () => {
    expectTypeOf<GrpcTransportOptions['cluster']>().toEqualTypeOf<string>();
    expectTypeOf<GrpcTransportOptions['self']>().toEqualTypeOf<string>();
    expectTypeOf<GrpcTransportOptions['listenAddress']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<GrpcTransportOptions['locate']>().toEqualTypeOf<
      (repid: number, node: string) => string | undefined
    >();
    expectTypeOf<GrpcTransportOptions['addressOf']>().toEqualTypeOf<(peer: string) => string>();
    expectTypeOf<GrpcTransportOptions['security']>().toEqualTypeOf<
      GrpcSecurityOptions | undefined
    >();
    expectTypeOf<GrpcTransportOptions['limits']>().toEqualTypeOf<LinkLimits | undefined>();
    expectTypeOf<
      NonNullable<GrpcTransportOptions['reliability']>['peerDeadlineMs']
    >().toEqualTypeOf<number | undefined>();
  });

  it('reports per-peer counters as plain numbers', () => {
    expectTypeOf<GrpcLinkMetrics>().toMatchTypeOf<{
      peer: string;
      framesSent: number;
      bytesSent: number;
      resends: number;
      reconnects: number;
      unacknowledged: number;
      acked: number;
      duplicatesDropped: number;
      rejectedFrames: number;
    }>();
  });
});
