import { generateRandomKeys, type KeyPair, type PrivateKey, type PublicKey } from 'paillier-bigint';
import { TributaryError } from '../errors';
import { CrtDecryptor, ParallelDecryptor, type CiphertextDecryptor } from './fastDecryptor';
import { FastEncryptor, ParallelEncryptor, requireSimpleVariant, type PlaintextEncryptor } from './fastEncryptor';
import { createPackingLayout, pack, packedLength, unpack, type PackingLayout, DEFAULT_KEY_BITS } from './packing';
import {
  dequantizeSum,
  quantizationStep,
  quantize,
  sumErrorBound as quantizerSumErrorBound,
  validateQuantizer,
} from './quantize';

/**
 * Packed Paillier aggregation of Float32 vectors (BatchCrypt, Zhang et al., USENIX ATC 2020): each
 * client quantises its update on [-c, c] (quantize.ts), packs many values per plaintext (packing.ts)
 * and encrypts them fast (fastEncryptor.ts); the aggregator multiplies ciphertexts slot-wise without
 * the private key; a key holder decrypts the product and gets the sum of all clients' vectors
 * within `sumErrorBound`. As in BatchCrypt, the key pair is shared by the clients and the
 * aggregator holds only the public key: it learns the sum, never one client's vector.
 *
 *     const params = createPackedPaillierParams({ clipRange: 1, maxClients: 100 });
 *     const { publicKey, privateKey } = await generatePaillierKeys(params.keyBits);
 *     const a = await encryptVector(publicKey, updateA, params);      // each client
 *     const sum = addEncrypted(publicKey, a.ciphertexts, b.ciphertexts); // the aggregator
 *     const total = await decryptSum(privateKey, sum, params, 2, updateA.length); // a key holder
 */
export interface PackedPaillierOptions {
  /** Bit length of the Paillier modulus n. @default 2048 */
  keyBits?: number;
  /** Bits per quantised value, 2..32. @default 16 */
  bits?: number;
  /** Clipping range c > 0: values are quantised on [-c, c]; values outside are clipped and counted. */
  clipRange: number;
  /** Most client vectors that will be summed into one aggregate (sets the headroom bits per slot). */
  maxClients: number;
}

export interface PackedPaillierParams extends PackingLayout {
  readonly clipRange: number;
  /** The quantisation step Δ = c / (2^(bits-1) - 1). */
  readonly step: number;
}

export interface EncryptedVector {
  /** ceil(length / slotsPerCiphertext) ciphertexts. */
  ciphertexts: bigint[];
  /** How many values were outside [-clipRange, clipRange] and were clipped. */
  clipped: number;
}

/** Validates the options eagerly (CONFIG_INVALID with the reason) and returns frozen parameters. */
export function createPackedPaillierParams(options: PackedPaillierOptions): PackedPaillierParams {
  const layout = createPackingLayout(options);
  validateQuantizer({ bits: layout.bits, clipRange: options.clipRange });
  const clipRange = options.clipRange;
  return Object.freeze({ ...layout, clipRange, step: quantizationStep({ bits: layout.bits, clipRange }) });
}

/** A key pair with g = n + 1 (paillier-bigint's simple variant), as the fast encryptor needs. */
export async function generatePaillierKeys(keyBits = DEFAULT_KEY_BITS): Promise<KeyPair> {
  createPackingLayout({ keyBits, maxClients: 1 }); // validates keyBits
  return generateRandomKeys(keyBits, true);
}

/** Number of ciphertexts for a vector of `length` values. */
export function ciphertextCount(params: PackedPaillierParams, length: number): number {
  return packedLength(params, length);
}

/** Worst-case error of `decryptSum` for `clientCount` unclipped vectors: n·(Δ/2 + c·2^-23). */
export function sumErrorBound(params: PackedPaillierParams, clientCount: number): number {
  return quantizerSumErrorBound(params, clientCount);
}

/** Throws CONFIG_INVALID unless the key is a simple-variant key of exactly params.keyBits bits. */
export function assertKeyMatchesParams(publicKey: PublicKey, params: PackedPaillierParams): void {
  requireSimpleVariant(publicKey);
  if (publicKey.bitLength !== params.keyBits) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `paillier: the parameters are for ${params.keyBits}-bit keys; the key has ${publicKey.bitLength} bits`,
    );
  }
}

const encryptors = new WeakMap<PublicKey, FastEncryptor>();
const decryptors = new WeakMap<PrivateKey, CrtDecryptor>();

/** The in-thread encryptor cached for this key object (built on first use, ~0.2 s at 2048 bits). */
export function encryptorFor(publicKey: PublicKey): FastEncryptor {
  let encryptor = encryptors.get(publicKey);
  if (!encryptor) {
    encryptor = new FastEncryptor(publicKey);
    encryptors.set(publicKey, encryptor);
  }
  return encryptor;
}

export interface EncryptVectorOptions {
  /**
   * The encryptor to use, e.g. a long-lived ParallelEncryptor (its owner closes it).
   * @default the in-thread FastEncryptor cached for `publicKey`, or with `threads` > 1 a
   * ParallelEncryptor started and closed for this call
   */
  encryptor?: PlaintextEncryptor;
  /** Worker threads when no `encryptor` is given; 1 encrypts in this thread. @default 1 */
  threads?: number;
}

/** Quantises, packs and encrypts one client's vector; reports how many values were clipped. */
export async function encryptVector(
  publicKey: PublicKey,
  values: Float32Array | readonly number[],
  params: PackedPaillierParams,
  options: EncryptVectorOptions = {},
): Promise<EncryptedVector> {
  assertKeyMatchesParams(publicKey, params);
  const { values: levels, clipped } = quantize(values, params);
  const plaintexts = pack(levels, params);
  if (options.encryptor) {
    if (options.encryptor.publicKey.n !== publicKey.n) {
      throw new TributaryError('CONFIG_INVALID', 'paillier: the encryptor was built for another public key');
    }
    return { ciphertexts: await options.encryptor.encryptAll(plaintexts), clipped };
  }
  const threads = options.threads ?? 1;
  if (threads === 1) return { ciphertexts: encryptorFor(publicKey).encryptAll(plaintexts), clipped };
  const encryptor = new ParallelEncryptor(publicKey, { threads });
  try {
    return { ciphertexts: await encryptor.encryptAll(plaintexts), clipped };
  } finally {
    await encryptor.close();
  }
}

function checkCiphertexts(publicKey: PublicKey, v: readonly bigint[], name: string): void {
  const n2 = publicKey._n2;
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (typeof c !== 'bigint' || c <= 0n || c >= n2) {
      throw new TributaryError('VALIDATION_FAILED', `paillier: ${name}[${i}] is not a ciphertext (outside [1, n²))`);
    }
  }
}

/** Homomorphic slot-wise addition: a[i]·b[i] mod n² (decrypts to the slot-wise sums). */
export function addEncrypted(publicKey: PublicKey, a: readonly bigint[], b: readonly bigint[]): bigint[] {
  if (a.length !== b.length) {
    throw new TributaryError(
      'VALIDATION_FAILED',
      `paillier: cannot add encrypted vectors of ${a.length} and ${b.length} ciphertexts`,
    );
  }
  checkCiphertexts(publicKey, a, 'a');
  checkCiphertexts(publicKey, b, 'b');
  const n2 = publicKey._n2;
  return a.map((c, i) => (c * b[i]) % n2);
}

/** Homomorphic sum of several encrypted vectors of equal length. */
export function sumEncrypted(publicKey: PublicKey, vectors: readonly (readonly bigint[])[]): bigint[] {
  if (vectors.length === 0) throw new TributaryError('VALIDATION_FAILED', 'paillier: nothing to sum');
  let acc = [...vectors[0]];
  checkCiphertexts(publicKey, acc, 'vectors[0]');
  for (let k = 1; k < vectors.length; k++) acc = addEncrypted(publicKey, acc, vectors[k]);
  return acc;
}

export interface DecryptSumOptions {
  /** The decryptor to use, e.g. a long-lived ParallelDecryptor (its owner closes it). */
  decryptor?: CiphertextDecryptor;
  /** Worker threads when no `decryptor` is given; 1 decrypts in this thread. @default 1 */
  threads?: number;
}

/**
 * Decrypts the homomorphic sum of `clientCount` encrypted vectors of `length` values and returns
 * the dequantised sum. Throws VALIDATION_FAILED when the plaintexts cannot be such a sum (a slot
 * above clientCount·(2^bits - 2), bits above the packed slots, a non-zero slot past `length`):
 * usually a wrong `clientCount`, mismatched parameters or a corrupted ciphertext.
 */
export async function decryptSum(
  privateKey: PrivateKey,
  ciphertexts: readonly bigint[],
  params: PackedPaillierParams,
  clientCount: number,
  length: number,
  options: DecryptSumOptions = {},
): Promise<Float32Array> {
  assertKeyMatchesParams(privateKey.publicKey, params);
  if (!Number.isInteger(clientCount) || clientCount < 1 || clientCount > params.maxClients) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `paillier: clientCount must be an integer in [1, maxClients = ${params.maxClients}]; got ${String(clientCount)}`,
    );
  }
  const expected = packedLength(params, length);
  if (ciphertexts.length !== expected) {
    throw new TributaryError(
      'VALIDATION_FAILED',
      `paillier: ${length} values need ${expected} ciphertexts with these parameters; got ${ciphertexts.length}`,
    );
  }
  checkCiphertexts(privateKey.publicKey, ciphertexts, 'ciphertexts');
  let plaintexts: bigint[];
  if (options.decryptor) {
    plaintexts = await options.decryptor.decryptAll(ciphertexts);
  } else if ((options.threads ?? 1) === 1) {
    let decryptor = decryptors.get(privateKey);
    if (!decryptor) {
      decryptor = new CrtDecryptor(privateKey);
      decryptors.set(privateKey, decryptor);
    }
    plaintexts = decryptor.decryptAll(ciphertexts);
  } else {
    const decryptor = new ParallelDecryptor(privateKey, { threads: options.threads });
    try {
      plaintexts = await decryptor.decryptAll(ciphertexts);
    } finally {
      await decryptor.close();
    }
  }
  const sums = unpack(plaintexts, params, length);
  const maxSum = clientCount * (2 ** params.bits - 2);
  for (let i = 0; i < sums.length; i++) {
    if (sums[i] > maxSum) {
      throw new TributaryError(
        'VALIDATION_FAILED',
        `paillier: slot ${i} sums to ${sums[i]}, more than ${clientCount} clients can reach (${maxSum}); is clientCount right?`,
      );
    }
  }
  return dequantizeSum(sums, params, clientCount);
}
