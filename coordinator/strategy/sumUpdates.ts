import type { AggregatedUpdates } from './strategy';

/** The sum of several sums (cohorts, clients, coalitions): weightedDeltaSum added per tensor, totalWeight and clientCount added (inputs are not changed). */
export function sumUpdates(parts: readonly AggregatedUpdates[]): AggregatedUpdates {
  if (parts.length === 0) throw new RangeError('no sums to add');
  const weightedDeltaSum = parts[0].weightedDeltaSum.map((t) => Float64Array.from(t));
  let totalWeight = parts[0].totalWeight;
  let clientCount = parts[0].clientCount;
  for (const p of parts.slice(1)) {
    if (p.weightedDeltaSum.length !== weightedDeltaSum.length)
      throw new RangeError('the sums have different tensor counts');
    p.weightedDeltaSum.forEach((t, i) => {
      const acc = weightedDeltaSum[i];
      if (t.length !== acc.length) throw new RangeError(`the sums differ in the size of tensor ${i}`);
      for (let j = 0; j < t.length; j++) acc[j] += t[j];
    });
    totalWeight += p.totalWeight;
    clientCount += p.clientCount;
  }
  return { weightedDeltaSum, totalWeight, clientCount };
}
