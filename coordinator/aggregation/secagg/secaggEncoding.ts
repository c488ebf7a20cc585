import { distributedNoisePlanOf, distributedVectorLength } from '../../../shared/aggregation/privateUpdate';
import { splitByManifest } from '../../../shared/codec/manifestVector';
import { type TensorManifestEntry, totalParameters } from '../../../shared/codec/tensors';
import { decodeDistributedSum } from '../../../shared/privacy/distributedNoise';
import type { SecAggOptions } from '../../../shared/schemas/jobSpec';
import { DEFAULT_QUANTIZATION, dequantizeSum, secaggError } from '../../../shared/secagg';
import type { AggregatedUpdates } from '../../strategy/strategy';
import type { RevealedPrivacy, RoundPrivacyContext } from '../aggregationMode';

/** What one unmasked SecAgg+ sum stands for. */
export interface DecodedSecAggSum {
  updates: AggregatedUpdates;
  /** Jobs with a `privacy` block: the count of unclipped updates the sum carries. */
  privacy?: RevealedPrivacy;
}

/**
 * How the clients of a `secagg` round encode their updates into Z_(2^32) vectors, and how the
 * coordinator reads the unmasked sum: the clients' halves are in client/updates/secagg.ts, and both
 * sides follow shared/aggregation/ (weighting.ts, privateUpdate.ts). One per round attempt.
 */
export interface SecAggEncoding {
  /** Values in every client's masked vector. */
  readonly vectorLength: number;
  /** The round's sums from the mod-2^32 sum of `contributors` vectors of the session named `roundId`. */
  decode(sum: Uint32Array, contributors: number, roundId: string): DecodedSecAggSum;
}

/** The quantisation every session uses (its setup stage sends it; clients' policies require it). */
export function sessionQuantization(options: SecAggOptions): { clippingRange: number; quantizationRange: number } {
  return { clippingRange: options.clippingRange, quantizationRange: DEFAULT_QUANTIZATION.quantizationRange };
}

/** No DP: ratio-weighted deltas, the ratio last (weighting.ts); sums scaled back to examples with maxExampleWeight. */
function weightedEncoding(manifest: readonly TensorManifestEntry[], options: SecAggOptions): SecAggEncoding {
  return {
    vectorLength: totalParameters(manifest) + 1,
    decode(sum, contributors) {
      const total = dequantizeSum(sum, contributors, sessionQuantization(options));
      const ratioSum = total[total.length - 1];
      if (!(ratioSum > 0)) {
        throw secaggError(
          'SECAGG_RECONSTRUCTION_FAILED',
          `SecAgg+ sum of weights is ${ratioSum}; expected a positive number`,
        );
      }
      // The clients send ratio_i = w_i / maxExampleWeight: scale back to examples (one unit everywhere).
      const scale = options.maxExampleWeight;
      const weightedDeltaSum = splitByManifest(total, manifest);
      for (const t of weightedDeltaSum) for (let j = 0; j < t.length; j++) t[j] *= scale;
      return { updates: { weightedDeltaSum, totalWeight: ratioSum * scale, clientCount: contributors } };
    },
  };
}

/** Central DP: clipped deltas with the unclipped bit in the weight slot (privateUpdate.ts); every client weighs 1. */
function centralPrivacyEncoding(manifest: readonly TensorManifestEntry[], options: SecAggOptions): SecAggEncoding {
  return {
    vectorLength: totalParameters(manifest) + 1,
    decode(sum, contributors) {
      const total = dequantizeSum(sum, contributors, sessionQuantization(options));
      return {
        updates: {
          weightedDeltaSum: splitByManifest(total, manifest),
          totalWeight: contributors,
          clientCount: contributors,
        },
        privacy: { unclippedCount: total[total.length - 1], noised: false },
      };
    },
  };
}

/**
 * Distributed DP: each vector is a client's encodeDistributedUpdate output (rotated with the session's
 * round id as seed, scaled, rounded, noised, the bit last); the sum decodes with decodeDistributedSum,
 * which refuses a sum of fewer clients than the noise was sized for.
 */
function distributedNoiseEncoding(
  manifest: readonly TensorManifestEntry[],
  privacy: RoundPrivacyContext,
): SecAggEncoding {
  const dimension = totalParameters(manifest);
  const plan = distributedNoisePlanOf(privacy.plan, dimension, privacy.clippingNorm);
  return {
    vectorLength: distributedVectorLength(dimension),
    decode(sum, contributors, roundId) {
      const decoded = decodeDistributedSum(sum, contributors, plan, roundId);
      return {
        updates: {
          weightedDeltaSum: splitByManifest(decoded.sum, manifest),
          totalWeight: contributors,
          clientCount: contributors,
        },
        privacy: { unclippedCount: decoded.unclippedCount, noised: true },
      };
    },
  };
}

/** The encoding of a round: weighted without DP, else by where the job's noise is added. */
export function secaggEncodingOf(
  manifest: readonly TensorManifestEntry[],
  options: SecAggOptions,
  privacy?: RoundPrivacyContext,
): SecAggEncoding {
  if (!privacy) return weightedEncoding(manifest, options);
  return privacy.plan.noise === 'distributed'
    ? distributedNoiseEncoding(manifest, privacy)
    : centralPrivacyEncoding(manifest, options);
}
