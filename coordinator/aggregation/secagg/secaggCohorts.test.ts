import { JobSpecSchema, SecAggOptionsSchema } from '../../../shared/schemas/jobSpec';
import type { JobSpecInput } from '../../../shared/schemas/jobSpec';
import { splitCohorts } from './secaggCohorts';

const ids = (n: number) => Array.from({ length: n }, (_, i) => `client-${String(i).padStart(3, '0')}`);

describe('splitCohorts', () => {
  it('is one cohort of all selected clients, in order, without a cohortSize', () => {
    expect(splitCohorts(ids(7), undefined, { seed: 1, round: 1, attempt: 0 })).toEqual([ids(7)]);
  });

  it.each([
    [6, 3, [3, 3]],
    [7, 3, [4, 3]],
    [8, 3, [4, 4]],
    [11, 3, [4, 4, 3]],
    [5, 3, [5]],
    [3, 3, [3]],
    [20, 4, [4, 4, 4, 4, 4]],
    [23, 5, [6, 6, 6, 5]],
    [2, 3, [2]],
  ])('splits %i clients with cohortSize %i into cohorts of %j', (n, k, sizes) => {
    const cohorts = splitCohorts(ids(n), k, { seed: 9, round: 2, attempt: 1 });
    expect(cohorts.map((c) => c.length).reduce((a, b) => a + b, 0)).toBe(n);
    expect(cohorts).toHaveLength(Math.max(1, Math.floor(n / k)));
    if (n >= k) for (const c of cohorts) expect(c.length).toBeGreaterThanOrEqual(k);
    const lengths = cohorts.map((c) => c.length);
    expect(Math.max(...lengths) - Math.min(...lengths)).toBeLessThanOrEqual(1);
    expect(lengths).toEqual(sizes);
  });

  it('gives disjoint cohorts that cover the selection exactly once', () => {
    for (const [n, k] of [
      [6, 3],
      [50, 7],
      [101, 10],
      [1023, 3],
    ]) {
      const cohorts = splitCohorts(ids(n), k, { seed: 3, round: 4, attempt: 0 });
      const all = cohorts.flat();
      expect(all).toHaveLength(n);
      expect(new Set(all).size).toBe(n);
      expect([...all].sort()).toEqual(ids(n).sort());
    }
  });

  it('is deterministic under (seed, round, attempt) and varies with each', () => {
    const at = (seed: number, round: number, attempt: number) => splitCohorts(ids(30), 3, { seed, round, attempt });
    expect(at(5, 1, 0)).toEqual(at(5, 1, 0));
    expect(at(5, 1, 0)).not.toEqual(at(6, 1, 0));
    expect(at(5, 1, 0)).not.toEqual(at(5, 2, 0));
    expect(at(5, 1, 0)).not.toEqual(at(5, 1, 1));
    // The input order does not leak into the split beyond the seeded shuffle.
    expect(splitCohorts(ids(30), 3, { seed: 5, round: 1, attempt: 0 })).not.toEqual([ids(30).slice(0, 3)]);
  });

  it('does not modify the selection', () => {
    const selected = ids(9);
    splitCohorts(selected, 3, { seed: 1, round: 1, attempt: 0 });
    expect(selected).toEqual(ids(9));
  });
});

describe('secagg.cohortSize validation', () => {
  const spec = (minClients: number, secagg: Record<string, unknown>): JobSpecInput =>
    ({
      name: 'cohorts',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
      input: { shape: [2], numClasses: 2 },
      rounds: 1,
      minClients,
      secureAggregation: 'secagg',
      secagg,
    }) as JobSpecInput;

  it('accepts a cohortSize of at least 3 and at most minClients, and defaults to unset', () => {
    expect(JobSpecSchema.safeParse(spec(6, { cohortSize: 3 })).success).toBe(true);
    expect(JobSpecSchema.safeParse(spec(3, { cohortSize: 3 })).success).toBe(true);
    expect(SecAggOptionsSchema.parse({}).cohortSize).toBeUndefined();
    expect(SecAggOptionsSchema.parse({ cohortSize: 4 }).cohortSize).toBe(4);
    const parsed = JobSpecSchema.parse(spec(6, { cohortSize: 4 }));
    expect(parsed.secureAggregation === 'secagg' && parsed.secagg.cohortSize).toBe(4);
  });

  it.each([
    ['below 3', spec(6, { cohortSize: 2 })],
    ['not an integer', spec(6, { cohortSize: 3.5 })],
    ['above minClients', spec(5, { cohortSize: 6 })],
    ['neighbourCount too large for a cohort', spec(8, { cohortSize: 4, neighbourCount: 4 })],
  ])('rejects a cohortSize %s', (_, s) => {
    expect(JobSpecSchema.safeParse(s).success).toBe(false);
  });
});
