/**
 * Test helpers: a recording inbox and a way to wait for deliveries with a deadline.
 */

import type { Inbox, NodeController } from '../../src/node-controller.js';
import type { ReceivedEvent, ReceivedPromise } from '../../src/envelope.js';

/** An inbox that records what it receives, in order, with the kind of each message. */
export class RecordingInbox implements Inbox {
  readonly events: ReceivedEvent[] = [];
  readonly promises: ReceivedPromise[] = [];
  /** 'e' or 'p' per message, in hand-over order. */
  readonly order: ('e' | 'p')[] = [];

  onEvent(event: ReceivedEvent): void {
    this.events.push(event);
    this.order.push('e');
  }

  onPromise(promise: ReceivedPromise): void {
    this.promises.push(promise);
    this.order.push('p');
  }
}

/**
 * Resolves when `done()` is true; rejects after `ms`, naming `what`, so a broken test cannot
 * hang. Checks every turn of the event loop, or every `intervalMs` when other processes need
 * the cores (a ring peer, a forked Server).
 */
export async function until(
  done: () => boolean,
  ms = 10_000,
  what = 'condition',
  intervalMs = 0,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) =>
      intervalMs > 0 ? setTimeout(resolve, intervalMs) : setImmediate(resolve),
    );
  }
}

/**
 * Makes `node`'s inbox for simproc p answer each event with two events to `to`: the first
 * finds the link idle and goes at once (the pump is then pending), the second waits for the
 * pump or for the end of the delivery. `queuedAfterDelivery` is what `queued()` (the
 * transport's queued messages) said in a microtask after the delivery: one runs after the
 * reader's callback and before the pump's turn. -1 until an event came.
 */
export function answerTwice(
  node: NodeController,
  to: string,
  queued: () => number,
): { queuedAfterDelivery: number } {
  const seen = { queuedAfterDelivery: -1 };
  node.setInbox('p', {
    onEvent(e) {
      node.sendEvent(to, 1, e.data);
      node.sendEvent(to, 2, e.data);
      queueMicrotask(() => (seen.queuedAfterDelivery = queued()));
    },
    onPromise() {},
  });
  return seen;
}
