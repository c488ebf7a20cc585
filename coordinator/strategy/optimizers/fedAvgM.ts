import type { NamedTensor } from '../../../shared/codec/tensors';
import { type ServerOptimizer, type ServerStep, type StateByName, stateFor, stateTensor } from './serverOptimizer';

/**
 * FedAvgM (Hsu, Qi & Brown, "Measuring the Effects of Non-Identical Data Distribution for Federated
 * Visual Classification", 2019, section 3): server momentum on the pseudo-gradient,
 *   m = β·m + Δ,  w = w + η·m
 * (the paper's v ← βv + Δw, w ← w − v, with Δw = −Δ and η = 1). Momentum smooths the client drift of
 * non-IID rounds. State: `m/<name>`, zero before the first round.
 */
export class FedAvgM implements ServerOptimizer {
  constructor(private readonly options: { serverLearningRate: number; momentum: number }) {}

  step(global: readonly NamedTensor[], update: readonly Float64Array[], state: StateByName): ServerStep {
    const { serverLearningRate: eta, momentum: beta } = this.options;
    const weights: NamedTensor[] = [];
    const m: NamedTensor[] = [];
    global.forEach((t, i) => {
      const u = update[i];
      const mPrev = stateFor(state, 'm', t);
      const mNext = new Float32Array(t.data.length);
      const out = new Float32Array(t.data.length);
      for (let j = 0; j < out.length; j++) {
        const mj = beta * (mPrev ? mPrev[j] : 0) + u[j];
        mNext[j] = mj;
        out[j] = t.data[j] + eta * mj;
      }
      weights.push({ name: t.name, shape: [...t.shape], data: out });
      m.push(stateTensor('m', t, mNext));
    });
    return { weights, state: m };
  }
}
