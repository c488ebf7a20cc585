import type { NamedTensor } from '../../shared/codec/tensors';
import { TributaryError } from '../../shared/errors';
import { describeMembers } from './robust/partMeans';
import type { AggregatedUpdates, UpdatePart } from './strategy';

/**
 * The largest magnitude a model weight, a round's mean update or first-order optimiser state may
 * have. Trained networks stay many orders below it; the attacks it stops (FLT_MAX deltas, inflated
 * weights) land far above it, long before Float32 overflows to Infinity at 3.4e38.
 */
export const MAX_ABS_MODEL_VALUE = 1e6;

/** What one server step produced, checked by assertServerStepValid; every field is optional. */
export interface ServerStepValues {
  /** The round's sums from the aggregation mode: Σ w_i must be positive and finite, Σ w_i·Δ_i finite. */
  updates?: AggregatedUpdates;
  /** The pseudo-gradient the optimiser applies (mean or robust update, after norm bounding). */
  meanUpdate?: readonly Float64Array[];
  /** The new global weights. */
  weights?: readonly NamedTensor[];
  /** The optimiser's (and rule's) new state; `v/` tensors hold squared values and get the squared bound. */
  state?: readonly NamedTensor[];
  /** The round's parts, if the mode has them: a failed mean update names the parts that are themselves out of range. */
  parts?: readonly UpdatePart[];
}

/**
 * The one guard that nothing non-finite or absurd is committed: throws ROUND_AGGREGATE_INVALID (the
 * round runner fails the attempt; nothing changes) when the summed weight is not positive and finite,
 * any summed value is non-finite, or any mean-update, weight or state value is non-finite or above
 * `maxAbs` (squared for `v/` state). The message names the tensor, index and value; `details.members`
 * names the parts to blame where the mode saw them.
 */
export function assertServerStepValid(values: ServerStepValues, maxAbs: number = MAX_ABS_MODEL_VALUE): void {
  const { updates, meanUpdate, weights, state, parts } = values;
  if (updates) {
    const w = updates.totalWeight;
    if (!(w > 0) || !Number.isFinite(w)) {
      throw invalid(`the summed weight is ${w}; expected a positive finite number`, { what: 'totalWeight' });
    }
    updates.weightedDeltaSum.forEach((sum, t) => {
      const j = firstOutOfRange(sum, Number.POSITIVE_INFINITY);
      if (j >= 0)
        throw invalid(`the summed update has ${sum[j]} at tensor ${t}, index ${j}`, {
          what: 'sum',
          tensor: t,
          index: j,
        });
    });
  }
  meanUpdate?.forEach((u, t) => {
    const j = firstOutOfRange(u, maxAbs);
    if (j < 0) return;
    const blamed = parts ? partsOutOfRange(parts, maxAbs) : [];
    throw invalid(
      `the mean update has ${u[j]} at tensor ${t}, index ${j}; expected a finite value within ±${maxAbs}` +
        (blamed.length > 0 ? ` (out of range alone: ${blamed.map(describeMembers).join('; ')})` : ''),
      { what: 'meanUpdate', tensor: t, index: j, ...(blamed.length > 0 ? { members: blamed.flat() } : {}) },
    );
  });
  for (const [what, tensors] of [
    ['weights', weights],
    ['state', state],
  ] as const) {
    for (const tensor of tensors ?? []) {
      const bound = what === 'state' && tensor.name.startsWith('v/') ? maxAbs * maxAbs : maxAbs;
      const j = firstOutOfRange(tensor.data, bound);
      if (j >= 0) {
        throw invalid(
          `the new ${what === 'weights' ? 'model' : 'optimiser state'} has ${tensor.data[j]} in ${JSON.stringify(tensor.name)} at index ${j}; expected a finite value within ±${bound}`,
          { what, tensor: tensor.name, index: j },
        );
      }
    }
  }
}

/** Index of the first value that is non-finite or above `bound` in magnitude, or -1. */
function firstOutOfRange(values: ArrayLike<number>, bound: number): number {
  // One scan per array type: a single loop fed Float32Array, Float64Array and plain arrays in a
  // long-lived process goes megamorphic and ran ~10x slower. The loops name no global (`v - v` is 0
  // exactly for finite v, NaN for ±Infinity and NaN): in a vm context such as jest's, a global lookup
  // per element (Number.isFinite) made a 10M-value round's guard take 7 s instead of 40 ms.
  if (values instanceof Float32Array) return scanFloat32(values, bound);
  if (values instanceof Float64Array) return scanFloat64(values, bound);
  return scanAny(values, bound);
}

function scanFloat32(values: Float32Array, bound: number): number {
  for (let j = 0; j < values.length; j++) {
    const v = values[j];
    // NaN fails both comparisons, so test for the good case; ±Infinity then fails v - v === 0.
    if (!(v <= bound && v >= -bound) || v - v !== 0) return j;
  }
  return -1;
}

function scanFloat64(values: Float64Array, bound: number): number {
  for (let j = 0; j < values.length; j++) {
    const v = values[j];
    if (!(v <= bound && v >= -bound) || v - v !== 0) return j;
  }
  return -1;
}

function scanAny(values: ArrayLike<number>, bound: number): number {
  for (let j = 0; j < values.length; j++) {
    const v = values[j];
    if (!(v <= bound && v >= -bound) || v - v !== 0) return j;
  }
  return -1;
}

/** Members of the parts whose own mean update leaves the range somewhere. */
function partsOutOfRange(parts: readonly UpdatePart[], maxAbs: number): string[][] {
  return parts
    .filter((p) => {
      const w = p.updates.totalWeight;
      return p.updates.weightedDeltaSum.some((sum) => firstOutOfRange(sum, maxAbs * w) >= 0);
    })
    .map((p) => [...p.members]);
}

function invalid(what: string, details: Record<string, unknown>): TributaryError {
  return new TributaryError('ROUND_AGGREGATE_INVALID', `Not committing the round: ${what}.`, { details });
}
