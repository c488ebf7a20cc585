import type { TributaryError } from '../errors';
import { clipToNorm, l2Norm } from './clipping';
import {
  addDistributedNoise,
  type DistributedNoisePlan,
  decodeDistributedSum,
  encodeDistributedUpdate,
  planDistributedNoise,
  quantizeForDistributedNoise,
} from './distributedNoise';
import { seededRandom } from './randomSource';
import { mean, normalCdf, sampleVariance, varianceRatioBounds } from './testStatistics';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as TributaryError).code;
  }
  return undefined;
}

/** SecAgg+ reveals exactly the sum mod 2^32 of the clients' vectors (the masks cancel), so the tests add them directly. */
function sumMod32(vectors: Uint32Array[]): Uint32Array {
  const sum = new Uint32Array(vectors[0].length);
  for (const v of vectors) for (let i = 0; i < sum.length; i++) sum[i] = sum[i] + v[i];
  return sum;
}

/** Fixed client updates of different lengths: some below C = 1, some clipped. */
function clientUpdates(count: number, dimension: number, label: string): Float32Array[] {
  const random = seededRandom(label);
  return Array.from({ length: count }, (_, c) => {
    const u = Float32Array.from({ length: dimension }, () => random.uniform() - 0.5);
    const target = [0.4, 0.9, 1.7, 3, 0.6, 2.2, 0.8, 5][c % 8];
    const norm = l2Norm(u);
    return u.map((x) => (x * target) / norm);
  });
}

describe('distributed discrete Gaussian (KLS 2021) in Z_(2^32)', () => {
  const options = {
    dimension: 1000,
    clipNorm: 1,
    noiseMultiplier: 1.1,
    minContributors: 5,
    maxContributors: 12,
    countNoiseStddev: 2,
  };
  const plan = planDistributedNoise(options);
  /** Variance per coordinate of a decoded sum of n clients' noise, in model units. */
  const sumVariance = (n: number, p: DistributedNoisePlan = plan) => (n * p.perClientVariance) / p.scale ** 2;

  it('plans a sum of n_min clients to carry at least the target variance (z C)^2, and at most 1 % more', () => {
    expect(plan.paddedDimension).toBe(1024);
    expect(plan.encodedLength).toBe(1025);
    expect(Math.log2(plan.scale) % 1).toBe(0);
    const target = (options.noiseMultiplier * options.clipNorm) ** 2;
    expect(sumVariance(plan.minContributors)).toBeGreaterThanOrEqual(target);
    expect(sumVariance(plan.minContributors)).toBeLessThan(target * 1.01);
    // The integer noise is measured against the rounded sensitivity, not C alone.
    expect(plan.minContributors * plan.perClientVariance).toBeGreaterThanOrEqual((1.1 * plan.sensitivity) ** 2);
    expect(plan.sensitivity).toBeGreaterThan(options.clipNorm * plan.scale);
  });

  it('over 100 seeded rounds the sum of n_min clients has the target variance and differs from the noiseless sum', () => {
    const n = plan.minContributors;
    const updates = clientUpdates(n, options.dimension, 'ddg-updates');
    const clippedSum = new Float64Array(options.dimension);
    for (const u of updates) clipToNorm(u, options.clipNorm).update.forEach((x, i) => (clippedSum[i] += x));
    const trueUnclipped = updates.filter((u) => l2Norm(u) <= options.clipNorm).length;
    const rounds = 100;
    const residuals = new Float64Array(rounds * options.dimension);
    const counts: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const seed = `job:${round}:0`;
      const vectors = updates.map(
        (u, c) => encodeDistributedUpdate(u, plan, seed, seededRandom(`ddg-${round}-${c}`)).values,
      );
      const decoded = decodeDistributedSum(sumMod32(vectors), n, plan, seed);
      for (let i = 0; i < options.dimension; i++)
        residuals[round * options.dimension + i] = decoded.sum[i] - clippedSum[i];
      counts.push(decoded.unclippedCount);
    }
    // Variance of the residual against n * v / s^2 (chi-square bounds at 5 standard errors; 100,000 samples: +-2.3 %).
    const [lo, hi] = varianceRatioBounds(residuals.length, 5);
    const ratio = sampleVariance(residuals) / sumVariance(n);
    expect(ratio).toBeGreaterThan(lo);
    expect(ratio).toBeLessThan(hi);
    expect(Math.abs(mean(residuals))).toBeLessThan(5 * Math.sqrt(sumVariance(n) / residuals.length));
    // The coordinator never sees the noiseless sum: every coordinate moved.
    expect(residuals.filter((r) => Math.abs(r) < 1e-9).length).toBe(0);
    // The clipped count arrives with N(0, sigma_b^2)-like noise around the true count.
    expect(Math.abs(mean(counts) - trueUnclipped)).toBeLessThan(5 * (options.countNoiseStddev / Math.sqrt(rounds)));
    const [clo, chi] = varianceRatioBounds(rounds, 5);
    expect(sampleVariance(counts) / options.countNoiseStddev ** 2).toBeGreaterThan(clo);
    expect(sampleVariance(counts) / options.countNoiseStddev ** 2).toBeLessThan(chi * 1.01);
  });

  it('with dropouts above n_min the sum carries more noise than accounted, never less', () => {
    const survivors = 8;
    const updates = clientUpdates(survivors, options.dimension, 'ddg-dropouts');
    const clippedSum = new Float64Array(options.dimension);
    for (const u of updates) clipToNorm(u, options.clipNorm).update.forEach((x, i) => (clippedSum[i] += x));
    const rounds = 40;
    const residuals: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const seed = `drop:${round}`;
      const vectors = updates.map(
        (u, c) => encodeDistributedUpdate(u, plan, seed, seededRandom(`drop-${round}-${c}`)).values,
      );
      const decoded = decodeDistributedSum(sumMod32(vectors), survivors, plan, seed);
      for (let i = 0; i < options.dimension; i++) residuals.push(decoded.sum[i] - clippedSum[i]);
    }
    const [lo, hi] = varianceRatioBounds(residuals.length, 5);
    const ratio = sampleVariance(residuals) / sumVariance(survivors);
    expect(ratio).toBeGreaterThan(lo);
    expect(ratio).toBeLessThan(hi);
    expect(sampleVariance(residuals)).toBeGreaterThan((options.noiseMultiplier * options.clipNorm) ** 2 * 1.4);
  });

  it('refuses to decode a sum of fewer than n_min clients (it would carry less noise than accounted)', () => {
    const updates = clientUpdates(4, options.dimension, 'ddg-few');
    const vectors = updates.map((u, c) => encodeDistributedUpdate(u, plan, 's', seededRandom(`few-${c}`)).values);
    expect(codeOf(() => decodeDistributedSum(sumMod32(vectors), 4, plan, 's'))).toBe('ROUND_QUORUM_NOT_MET');
    expect(codeOf(() => decodeDistributedSum(sumMod32(vectors), 13, plan, 's'))).toBe('VALIDATION_FAILED');
    expect(codeOf(() => decodeDistributedSum(new Uint32Array(10), 5, plan, 's'))).toBe('VALIDATION_FAILED');
    expect(codeOf(() => quantizeForDistributedNoise(new Float32Array(999), plan, 's', seededRandom('x')))).toBe(
      'VALIDATION_FAILED',
    );
  });

  it('without noise, the decoded sum is the sum of the clipped updates up to rounding, and the count is exact', () => {
    const updates = clientUpdates(5, options.dimension, 'ddg-noiseless');
    const vectors = updates.map((u, c) => quantizeForDistributedNoise(u, plan, 'nl', seededRandom(`nl-${c}`)));
    expect(vectors.map((v) => v.clipped)).toEqual(updates.map((u) => l2Norm(u) > 1));
    const decoded = decodeDistributedSum(sumMod32(vectors.map((v) => v.values)), 5, plan, 'nl');
    const clippedSum = new Float64Array(options.dimension);
    for (const u of updates) clipToNorm(u, 1).update.forEach((x, i) => (clippedSum[i] += x));
    const error = l2Norm(decoded.sum.map((x, i) => x - clippedSum[i]));
    // Each of the 5 x 1024 rounding errors has variance <= 1/4 (integer units).
    expect(error).toBeLessThan(Math.sqrt(5 * plan.paddedDimension) / plan.scale);
    expect(decoded.unclippedCount).toBe(updates.filter((u) => l2Norm(u) <= 1).length);
    // Each encoded client vector respects the rounded sensitivity bound.
    for (const v of vectors) {
      const signed = Array.from(v.values.subarray(0, plan.paddedDimension), (u) => (u >= 2 ** 31 ? u - 2 ** 32 : u));
      expect(l2Norm(signed)).toBeLessThanOrEqual(plan.sensitivity);
    }
  });

  it('refuses parameters that cannot fit the 32-bit group', () => {
    expect(
      codeOf(() =>
        planDistributedNoise({
          ...options,
          dimension: 2 ** 20,
          noiseMultiplier: 20_000,
          minContributors: 3,
          maxContributors: 1023,
        }),
      ),
    ).toBe('CONFIG_INVALID');
    expect(codeOf(() => planDistributedNoise({ ...options, countNoiseStddev: 1e9 }))).toBe('CONFIG_INVALID');
    expect(codeOf(() => planDistributedNoise({ ...options, clipNorm: 0 }))).toBe('CONFIG_INVALID');
    expect(codeOf(() => planDistributedNoise({ ...options, minContributors: 13 }))).toBe('CONFIG_INVALID');
  });
});

describe('adversary: a curious coordinator that knows every other client update', () => {
  // The coordinator sees the decoded sum of n_min = 3 clients and knows the other two updates exactly.
  // It wants to tell whether the target's update is u (||u|| = C) or zero: the best test projects the
  // residual on u. With total noise multiplier z the two hypotheses are N(0, (zC)^2) and N(C, (zC)^2)
  // along u, so at a false-positive rate of 5 % no test can exceed TPR = Phi(1/z - 1.645) (the Gaussian
  // mechanism's exact trade-off curve, Dong, Roth & Su 2019, mu = 1/z).
  const z = 1;
  const plan = planDistributedNoise({
    dimension: 64,
    clipNorm: 1,
    noiseMultiplier: z,
    minContributors: 3,
    maxContributors: 3,
    countNoiseStddev: 2,
  });
  const others = clientUpdates(2, 64, 'mia-others');
  const target = clientUpdates(1, 64, 'mia-target')[0].map((x, _, a) => x / l2Norm(a));
  const known = new Float64Array(64);
  for (const u of others) clipToNorm(u, 1).update.forEach((x, i) => (known[i] += x));

  /** The attacker's statistic over `trials` rounds where the target sends `update`. */
  function statistics(update: Float32Array, trials: number, label: string, p: DistributedNoisePlan, noise: boolean) {
    return Array.from({ length: trials }, (_, t) => {
      const seed = `${label}:${t}`;
      const vectors = [...others, update].map((u, c) => {
        const random = seededRandom(`${label}-${t}-${c}`);
        const encoded = quantizeForDistributedNoise(u, p, seed, random);
        if (noise) addDistributedNoise(encoded.values, p, random);
        return encoded.values;
      });
      const decoded = decodeDistributedSum(sumMod32(vectors), 3, p, seed);
      let dot = 0;
      for (let i = 0; i < 64; i++) dot += (decoded.sum[i] - known[i]) * target[i];
      return dot;
    });
  }

  function truePositiveRateAt5Percent(p: DistributedNoisePlan, noise: boolean, label: string): number {
    const trials = 400;
    const absent = statistics(new Float32Array(64), trials, `${label}-absent`, p, noise).sort((a, b) => a - b);
    const threshold = absent[Math.floor(trials * 0.95)];
    const present = statistics(target, trials, `${label}-present`, p, noise);
    return present.filter((s) => s > threshold).length / trials;
  }

  const bound = normalCdf(1 / z - 1.6448536);
  const slack = 4 * Math.sqrt((0.3 * 0.7) / 400) + 0.03; // sampling error of the TPR and of the 95 % threshold

  it('cannot beat the trade-off curve of the accounted noise', () => {
    expect(truePositiveRateAt5Percent(plan, true, 'honest')).toBeLessThan(bound + slack);
  });

  it('wins outright without the noise, and beats the curve when clients add a third of it (the test has power)', () => {
    expect(truePositiveRateAt5Percent(plan, false, 'no-noise')).toBeGreaterThan(0.99);
    const underNoised = { ...plan, perClientVariance: Math.ceil(plan.perClientVariance / 3) };
    expect(truePositiveRateAt5Percent(underNoised, true, 'under')).toBeGreaterThan(bound + slack);
  });
});
