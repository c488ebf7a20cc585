import { TributaryError } from '../../../shared/errors';
import type { UpdatePart } from '../strategy';

/**
 * One part's mean update, held as its weighted sum and 1 / weight so no copy is made:
 * mean[t][j] = sums[t][j] * scale. A part is one client (plaintext) or one SecAgg+ cohort.
 */
export interface PartMean {
  readonly members: readonly string[];
  readonly sums: readonly Float64Array[];
  readonly scale: number;
}

/**
 * The parts' mean updates in a deterministic order (by their sorted member ids), so a rule's ties
 * break the same way whatever order the updates arrived in. A part with a non-positive or
 * non-finite weight, non-finite sums or the wrong tensor sizes fails the round with
 * ROUND_AGGREGATE_INVALID naming its members (the mode saw which clients made it).
 */
export function partMeansOf(parts: readonly UpdatePart[], tensorLengths: readonly number[]): PartMean[] {
  const means = parts.map((part) => {
    const { weightedDeltaSum: sums, totalWeight } = part.updates;
    const members = [...part.members].sort();
    const who = describeMembers(members);
    if (!(totalWeight > 0) || !Number.isFinite(totalWeight)) {
      throw invalidPart(members, `the part of ${who} has weight ${totalWeight}; expected a positive finite weight`);
    }
    if (sums.length !== tensorLengths.length) {
      throw new TributaryError(
        'MODEL_SHAPE_MISMATCH',
        `The part of ${who} has ${sums.length} summed tensors; the model has ${tensorLengths.length}.`,
      );
    }
    sums.forEach((sum, t) => {
      if (sum.length !== tensorLengths[t]) {
        throw new TributaryError(
          'MODEL_SHAPE_MISMATCH',
          `The part of ${who} has ${sum.length} values in tensor ${t}; the model has ${tensorLengths[t]}.`,
        );
      }
      for (let j = 0; j < sum.length; j++) {
        if (!Number.isFinite(sum[j])) {
          throw invalidPart(members, `the part of ${who} has ${sum[j]} at tensor ${t}, index ${j}`);
        }
      }
    });
    return { members, sums, scale: 1 / totalWeight };
  });
  const key = (p: PartMean) => p.members.join(',');
  return means.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** Σ_t Σ_j (a_tj - b_tj)², the squared L2 distance between two parts' mean updates. */
export function squaredDistance(a: PartMean, b: PartMean): number {
  let total = 0;
  for (let t = 0; t < a.sums.length; t++) {
    const x = a.sums[t];
    const y = b.sums[t];
    for (let j = 0; j < x.length; j++) {
      const d = x[j] * a.scale - y[j] * b.scale;
      total += d * d;
    }
  }
  return total;
}

/** The unweighted mean of some parts' mean updates, per tensor. */
export function meanOfParts(parts: readonly PartMean[]): Float64Array[] {
  const out = parts[0].sums.map((s) => new Float64Array(s.length));
  const k = 1 / parts.length;
  for (const p of parts) {
    for (let t = 0; t < out.length; t++) {
      const o = out[t];
      const s = p.sums[t];
      const c = p.scale * k;
      for (let j = 0; j < o.length; j++) o[j] += s[j] * c;
    }
  }
  return out;
}

/** Up to three member ids, shortened, for messages. */
export function describeMembers(members: readonly string[]): string {
  const shown = members.slice(0, 3).map((m) => (m.length > 12 ? `${m.slice(0, 12)}…` : m));
  return members.length > 3 ? `${shown.join(', ')} and ${members.length - 3} more` : shown.join(', ');
}

function invalidPart(members: readonly string[], what: string): TributaryError {
  return new TributaryError('ROUND_AGGREGATE_INVALID', `Cannot aggregate: ${what}.`, {
    details: { members: [...members] },
  });
}

/**
 * Applies `reduce` to every coordinate's values across the parts, sorted ascending (the shared core of
 * the coordinate-wise rules). `reduce` gets a scratch array it must not keep.
 */
export function reduceSortedCoordinates(
  parts: readonly PartMean[],
  reduce: (sorted: Float64Array) => number,
): Float64Array[] {
  const column = new Float64Array(parts.length);
  return parts[0].sums.map((first, t) => {
    const out = new Float64Array(first.length);
    for (let j = 0; j < out.length; j++) {
      for (let i = 0; i < parts.length; i++) column[i] = parts[i].sums[t][j] * parts[i].scale;
      column.sort();
      out[j] = reduce(column);
    }
    return out;
  });
}
