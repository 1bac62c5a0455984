/**
 * Goals of a suite, checked against one run's results: a suite may export `goals`, a list of
 *
 *   label      what the goal says, for the report: 'raw ring, 64 B, batched: ≥ 3× concatenated UDS'
 *   short?     a shorter name for the chart
 *   case       the measured case's name
 *   baseline?  the case it is compared with; without one the goal is on the case's own metric
 *   metric     'rate' (messages/s), 'p50' or 'p99' (µs, from the round's latency histogram)
 *   at         '>=' or '<=': on which side of `target` the goal is met
 *   target     a ratio (with a baseline), messages/s or µs
 *   approx?    a fraction: the goal says "about target", met within that fraction of it
 *
 * With a baseline the value is paired like the suite's ratios: round r of the case over round r
 * of the baseline, median over the rounds, so machine load common to both cancels out.
 */

import { formatRate, formatRatio, formatSeconds, median } from './stats.mjs';

function metricOf(result, round, metric) {
  if (metric === 'rate') return round.hz * result.messagesPerOp;
  const v = round.latency?.[metric];
  if (v === undefined) throw new Error(`goal metric ${metric}: case ${result.name} has no latency`);
  return v;
}

/** The threshold the value is compared with (lowered for an "about" goal). */
function thresholdOf(goal) {
  if (goal.approx === undefined) return goal.target;
  return goal.at === '>=' ? goal.target * (1 - goal.approx) : goal.target * (1 + goal.approx);
}

/**
 * Evaluates `goals` on `results` (summarised cases with their rounds). A goal whose cases did
 * not run (a --filter) comes back with `value: undefined`.
 */
export function evaluateGoals(goals, results) {
  const byName = new Map(results.map((r) => [r.name, r]));
  return goals.map((goal) => {
    const c = byName.get(goal.case);
    const b = goal.baseline === undefined ? undefined : byName.get(goal.baseline);
    if (c === undefined || (goal.baseline !== undefined && b === undefined)) {
      return { ...goal, value: undefined, met: undefined };
    }
    let values;
    if (b === undefined) {
      values = c.rounds.map((r) => metricOf(c, r, goal.metric));
    } else {
      const n = Math.min(c.rounds.length, b.rounds.length);
      values = [];
      for (let i = 0; i < n; i++) {
        values.push(metricOf(c, c.rounds[i], goal.metric) / metricOf(b, b.rounds[i], goal.metric));
      }
    }
    const value = median(values);
    const threshold = thresholdOf(goal);
    const met = goal.at === '>=' ? value >= threshold : value <= threshold;
    return { ...goal, value, values, threshold, met };
  });
}

/** A goal's value or target as text: a ratio, messages/s or a latency. */
export function formatGoalValue(goal, v) {
  if (goal.baseline !== undefined) return formatRatio(v);
  if (goal.metric === 'rate') return `${formatRate(v)} msgs/s`;
  return formatSeconds(v / 1e6);
}

/** The target as text: '≥ 3×', '≤ 5.00 µs', '≈ 10× (met from 8.00×)'. */
export function formatGoalTarget(goal) {
  const op = goal.approx === undefined ? (goal.at === '>=' ? '≥' : '≤') : '≈';
  const text = `${op} ${goal.baseline !== undefined ? `${goal.target}×` : formatGoalValue(goal, goal.target)}`;
  if (goal.approx === undefined) return text;
  return `${text} (met ${goal.at === '>=' ? 'from' : 'up to'} ${formatGoalValue(goal, thresholdOf(goal))})`;
}

/**
 * How far a goal is met: > 1 met, < 1 missed, as a factor on the goal's own scale (measured
 * over threshold for '>=', threshold over measured for '<=').
 */
export function goalHeadroom(goal) {
  if (goal.value === undefined) return undefined;
  return goal.at === '>=' ? goal.value / goal.threshold : goal.threshold / goal.value;
}
