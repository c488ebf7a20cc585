import { TributaryError } from '../errors';
import { type NamedTensor, sizeOfShape, type TensorManifestEntry, totalParameters } from './tensors';

/**
 * Models travel between the halves of an aggregation mode as one flat vector: tensors in the job's
 * weight-manifest order, then (for the private modes) the client's weight. These two functions are
 * the only place that order is written down.
 */

/** The tensors as one vector in manifest order; MODEL_SHAPE_MISMATCH when a tensor is missing or mis-sized. */
export function flattenByManifest(
  tensors: readonly NamedTensor[],
  manifest: readonly TensorManifestEntry[],
  extra = 0,
): Float32Array {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const out = new Float32Array(totalParameters(manifest) + extra);
  let offset = 0;
  for (const entry of manifest) {
    const t = byName.get(entry.name);
    const size = sizeOfShape(entry.shape);
    if (!t || t.data.length !== size) {
      throw new TributaryError('MODEL_SHAPE_MISMATCH', `The model has no weight ${entry.name} of ${size} values.`);
    }
    out.set(t.data, offset);
    offset += size;
  }
  return out;
}

/** Splits the first totalParameters(manifest) values of `flat` into one Float64Array per tensor (copies). */
export function splitByManifest(
  flat: ArrayLike<number> & { subarray(begin: number, end: number): ArrayLike<number> },
  manifest: readonly TensorManifestEntry[],
): Float64Array[] {
  let offset = 0;
  return manifest.map((entry) => {
    const size = sizeOfShape(entry.shape);
    // new + set copies typed arrays in bulk; Float64Array.from iterates (7x slower here).
    const out = new Float64Array(size);
    out.set(flat.subarray(offset, offset + size));
    offset += size;
    return out;
  });
}

/** The first totalParameters(manifest) values of `flat` as named tensors in manifest order (copies). */
export function unflattenByManifest(flat: Float32Array, manifest: readonly TensorManifestEntry[]): NamedTensor[] {
  let offset = 0;
  return manifest.map((entry) => {
    const size = sizeOfShape(entry.shape);
    const data = flat.slice(offset, offset + size);
    offset += size;
    return { name: entry.name, shape: [...entry.shape], data };
  });
}
