import { clipAndWeightUpdate, weightUpdate } from './weighting';

describe('weighting', () => {
  it('weightUpdate scales by min(examples, max) / max and appends the ratio', () => {
    expect(Array.from(weightUpdate([1, -2], 50, 100))).toEqual([0.5, -1, 0.5]);
    expect(Array.from(weightUpdate([1, -2], 1e9, 100))).toEqual([1, -2, 1]);
    expect(() => weightUpdate([1], 0, 100)).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }));
    expect(() => weightUpdate([1], -5, 100)).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }));
  });

  it('clipAndWeightUpdate clips each delta value to ±clipRange before weighting, and counts it', () => {
    const r = clipAndWeightUpdate([0.5, 3, -1e30, -2], 25, 100, 2);
    // ratio 0.25: 0.5 -> 0.125; 3 -> clip 2 -> 0.5; -1e30 -> -2 -> -0.5; -2 (on the edge, not clipped) -> -0.5.
    expect(Array.from(r.values)).toEqual([0.125, 0.5, -0.5, -0.5, 0.25]);
    expect(r.clipped).toBe(2);
    expect(r.maxAbs).toBe(1e30);
    // The cap: a claimed 1e9 examples is ratio 1, and the values stay within ±clipRange.
    expect(Array.from(clipAndWeightUpdate([-5, 3.4e38], 1e9, 100, 8).values)).toEqual([-5, 8, 1]);
  });

  it('clipAndWeightUpdate refuses non-finite deltas, bad counts and a bad range', () => {
    expect(() => clipAndWeightUpdate([Number.NaN], 1, 100, 2)).toThrow(
      expect.objectContaining({ code: 'CODEC_NON_FINITE' }),
    );
    expect(() => clipAndWeightUpdate([Number.POSITIVE_INFINITY], 1, 100, 2)).toThrow(
      expect.objectContaining({ code: 'CODEC_NON_FINITE' }),
    );
    expect(() => clipAndWeightUpdate([1], 0, 100, 2)).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }));
    expect(() => clipAndWeightUpdate([1], 1, 100, 0)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});
