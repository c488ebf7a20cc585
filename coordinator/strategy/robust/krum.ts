import { meanOfParts, type PartMean, squaredDistance } from './partMeans';

/** All pairwise squared L2 distances between the parts' mean updates (symmetric, zero diagonal). */
export function pairwiseSquaredDistances(parts: readonly PartMean[]): Float64Array[] {
  const n = parts.length;
  const d = Array.from({ length: n }, () => new Float64Array(n));
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const v = squaredDistance(parts[i], parts[j]);
      d[i][j] = v;
      d[j][i] = v;
    }
  }
  return d;
}

/**
 * Krum scores (Blanchard et al. 2017, section 4) of `candidates` (indices into `distances`): the sum
 * of each candidate's squared distances to its r - f - 2 nearest other candidates, r = candidates
 * count. Below r = f + 3 (only inside Bulyan's selection loop) at least one neighbour is counted, as
 * Flower's Bulyan does; a lone candidate scores 0.
 */
export function krumScores(distances: readonly Float64Array[], candidates: readonly number[], f: number): number[] {
  const neighbours = Math.max(1, candidates.length - f - 2);
  return candidates.map((i) => {
    const others = candidates.filter((j) => j !== i).map((j) => distances[i][j]);
    others.sort((a, b) => a - b);
    let score = 0;
    for (let k = 0; k < Math.min(neighbours, others.length); k++) score += others[k];
    return score;
  });
}

/** Indices of `candidates` ordered by Krum score, lowest first; equal scores keep the candidates' order. */
export function rankByKrumScore(
  distances: readonly Float64Array[],
  candidates: readonly number[],
  f: number,
): number[] {
  const scores = krumScores(distances, candidates, f);
  return candidates
    .map((c, k) => ({ c, score: scores[k], k }))
    .sort((a, b) => a.score - b.score || a.k - b.k)
    .map((x) => x.c);
}

/**
 * Krum (Blanchard, El Mhamdi, Guerraoui & Stainer, "Machine Learning with Adversaries: Byzantine
 * Tolerant Gradient Descent", NeurIPS 2017, section 4): the mean update is the one part whose
 * n - f - 2 nearest neighbours are closest (lowest score; ties go to the first part in member-id
 * order). (alpha, f)-Byzantine resilient for n > 2f + 2 (Proposition 1). Unweighted: a part's weight
 * plays no role, so a client cannot buy selection by declaring more examples. Returns the chosen
 * part's index with the update.
 */
export function krum(parts: readonly PartMean[], f: number): { selected: number[]; update: Float64Array[] } {
  if (parts.length <= 2 * f + 2) throw new RangeError(`Krum needs n > 2f + 2; got n = ${parts.length}, f = ${f}`);
  const all = parts.map((_, i) => i);
  const best = rankByKrumScore(pairwiseSquaredDistances(parts), all, f)[0];
  return { selected: [best], update: meanOfParts([parts[best]]) };
}

/**
 * Multi-Krum (same paper, section 4): the unweighted mean of the m parts with the best Krum scores
 * (default m = n - f), which keeps Krum's resilience while averaging away more honest noise.
 */
export function multiKrum(
  parts: readonly PartMean[],
  f: number,
  m: number = parts.length - f,
): { selected: number[]; update: Float64Array[] } {
  if (parts.length <= 2 * f + 2) throw new RangeError(`Multi-Krum needs n > 2f + 2; got n = ${parts.length}, f = ${f}`);
  if (!(m >= 1 && m <= parts.length))
    throw new RangeError(`Multi-Krum needs 1 <= m <= n; got m = ${m}, n = ${parts.length}`);
  const all = parts.map((_, i) => i);
  const selected = rankByKrumScore(pairwiseSquaredDistances(parts), all, f).slice(0, m);
  return { selected, update: meanOfParts(selected.map((i) => parts[i])) };
}
