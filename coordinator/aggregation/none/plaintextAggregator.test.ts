import { encodeTensors } from '../../../shared/codec/modelCodec';
import type { NamedTensor } from '../../../shared/codec/tensors';
import { manifestOf } from '../../../shared/codec/tensors';
import { PlaintextAggregator } from './plaintextAggregator';

const delta = (values: number[]): NamedTensor[] => [
  { name: 'a', shape: [2], data: new Float32Array(values.slice(0, 2)) },
  { name: 'b', shape: [1], data: new Float32Array(values.slice(2)) },
];

describe('PlaintextAggregator', () => {
  const manifest = manifestOf(delta([0, 0, 0]));

  it('sums n_i * delta_i and counts examples', () => {
    const agg = new PlaintextAggregator(manifest, { maxExampleWeight: 100_000 });
    agg.accept('c1', encodeTensors(delta([1, 2, 3])), 2);
    agg.accept('c2', encodeTensors(delta([-1, 0, 1])), 1);
    const r = agg.result();
    expect(Array.from(r.weightedDeltaSum[0])).toEqual([1, 4]);
    expect(Array.from(r.weightedDeltaSum[1])).toEqual([7]);
    expect(r.totalWeight).toBe(3);
    expect(r.clientCount).toBe(2);
    expect(agg.maxUpdateBytes).toBe(encodeTensors(delta([1, 2, 3])).length);
  });

  it('rejects bad updates without changing the aggregate', () => {
    const agg = new PlaintextAggregator(manifest, { maxExampleWeight: 100_000 });
    agg.accept('c1', encodeTensors(delta([1, 2, 3])), 1);
    const before = agg.result().weightedDeltaSum.map((s) => Array.from(s));
    const nan = delta([5, 5, NaN]); // the NaN sits in the second tensor: the first must not be added
    expect(() => agg.accept('c2', encodeTensors(nan), 1)).toThrow(
      expect.objectContaining({ code: 'CODEC_NON_FINITE' }),
    );
    expect(() => agg.accept('c2', encodeTensors([nan[0]]), 1)).toThrow(
      expect.objectContaining({ code: 'MODEL_SHAPE_MISMATCH' }),
    );
    expect(() => agg.accept('c1', encodeTensors(delta([1, 1, 1])), 1)).toThrow(
      expect.objectContaining({ code: 'ROUND_DUPLICATE_UPDATE' }),
    );
    expect(() => agg.accept('c3', encodeTensors(delta([1, 1, 1])), 0)).toThrow(
      expect.objectContaining({ code: 'VALIDATION_FAILED' }),
    );
    expect(() => agg.accept('c4', new Uint8Array([1, 2, 3]), 1)).toThrow(
      expect.objectContaining({ code: 'CODEC_MALFORMED' }),
    );
    expect(agg.result().weightedDeltaSum.map((s) => Array.from(s))).toEqual(before);
    expect(agg.result().totalWeight).toBe(1);
  });

  it("keeps each client's own n_i * delta_i only when asked (contribution scoring), and never a rejected one", () => {
    expect(new PlaintextAggregator(manifest, { maxExampleWeight: 100_000 }).clientUpdates()).toEqual([]);
    const agg = new PlaintextAggregator(manifest, { maxExampleWeight: 100_000, keepClientUpdates: true });
    agg.accept('c1', encodeTensors(delta([1, 2, 3])), 2);
    expect(() => agg.accept('c2', encodeTensors(delta([1, 1, NaN])), 1)).toThrow(
      expect.objectContaining({ code: 'CODEC_NON_FINITE' }),
    );
    agg.accept('c3', encodeTensors(delta([-1, 0, 1])), 1);
    const own = agg.clientUpdates();
    expect(own.map((c) => c.members[0])).toEqual(['c1', 'c3']);
    expect(own.map((c) => c.updates.weightedDeltaSum.map((t) => Array.from(t)))).toEqual([
      [[2, 4], [6]],
      [[-1, 0], [1]],
    ]);
    expect(own.map((c) => [c.updates.totalWeight, c.updates.clientCount])).toEqual([
      [2, 1],
      [1, 1],
    ]);
  });

  it("caps each client's weight at maxExampleWeight: a declared 1e9 examples buys no more than the cap", () => {
    const agg = new PlaintextAggregator(manifest, { maxExampleWeight: 10 });
    agg.accept('honest', encodeTensors(delta([1, 1, 1])), 10);
    agg.accept('inflated', encodeTensors(delta([-5, -5, -5])), 1_000_000_000);
    const r = agg.result();
    expect(r.totalWeight).toBe(20);
    // The mean delta is (10·1 + 10·(-5)) / 20 = -2, not -4.99999996 as an uncapped weight would give.
    expect(r.weightedDeltaSum[0][0] / r.totalWeight).toBeCloseTo(-2, 10);
  });
});
