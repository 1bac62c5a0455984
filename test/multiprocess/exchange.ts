/**
 * The exchange job (fixtures/exchange-job.mjs) as tests use it: its module path and
 * the tallies each Server returns.
 */

import { fileURLToPath } from 'node:url';

/** Absolute path of the exchange job module. */
export const exchangeJob = fileURLToPath(new URL('./fixtures/exchange-job.mjs', import.meta.url));

/** What one Server's exchange job returns. */
export interface ExchangeResult {
  received: number;
  promises: number;
  expectedEvents: number;
  expectedPromises: number;
  problems: string[];
}
