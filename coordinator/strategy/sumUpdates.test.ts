import { sumUpdates } from './sumUpdates';

describe('sumUpdates', () => {
  it('adds sums per tensor, examples and client counts without touching its inputs', () => {
    const a = { weightedDeltaSum: [Float64Array.of(1, 2), Float64Array.of(3)], totalWeight: 0.5, clientCount: 3 };
    const b = { weightedDeltaSum: [Float64Array.of(10, 20), Float64Array.of(30)], totalWeight: 0.25, clientCount: 4 };
    const total = sumUpdates([a, b]);
    expect(total.weightedDeltaSum.map((t) => [...t])).toEqual([[11, 22], [33]]);
    expect(total.totalWeight).toBe(0.75);
    expect(total.clientCount).toBe(7);
    expect([...a.weightedDeltaSum[0]]).toEqual([1, 2]);
    expect(sumUpdates([a]).weightedDeltaSum[0]).not.toBe(a.weightedDeltaSum[0]);
    expect(() => sumUpdates([])).toThrow(RangeError);
    expect(() => sumUpdates([a, { ...b, weightedDeltaSum: [Float64Array.of(1)] }])).toThrow(RangeError);
  });
});
