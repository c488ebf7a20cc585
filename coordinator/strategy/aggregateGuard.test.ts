import { assertServerStepValid, MAX_ABS_MODEL_VALUE } from './aggregateGuard';
import { model, part } from './testParts';

const sums = (values: number[], totalWeight = 1) => ({
  weightedDeltaSum: [Float64Array.from(values)],
  totalWeight,
  clientCount: 1,
});
const code = { code: 'ROUND_AGGREGATE_INVALID' };

describe('assertServerStepValid', () => {
  it('accepts a sane step', () => {
    expect(() =>
      assertServerStepValid({
        updates: sums([1, -2], 3),
        meanUpdate: [Float64Array.from([0.3, -0.6])],
        weights: model([1, 2]),
        state: [{ name: 'v/w', shape: [2], data: Float32Array.from([1e11, 0]) }],
      }),
    ).not.toThrow();
  });

  it.each([0, -1, Number.NaN, Number.POSITIVE_INFINITY])('refuses a summed weight of %p', (w) => {
    expect(() => assertServerStepValid({ updates: sums([1], w) })).toThrow(
      expect.objectContaining({ ...code, details: { what: 'totalWeight' } }),
    );
  });

  it('refuses non-finite sums, naming tensor and index', () => {
    expect(() => assertServerStepValid({ updates: sums([0, Number.NEGATIVE_INFINITY]) })).toThrow(
      expect.objectContaining({ ...code, message: expect.stringMatching(/-Infinity at tensor 0, index 1/) }),
    );
    // Large but finite sums are fine: a weight of 1e9 times a large delta is still a sum.
    expect(() => assertServerStepValid({ updates: sums([3.4e38 * 1e9], 2e9) })).not.toThrow();
  });

  it('refuses a mean update out of range and blames the parts that are out of range alone', () => {
    const parts = [part('honest', [[0.01]], 10), part('attacker', [[3.4e38]], 1e9)];
    expect(() => assertServerStepValid({ meanUpdate: [Float64Array.from([3.4e38 / 1.00000001])], parts })).toThrow(
      expect.objectContaining({ ...code, details: expect.objectContaining({ members: ['attacker'] }) }),
    );
    expect(() => assertServerStepValid({ meanUpdate: [Float64Array.from([Number.NaN])] })).toThrow(
      expect.objectContaining(code),
    );
    expect(() => assertServerStepValid({ meanUpdate: [Float64Array.from([MAX_ABS_MODEL_VALUE])] })).not.toThrow();
    expect(() => assertServerStepValid({ meanUpdate: [Float64Array.from([MAX_ABS_MODEL_VALUE * 1.01])] })).toThrow(
      expect.objectContaining(code),
    );
  });

  it('refuses new weights that are non-finite or beyond the bound', () => {
    expect(() => assertServerStepValid({ weights: model([1, Number.POSITIVE_INFINITY]) })).toThrow(
      expect.objectContaining({ ...code, message: expect.stringMatching(/new model has Infinity in "w" at index 1/) }),
    );
    expect(() => assertServerStepValid({ weights: model([2e6]) })).toThrow(expect.objectContaining(code));
    expect(() => assertServerStepValid({ weights: model([2e6]) }, 1e7)).not.toThrow();
  });

  it('bounds optimiser state: first moments like weights, v/ second moments squared', () => {
    const tensor = (name: string, v: number) => ({ name, shape: [1], data: Float32Array.from([v]) });
    expect(() => assertServerStepValid({ state: [tensor('m/w', 2e6)] })).toThrow(
      expect.objectContaining({ ...code, details: { what: 'state', tensor: 'm/w', index: 0 } }),
    );
    expect(() => assertServerStepValid({ state: [tensor('v/w', 2e6)] })).not.toThrow();
    expect(() => assertServerStepValid({ state: [tensor('v/w', 2e12)] })).toThrow(expect.objectContaining(code));
    expect(() => assertServerStepValid({ state: [tensor('v/w', Number.NaN)] })).toThrow(expect.objectContaining(code));
  });

  it('finds the first bad value in every array type it is given (float32, float64, plain arrays)', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 * MAX_ABS_MODEL_VALUE]) {
      for (const make of [
        (v: number[]) => Float32Array.from(v),
        (v: number[]) => Float64Array.from(v),
        (v: number[]) => [...v],
      ]) {
        const values = make([0.5, -MAX_ABS_MODEL_VALUE, MAX_ABS_MODEL_VALUE, bad, bad]);
        expect(() => assertServerStepValid({ meanUpdate: [values as Float64Array] })).toThrow(/index 3;/);
        expect(() =>
          assertServerStepValid({ weights: [{ name: 'w', shape: [5], data: values as Float32Array }] }),
        ).toThrow(/at index 3;/);
      }
    }
  });
});
