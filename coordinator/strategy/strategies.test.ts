import { JobSpecSchema } from '../../shared/schemas/jobSpec';
import type { NamedTensor } from '../../shared/codec/tensors';
import { createStrategy } from './createStrategy';
import { sampleClients, sampleSize } from './strategy';

const baseSpec = {
  name: 't',
  model: { kind: 'builtin', name: 'mlp' },
  input: { shape: [2], numClasses: 2 },
  rounds: 3,
  secureAggregation: 'none',
} as const;

const global: NamedTensor[] = [{ name: 'w', shape: [3], data: new Float32Array([1, 2, 3]) }];

describe('strategies', () => {
  it('FedAvg moves the model by the example-weighted mean delta', () => {
    const s = createStrategy(JobSpecSchema.parse(baseSpec));
    // client A: 1 example, delta (1,1,1); client B: 3 examples, delta (-1, 0, 1)
    const sum = new Float64Array([1 * 1 + 3 * -1, 1 * 1 + 3 * 0, 1 * 1 + 3 * 1]);
    const { weights } = s.aggregateTrain(
      global,
      { weightedDeltaSum: [sum], totalWeight: 4, clientCount: 2 },
      undefined,
    );
    expect(Array.from(weights[0].data)).toEqual([1 - 0.5, 2 + 0.25, 3 + 1]);
    expect(global[0].data[0]).toBe(1); // the input is not mutated
  });

  it('FedProx sends mu to clients and aggregates like FedAvg', () => {
    const s = createStrategy(JobSpecSchema.parse({ ...baseSpec, strategy: { name: 'fedprox', mu: 0.1 } }));
    const plan = s.configureTrain({ round: 1, available: ['a', 'b', 'c'], rng: () => 0.5 });
    expect(plan.config.proximalMu).toBe(0.1);
    expect(
      createStrategy(JobSpecSchema.parse(baseSpec)).configureTrain({ round: 1, available: ['a'], rng: Math.random })
        .config.proximalMu,
    ).toBe(0);
  });

  it('FedAdam follows Reddi et al. and carries its moments as state', () => {
    const s = createStrategy(
      JobSpecSchema.parse({
        ...baseSpec,
        strategy: { name: 'fedadam', serverLearningRate: 0.1, beta1: 0.9, beta2: 0.99, tau: 0.001 },
      }),
    );
    const sum = new Float64Array([2, 0, -2]); // mean delta (1, 0, -1) over 2 examples
    const r1 = s.aggregateTrain(global, { weightedDeltaSum: [sum], totalWeight: 2, clientCount: 2 }, undefined);
    const m = 0.1 * 1;
    const v = 0.01 * 1;
    expect(r1.weights[0].data[0]).toBeCloseTo(1 + (0.1 * m) / (Math.sqrt(v) + 0.001), 5);
    expect(r1.weights[0].data[1]).toBeCloseTo(2, 6);
    expect(r1.state).toHaveLength(2);
    const r2 = s.aggregateTrain(r1.weights, { weightedDeltaSum: [sum], totalWeight: 2, clientCount: 2 }, r1.state);
    const m2 = 0.9 * m + 0.1;
    const v2 = 0.99 * v + 0.01;
    expect(r2.weights[0].data[0]).toBeCloseTo(r1.weights[0].data[0] + (0.1 * m2) / (Math.sqrt(v2) + 0.001), 5);
  });

  it('refuses to aggregate nothing', () => {
    const s = createStrategy(JobSpecSchema.parse(baseSpec));
    expect(() =>
      s.aggregateTrain(global, { weightedDeltaSum: [new Float64Array(3)], totalWeight: 0, clientCount: 0 }, undefined),
    ).toThrow(expect.objectContaining({ code: 'ROUND_QUORUM_NOT_MET' }));
  });

  it('samples the fraction clamped to [min, max], deterministically under a seed', () => {
    const spec = JobSpecSchema.parse({ ...baseSpec, minClients: 2, maxClients: 5, fractionFit: 0.1 });
    expect(sampleSize(spec, 10)).toBe(2);
    expect(sampleSize(spec, 100)).toBe(5);
    expect(sampleSize({ ...spec, fractionFit: 0.5 }, 8)).toBe(4);
    const ids = Array.from({ length: 20 }, (_, i) => `c${i}`);
    let seed = 1;
    const rng = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const a = sampleClients(ids, 5, rng);
    seed = 1;
    expect(sampleClients(ids, 5, rng)).toEqual(a);
    expect(new Set(a).size).toBe(5);
  });

  it('weights client metrics by examples', () => {
    const s = createStrategy(JobSpecSchema.parse(baseSpec));
    expect(
      s.aggregateMetrics([
        { numExamples: 1, metrics: { loss: 1 } },
        { numExamples: 3, metrics: { loss: 2 } },
      ]),
    ).toEqual({ loss: 1.75 });
  });

  it('keeps the mean of huge finite client metrics finite (no overflow to Infinity or NaN)', () => {
    const s = createStrategy(JobSpecSchema.parse(baseSpec));
    const m = s.aggregateMetrics([
      { numExamples: 1_000_000_000, metrics: { loss: 1.7e308, accuracy: -1.7e308 } },
      { numExamples: 10, metrics: { loss: 1.7e308, accuracy: 1.7e308 } },
    ]);
    expect(m.loss).toBeCloseTo(1.7e308, -300);
    expect(Number.isFinite(m.accuracy)).toBe(true);
    expect(Math.abs(m.accuracy!)).toBeLessThanOrEqual(1.7e308);
  });
});
