import { JobSpecSchema } from '../../shared/schemas/jobSpec';
import type { StrategySpec } from '../../shared/schemas/strategySpec';
import { createStrategy } from './createStrategy';
import { l2Norm } from './robust/normBound';
import type { UpdatePart } from './strategy';
import { model, part } from './testParts';

const strategyOf = (strategy: Record<string, unknown>) =>
  createStrategy(
    JobSpecSchema.parse({
      name: 't',
      model: { kind: 'builtin', name: 'mlp' },
      input: { shape: [2], numClasses: 2 },
      rounds: 3,
      secureAggregation: 'none',
      strategy: strategy as StrategySpec,
    }),
  );

/** The round's sum over its parts, as the aggregation mode reports it. */
function sumOf(parts: readonly UpdatePart[]) {
  const weightedDeltaSum = parts[0].updates.weightedDeltaSum.map((t) => new Float64Array(t.length));
  for (const p of parts)
    p.updates.weightedDeltaSum.forEach((t, i) => t.forEach((v, j) => (weightedDeltaSum[i][j] += v)));
  return {
    weightedDeltaSum,
    totalWeight: parts.reduce((s, p) => s + p.updates.totalWeight, 0),
    clientCount: parts.reduce((s, p) => s + p.updates.clientCount, 0),
  };
}

// Issue 13's first attack: four honest clients (100 examples, delta +0.01) and one declaring 1e9
// examples with delta -5.
const honest = ['a', 'b', 'c', 'd'].map((m) => part(m, [[0.01, 0.01]], 100));
const inflated = [...honest, part('evil', [[-5, -5]], 1e9)];
const global = model([1, 1]);

describe('ServerStrategy', () => {
  it('FedAvg alone is owned by a weight-inflating client (the attack the robust rules answer)', () => {
    const { weights } = strategyOf({ name: 'fedavg' }).aggregateTrain(global, sumOf(inflated), undefined, inflated);
    expect(weights[0].data[0]).toBeCloseTo(1 - 5, 3);
  });

  it.each([
    [{ rule: 'median' }],
    [{ rule: 'trimmed-mean', f: 1 }],
    [{ rule: 'krum', f: 1 }],
    [{ rule: 'multi-krum', f: 1 }],
    [{ rule: 'centered-clipping', tau: 0.05 }],
  ])('robust rule %j keeps the model where the honest clients take it', (robust) => {
    const { weights } = strategyOf({ name: 'fedavg', robust }).aggregateTrain(
      global,
      sumOf(inflated),
      undefined,
      inflated,
    );
    // centered clipping from a zero centre lets the attacker pull by tau / n = 0.01 at most
    expect(Math.abs(weights[0].data[0] - 1.01)).toBeLessThanOrEqual(
      robust.rule === 'centered-clipping' ? 0.0201 : 1e-6,
    );
  });

  it('Bulyan needs 4f + 3 parts and then outvotes the attacker', () => {
    const seven = [...['e', 'f'].map((m) => part(m, [[0.01, 0.01]], 100)), ...inflated];
    const s = strategyOf({ name: 'fedavg', robust: { rule: 'bulyan', f: 1 } });
    expect(() => s.aggregateTrain(global, sumOf(inflated), undefined, inflated)).toThrow(
      expect.objectContaining({ code: 'STRATEGY_TOO_FEW_UPDATES' }),
    );
    expect(s.aggregateTrain(global, sumOf(seven), undefined, seven).weights[0].data[0]).toBeCloseTo(1.01, 6);
  });

  it('a robust rule without parts fails the round instead of falling back to the mean', () => {
    expect(() =>
      strategyOf({ name: 'fedavg', robust: { rule: 'median' } }).aggregateTrain(global, sumOf(inflated), undefined),
    ).toThrow(expect.objectContaining({ code: 'STRATEGY_TOO_FEW_UPDATES' }));
  });

  it('maxUpdateNorm bounds how far any round moves the model, in every mode', () => {
    const { weights } = strategyOf({ name: 'fedavg', maxUpdateNorm: 0.1 }).aggregateTrain(
      global,
      sumOf(inflated),
      undefined,
    );
    const moved = [Float64Array.from(weights[0].data, (v) => v - 1)];
    expect(l2Norm(moved)).toBeCloseTo(0.1, 5);
  });

  it('fails with ROUND_AGGREGATE_INVALID, blaming the sender, when FLT_MAX deltas would overflow the model', () => {
    // Issue 13's third attack: finite uploads (FLT_MAX deltas, large weight) used to commit +Infinity.
    const flood = [...honest, part('flooder', [[3.4e38, 3.4e38]], 1e9)];
    expect(() => strategyOf({ name: 'fedavg' }).aggregateTrain(global, sumOf(flood), undefined, flood)).toThrow(
      expect.objectContaining({
        code: 'ROUND_AGGREGATE_INVALID',
        details: expect.objectContaining({ members: ['flooder'] }),
      }),
    );
    // A robust rule simply outvotes it.
    const r = strategyOf({ name: 'fedavg', robust: { rule: 'median' } }).aggregateTrain(
      global,
      sumOf(flood),
      undefined,
      flood,
    );
    expect(r.weights[0].data[0]).toBeCloseTo(1.01, 6);
  });

  it('fails a round whose summed weight was cancelled towards zero (the amplified mean leaves the range)', () => {
    // Issue 13's second attack at the strategy's door: honest sums divided by one quantisation step.
    const cancelled = { weightedDeltaSum: [Float64Array.from([4, 4])], totalWeight: 2 ** -22, clientCount: 5 };
    expect(() => strategyOf({ name: 'fedavg' }).aggregateTrain(global, cancelled, undefined)).toThrow(
      expect.objectContaining({ code: 'ROUND_AGGREGATE_INVALID' }),
    );
    const bounded = strategyOf({ name: 'fedavg', maxUpdateNorm: 1 }).aggregateTrain(global, cancelled, undefined);
    expect(l2Norm([Float64Array.from(bounded.weights[0].data, (v) => v - 1)])).toBeCloseTo(1, 5);
    expect(() =>
      strategyOf({ name: 'fedavg' }).aggregateTrain(global, { ...cancelled, totalWeight: -1 }, undefined),
    ).toThrow(expect.objectContaining({ code: 'ROUND_AGGREGATE_INVALID' }));
  });

  it('fails on corrupted optimiser state rather than committing NaN', () => {
    const s = strategyOf({ name: 'fedadam' });
    const corrupt = [
      { name: 'm/w', shape: [2], data: Float32Array.from([Number.NaN, 0]) },
      { name: 'v/w', shape: [2], data: Float32Array.from([0, 0]) },
    ];
    expect(() => s.aggregateTrain(global, sumOf(honest), corrupt)).toThrow(
      expect.objectContaining({ code: 'ROUND_AGGREGATE_INVALID' }),
    );
  });

  it('centered clipping keeps its centre (the applied update) in the state beside the optimiser’s moments', () => {
    const s = strategyOf({ name: 'fedyogi', robust: { rule: 'centered-clipping', tau: 1 } });
    const parts = ['a', 'b', 'c'].map((m, i) => part(m, [[0.1 * (i + 1), 0]], 10));
    const r1 = s.aggregateTrain(global, sumOf(parts), undefined, parts);
    expect(r1.state?.map((t) => t.name).sort()).toEqual(['center/w', 'm/w', 'v/w']);
    expect(r1.state?.find((t) => t.name === 'center/w')?.data[0]).toBeCloseTo(0.2, 6);
    // Round 2 from that centre: a far-away part is clipped around 0.2, not around 0.
    const far = [...parts.slice(0, 2), part('evil', [[100, 0]], 10)];
    const cc = strategyOf({ name: 'fedavg', robust: { rule: 'centered-clipping', tau: 1 } });
    const centre = [{ name: 'center/w', shape: [2], data: Float32Array.from([0.2, 0]) }];
    const r2 = cc.aggregateTrain(global, sumOf(far), centre, far);
    // diffs from 0.2: -0.1, 0, 99.8 -> clipped to 1: 0.2 + (-0.1 + 0 + 1) / 3
    expect(r2.weights[0].data[0]).toBeCloseTo(1 + 0.2 + 0.9 / 3, 5);
  });

  it('builds each named optimiser and sends mu only for FedProx', () => {
    for (const name of ['fedavg', 'fedadam', 'fedyogi', 'fedadagrad', 'fedavgm'] as const) {
      const s = strategyOf({ name });
      expect(s.name).toBe(name);
      expect(s.configureTrain({ round: 1, available: ['a', 'b'], rng: () => 0.5 }).config.proximalMu).toBe(0);
    }
    expect(
      strategyOf({ name: 'fedprox', mu: 0.3 }).configureTrain({ round: 1, available: ['a'], rng: () => 0.5 }).config
        .proximalMu,
    ).toBe(0.3);
    // FedAvgM through the spec: momentum carried between rounds
    const m = strategyOf({ name: 'fedavgm', momentum: 0.5 });
    const r1 = m.aggregateTrain(global, sumOf(honest), undefined);
    const r2 = m.aggregateTrain(r1.weights, sumOf(honest), r1.state);
    expect(r2.weights[0].data[0]).toBeCloseTo(1 + 0.01 + 0.015, 6);
  });
});
