import {
  dequantize,
  dequantizeSum,
  maxLevel,
  quantizationStep,
  quantize,
  sumErrorBound,
  validateQuantizer,
} from './quantize';
import { codeOf } from '../../test/support/codeOf';

/** A deterministic PRNG (mulberry32), so a failing case can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Quantises each client's vector, sums the levels, dequantises; returns the max error vs the exact sum. */
function maxSumError(clients: Float32Array[], params: { bits: number; clipRange: number }): number {
  const length = clients[0].length;
  const levelSums = new Float64Array(length);
  const exact = new Float64Array(length);
  for (const x of clients) {
    const { values, clipped } = quantize(x, params);
    expect(clipped).toBe(0);
    for (let i = 0; i < length; i++) {
      levelSums[i] += values[i];
      exact[i] += x[i]; // float32 inputs summed in float64: exact for a handful of clients
    }
  }
  const sum = dequantizeSum(levelSums, params, clients.length);
  let max = 0;
  for (let i = 0; i < length; i++) max = Math.max(max, Math.abs(sum[i] - exact[i]));
  return max;
}

describe('quantize', () => {
  it('validates bits and clipRange eagerly', () => {
    for (const bits of [1, 33, 2.5, NaN])
      expect(codeOf(() => validateQuantizer({ bits, clipRange: 1 }))).toBe('CONFIG_INVALID');
    for (const clipRange of [0, -1, NaN, Infinity])
      expect(codeOf(() => validateQuantizer({ bits: 8, clipRange }))).toBe('CONFIG_INVALID');
    expect(() => quantize([0], { bits: 40, clipRange: 1 })).toThrow(/bits must be an integer in \[2, 32\]; got 40/);
  });

  it('maps 0 exactly to the middle level and is odd-symmetric', () => {
    const params = { bits: 8, clipRange: 2 };
    const L = maxLevel(params);
    expect(L).toBe(254);
    expect(quantizationStep(params)).toBeCloseTo(2 / 127, 15);
    const x = Float32Array.from([0, -0, 2, -2, 0.5, -0.5, 1e-9, -1e-9]);
    const { values, clipped } = quantize(x, params);
    expect(clipped).toBe(0);
    expect(Array.from(values.slice(0, 4))).toEqual([L / 2, L / 2, L, 0]);
    expect(values[4] - L / 2).toBe(L / 2 - values[5]);
    expect(values[6]).toBe(L / 2);
    expect(values[7]).toBe(L / 2);
    // A coordinate that is 0 for every client sums to exactly 0: no Δ/2 bias per client.
    expect(dequantizeSum([100 * (L / 2)], params, 100)[0]).toBe(0);
  });

  it('counts and clips values outside [-c, c] (but not ±c itself)', () => {
    const params = { bits: 4, clipRange: 1 };
    const { values, clipped } = quantize([1, -1, 1.0001, -1.5, 1e30, -3.4e38, 0.25], params);
    expect(clipped).toBe(4);
    expect(Array.from(values.slice(0, 6))).toEqual([14, 0, 14, 0, 14, 0]);
    expect(Array.from(dequantize(values.slice(2, 4), params))).toEqual([1, -1]);
  });

  it('refuses NaN and ±Infinity with CODEC_NON_FINITE', () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      expect(codeOf(() => quantize([0, bad], { bits: 8, clipRange: 1 }))).toBe('CODEC_NON_FINITE');
    }
  });

  it('keeps the error of a sum of n clients within n·(Δ/2 + c·2^-23)', () => {
    const random = prng(7);
    for (const bits of [2, 4, 8, 12, 16, 24, 32]) {
      for (const clipRange of [1, 0.01, 8]) {
        for (const n of [1, 3, 10]) {
          const params = { bits, clipRange };
          const clients = Array.from({ length: n }, () =>
            Float32Array.from({ length: 2000 }, (_, i) =>
              // uniform values, plus the ends of the range and exact zeros
              i === 0 ? clipRange : i === 1 ? -clipRange : i === 2 ? 0 : (random() * 2 - 1) * clipRange,
            ).map((v) => Math.max(-clipRange, Math.min(clipRange, v))),
          );
          const error = maxSumError(clients, params);
          expect(error).toBeLessThanOrEqual(sumErrorBound(params, n));
        }
      }
    }
  });

  it('comes within 1 % of the bound when every value sits half a step between two levels', () => {
    for (const [bits, n] of [
      [4, 3],
      [8, 10],
      [12, 5],
    ] as const) {
      const params = { bits, clipRange: 1 };
      const step = quantizationStep(params);
      const half = maxLevel(params) / 2;
      // (k + 1/2)·Δ for k = -half .. half - 1: every value is a midpoint inside [-c, c].
      const x = Float32Array.from({ length: Math.min(50, 2 * half) }, (_, i) => (i - Math.min(25, half) + 0.5) * step);
      const error = maxSumError(
        Array.from({ length: n }, () => x),
        params,
      );
      const bound = sumErrorBound(params, n);
      expect(error).toBeLessThanOrEqual(bound);
      expect(error).toBeGreaterThan(0.99 * bound);
    }
  });

  it('dequantizeSum multiplies the offset by the client count', () => {
    const params = { bits: 16, clipRange: 1 };
    const a = quantize([0.5, -0.25], params).values;
    const b = quantize([0.25, -0.5], params).values;
    const sum = dequantizeSum([a[0] + b[0], a[1] + b[1]], params, 2);
    expect(Math.abs(sum[0] - 0.75)).toBeLessThanOrEqual(sumErrorBound(params, 2));
    expect(Math.abs(sum[1] + 0.75)).toBeLessThanOrEqual(sumErrorBound(params, 2));
    expect(codeOf(() => dequantizeSum([0], params, 0))).toBe('CONFIG_INVALID');
  });
});
