import { type PartMean, reduceSortedCoordinates } from './partMeans';

/** The median of sorted values: the middle one, or the mean of the two middle ones for an even count. */
export function medianOfSorted(sorted: Float64Array): number {
  const n = sorted.length;
  const mid = n >> 1;
  return n % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Coordinate-wise median (Yin, Chen, Ramchandran & Bartlett, "Byzantine-Robust Distributed Learning:
 * Towards Optimal Statistical Rates", ICML 2018, section 3, median-based gradient descent): each
 * coordinate of the mean update is the median of that coordinate over the parts (for an even count,
 * the mean of the two middle values). With fewer than half the parts Byzantine, every coordinate lies
 * between two honest values, however large the Byzantine ones are. Each part counts once.
 */
export function coordinateMedian(parts: readonly PartMean[]): Float64Array[] {
  return reduceSortedCoordinates(parts, medianOfSorted);
}
