import { boundNorm, l2Norm } from './normBound';

describe('norm bounding (Sun et al. 2019)', () => {
  it('scales an update longer than the bound down to it, keeping its direction', () => {
    const r = boundNorm([Float64Array.from([3]), Float64Array.from([4])], 1);
    expect(r.scaled).toBe(true);
    expect(r.norm).toBe(5);
    expect(Array.from(r.update[0])[0]).toBeCloseTo(0.6, 12);
    expect(Array.from(r.update[1])[0]).toBeCloseTo(0.8, 12);
    expect(l2Norm(r.update)).toBeCloseTo(1, 12);
  });

  it('leaves an update within the bound untouched (same arrays)', () => {
    const update = [Float64Array.from([0.3, 0.4])];
    const r = boundNorm(update, 1);
    expect(r.scaled).toBe(false);
    expect(r.update).toBe(update);
  });
});
