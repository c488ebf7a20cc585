/**
 * Client-level differential privacy: the RDP accountant, clipping (fixed and adaptive), central
 * Gaussian noise and the distributed discrete Gaussian for SecAgg+. Pure functions and state objects:
 * no I/O. See docs/privacy.md for the guarantees and how the round runner uses them.
 */
export {
  ADAPTIVE_CLIPPING_DEFAULTS,
  type AdaptiveClippingOptions,
  clippedFraction,
  combinedNoiseMultiplier,
  defaultCountNoiseStddev,
  nextClippingNorm,
  updateNoiseMultiplier,
} from './adaptiveClipping';
export { type ClipResult, clipToNorm, l2Norm } from './clipping';
export {
  addDiscreteGaussianNoise,
  bernoulliExpNeg,
  DiscreteGaussianSampler,
  type Rational,
} from './discreteGaussian';
export {
  addDistributedNoise,
  type DecodedDistributedSum,
  decodeDistributedSum,
  type DistributedEncoding,
  type DistributedNoiseOptions,
  type DistributedNoisePlan,
  encodeDistributedUpdate,
  planDistributedNoise,
  quantizeForDistributedNoise,
} from './distributedNoise';
export { addGaussianNoise, GaussianSampler, noisedCount } from './gaussianNoise';
export { paddedLength, rotate, unrotate } from './hadamardRotation';
export { type ByteSource, cryptoRandom, RandomStream, seededRandom } from './randomSource';
export {
  DEFAULT_RDP_ORDERS,
  MAX_NOISE_MULTIPLIER,
  noiseFor,
  RdpAccountant,
  type RdpAccountantState,
  RdpAccountantStateSchema,
  rdpCurve,
} from './rdpAccountant';
export { type EpsilonAtOrder, epsilonFromRdp, type RdpConversion } from './rdpConversion';
export { subsampledGaussianRdp } from './subsampledGaussianRdp';
