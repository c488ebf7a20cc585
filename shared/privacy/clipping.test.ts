import type { TributaryError } from '../errors';
import { clipToNorm, l2Norm } from './clipping';
import { seededRandom } from './randomSource';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as TributaryError).code;
  }
  return undefined;
}

describe('clipToNorm', () => {
  it('scales a long update down to the clipping norm, keeping its direction, and says so', () => {
    const update = new Float32Array([3, 4, 0, -12]); // norm 13
    const { update: clipped, clipped: wasClipped, norm } = clipToNorm(update, 1);
    expect(wasClipped).toBe(true);
    expect(norm).toBeCloseTo(13, 6);
    expect(l2Norm(clipped)).toBeLessThanOrEqual(1);
    expect(l2Norm(clipped)).toBeGreaterThan(0.99999);
    for (let i = 0; i < 4; i++) expect(clipped[i]).toBeCloseTo(update[i] / 13, 5);
    expect(Array.from(update)).toEqual([3, 4, 0, -12]); // the input is untouched
  });

  it('leaves a short update as it is', () => {
    const update = new Float32Array([0.3, -0.4]);
    const result = clipToNorm(update, 1);
    expect(result.clipped).toBe(false);
    expect(Array.from(result.update)).toEqual(Array.from(update));
    expect(result.update).not.toBe(update);
  });

  it('never returns a float32 vector longer than C, whatever the rounding', () => {
    const random = seededRandom('clip-rounding');
    for (let trial = 0; trial < 200; trial++) {
      const update = new Float32Array(257).map(() => (random.uniform() - 0.5) * 10 ** (random.uniform() * 6 - 3));
      const c = 10 ** (random.uniform() * 4 - 2);
      expect(l2Norm(clipToNorm(update, c).update)).toBeLessThanOrEqual(c);
    }
  });

  it('refuses a non-positive norm and a non-finite update', () => {
    expect(codeOf(() => clipToNorm(new Float32Array(2), 0))).toBe('CONFIG_INVALID');
    expect(codeOf(() => clipToNorm(new Float32Array(2), -1))).toBe('CONFIG_INVALID');
    expect(codeOf(() => clipToNorm(new Float32Array([1, Number.NaN]), 1))).toBe('CODEC_NON_FINITE');
  });
});
