import type { CipherText } from 'node-seal/implementation/cipher-text';
import type { Decryptor } from 'node-seal/implementation/decryptor';
import type { Encryptor } from 'node-seal/implementation/encryptor';
import type { PlainText } from 'node-seal/implementation/plain-text';
import { TributaryError } from '../errors';
import { type CiphertextLayout, checkCiphertexts, ciphertextLayout } from './ciphertextBytes';
import { loadPublicKey, loadSecretKey } from './keys';
import { heCiphertextCount, type HeParameterSet } from './parameters';
import { dequantizeSignedSum, type HeQuantizer, largestLevel, maxClientsForHeadroom, quantizeSigned } from './quantize';
import { type SealContext, sealContextFor } from './sealContext';

/**
 * Packed BGV/BFV encryption of Float32 vectors and decryption of their sums (the `he` mode's math; both
 * halves of the mode and the key holder call only this). A vector of L values is quantised to signed
 * levels (quantize.ts), zero-padded to ⌈L/N⌉·N slots and batch-encoded N values per plaintext (the
 * CRT packing of Smart & Vercauteren, as SEAL's BatchEncoder does), then each plaintext is encrypted
 * under the public key. Sums are formed by CiphertextSum (ciphertextBytes.ts). The key holder
 * decrypts a sum only if every ciphertext keeps at least the set's minimum noise budget (so the
 * decryption is certainly correct: it never releases the output of a ciphertext whose noise is near
 * the decryption boundary, Li & Micciancio 2021's concern for exact schemes too), and releases it
 * only if it is a sum `clientCount` honest clients could produce (every level within n·h, every
 * padding slot zero).
 */
export interface HeVectorParams extends HeQuantizer {
  readonly set: HeParameterSet;
}

/** Ciphertext bytes of an encrypted vector of `length` values. */
export function encryptedVectorBytes(set: HeParameterSet, length: number): number {
  return heCiphertextCount(set, length) * set.ciphertextBytes;
}

/** Throws CONFIG_INVALID unless `clientCount` clients' sums fit the plain modulus (2·n·h < t). */
export function assertHeadroom(params: HeVectorParams, clientCount: number): void {
  const most = maxClientsForHeadroom(params, params.set.plainModulus);
  if (clientCount > most) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `he: with ${params.bits}-bit levels the plain modulus holds the sum of at most ${most} clients; asked for ${clientCount}`,
    );
  }
}

/** Encrypts vectors under one public key (SEAL objects held in WebAssembly memory: call `delete`). */
export class HeEncryptor {
  private readonly layout: CiphertextLayout;
  private readonly plain: PlainText;
  private readonly cipher: CipherText;
  private deleted = false;

  private constructor(
    private readonly ctx: SealContext,
    private readonly encryptor: Encryptor,
    private readonly release: () => void,
  ) {
    this.layout = ciphertextLayout(ctx.set);
    this.plain = ctx.seal.PlainText();
    this.cipher = ctx.seal.CipherText();
  }

  /** An encryptor for a serialized public key of `set` (CONFIG_INVALID when the key is not one). */
  static async create(set: HeParameterSet, publicKey: Uint8Array): Promise<HeEncryptor> {
    const ctx = await sealContextFor(set);
    const key = loadPublicKey(ctx, publicKey);
    try {
      return new HeEncryptor(ctx, ctx.seal.Encryptor(ctx.context, key), () => key.delete());
    } catch (err) {
      key.delete();
      throw err;
    }
  }

  /**
   * Quantises and encrypts `values`; returns ⌈L/N⌉ serialized ciphertexts and how many values were
   * clipped to ±clipRange. CODEC_NON_FINITE on NaN or ±Infinity.
   */
  encrypt(values: ArrayLike<number>, params: HeVectorParams): { ciphertexts: Uint8Array; clipped: number } {
    if (this.deleted) throw new TributaryError('INTERNAL', 'he: the encryptor was deleted');
    const { ctx, layout } = this;
    const n = ctx.set.polyModulusDegree;
    const count = heCiphertextCount(ctx.set, values.length);
    const levels = new Int32Array(count * n);
    const clipped = quantizeSigned(values, params, levels);
    const out = new Uint8Array(count * layout.bytes);
    for (let c = 0; c < count; c++) {
      ctx.encoder.encode(levels.subarray(c * n, (c + 1) * n), this.plain);
      this.encryptor.encrypt(this.plain, this.cipher);
      const bytes = this.cipher.saveArray(ctx.seal.ComprModeType.none);
      if (bytes.length !== layout.bytes) {
        throw new TributaryError(
          'INTERNAL',
          `he: SEAL wrote a ${bytes.length}-byte ciphertext; expected ${layout.bytes}`,
        );
      }
      out.set(bytes, c * layout.bytes);
    }
    return { ciphertexts: out, clipped };
  }

  /** Frees the SEAL objects. */
  delete(): void {
    if (this.deleted) return;
    this.deleted = true;
    this.plain.delete();
    this.cipher.delete();
    this.encryptor.delete();
    this.release();
  }
}

/** What a decryption found out, beside the sums. */
export interface HeDecryption {
  /** Σ of the clients' vectors, dequantised (Float32, `length` values). */
  sums: Float32Array;
  /** The smallest noise budget (bits) among the ciphertexts before decryption. */
  noiseBudgetBits: number;
}

/** Decrypts sums with the secret key (SEAL objects held in WebAssembly memory: call `delete`). */
export class HeDecryptor {
  private readonly layout: CiphertextLayout;
  private deleted = false;

  private constructor(
    private readonly ctx: SealContext,
    private readonly decryptor: Decryptor,
    private readonly release: () => void,
  ) {
    this.layout = ciphertextLayout(ctx.set);
  }

  /** A decryptor for a serialized secret key of `set` (CONFIG_INVALID when the key is not one). */
  static async create(set: HeParameterSet, secretKey: Uint8Array): Promise<HeDecryptor> {
    const ctx = await sealContextFor(set);
    const key = loadSecretKey(ctx, secretKey);
    try {
      return new HeDecryptor(ctx, ctx.seal.Decryptor(ctx.context, key), () => key.delete());
    } catch (err) {
      key.delete();
      throw err;
    }
  }

  /**
   * Decrypts the sum of `clientCount` encrypted vectors of `length` values. HE_CIPHERTEXT_INVALID
   * when the bytes are not ⌈length/N⌉ valid ciphertexts; HE_DECRYPT_FAILED when a ciphertext's noise
   * budget is below the set's minimum, or the plaintext is not a sum `clientCount` honest clients
   * could produce (a level beyond n·h, a padding slot not zero). Nothing is returned in those cases.
   */
  decryptSum(ciphertexts: Uint8Array, params: HeVectorParams, clientCount: number, length: number): HeDecryption {
    if (this.deleted) throw new TributaryError('INTERNAL', 'he: the decryptor was deleted');
    if (!Number.isInteger(clientCount) || clientCount < 1) {
      throw new TributaryError('CONFIG_INVALID', `he: clientCount must be an integer >= 1; got ${clientCount}`);
    }
    assertHeadroom(params, clientCount);
    const { ctx, layout } = this;
    const n = ctx.set.polyModulusDegree;
    const count = heCiphertextCount(ctx.set, length);
    checkCiphertexts(layout, ciphertexts, count);
    const levels = new Int32Array(count * n);
    let noiseBudgetBits = Number.POSITIVE_INFINITY;
    const cipher = ctx.seal.CipherText();
    const plain = ctx.seal.PlainText();
    try {
      for (let c = 0; c < count; c++) {
        const one = ciphertexts.subarray(c * layout.bytes, (c + 1) * layout.bytes);
        cipher.load(ctx.context, Buffer.from(one.buffer, one.byteOffset, one.byteLength).toString('base64'));
        const budget = this.decryptor.invariantNoiseBudget(cipher);
        noiseBudgetBits = Math.min(noiseBudgetBits, budget);
        if (budget < ctx.set.minNoiseBudgetBits) {
          throw new TributaryError(
            'HE_DECRYPT_FAILED',
            `Ciphertext ${c} has ${budget} bits of noise budget left; at least ${ctx.set.minNoiseBudgetBits} are needed to decrypt it correctly (the sum holds a ciphertext no honest client makes, or too many).`,
          );
        }
        this.decryptor.decrypt(cipher, plain);
        levels.set(ctx.encoder.decode(plain, true) as Int32Array, c * n);
      }
    } finally {
      cipher.delete();
      plain.delete();
    }
    const bound = clientCount * largestLevel(params);
    for (let i = 0; i < levels.length; i++) {
      const v = levels[i];
      if (i >= length ? v !== 0 : v > bound || v < -bound) {
        throw new TributaryError(
          'HE_DECRYPT_FAILED',
          i >= length
            ? `Padding slot ${i} decrypts to ${v}, not 0: a contribution was not an honest encryption.`
            : `Slot ${i} decrypts to ${v}, beyond what ${clientCount} clients can sum (±${bound}).`,
        );
      }
    }
    return { sums: dequantizeSignedSum(levels, params, length), noiseBudgetBits };
  }

  /** Frees the SEAL objects. */
  delete(): void {
    if (this.deleted) return;
    this.deleted = true;
    this.decryptor.delete();
    this.release();
  }
}
