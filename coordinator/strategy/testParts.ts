import type { NamedTensor } from '../../shared/codec/tensors';
import { partMeansOf, type PartMean } from './robust/partMeans';
import type { UpdatePart } from './strategy';

/** Test fixture: a part of `members` whose mean update is `deltas` (one array per tensor), summed with `weight`. */
export function part(members: string | string[], deltas: number[][], weight = 1): UpdatePart {
  const list = typeof members === 'string' ? [members] : members;
  return {
    members: list,
    updates: {
      weightedDeltaSum: deltas.map((d) => Float64Array.from(d, (v) => v * weight)),
      totalWeight: weight,
      clientCount: list.length,
    },
  };
}

/** Test fixture: one-tensor parts named a, b, c, ... with the given mean updates. */
export function meansOf(vectors: number[][], weights: number[] = []): PartMean[] {
  const parts = vectors.map((v, i) => part(String.fromCharCode(97 + i), [v], weights[i] ?? 1));
  return partMeansOf(parts, [vectors[0].length]);
}

/** Test fixture: a one-tensor model named `w`. */
export function model(values: number[]): NamedTensor[] {
  return [{ name: 'w', shape: [values.length], data: Float32Array.from(values) }];
}

/** The values of the first tensor of an update, as a plain array. */
export const first = (update: readonly Float64Array[]): number[] => Array.from(update[0]);
