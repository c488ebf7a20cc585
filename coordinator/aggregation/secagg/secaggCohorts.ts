import { createRng, deriveSeed, shuffleInPlace } from '../../../shared/data/random';

/**
 * Splits a round's selected clients into disjoint secure-aggregation cohorts: a seeded shuffle
 * (job seed, round, attempt) cut into max(1, floor(n / cohortSize)) cohorts whose sizes differ by at
 * most one (the remainder is spread over the first cohorts), so every cohort has at least cohortSize
 * clients when n >= cohortSize. Without a cohortSize the whole selection is one cohort (in order).
 */
export function splitCohorts(
  selected: readonly string[],
  cohortSize: number | undefined,
  seed: { seed: number; round: number; attempt: number },
): string[][] {
  if (cohortSize === undefined) return [[...selected]];
  if (!Number.isInteger(cohortSize) || cohortSize < 1)
    throw new RangeError(`cohortSize must be a positive integer, got ${cohortSize}`);
  const shuffled = shuffleInPlace(
    [...selected],
    createRng(deriveSeed(seed.seed, 'secagg-cohorts', seed.round, seed.attempt)),
  );
  const count = Math.max(1, Math.floor(shuffled.length / cohortSize));
  const base = Math.floor(shuffled.length / count);
  const extra = shuffled.length % count;
  const cohorts: string[][] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    const size = base + (i < extra ? 1 : 0);
    cohorts.push(shuffled.slice(at, at + size));
    at += size;
  }
  return cohorts;
}
