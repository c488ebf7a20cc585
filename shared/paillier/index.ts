/**
 * Protocol math of the `paillier` aggregation mode (packed, additively homomorphic; BatchCrypt,
 * USENIX ATC 2020). The vector API is in packedPaillier.ts; the building blocks (quantisation,
 * packing, fast encryption, CRT decryption) are exported for the coordinator and client halves.
 */
export {
  addEncrypted,
  assertKeyMatchesParams,
  ciphertextCount,
  createPackedPaillierParams,
  decryptSum,
  encryptVector,
  encryptorFor,
  generatePaillierKeys,
  sumEncrypted,
  sumErrorBound,
} from './packedPaillier';
export type {
  DecryptSumOptions,
  EncryptVectorOptions,
  EncryptedVector,
  PackedPaillierOptions,
  PackedPaillierParams,
} from './packedPaillier';
export { dequantize, dequantizeSum, maxLevel, quantizationStep, quantize, validateQuantizer } from './quantize';
export type { QuantizeResult, QuantizerParams } from './quantize';
export {
  createPackingLayout,
  pack,
  packedLength,
  unpack,
  DEFAULT_KEY_BITS,
  DEFAULT_QUANTIZATION_BITS,
} from './packing';
export type { PackingLayout, PackingLayoutOptions } from './packing';
export {
  FastEncryptor,
  ParallelEncryptor,
  createDjnBase,
  requireSimpleVariant,
  DEFAULT_WINDOW_BITS,
} from './fastEncryptor';
export type { EncryptorOptions, ParallelEncryptorOptions, PlaintextEncryptor } from './fastEncryptor';
export { CrtDecryptor, ParallelDecryptor, primeFactorsOf } from './fastDecryptor';
export type { CiphertextDecryptor, ParallelDecryptorOptions } from './fastDecryptor';
export type { KeyPair, PrivateKey, PublicKey } from 'paillier-bigint';
export { ciphertextWidth, ciphertextsFromBytes, ciphertextsToBytes } from './ciphertextBytes';
export {
  PAILLIER_SUBMISSION_DOMAIN,
  ciphertextDigest,
  signSubmission,
  submissionSigningBytes,
  verifySubmission,
} from './submission';
export type { SubmissionRef } from './submission';
export { firstNonUnit } from './units';
