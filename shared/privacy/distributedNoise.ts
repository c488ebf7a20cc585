import { TributaryError } from '../errors';
import { clipToNorm } from './clipping';
import { DiscreteGaussianSampler } from './discreteGaussian';
import { paddedLength, rotate, unrotate } from './hadamardRotation';
import type { RandomStream } from './randomSource';

// Module-level aliases: these run per coordinate or per series term, and a global lookup such as
// `Math.floor` costs ~0.5 us inside jest's vm sandbox (a plain property load elsewhere).
const { ceil, exp, floor, log, log2, max, min, sqrt } = Math;

/** What the distributed noise of one round depends on; every client and the coordinator derive the same plan. */
export interface DistributedNoiseOptions {
  /** Values in one update (the model's parameter count). */
  dimension: number;
  /** The round's L2 clipping norm C, in model units. */
  clipNorm: number;
  /** z: the noise standard deviation of a revealed sum, in units of one client's L2 sensitivity. */
  noiseMultiplier: number;
  /** n_min: the fewest clients whose vectors a revealed sum can hold (the SecAgg+ quorum or cohort size). */
  minContributors: number;
  /** n_max: the most clients summed at once (headroom against the wrap-around mod 2^32). */
  maxContributors: number;
  /** sigma_b: the noise standard deviation on the count of unclipped updates (Andrew et al. 2021). */
  countNoiseStddev: number;
}

/** The integer-domain parameters of one round (see `planDistributedNoise`). */
export interface DistributedNoisePlan extends Readonly<DistributedNoiseOptions> {
  /** The rotated length: the next power of two >= dimension. */
  readonly paddedDimension: number;
  /** Values each client sends: the rotated update and one clipped-bit value. */
  readonly encodedLength: number;
  /** Integer steps per model unit (1 / gamma in KLS 2021); a power of two, so scaling is exact. */
  readonly scale: number;
  /** Delta_2: the L2 bound on one client's rounded integer update, enforced by conditional rounding. */
  readonly sensitivity: number;
  /** Variance of the discrete Gaussian each client adds to each update coordinate (an integer). */
  readonly perClientVariance: number;
  /** The clipped bit is sent as +bitScale (not clipped) or -bitScale (clipped). */
  readonly bitScale: number;
  /** Variance of the discrete Gaussian each client adds to the bit value (an integer). */
  readonly perClientBitVariance: number;
  /** Upper bound on the probability that any coordinate of a sum of up to n_max clients wraps mod 2^32. */
  readonly wrapProbabilityBound: number;
}

/** Conditional randomized rounding bias (KLS 2021 use beta = exp(-1/2); at most 1 / (1 - beta) = 2.5 tries expected). */
const BETA = exp(-0.5);
/** C * scale is in (KAPPA/2, KAPPA] * sqrt(paddedDimension): rounding then widens Delta_2 by 0.1-0.25 % (n >= 1024). */
const KAPPA = 16;
/** Each client's discrete Gaussian has sigma >= 16, so the sum of n of them is a discrete Gaussian up to tau ~ n e^-2500 (KLS 2021 Thm. 10). */
const MIN_PER_CLIENT_STDDEV = 16;
/** Target probability that a sum wraps around anywhere (then that coordinate is lost, not privacy). */
const WRAP_PROBABILITY = 1e-9;
const HALF_MODULUS = 2 ** 31;
const MODULUS = 2 ** 32;

function checkOptions(o: DistributedNoiseOptions): void {
  const positive = (name: string, v: number) => {
    if (!(v > 0 && Number.isFinite(v))) {
      throw new TributaryError(
        'CONFIG_INVALID',
        `distributed noise: ${name} must be a positive finite number, got ${v}`,
      );
    }
  };
  positive('clipNorm', o.clipNorm);
  positive('noiseMultiplier', o.noiseMultiplier);
  positive('countNoiseStddev', o.countNoiseStddev);
  if (!(Number.isInteger(o.dimension) && o.dimension >= 1)) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `distributed noise: dimension must be a positive integer, got ${o.dimension}`,
    );
  }
  if (!(Number.isInteger(o.minContributors) && o.minContributors >= 1 && o.maxContributors >= o.minContributors)) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `distributed noise: need integers 1 <= minContributors <= maxContributors, got ${o.minContributors} and ${o.maxContributors}`,
    );
  }
}

/** The L2 bound after conditional randomized rounding of a vector of norm <= c in n dimensions (KLS 2021, Thm. 2). */
function roundedNormBound(c: number, n: number): number {
  const plain = c + sqrt(n);
  const conditional = sqrt(c * c + n / 4 + sqrt(2 * log(1 / BETA)) * (c + sqrt(n) / 2));
  return min(plain, conditional);
}

/**
 * Plans the distributed discrete Gaussian mechanism of Kairouz, Liu & Steinke, "The Distributed
 * Discrete Gaussian Mechanism for Federated Learning with Secure Aggregation", ICML 2021 (KLS), for
 * the SecAgg+ group Z_(2^32):
 *
 * 1. Clip the update to L2 norm C; rotate it (randomized Hadamard, `rotate`, Sec. 4.1).
 * 2. Scale by `scale` = 1 / gamma and round each coordinate up or down at random (unbiased), redrawing
 *    until the integer vector's norm is at most Delta_2 = min(Cs + sqrt(n), sqrt((Cs)^2 + n/4 +
 *    sqrt(2 log(1/beta)) (Cs + sqrt(n)/2))) (conditional randomized rounding, Sec. 4.2, Thm. 2).
 * 3. Add N_Z(0, v) to every coordinate with v = ceil((z Delta_2)^2 / n_min): a sum of at least n_min
 *    clients carries variance >= (z Delta_2)^2, noise multiplier z against sensitivity Delta_2.
 * 4. Wrap mod 2^32 (the Uint32Array does it); SecAgg+ sums mod 2^32; the coordinator maps the sum back
 *    to [-2^31, 2^31), divides by the scale and rotates back (`decodeDistributedSum`).
 *
 * One more value carries the clipped bit: +K when the update was not clipped, -K when it was, with
 * N_Z(0, v_b) noise, v_b = ceil((2 sigma_b K)^2 / n_min): the sum reveals the count of unclipped
 * updates plus noise of standard deviation >= sigma_b (Andrew et al. 2021), sensitivity K against
 * noise 2 sigma_b K as in that paper's Sec. 3.
 *
 * Dropouts: each client adds only 1/n_min of the target variance, so a sum of n >= n_min survivors
 * carries n/n_min times the target (more privacy, a little less accuracy); SecAgg+ never unmasks a
 * sum of fewer than n_min (its quorum), so n_min survivors is the worst case and is what is accounted.
 *
 * The scale is the largest power of two with C s <= 16 sqrt(n) (rounding then costs 0.1-0.25 % of
 * the noise for n >= 1024), raised if needed so each client's sigma is >= 16, and lowered until a sum of n_max
 * clients stays inside [-2^31, 2^31) except with probability <= 1e-9 (the rotated coordinates and the
 * noise are sub-Gaussian: Hoeffding and a union bound). Throws CONFIG_INVALID when no scale fits.
 */
export function planDistributedNoise(options: DistributedNoiseOptions): DistributedNoisePlan {
  checkOptions(options);
  const { clipNorm: c, noiseMultiplier: z, minContributors: nMin, maxContributors: nMax, dimension } = options;
  const n = paddedLength(dimension);
  const sqrtN = sqrt(n);
  // Rotated coordinates of one client: |y_j| <= C s * flat, except with probability WRAP_PROBABILITY / 2 overall.
  const flat = min(1, sqrt((2 * log((4 * n * nMax) / WRAP_PROBABILITY)) / n));
  const noiseTail = sqrt(2 * log((4 * (n + 1)) / WRAP_PROBABILITY));
  const planFor = (scale: number) => {
    const cs = c * scale;
    const sensitivity = roundedNormBound(cs * (1 + 1e-9), n);
    const perClientVariance = ceil(((z * sensitivity) ** 2 / nMin) * (1 + 1e-12));
    const signal = nMax * (cs * flat + 1);
    const noise = noiseTail * sqrt(nMax * perClientVariance);
    return { scale, sensitivity, perClientVariance, fits: signal + noise < HALF_MODULUS - 1 };
  };
  // The largest power of two with C s <= KAPPA sqrt(n)...
  let scale = 2 ** floor(log2((KAPPA * sqrtN) / c));
  // ...raised until each client's sigma is at least MIN_PER_CLIENT_STDDEV...
  while (planFor(scale).perClientVariance < MIN_PER_CLIENT_STDDEV ** 2) scale *= 2;
  // ...and lowered until a sum of n_max clients cannot wrap around.
  let plan = planFor(scale);
  while (!plan.fits) {
    scale /= 2;
    plan = planFor(scale);
    if (c * scale < sqrtN || plan.perClientVariance < MIN_PER_CLIENT_STDDEV ** 2) {
      throw new TributaryError(
        'CONFIG_INVALID',
        `distributed noise: ${nMax} clients with ${dimension} values and noise multiplier ${z} do not fit the 32-bit SecAgg+ group; lower maxClients or the noise`,
      );
    }
  }
  const { countNoiseStddev: sigmaB } = options;
  const bitScale = max(1, ceil((MIN_PER_CLIENT_STDDEV * sqrt(nMin)) / (2 * sigmaB)));
  const perClientBitVariance = ceil(((2 * sigmaB * bitScale) ** 2 / nMin) * (1 + 1e-12));
  if (nMax * bitScale + noiseTail * sqrt(nMax * perClientBitVariance) >= HALF_MODULUS - 1) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `distributed noise: the clipped-count noise ${sigmaB} is too large for the 32-bit group`,
    );
  }
  return Object.freeze({
    ...options,
    paddedDimension: n,
    encodedLength: n + 1,
    scale: plan.scale,
    sensitivity: plan.sensitivity,
    perClientVariance: plan.perClientVariance,
    bitScale,
    perClientBitVariance,
    wrapProbabilityBound: WRAP_PROBABILITY,
  });
}

/** One client's encoded update before or after noise, and what clipping did. */
export interface DistributedEncoding {
  /** encodedLength values in Z_(2^32): the rotated, scaled, rounded update, then the clipped bit. */
  values: Uint32Array;
  /** Whether the update was longer than C and was scaled down. */
  clipped: boolean;
  /** The update's L2 norm before clipping. */
  norm: number;
}

/**
 * Steps 1-2 and the clipped bit of `planDistributedNoise`, without noise: clip, rotate, scale, round
 * conditionally, wrap into Z_(2^32). `rotationSeed` names the round (every client of a round and the
 * coordinator use the same, e.g. "<jobId>:<round>:<attempt>:<cohort>"); it is public.
 */
export function quantizeForDistributedNoise(
  update: Float32Array,
  plan: DistributedNoisePlan,
  rotationSeed: string,
  random: RandomStream,
): DistributedEncoding {
  if (update.length !== plan.dimension) {
    throw new TributaryError(
      'VALIDATION_FAILED',
      `expected an update of ${plan.dimension} values, got ${update.length}`,
    );
  }
  const { update: clippedUpdate, clipped, norm } = clipToNorm(update, plan.clipNorm);
  const rotated = rotate(clippedUpdate, rotationSeed);
  for (let i = 0; i < rotated.length; i++) rotated[i] *= plan.scale;
  const bound = plan.sensitivity * plan.sensitivity;
  const rounded = new Float64Array(rotated.length);
  for (;;) {
    let squares = 0;
    for (let i = 0; i < rotated.length; i++) {
      const x = rotated[i];
      const low = floor(x);
      const r = random.uniform() < x - low ? low + 1 : low;
      rounded[i] = r;
      squares += r * r;
    }
    if (squares <= bound) break;
  }
  const values = new Uint32Array(plan.encodedLength);
  // Assigning a negative integer to a Uint32Array stores it mod 2^32 (two's complement).
  for (let i = 0; i < rounded.length; i++) values[i] = rounded[i];
  values[plan.paddedDimension] = clipped ? -plan.bitScale : plan.bitScale;
  return { values, clipped, norm };
}

/**
 * Step 3 of `planDistributedNoise`: adds this client's share of the noise, in place, to an encoded
 * vector: N_Z(0, perClientVariance) on the update values, N_Z(0, perClientBitVariance) on the bit.
 * Call it on the output of `quantizeForDistributedNoise`, before SecAgg+ masking, with cryptoRandom().
 */
export function addDistributedNoise(
  values: Uint32Array,
  plan: DistributedNoisePlan,
  random: RandomStream,
): Uint32Array {
  if (values.length !== plan.encodedLength) {
    throw new TributaryError(
      'VALIDATION_FAILED',
      `expected ${plan.encodedLength} encoded values, got ${values.length}`,
    );
  }
  const update = new DiscreteGaussianSampler(plan.perClientVariance, random);
  for (let i = 0; i < plan.paddedDimension; i++) values[i] = values[i] + update.next();
  const bit = new DiscreteGaussianSampler(plan.perClientBitVariance, random);
  values[plan.paddedDimension] = values[plan.paddedDimension] + bit.next();
  return values;
}

/** A client's whole half: `quantizeForDistributedNoise` then `addDistributedNoise`. */
export function encodeDistributedUpdate(
  update: Float32Array,
  plan: DistributedNoisePlan,
  rotationSeed: string,
  random: RandomStream,
): DistributedEncoding {
  const encoding = quantizeForDistributedNoise(update, plan, rotationSeed, random);
  addDistributedNoise(encoding.values, plan, random);
  return encoding;
}

/** What the coordinator learns from a sum. */
export interface DecodedDistributedSum {
  /** The noised sum of the clipped updates, in model units (dimension values). */
  sum: Float64Array;
  /** The noised count of updates that were not clipped (may be fractional or outside [0, n]). */
  unclippedCount: number;
}

/**
 * The coordinator's half: turns the mod-2^32 sum of `contributors` encoded vectors (SecAgg+'s output)
 * back into model units: centre into [-2^31, 2^31), divide by the scale, rotate back; and reads the
 * noised count of unclipped updates from the last value. Refuses (ROUND_QUORUM_NOT_MET) a sum of
 * fewer than minContributors clients: it would carry less noise than was accounted; and
 * (VALIDATION_FAILED) one of more than maxContributors, which the scale left no room for.
 */
export function decodeDistributedSum(
  sum: Uint32Array,
  contributors: number,
  plan: DistributedNoisePlan,
  rotationSeed: string,
): DecodedDistributedSum {
  if (sum.length !== plan.encodedLength) {
    throw new TributaryError('VALIDATION_FAILED', `expected a sum of ${plan.encodedLength} values, got ${sum.length}`);
  }
  if (!(Number.isInteger(contributors) && contributors >= plan.minContributors)) {
    throw new TributaryError(
      'ROUND_QUORUM_NOT_MET',
      `a distributed-noise sum must hold at least ${plan.minContributors} clients to carry the accounted noise, got ${contributors}`,
    );
  }
  if (contributors > plan.maxContributors) {
    throw new TributaryError(
      'VALIDATION_FAILED',
      `the distributed-noise plan leaves room for ${plan.maxContributors} clients in a sum, got ${contributors}`,
    );
  }
  const centred = (u: number) => (u >= HALF_MODULUS ? u - MODULUS : u);
  const rotated = new Float64Array(plan.paddedDimension);
  for (let i = 0; i < rotated.length; i++) rotated[i] = centred(sum[i]) / plan.scale;
  const bitSum = centred(sum[plan.paddedDimension]) / plan.bitScale;
  // bitSum = (#unclipped) - (#clipped) + noise = 2 U - n + noise.
  return { sum: unrotate(rotated, plan.dimension, rotationSeed), unclippedCount: (bitSum + contributors) / 2 };
}
