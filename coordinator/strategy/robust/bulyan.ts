import { medianOfSorted } from './coordinateMedian';
import { pairwiseSquaredDistances, rankByKrumScore } from './krum';
import { type PartMean, reduceSortedCoordinates } from './partMeans';

/**
 * Bulyan (El Mhamdi, Guerraoui & Rouault, "The Hidden Vulnerability of Distributed Learning in
 * Byzantium", ICML 2018, section 4, Algorithm 1), over Krum:
 * 1. selection: theta = n - 2f parts are chosen one at a time, each the Krum winner among those not
 *    yet chosen (scores over the remaining parts, same f);
 * 2. aggregation: per coordinate, the beta = theta - 2f chosen values closest to the chosen values'
 *    median are averaged.
 * Needs n >= 4f + 3. Bounds each coordinate's deviation (not only the vector's norm), which Krum
 * alone does not. Unweighted, like Krum. Returns the chosen parts' indices with the update.
 */
export function bulyan(parts: readonly PartMean[], f: number): { selected: number[]; update: Float64Array[] } {
  const n = parts.length;
  if (n < 4 * f + 3) throw new RangeError(`Bulyan needs n >= 4f + 3; got n = ${n}, f = ${f}`);
  const theta = n - 2 * f;
  const beta = theta - 2 * f;
  const distances = pairwiseSquaredDistances(parts);
  let remaining = parts.map((_, i) => i);
  const selected: number[] = [];
  while (selected.length < theta) {
    const winner = rankByKrumScore(distances, remaining, f)[0];
    selected.push(winner);
    remaining = remaining.filter((i) => i !== winner);
  }
  const chosen = selected.map((i) => parts[i]);
  const update = reduceSortedCoordinates(chosen, (sorted) => meanClosestToMedian(sorted, beta));
  return { selected, update };
}

/**
 * Bulyan's coordinate step: the mean of the `beta` sorted values closest to their median. They form a
 * contiguous window of the sorted values, shrunk from whichever end is farther from the median (on a
 * tie, the larger value goes).
 */
export function meanClosestToMedian(sorted: Float64Array, beta: number): number {
  const median = medianOfSorted(sorted);
  let lo = 0;
  let hi = sorted.length;
  while (hi - lo > beta) {
    if (median - sorted[lo] > sorted[hi - 1] - median) lo++;
    else hi--;
  }
  let total = 0;
  for (let i = lo; i < hi; i++) total += sorted[i];
  return total / beta;
}
