/**
 * Test helpers: a recording inbox and a way to wait for deliveries with a deadline.
 */

import type { Inbox } from '../../src/node-controller.js';
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
