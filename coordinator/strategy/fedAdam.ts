import type { NamedTensor } from '../../shared/codec/tensors';
import type { JobSpec } from '../../shared/schemas/jobSpec';
import { assertUsable, FedAvg } from './fedAvg';
import type { AggregatedUpdates } from './strategy';

export interface FedAdamOptions {
  serverLearningRate: number;
  beta1: number;
  beta2: number;
  tau: number;
}

/**
 * FedAdam (Reddi et al., "Adaptive Federated Optimization", ICLR 2021): the mean client delta is
 * treated as a pseudo-gradient for a server-side Adam step without bias correction:
 *   m = β1·m + (1-β1)·Δ,  v = β2·v + (1-β2)·Δ²,  w = w + η·m / (√v + τ).
 * m and v are returned as strategy state (tensors named `m/<name>` and `v/<name>`) for checkpoints.
 */
export class FedAdam extends FedAvg {
  override readonly name: JobSpec['strategy']['name'] = 'fedadam';

  constructor(
    spec: JobSpec,
    private readonly options: FedAdamOptions,
  ) {
    super(spec);
  }

  override aggregateTrain(
    global: readonly NamedTensor[],
    updates: AggregatedUpdates,
    state: readonly NamedTensor[] | undefined,
  ): { weights: NamedTensor[]; state: NamedTensor[] } {
    assertUsable(global, updates);
    const { serverLearningRate: eta, beta1, beta2, tau } = this.options;
    const scale = 1 / updates.totalWeight;
    const moments = state && state.length === 2 * global.length ? state : undefined;
    const weights: NamedTensor[] = [];
    const m: NamedTensor[] = [];
    const v: NamedTensor[] = [];
    global.forEach((t, i) => {
      const sum = updates.weightedDeltaSum[i];
      const mPrev = moments?.[i].data;
      const vPrev = moments?.[global.length + i].data;
      const mNext = new Float32Array(t.data.length);
      const vNext = new Float32Array(t.data.length);
      const out = new Float32Array(t.data.length);
      for (let j = 0; j < out.length; j++) {
        const delta = sum[j] * scale;
        const mj = beta1 * (mPrev ? mPrev[j] : 0) + (1 - beta1) * delta;
        const vj = beta2 * (vPrev ? vPrev[j] : 0) + (1 - beta2) * delta * delta;
        mNext[j] = mj;
        vNext[j] = vj;
        out[j] = t.data[j] + (eta * mj) / (Math.sqrt(vj) + tau);
      }
      weights.push({ name: t.name, shape: [...t.shape], data: out });
      m.push({ name: `m/${t.name}`, shape: [...t.shape], data: mNext });
      v.push({ name: `v/${t.name}`, shape: [...t.shape], data: vNext });
    });
    return { weights, state: [...m, ...v] };
  }
}
