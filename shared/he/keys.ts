import type { PublicKey } from 'node-seal/implementation/public-key';
import type { SecretKey } from 'node-seal/implementation/secret-key';
import { TributaryError } from '../errors';
import { publicKeyProblem, secretKeyProblem } from './keyBytes';
import type { HeParameterSet } from './parameters';
import { sealContextFor, type SealContext } from './sealContext';

/**
 * BGV/BFV keys of the `he` mode: a key holder generates them; the public key (SEAL's seeded form: the
 * second polynomial is replaced by the 64-byte seed it is expanded from, halving it to 32,962 bytes
 * for the 4096 sets) travels in the job spec as base64, the secret key stays in the key holder's file.
 * Every serialized key is checked in JavaScript (exact length, the fixed bytes of its set, every
 * coefficient reduced) before SEAL sees it: SEAL's own checks throw, but a buffer of the wrong shape
 * can abort its WebAssembly module instead.
 */
export interface HeKeyPair {
  /** SEAL's seeded public key, compression none. */
  publicKey: Uint8Array;
  /** SEAL's secret key, compression none. Keep it secret. */
  secretKey: Uint8Array;
}

/** Generates a key pair of the parameter set. */
export async function generateHeKeys(set: HeParameterSet): Promise<HeKeyPair> {
  const { seal, context } = await sealContextFor(set);
  const generator = seal.KeyGenerator(context);
  try {
    const seeded = generator.createPublicKeySerializable();
    const secret = generator.secretKey();
    try {
      return {
        publicKey: seeded.saveArray(seal.ComprModeType.none),
        secretKey: secret.saveArray(seal.ComprModeType.none),
      };
    } finally {
      seeded.delete();
      secret.delete();
    }
  } finally {
    generator.delete();
  }
}

/** Loads a checked public key into SEAL (CONFIG_INVALID when it is not one). The caller deletes it. */
export function loadPublicKey(ctx: SealContext, bytes: Uint8Array): PublicKey {
  const problem = publicKeyProblem(ctx.set, bytes);
  if (problem) throw new TributaryError('CONFIG_INVALID', `he: ${problem}`);
  const key = ctx.seal.PublicKey();
  try {
    key.load(ctx.context, Buffer.from(bytes).toString('base64'));
  } catch (err) {
    key.delete();
    throw new TributaryError('CONFIG_INVALID', `he: SEAL refused the public key: ${String(err)}`);
  }
  return key;
}

/** Loads a checked secret key into SEAL (CONFIG_INVALID when it is not one). The caller deletes it. */
export function loadSecretKey(ctx: SealContext, bytes: Uint8Array): SecretKey {
  const problem = secretKeyProblem(ctx.set, bytes);
  if (problem) throw new TributaryError('CONFIG_INVALID', `he: ${problem}`);
  const key = ctx.seal.SecretKey();
  try {
    key.load(ctx.context, Buffer.from(bytes).toString('base64'));
  } catch (err) {
    key.delete();
    throw new TributaryError('CONFIG_INVALID', `he: SEAL refused the secret key: ${String(err)}`);
  }
  return key;
}
