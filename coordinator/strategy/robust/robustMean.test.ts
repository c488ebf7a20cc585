import fc from 'fast-check';
import type { RobustRule } from '../../../shared/schemas/strategySpec';
import { first, part } from '../testParts';
import { robustMeanUpdate } from './robustMean';

const median: RobustRule = { rule: 'median', f: 1 };

describe('robustMeanUpdate', () => {
  it('refuses too few parts with STRATEGY_TOO_FEW_UPDATES, counted in cohorts when parts are cohorts', () => {
    const krum: RobustRule = { rule: 'krum', f: 1 };
    const four = ['a', 'b', 'c', 'd'].map((m, i) => part(m, [[i]]));
    expect(() => robustMeanUpdate(krum, four, [1])).toThrow(
      expect.objectContaining({
        code: 'STRATEGY_TOO_FEW_UPDATES',
        message: expect.stringMatching(/at least 5 parts; the round has 4/),
      }),
    );
    expect(first(robustMeanUpdate(krum, [...four, part('e', [[4]])], [1]).update)).toEqual([1]);
    const cohorts = [part(['a', 'b', 'c'], [[1]], 3), part(['d', 'e', 'f'], [[2]], 3)];
    expect(() => robustMeanUpdate(median, cohorts, [1])).toThrow(/at least 3 cohorts; the round has 2/);
    expect(() => robustMeanUpdate({ rule: 'multi-krum', f: 0, m: 4 }, four.slice(0, 3), [1])).toThrow(
      expect.objectContaining({ code: 'STRATEGY_TOO_FEW_UPDATES' }),
    );
    expect(() => robustMeanUpdate({ rule: 'bulyan', f: 1 }, [...four, ...four.slice(0, 2)], [1])).toThrow(
      /n >= 4f \+ 3 \(f = 1\), i\.e\. at least 7/,
    );
  });

  it('fails a part with a bad weight or non-finite sums, naming its members', () => {
    const good = [part('a', [[1]]), part('b', [[2]])];
    const negative = part(['x', 'y', 'z'], [[1]], 1);
    negative.updates.totalWeight = -0.5;
    expect(() => robustMeanUpdate(median, [...good, negative], [1])).toThrow(
      expect.objectContaining({ code: 'ROUND_AGGREGATE_INVALID', details: { members: ['x', 'y', 'z'] } }),
    );
    const nan = part('m', [[Number.NaN]]);
    expect(() => robustMeanUpdate(median, [...good, nan], [1])).toThrow(
      expect.objectContaining({ code: 'ROUND_AGGREGATE_INVALID', details: { members: ['m'] } }),
    );
    expect(() => robustMeanUpdate(median, [...good, part('c', [[1, 2]])], [1])).toThrow(
      expect.objectContaining({ code: 'MODEL_SHAPE_MISMATCH' }),
    );
  });

  it('takes a rule over cohort means: one attacker spoils its own cohort, the median outvotes it', () => {
    // Three cohorts of three; honest deltas +0.01; one attacker (weight 1e9, delta -5) in cohort 1.
    const honest = (m: string) => ({ m, d: 0.01, w: 100 });
    const cohort = (clients: { m: string; d: number; w: number }[]) => {
      const w = clients.reduce((s, c) => s + c.w, 0);
      const sum = clients.reduce((s, c) => s + c.d * c.w, 0);
      return {
        members: clients.map((c) => c.m),
        updates: { weightedDeltaSum: [Float64Array.from([sum])], totalWeight: w, clientCount: clients.length },
      };
    };
    const parts = [
      cohort([honest('a'), honest('b'), { m: 'evil', d: -5, w: 1e9 }]),
      cohort([honest('c'), honest('d'), honest('e')]),
      cohort([honest('f'), honest('g'), honest('h')]),
    ];
    expect(first(robustMeanUpdate(median, parts, [1]).update)[0]).toBeCloseTo(0.01, 12);
  });

  it('reports which parts Krum-type rules kept', () => {
    const parts = ['e', 'c', 'a', 'd', 'b'].map((m) => part(m, [[{ a: 0, b: 1, c: 2, d: 3, e: 100 }[m] as number]]));
    expect(robustMeanUpdate({ rule: 'multi-krum', f: 1, m: 2 }, parts, [1]).selected).toEqual([['b'], ['c']]);
    expect(robustMeanUpdate(median, parts, [1]).selected).toBeUndefined();
  });
});

describe('a single attacker moves a robust result by a bounded amount (property)', () => {
  const honestVectors = fc.array(
    fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 3, maxLength: 3 }),
    {
      minLength: 6,
      maxLength: 8,
    },
  );
  // The attacker sends anything a Float32 update can hold (up to FLT_MAX), with weight 1e9, or a point beside the honest ones.
  const attacker = fc.tuple(
    fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 3, maxLength: 3 }),
    fc.double({ min: 0, max: 3.4e38, noNaN: true }),
  );
  const parts = (honest: number[][], evil: number[]) => [
    ...honest.map((v, i) => part(`h${i}`, [v])),
    part('evil', [evil], 1e9),
  ];

  it('median and trimmed mean stay inside the honest values of every coordinate', () => {
    fc.assert(
      fc.property(honestVectors, attacker, (honest, [direction, scale]) => {
        const evil = direction.map((d) => d * scale);
        for (const rule of [median, { rule: 'trimmed-mean', f: 1 } as RobustRule]) {
          const out = first(robustMeanUpdate(rule, parts(honest, evil), [3]).update);
          out.forEach((v, j) => {
            const column = honest.map((h) => h[j]);
            expect(v).toBeGreaterThanOrEqual(Math.min(...column) - 1e-12);
            expect(v).toBeLessThanOrEqual(Math.max(...column) + 1e-12);
          });
        }
      }),
      { numRuns: 200 },
    );
  });

  it('Krum (f = 1) lands within 3 honest diameters of the honest mean', () => {
    // If Krum picks the attacker, its n - f - 2 nearest neighbours are honest and its score is at most
    // an honest score (<= (n - f - 2)·D²), so it lies within 2D of an honest vector: within 3D of their mean.
    fc.assert(
      fc.property(honestVectors, attacker, (honest, [direction, scale]) => {
        const evil = direction.map((d) => d * scale);
        const out = first(robustMeanUpdate({ rule: 'krum', f: 1 }, parts(honest, evil), [3]).update);
        const dist = (a: number[], b: number[]) => Math.hypot(...a.map((x, j) => x - b[j]));
        let diameter = 0;
        for (const a of honest) for (const b of honest) diameter = Math.max(diameter, dist(a, b));
        const mean = [0, 1, 2].map((j) => honest.reduce((s, h) => s + h[j], 0) / honest.length);
        expect(dist(out, mean)).toBeLessThanOrEqual(3 * diameter + 1e-9);
      }),
      { numRuns: 200 },
    );
  });
});
