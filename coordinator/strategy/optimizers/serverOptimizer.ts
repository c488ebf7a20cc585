import type { NamedTensor } from '../../../shared/codec/tensors';
import { TributaryError } from '../../../shared/errors';

/** Strategy state tensors by name (`m/<weight>`, `v/<weight>`, `center/<weight>`), as checkpointed. */
export type StateByName = ReadonlyMap<string, NamedTensor>;

/** The server optimiser's step: the new weights and its new state (named tensors, checkpointed by the runner). */
export interface ServerStep {
  weights: NamedTensor[];
  state: NamedTensor[];
}

/**
 * How the server moves the global model by the round's pseudo-gradient Δ (the mean, or robust,
 * client delta): FedAvg's plain step, or server momentum / adaptive steps (Reddi et al. 2021).
 * Pure; its state travels in and out as named tensors, so a resumed job continues where it stopped.
 */
export interface ServerOptimizer {
  step(global: readonly NamedTensor[], update: readonly Float64Array[], state: StateByName): ServerStep;
}

/** Indexes state tensors by name. */
export function stateByName(state: readonly NamedTensor[] | undefined): StateByName {
  return new Map((state ?? []).map((t) => [t.name, t]));
}

/**
 * The state tensor `<prefix>/<weight name>` for `weight`, or undefined on a first round. One of the
 * wrong size (a checkpoint of another model) is MODEL_SHAPE_MISMATCH rather than silently reset.
 */
export function stateFor(state: StateByName, prefix: string, weight: NamedTensor): Float32Array | undefined {
  const t = state.get(`${prefix}/${weight.name}`);
  if (!t) return undefined;
  if (t.data.length !== weight.data.length) {
    throw new TributaryError(
      'MODEL_SHAPE_MISMATCH',
      `Strategy state ${JSON.stringify(t.name)} has ${t.data.length} values; the weight ${JSON.stringify(weight.name)} has ${weight.data.length}.`,
    );
  }
  return t.data;
}

/** A state tensor named `<prefix>/<weight name>` shaped like `weight`. */
export function stateTensor(prefix: string, weight: NamedTensor, data: Float32Array): NamedTensor {
  return { name: `${prefix}/${weight.name}`, shape: [...weight.shape], data };
}
