import { splitCohorts } from '../aggregation/secagg/secaggCohorts';
import { membershipLeastSquares } from './membershipLeastSquares';

describe('membershipLeastSquares', () => {
  const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
  const truth: Record<string, number> = { a: 0.5, b: 0.25, c: 0, d: -0.125, e: -0.25, f: 0.0625 };

  it('recovers additive per-client values, harmful (negative) ones included, from re-drawn cohorts of 3', () => {
    const groups = Array.from({ length: 12 }, (_, round) => splitCohorts(ids, 3, { seed: 1, round, attempt: 0 }))
      .flat()
      .map((members) => ({ members, value: members.reduce((s, m) => s + truth[m], 0) }));
    const estimates = membershipLeastSquares(groups);
    expect(estimates.map((e) => e.clientId)).toEqual(ids);
    for (const e of estimates) {
      expect(e.perRound).toBeCloseTo(truth[e.clientId], 4);
      expect(e.rounds).toBe(12);
      expect(e.total).toBeCloseTo(12 * truth[e.clientId], 3);
    }
  });

  it('splits a group that is never separated equally (participation scoring)', () => {
    const groups = [1, 2, 3].map((r) => ({ members: ['x', 'y', 'z'], value: 0.3 * r }));
    const estimates = membershipLeastSquares(groups);
    for (const e of estimates) expect(e.total).toBeCloseTo(0.6, 4);
  });

  it('ignores non-finite values and returns nothing for no groups', () => {
    expect(membershipLeastSquares([])).toEqual([]);
    const estimates = membershipLeastSquares([
      { members: ['p', 'q'], value: Number.NaN },
      { members: ['p', 'q'], value: 1 },
    ]);
    expect(estimates.map((e) => e.rounds)).toEqual([1, 1]);
    expect(estimates[0].perRound).toBeCloseTo(0.5, 4);
  });
});
