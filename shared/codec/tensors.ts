/** A named Float32 tensor: the unit of model weights and updates everywhere in Tributary. */
export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** Manifest entry: what a tensor must look like, without its data. */
export interface TensorManifestEntry {
  name: string;
  shape: number[];
}

export function sizeOfShape(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function manifestOf(tensors: readonly NamedTensor[]): TensorManifestEntry[] {
  return tensors.map((t) => ({ name: t.name, shape: [...t.shape] }));
}

export function totalParameters(manifest: readonly TensorManifestEntry[]): number {
  let n = 0;
  for (const t of manifest) n += sizeOfShape(t.shape);
  return n;
}
