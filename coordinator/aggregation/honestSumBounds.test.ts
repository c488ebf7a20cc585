import fc from 'fast-check';
import { clipAndWeightUpdate } from '../../shared/aggregation/weighting';
import { assertHonestSum, assertPrivateSum, type HonestSumLimits } from './honestSumBounds';

const codeOf = (f: () => void): string | undefined => {
  try {
    f();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
};

// 4 contributors, maxExampleWeight 100, deltas clipped to ±2; exact sums (no quantisation error).
const exact: HonestSumLimits = { contributors: 4, maxExampleWeight: 100, clipRange: 2, weightError: 0, valueError: 0 };
const slack = 4 * 2 * 2 ** -20;

describe('assertHonestSum', () => {
  it('accepts the edges honest clients reach: n/W and n for the weight, ±c·weight for each value', () => {
    expect(codeOf(() => assertHonestSum([0.08, -0.08, 0.04], exact, { label: 's' }))).toBeUndefined(); // 4 × 1/100
    expect(codeOf(() => assertHonestSum([8, -8, 4], exact, { label: 's' }))).toBeUndefined(); // 4 × 1
    expect(codeOf(() => assertHonestSum([2 * 1.5, -3, 1.5], exact, { label: 's' }))).toBeUndefined();
  });

  it('refuses a summed weight below n/W, above n, zero, negative or NaN, naming the members given', () => {
    for (const w of [0.04 - 1e-6, 4 + 1e-5, 0, -1, Number.NaN]) {
      expect(codeOf(() => assertHonestSum([0, w], exact, { label: 's' }))).toBe('ROUND_AGGREGATE_INVALID');
    }
    try {
      assertHonestSum([0, 0.01], exact, { label: 'cohort 3', members: ['a', 'b'] });
      throw new Error('accepted');
    } catch (err) {
      const e = err as { code: string; message: string; details: Record<string, unknown> };
      expect(e.code).toBe('ROUND_AGGREGATE_INVALID');
      expect(e.message).toMatch(
        /^Not using cohort 3 \(members: a, b\): its summed weight is 0\.01 .* between 0\.04000 and 4\.000/,
      );
      expect(e.details).toMatchObject({ what: 'summedWeight', value: 0.01, members: ['a', 'b'] });
      expect(e.details.lowest).toBeCloseTo(0.04, 6);
      expect(e.details.highest).toBeCloseTo(4, 5);
    }
  });

  it('refuses a value beyond ±c·(weight + E_w) + E_v (+ float slack), or a non-finite one, by index', () => {
    const w = 1.5;
    const edge = 2 * w + slack;
    expect(codeOf(() => assertHonestSum([edge, -edge, w], exact, { label: 's' }))).toBeUndefined();
    for (const bad of [edge * (1 + 1e-9), -edge * (1 + 1e-9), Number.POSITIVE_INFINITY, Number.NaN]) {
      try {
        assertHonestSum([0, bad, w], exact, { label: 's' });
        throw new Error('accepted');
      } catch (err) {
        expect(err).toMatchObject({ code: 'ROUND_AGGREGATE_INVALID', details: { what: 'summedValue', index: 1 } });
      }
    }
    // The modes' quantisation errors widen both bounds.
    const noisy = { ...exact, weightError: 0.01, valueError: 0.05 };
    expect(codeOf(() => assertHonestSum([2 * (w + 0.01) + 0.05, w], noisy, { label: 's' }))).toBeUndefined();
    expect(codeOf(() => assertHonestSum([0, 0.04 - 0.01], noisy, { label: 's' }))).toBeUndefined();
  });

  it('the lower weight bound is vacuous (positivity only) when the quantisation error exceeds n/W', () => {
    const coarse = { ...exact, weightError: 1 };
    expect(codeOf(() => assertHonestSum([0, 1e-9], coarse, { label: 's' }))).toBeUndefined();
    expect(codeOf(() => assertHonestSum([0, 0], coarse, { label: 's' }))).toBe('ROUND_AGGREGATE_INVALID');
  });

  it('every sum of honest clipAndWeightUpdate vectors passes (any deltas, any example counts)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            delta: fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 3, maxLength: 3 }),
            examples: fc.integer({ min: 1, max: 10_000 }),
          }),
          { minLength: 1, maxLength: 8 },
        ),
        (clients) => {
          const sum = new Float64Array(4);
          for (const c of clients) {
            const v = clipAndWeightUpdate(c.delta, c.examples, 100, 2).values;
            for (let i = 0; i < 4; i++) sum[i] += v[i];
          }
          assertHonestSum(sum, { ...exact, contributors: clients.length }, { label: 's' });
        },
      ),
    );
    // The edge case: every client at one example (Float32's 1/100 is below 1/100).
    const ones = new Float64Array(4);
    for (let i = 0; i < 4; i++) {
      const v = clipAndWeightUpdate([5, -5, 0], 1, 100, 2).values;
      for (let j = 0; j < 4; j++) ones[j] += v[j];
    }
    expect(ones[3]).toBeLessThan(0.04);
    expect(codeOf(() => assertHonestSum(ones, exact, { label: 's' }))).toBeUndefined();
  });

  it('whatever forged sum passes, its mean update is within ±c (plus the error terms) per coordinate', () => {
    const noisy = { ...exact, weightError: 0.001, valueError: 0.002 };
    fc.assert(
      fc.property(
        fc.double({ min: -1e3, max: 1e3, noNaN: true }),
        fc.double({ min: -1, max: 10, noNaN: true }),
        (value, weight) => {
          if (codeOf(() => assertHonestSum([value, weight], noisy, { label: 's' })) !== undefined) return;
          // Passing needs weight >= n/W - E_w = 0.039, so the division amplifies at most ~26x the error terms.
          expect(Math.abs(value / weight)).toBeLessThanOrEqual(2 + (2 * 0.001 + 0.002 + slack) / weight);
        },
      ),
    );
  });

  it('under DP reads the unclipped count of n clients as 0..n and refuses a forged count or a sum beyond n·C', () => {
    const owner = { label: 'the DP sum', members: ['m'] };
    const limits = { contributors: 3, clippingNorm: 1, valueError: 1e-6 };
    // Three honest clipped vectors of norm 1 pointing the same way: norm 3 = n·C passes.
    expect(assertPrivateSum([3 / Math.SQRT2, 3 / Math.SQRT2, 2.0000001], limits, owner)).toBe(2);
    expect(assertPrivateSum([0, 0, -1e-7], limits, owner)).toBe(0);
    // A client that puts -4 (or +8) in its bit slot would steer the adaptive clipping norm; one that
    // sends a vector of norm 10 would move the model 10 times further than C allows.
    for (const [forged, what] of [
      [[0, 0, -4], 'unclippedCount'],
      [[0, 0, 8], 'unclippedCount'],
      [[0, 0, Number.NaN], 'unclippedCount'],
      [[10, 0, 1], 'summedNorm'],
      [[Number.NaN, 0, 1], 'summedNorm'],
    ] as const) {
      let err: { code?: string; details?: unknown } | undefined;
      try {
        assertPrivateSum(forged, limits, owner);
      } catch (e) {
        err = e as typeof err;
      }
      expect(err?.code).toBe('ROUND_AGGREGATE_INVALID');
      expect(err?.details).toMatchObject({ what, members: ['m'] });
    }
  });
});
