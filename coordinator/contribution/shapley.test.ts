import { exactShapley, gtgShapley, spearman, type Utility } from './shapley';

/** u(S) = sum of weights: each player's Shapley value is its own weight. */
const additive =
  (w: number[]): Utility =>
  async (s) =>
    s.reduce((acc, i) => acc + w[i], 0);

/** A saturating game: value grows with the coalition's total but flattens (like accuracy does). */
const saturating =
  (w: number[]): Utility =>
  async (s) =>
    1 - Math.exp(-s.reduce((acc, i) => acc + w[i], 0));

describe('Shapley values', () => {
  it('exact: additive games give each player its own weight, with 2^n evaluations', async () => {
    const w = [0.1, 0.4, 0, -0.2, 0.3];
    const r = await exactShapley(5, additive(w));
    r.values.forEach((v, i) => expect(v).toBeCloseTo(w[i], 12));
    expect(r.evaluations).toBe(32);
  });

  it('exact: efficiency, symmetry and the null player hold on a non-additive game', async () => {
    const w = [0.5, 0.5, 0, 1.2, 0.1, 0.7];
    const r = await exactShapley(6, saturating(w));
    expect(r.values.reduce((a, b) => a + b, 0)).toBeCloseTo(r.fullUtility - r.emptyUtility, 12);
    expect(r.values[0]).toBeCloseTo(r.values[1], 12);
    expect(r.values[2]).toBeCloseTo(0, 12);
    expect(r.values[3]).toBeGreaterThan(r.values[5]);
  });

  it('exact: a two-player game by hand', async () => {
    // u({}) = 0, u({0}) = 1, u({1}) = 2, u({0,1}) = 4: phi0 = (1 + (4-2))/2 = 1.5, phi1 = 2.5
    const table: Record<string, number> = { '': 0, '0': 1, '1': 2, '0,1': 4 };
    const r = await exactShapley(2, async (s) => table[s.join(',')]);
    expect(r.values).toEqual([1.5, 2.5]);
  });

  it('GTG: close to exact on 6 players with fewer evaluations, and ranks them the same way', async () => {
    const w = [0.05, 0.3, 0.6, 0.0, 0.15, 0.9];
    const exact = await exactShapley(6, saturating(w));
    const gtg = await gtgShapley(6, saturating(w), { seed: 1, withinTruncation: 1e-4, convergence: 0.01 });
    expect(spearman(gtg.values, exact.values)).toBeGreaterThanOrEqual(0.95);
    gtg.values.forEach((v, i) => expect(Math.abs(v - exact.values[i])).toBeLessThan(0.05));
    expect(gtg.values.reduce((a, b) => a + b, 0)).toBeCloseTo(gtg.fullUtility - gtg.emptyUtility, 6);
    expect(gtg.evaluations).toBeLessThanOrEqual(64);
  });

  it('GTG: scales past exact enumeration within its evaluation cap', async () => {
    const w = Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? 0 : 0.02 * (i % 7)));
    const r = await gtgShapley(30, additive(w), { seed: 2, maxEvaluations: 1500 });
    expect(r.evaluations).toBeLessThanOrEqual(1500 + 30);
    expect(spearman(r.values, w)).toBeGreaterThan(0.95);
    for (let i = 0; i < 30; i += 3) expect(Math.abs(r.values[i])).toBeLessThan(1e-9);
  });

  it('GTG: a round that changes nothing is truncated and scores everyone zero', async () => {
    const r = await gtgShapley(4, async () => 0.5);
    expect(r.truncatedRound).toBe(true);
    expect(r.values).toEqual([0, 0, 0, 0]);
    expect(r.evaluations).toBe(2);
  });

  it('spearman: 1 for the same order, -1 for the reverse, ties averaged', () => {
    expect(spearman([1, 2, 3], [10, 20, 30])).toBeCloseTo(1, 12);
    expect(spearman([1, 2, 3], [3, 2, 1])).toBeCloseTo(-1, 12);
    expect(spearman([1, 1, 2], [1, 1, 2])).toBeCloseTo(1, 12);
    expect(() => spearman([1], [1])).toThrow(RangeError);
  });
});
