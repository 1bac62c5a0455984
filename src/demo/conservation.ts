/**
 * The conservation check of a PHOLD run: a pure function over counters, so it can
 * be fed a deliberately broken tally in a test and shown to fail.
 *
 * What must hold once a run has ended and every queue has been flushed:
 * - for every (sender, target) pair, the counts promised add up to the events the
 *   target received from that sender (promises are the completeness guarantee),
 *   and the sender sent exactly that many (exactly-once delivery, SPEC S3);
 * - every handled event scheduled exactly one new event;
 * - the population is intact: pending + in flight equals the initial population.
 *
 * Called by runPhold; the CLI turns a failed check into exit code 1.
 */

/** Counters of one directed (sender, target) pair over a whole run. */
export interface PairTally {
  readonly sender: string;
  readonly target: string;
  /** Events the sender sent to the target (sender's count). */
  readonly sent: number;
  /** Events the target received from the sender (target's count). */
  readonly received: number;
  /** Sum of `numEvents` over the promises the target received from the sender. */
  readonly promised: number;
}

/** Counters of one replication. */
export interface ReplicationTally {
  readonly repid: number;
  /** Events present at the start (nodes x events per node); constant in PHOLD. */
  readonly population: number;
  /** Events handled by all nodes. */
  readonly handled: number;
  /** Events waiting in the nodes' pending sets at the end. */
  readonly pending: number;
  readonly pairs: readonly PairTally[];
}

/** Outcome of the check: `ok` exactly when `problems` is empty. */
export interface ConservationReport {
  readonly ok: boolean;
  readonly problems: string[];
}

function checkPair(repid: number, pair: PairTally, problems: string[]): void {
  const where = `repid ${repid}: ${pair.sender} -> ${pair.target}`;
  if (pair.promised !== pair.received) {
    problems.push(`${where}: promised ${pair.promised} events in total, received ${pair.received}`);
  }
  if (pair.sent !== pair.received) {
    problems.push(`${where}: sent ${pair.sent} events, received ${pair.received} after flush`);
  }
}

function checkReplication(tally: ReplicationTally, problems: string[]): void {
  let sent = 0;
  let received = 0;
  for (const pair of tally.pairs) {
    checkPair(tally.repid, pair, problems);
    sent += pair.sent;
    received += pair.received;
  }
  const inFlight = sent - received;
  if (tally.handled !== sent) {
    problems.push(
      `repid ${tally.repid}: handled ${tally.handled} events but sent ${sent}; ` +
        'each handled event must schedule exactly one new event',
    );
  }
  if (tally.pending + inFlight !== tally.population) {
    problems.push(
      `repid ${tally.repid}: population ${tally.population} is not intact: ` +
        `${tally.pending} pending + ${inFlight} in flight = ${tally.pending + inFlight}`,
    );
  }
}

/**
 * Checks the counters of every replication; see the file header.
 * @param extraProblems - problems the nodes noticed during the run (out-of-order
 *   promises, late events); they make the report fail as well.
 */
export function checkConservation(
  tallies: readonly ReplicationTally[],
  extraProblems: readonly string[] = [],
): ConservationReport {
  const problems: string[] = [];
  for (const tally of tallies) checkReplication(tally, problems);
  problems.push(...extraProblems);
  return { ok: problems.length === 0, problems };
}
