import { decodeTensors, encodeTensors } from '../../../shared/codec/modelCodec';
import type { NamedTensor } from '../../../shared/codec/tensors';
import { model } from '../testParts';
import { AdaptiveOptimizer } from './adaptive';
import { FedAvgM } from './fedAvgM';
import { PlainStep } from './plainStep';
import { stateByName } from './serverOptimizer';

const delta = (...v: number[]) => [Float64Array.from(v)];
const values = (t: readonly NamedTensor[], name = 'w') => Array.from(t.find((x) => x.name === name)?.data ?? []);

describe('server optimisers', () => {
  it('plain step (FedAvg, FedProx): w + Δ, no state', () => {
    const r = new PlainStep().step(model([1, 2]), delta(0.5, -1));
    expect(values(r.weights)).toEqual([1.5, 1]);
    expect(r.state).toEqual([]);
  });

  it('FedAvgM: m = βm + Δ, w = w + ηm, with the momentum carried as m/<name>', () => {
    const opt = new FedAvgM({ serverLearningRate: 0.5, momentum: 0.9 });
    const r1 = opt.step(model([0, 0]), delta(1, -2), stateByName(undefined));
    expect(values(r1.weights)).toEqual([0.5, -1]);
    expect(values(r1.state, 'm/w')).toEqual([1, -2]);
    const r2 = opt.step(r1.weights, delta(1, 0), stateByName(r1.state));
    // m = 0.9·(1, -2) + (1, 0) = (1.9, -1.8); w = (0.5, -1) + 0.5·m
    expect(values(r2.state, 'm/w')[0]).toBeCloseTo(1.9, 6);
    expect(values(r2.state, 'm/w')[1]).toBeCloseTo(-1.8, 6);
    expect(values(r2.weights)[0]).toBeCloseTo(0.5 + 0.95, 6);
    expect(values(r2.weights)[1]).toBeCloseTo(-1 - 0.9, 6);
  });

  it('FedAdagrad: v accumulates Δ² and only grows', () => {
    const opt = new AdaptiveOptimizer('fedadagrad', { serverLearningRate: 0.1, beta1: 0, beta2: 0, tau: 0.01 });
    const r1 = opt.step(model([0]), delta(2), stateByName(undefined));
    expect(values(r1.weights)[0]).toBeCloseTo((0.1 * 2) / (2 + 0.01), 6);
    expect(values(r1.state, 'v/w')).toEqual([4]);
    const r2 = opt.step(r1.weights, delta(-1), stateByName(r1.state));
    expect(values(r2.state, 'v/w')).toEqual([5]);
    expect(values(r2.weights)[0]).toBeCloseTo(values(r1.weights)[0] - 0.1 / (Math.sqrt(5) + 0.01), 6);
    // with β1 = 0.5 the first step uses m = 0.5·Δ
    const withMomentum = new AdaptiveOptimizer('fedadagrad', {
      serverLearningRate: 0.1,
      beta1: 0.5,
      beta2: 0,
      tau: 0.01,
    });
    expect(values(withMomentum.step(model([0]), delta(2), stateByName(undefined)).weights)[0]).toBeCloseTo(
      (0.1 * 1) / (2 + 0.01),
      6,
    );
  });

  it('FedYogi: v moves by (1 - β2)Δ² towards Δ², additively (Reddi et al. Algorithm 2)', () => {
    const opt = new AdaptiveOptimizer('fedyogi', { serverLearningRate: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-3 });
    const r1 = opt.step(model([0]), delta(1), stateByName(undefined));
    // m = 0.1, v = 0 - 0.01·1·sign(0 - 1) = 0.01
    expect(values(r1.state, 'm/w')[0]).toBeCloseTo(0.1, 6);
    expect(values(r1.state, 'v/w')[0]).toBeCloseTo(0.01, 8);
    expect(values(r1.weights)[0]).toBeCloseTo((0.1 * 0.1) / (0.1 + 1e-3), 6);
    const r2 = opt.step(r1.weights, delta(1), stateByName(r1.state));
    // v = 0.01 + 0.01 = 0.02 (FedAdam would give 0.99·0.01 + 0.01 = 0.0199); m = 0.19
    expect(values(r2.state, 'v/w')[0]).toBeCloseTo(0.02, 8);
    expect(values(r2.weights)[0]).toBeCloseTo(values(r1.weights)[0] + (0.1 * 0.19) / (Math.sqrt(0.02) + 1e-3), 6);
    const r3 = opt.step(r2.weights, delta(0.05), stateByName(r2.state));
    // Δ² = 0.0025 < v: v = 0.02 - 0.01·0.0025
    expect(values(r3.state, 'v/w')[0]).toBeCloseTo(0.019975, 8);
  });

  it('FedAdam: v = β2 v + (1 - β2) Δ²', () => {
    const opt = new AdaptiveOptimizer('fedadam', { serverLearningRate: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-3 });
    const r1 = opt.step(model([0]), delta(1), stateByName(undefined));
    const r2 = opt.step(r1.weights, delta(1), stateByName(r1.state));
    expect(values(r2.state, 'v/w')[0]).toBeCloseTo(0.0199, 8);
  });

  it('resumes from checkpointed state exactly as if it had not stopped', () => {
    const opt = new AdaptiveOptimizer('fedyogi', { serverLearningRate: 0.05, beta1: 0.9, beta2: 0.99, tau: 1e-3 });
    const r1 = opt.step(model([1, 2, 3]), delta(0.1, -0.2, 0.3), stateByName(undefined));
    const stored = decodeTensors(encodeTensors(r1.state));
    const live = opt.step(r1.weights, delta(0.2, 0.1, -0.1), stateByName(r1.state));
    const resumed = opt.step(r1.weights, delta(0.2, 0.1, -0.1), stateByName(stored));
    expect(values(resumed.weights)).toEqual(values(live.weights));
    expect(resumed.state.map((t) => Array.from(t.data))).toEqual(live.state.map((t) => Array.from(t.data)));
  });

  it('refuses state of another model’s size instead of silently restarting', () => {
    const opt = new FedAvgM({ serverLearningRate: 1, momentum: 0.9 });
    const wrong = [{ name: 'm/w', shape: [3], data: new Float32Array(3) }];
    expect(() => opt.step(model([0, 0]), delta(1, 1), stateByName(wrong))).toThrow(
      expect.objectContaining({ code: 'MODEL_SHAPE_MISMATCH' }),
    );
  });
});
