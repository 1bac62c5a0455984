/**
 * The receiving side every transport delivers to: a NodeController of this process.
 * In its own module so that the delivery queue and the transport interface can both
 * name it without importing each other.
 */

import type { EventEnvelope, PromiseEnvelope } from '../envelope.js';

/** Where a transport hands received envelopes: a NodeController in this process. */
export interface LocalNode {
  readonly repid: number;
  readonly nodeName: string;
  /** Hands an event to the inbox of `env.simproc`. Never throws. */
  deliverEvent(env: EventEnvelope): void;
  /** Hands a promise to the inbox of `env.simproc`. Never throws. */
  deliverPromise(env: PromiseEnvelope): void;
}
