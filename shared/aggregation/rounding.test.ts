import { roundHalfUp } from './rounding';

describe('roundHalfUp', () => {
  it('is Math.round on non-negative values: ties up, the largest double below 0.5, large and tiny values', () => {
    const values = [
      0,
      5e-324,
      0.49999999999999994,
      0.5,
      1.5,
      2.5,
      2 ** 22 - 0.5,
      2 ** 22 + 0.49999999999999,
      2 ** 52 - 0.5,
    ];
    for (let k = 0; k < 2000; k++) values.push(k / 4, k + 0.5 - 2 ** -30, Math.fround(k * 0.1) * 1024);
    for (const y of values) expect([y, roundHalfUp(y)]).toEqual([y, Math.round(y)]);
    // Without the step back the largest double below 0.5 would round to 1.
    expect(Math.floor(0.49999999999999994 + 0.5)).toBe(1);
  });
});
