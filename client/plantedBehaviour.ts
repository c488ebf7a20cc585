import type { NamedTensor } from '../shared/codec/tensors';
import type { Dataset } from '../shared/data/dataset';
import { createRng, normalSample, shuffleInPlace } from '../shared/data/random';

/**
 * Research-only misbehaviours for planted federations (contribution-scoring tests, benchmark and the
 * demo's --free-rider): what a client sends instead of its honest update.
 * - `free-rider`: the global model unchanged (a zero delta) while claiming its examples;
 * - `zeros`: an all-zero model (delta = -global);
 * - `noise`: a random delta, Gaussian per value, as large (root mean square) as the honest one it
 *   replaces, so a norm check cannot tell it apart.
 */
export type PlantedBehaviour = 'free-rider' | 'zeros' | 'noise';
export const PLANTED_BEHAVIOURS: readonly PlantedBehaviour[] = ['free-rider', 'zeros', 'noise'];

/** The delta a planted client sends instead of `honest` (its trained delta from `global`); seeded, so runs repeat. */
export function plantedDelta(
  behaviour: PlantedBehaviour,
  global: readonly NamedTensor[],
  honest: readonly NamedTensor[],
  seed: number,
): NamedTensor[] {
  const rng = createRng(seed);
  let squares = 0;
  let count = 0;
  for (const t of honest) for (const v of t.data) (squares += v * v), count++;
  const rms = Math.sqrt(squares / Math.max(1, count));
  return global.map((t) => {
    const d = new Float32Array(t.data.length);
    if (behaviour === 'zeros') for (let j = 0; j < d.length; j++) d[j] = -t.data[j];
    if (behaviour === 'noise') for (let j = 0; j < d.length; j++) d[j] = rms * normalSample(rng);
    return { name: t.name, shape: [...t.shape], data: d };
  });
}

/** The same examples with their labels randomly permuted (the planted "shuffled labels" provider). */
export function withShuffledLabels(dataset: Dataset, seed: number): Dataset {
  return { ...dataset, y: shuffleInPlace(Int32Array.from(dataset.y), createRng(seed)) };
}
