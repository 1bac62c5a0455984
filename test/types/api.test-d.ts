import { describe, expectTypeOf, it } from 'vitest';
import {
  NodeController,
  Server,
  Router,
  InProcessTransport,
  loadTopology,
  BackpressureError,
  DiscoError,
  type Inbox,
  type ReceivedEvent,
  type ReceivedPromise,
  type Seqnr,
  type Transport,
  type NodeRef,
  type SendEventOptions,
} from '../../src/index.js';

describe('public API types', () => {
  it('NodeController send signatures follow the spec', () => {
    expectTypeOf<NodeController['sendEvent']>().parameters.toEqualTypeOf<
      [
        target: string,
        epoch: number,
        data: unknown,
        headers?: Readonly<Record<string, string>>,
        options?: SendEventOptions,
      ]
    >();
    expectTypeOf<SendEventOptions['replyTo']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<NodeController['reply']>().parameters.toEqualTypeOf<
      [
        received: ReceivedEvent,
        epoch: number,
        data: unknown,
        headers?: Readonly<Record<string, string>>,
      ]
    >();
    expectTypeOf<NodeController['sendEvent']>().returns.toEqualTypeOf<void>();
    expectTypeOf<NodeController['sendPromise']>().parameters.toEqualTypeOf<
      [target: string, seqnr: Seqnr, epoch: number, numEvents: number]
    >();
    expectTypeOf<NodeController['drained']>().returns.toEqualTypeOf<Promise<void>>();
    expectTypeOf<NodeController['flush']>().returns.toEqualTypeOf<Promise<void>>();
    expectTypeOf<NodeController['writable']>().toEqualTypeOf<boolean>();
    expectTypeOf<NodeController['activeSimproc']>().toEqualTypeOf<string>();
  });

  it('inboxes receive typed events and promises', () => {
    expectTypeOf<Inbox['onEvent']>().parameter(0).toEqualTypeOf<ReceivedEvent>();
    expectTypeOf<Inbox['onPromise']>().parameter(0).toEqualTypeOf<ReceivedPromise>();
    expectTypeOf<ReceivedEvent['sender']>().toEqualTypeOf<NodeRef>();
    expectTypeOf<ReceivedPromise['seqnr']>().toEqualTypeOf<Seqnr>();
    expectTypeOf<Seqnr>().toEqualTypeOf<number | bigint>();
  });

  it('transports, router and server fit together', () => {
    expectTypeOf<InProcessTransport>().toExtend<Transport>();
    expectTypeOf<Router['resolve']>().returns.toEqualTypeOf<Transport>();
    expectTypeOf(Server.standalone).returns.toEqualTypeOf<Server>();
    expectTypeOf<Server['controller']>().returns.toEqualTypeOf<NodeController>();
    expectTypeOf(loadTopology).parameter(0).not.toBeAny();
    expectTypeOf<BackpressureError>().toExtend<DiscoError>();
    expectTypeOf<DiscoError['code']>().toEqualTypeOf<`ERR_${string}` & DiscoError['code']>();
  });
});
