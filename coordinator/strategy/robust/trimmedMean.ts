import { type PartMean, reduceSortedCoordinates } from './partMeans';

/**
 * Coordinate-wise trimmed mean (Yin, Chen, Ramchandran & Bartlett, ICML 2018, section 3,
 * trimmed-mean-based gradient descent, with beta = f / n): per coordinate, the f largest and the f
 * smallest values are dropped and the remaining n - 2f averaged. Needs n > 2f; with at most f
 * Byzantine parts every kept value lies between two honest values. Each part counts once.
 */
export function trimmedMean(parts: readonly PartMean[], f: number): Float64Array[] {
  const n = parts.length;
  if (n <= 2 * f) throw new RangeError(`trimmed mean needs n > 2f; got n = ${n}, f = ${f}`);
  const kept = n - 2 * f;
  return reduceSortedCoordinates(parts, (sorted) => {
    let total = 0;
    for (let i = f; i < n - f; i++) total += sorted[i];
    return total / kept;
  });
}
