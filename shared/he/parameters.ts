/**
 * The lattice parameter sets the `he` aggregation mode may use, fixed in code so that a job spec can
 * only name one (`he.parameterSet`), never assemble a weaker one. Each entry states the scheme and its
 * parameters, the security level it reaches by the HomomorphicEncryption.org standard (Albrecht et
 * al., "Homomorphic Encryption Standard", 2018, Table 1: ternary secret, error width 3.2), and the
 * exact bytes Microsoft SEAL 4.1 (node-seal 5.1.7) writes for its ciphertexts and keys, so that
 * serialized objects can be checked in JavaScript before any of them reaches the WebAssembly module
 * (a malformed buffer can abort that module; see ciphertextBytes.ts).
 *
 * Both sets use ring degree N = 4096 (4096 batching slots per ciphertext), one 60-bit ciphertext
 * prime q and a 30-bit batching plain prime t ≡ 1 (mod 2N). Table 1 allows log2 q ≤ 109 for 128-bit,
 * ≤ 75 for 192-bit and ≤ 58 for 256-bit classical security at N = 4096: log2 q = 60 is within the
 * 192-bit row (SEAL's context is built with `SecurityLevel.tc192`, which enforces it). The security
 * of both schemes rests on the same RLWE instance, so the row applies to either. One prime means no
 * key switching (none is needed: the mode only adds ciphertexts) and the whole modulus carries data:
 * a fresh ciphertext has about 19 bits of noise budget, and a sum of n ciphertexts spends about
 * log2 n of them (unit-tested at the largest allowed round).
 *
 * - `bgv-4096` (the default): BGV (Brakerski, Gentry & Vaikuntanathan, ITCS 2012, in SEAL's variant
 *   after Kim, Polyakov & Zucca 2021). Encryption adds the plaintext to an encryption of zero without
 *   scaling, about twice as fast as BFV's in SEAL's WebAssembly build; ciphertexts are kept in NTT form.
 * - `bfv-4096`: BFV (Fan & Vercauteren, "Somewhat Practical Fully Homomorphic Encryption", ePrint
 *   2012/144), same sizes and noise budget.
 */
export interface HeParameterSet {
  readonly name: string;
  readonly scheme: 'bfv' | 'bgv';
  /** N: ring degree = slots per ciphertext. */
  readonly polyModulusDegree: number;
  /** Bit sizes of the coefficient-modulus primes (SEAL's CoeffModulus.Create). */
  readonly coeffModulusBits: readonly number[];
  /** The primes SEAL picks for those sizes (checked when the context is built). */
  readonly coeffModulus: readonly bigint[];
  /** Bit size of the batching plain prime (SEAL's PlainModulus.Batching). */
  readonly plainModulusBits: number;
  /** t: the plain modulus SEAL picks (checked when the context is built). */
  readonly plainModulus: bigint;
  /** Classical security in bits by the HE standard's Table 1 (the row SEAL's context enforces). */
  readonly securityBits: 128 | 192 | 256;
  /** The largest log2 q Table 1 allows at this N for `securityBits`. */
  readonly standardMaxLogQ: number;
  /** Serialized sizes (SEAL, compression none). */
  readonly ciphertextBytes: number;
  readonly publicKeyBytes: number;
  readonly secretKeyBytes: number;
  /** The bytes every valid ciphertext of this set starts with (header, parms_id, size 2, not NTT, data header). */
  readonly ciphertextPrefixHex: string;
  /** The bytes every seeded public key starts with, and the seed section's fixed head (after N coefficients). */
  readonly publicKeyPrefixHex: string;
  readonly publicKeySeedHeadHex: string;
  /** The bytes every secret key starts with. */
  readonly secretKeyPrefixHex: string;
  /** Fewest bits of noise budget a sum must keep to be decrypted (0 would still decrypt correctly: this is margin). */
  readonly minNoiseBudgetBits: number;
  /** Most fresh ciphertexts a sum may add up while keeping minNoiseBudgetBits (unit-tested at this count). */
  readonly maxSummands: number;
}

const BFV_PARMS_ID_4096 = '1a6d9203b0560ef1664b930e29d001add3d2c597822809eb3fe9e6a530628512';
const BGV_PARMS_ID_4096 = '4a3ae70b60d1f010ba2e52337f3f37c07520953d984ea2c269300ed5619ac716';

export const HE_PARAMETER_SETS = {
  'bgv-4096': {
    name: 'bgv-4096',
    scheme: 'bgv',
    polyModulusDegree: 4096,
    coeffModulusBits: [60],
    coeffModulus: [1152921504606830593n],
    plainModulusBits: 30,
    plainModulus: 1073692673n,
    securityBits: 192,
    standardMaxLogQ: 75,
    ciphertextBytes: 65_649,
    publicKeyBytes: 32_962,
    secretKeyBytes: 32_856,
    // As bfv-4096's, with BGV's parms_id and is_ntt_form 1 (SEAL keeps BGV ciphertexts in NTT form).
    ciphertextPrefixHex: `5ea11004010000007100010000000000${BGV_PARMS_ID_4096}01020000000000000000100000000000000100000000000000000000000000f03f01000000000000005ea110040100000018000100000000000020000000000000`,
    publicKeyPrefixHex: `5ea1100401000000c280000000000000${BGV_PARMS_ID_4096}01020000000000000000100000000000000100000000000000000000000000f03f01000000000000005ea110040100000018800000000000000010000000000000`,
    publicKeySeedHeadHex: '5ea1100401000000510000000000000001',
    secretKeyPrefixHex: `5ea11004010000005880000000000000${BGV_PARMS_ID_4096}0010000000000000000000000000f03f5ea110040100000018800000000000000010000000000000`,
    minNoiseBudgetBits: 1,
    maxSummands: 10_000,
  },
  'bfv-4096': {
    name: 'bfv-4096',
    scheme: 'bfv',
    polyModulusDegree: 4096,
    coeffModulusBits: [60],
    coeffModulus: [1152921504606830593n],
    plainModulusBits: 30,
    plainModulus: 1073692673n,
    securityBits: 192,
    standardMaxLogQ: 75,
    ciphertextBytes: 65_649,
    publicKeyBytes: 32_962,
    secretKeyBytes: 32_856,
    ciphertextPrefixHex:
      // SEAL header (magic a15e, v4.1, no compression, 65649 bytes), parms_id, is_ntt_form 0, size 2,
      // N 4096, 1 prime, scale 1.0, correction factor 1, then the data array's header and count 8192.
      `5ea11004010000007100010000000000${BFV_PARMS_ID_4096}00020000000000000000100000000000000100000000000000000000000000f03f01000000000000005ea110040100000018000100000000000020000000000000`,
    publicKeyPrefixHex: `5ea1100401000000c280000000000000${BFV_PARMS_ID_4096}01020000000000000000100000000000000100000000000000000000000000f03f01000000000000005ea110040100000018800000000000000010000000000000`,
    publicKeySeedHeadHex: '5ea1100401000000510000000000000001',
    secretKeyPrefixHex: `5ea11004010000005880000000000000${BFV_PARMS_ID_4096}0010000000000000000000000000f03f5ea110040100000018800000000000000010000000000000`,
    minNoiseBudgetBits: 1,
    maxSummands: 10_000,
  },
} as const satisfies Record<string, HeParameterSet>;

export type HeParameterSetName = keyof typeof HE_PARAMETER_SETS;
export const HE_PARAMETER_SET_NAMES = Object.keys(HE_PARAMETER_SETS) as [HeParameterSetName, ...HeParameterSetName[]];
export const DEFAULT_HE_PARAMETER_SET: HeParameterSetName = 'bgv-4096';

/** The parameter set of that name. */
export function heParameterSet(name: HeParameterSetName): HeParameterSet {
  return HE_PARAMETER_SETS[name];
}

/** Ciphertexts one vector of `length` values takes (one value per slot). */
export function heCiphertextCount(set: HeParameterSet, length: number): number {
  return Math.ceil(length / set.polyModulusDegree);
}
