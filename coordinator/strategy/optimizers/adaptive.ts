import type { NamedTensor } from '../../../shared/codec/tensors';
import { type ServerOptimizer, type ServerStep, type StateByName, stateFor, stateTensor } from './serverOptimizer';

/** Which second-moment update of Reddi et al.'s Algorithm 2 to use. */
export type AdaptiveVariant = 'fedadagrad' | 'fedadam' | 'fedyogi';

export interface AdaptiveOptions {
  /** Server learning rate η. */
  serverLearningRate: number;
  /** First-moment decay β1 (0: no momentum). */
  beta1: number;
  /** Second-moment decay β2 (FedAdam, FedYogi; unused by FedAdagrad). */
  beta2: number;
  /** Adaptivity τ. */
  tau: number;
}

/**
 * Adaptive server optimisers (Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar & McMahan,
 * "Adaptive Federated Optimization", ICLR 2021, Algorithm 2): the round's mean delta Δ is a
 * pseudo-gradient for a server-side adaptive step without bias correction:
 *   m = β1·m + (1 − β1)·Δ
 *   FedAdagrad: v = v + Δ²
 *   FedAdam:    v = β2·v + (1 − β2)·Δ²
 *   FedYogi:    v = v − (1 − β2)·Δ²·sign(v − Δ²)
 *   w = w + η·m / (√v + τ)
 * Yogi's additive update grows v slowly when Δ² > v, which keeps the effective step from collapsing
 * after one large round; Adagrad's v only grows, so its steps shrink over time. m and v start at zero
 * (as in Flower and Tributary's earlier FedAdam; the paper allows any v ≥ τ², and √v + τ ≥ τ > 0
 * either way). State: `m/<name>` and `v/<name>`.
 */
export class AdaptiveOptimizer implements ServerOptimizer {
  constructor(
    private readonly variant: AdaptiveVariant,
    private readonly options: AdaptiveOptions,
  ) {}

  step(global: readonly NamedTensor[], update: readonly Float64Array[], state: StateByName): ServerStep {
    const { serverLearningRate: eta, beta1, beta2, tau } = this.options;
    const variant = this.variant;
    const weights: NamedTensor[] = [];
    const m: NamedTensor[] = [];
    const v: NamedTensor[] = [];
    global.forEach((t, i) => {
      const u = update[i];
      const mPrev = stateFor(state, 'm', t);
      const vPrev = stateFor(state, 'v', t);
      const mNext = new Float32Array(t.data.length);
      const vNext = new Float32Array(t.data.length);
      const out = new Float32Array(t.data.length);
      for (let j = 0; j < out.length; j++) {
        const delta = u[j];
        const squared = delta * delta;
        const mj = beta1 * (mPrev ? mPrev[j] : 0) + (1 - beta1) * delta;
        const vOld = vPrev ? vPrev[j] : 0;
        const vj =
          variant === 'fedadagrad'
            ? vOld + squared
            : variant === 'fedadam'
              ? beta2 * vOld + (1 - beta2) * squared
              : vOld - (1 - beta2) * squared * Math.sign(vOld - squared);
        mNext[j] = mj;
        vNext[j] = vj;
        out[j] = t.data[j] + (eta * mj) / (Math.sqrt(vj) + tau);
      }
      weights.push({ name: t.name, shape: [...t.shape], data: out });
      m.push(stateTensor('m', t, mNext));
      v.push(stateTensor('v', t, vNext));
    });
    return { weights, state: [...m, ...v] };
  }
}
