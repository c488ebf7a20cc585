import type { NamedTensor } from '../../../shared/codec/tensors';
import type { ServerOptimizer, ServerStep } from './serverOptimizer';

/**
 * FedAvg's server step (McMahan et al., AISTATS 2017), also FedProx's (Li et al., MLSys 2020, whose
 * difference is the client's proximal term): w + Δ. No state.
 */
export class PlainStep implements ServerOptimizer {
  step(global: readonly NamedTensor[], update: readonly Float64Array[]): ServerStep {
    const weights = global.map((t, i) => {
      const u = update[i];
      const out = new Float32Array(t.data.length);
      for (let j = 0; j < out.length; j++) out[j] = t.data[j] + u[j];
      return { name: t.name, shape: [...t.shape], data: out };
    });
    return { weights, state: [] };
  }
}
