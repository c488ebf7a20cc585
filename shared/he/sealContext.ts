import type { BatchEncoder } from 'node-seal/implementation/batch-encoder';
import type { Context } from 'node-seal/implementation/context';
import type { SEALLibrary } from 'node-seal/implementation/seal';
import { TributaryError } from '../errors';
import type { HeParameterSet } from './parameters';

/**
 * Microsoft SEAL (node-seal 5.1.7: SEAL 4.1 compiled to WebAssembly) set up for one parameter set:
 * the library, the context and a batch encoder. Loading the module takes a while (up to seconds
 * under load), so it happens once per process (`loadSeal`) and one context per parameter set is
 * kept (`sealContextFor`); both live as long as the process.
 */
export interface SealContext {
  readonly seal: SEALLibrary;
  readonly set: HeParameterSet;
  readonly context: Context;
  readonly encoder: BatchEncoder;
}

let library: Promise<SEALLibrary> | undefined;

/** The SEAL library, loaded once per process. */
export function loadSeal(): Promise<SEALLibrary> {
  // Required here, not at the top: the module is large and only clients and key holders need it.
  library ??= (require('node-seal') as () => Promise<SEALLibrary>)();
  return library;
}

const contexts = new Map<string, Promise<SealContext>>();

/**
 * The SEAL context of a parameter set, built once per process. Checks that SEAL accepts the
 * parameters at the set's security level and picks exactly the primes the set records (so the
 * byte layouts in parameters.ts hold); INTERNAL otherwise.
 */
export function sealContextFor(set: HeParameterSet): Promise<SealContext> {
  let pending = contexts.get(set.name);
  if (!pending) {
    pending = build(set);
    contexts.set(set.name, pending);
    pending.catch(() => contexts.delete(set.name));
  }
  return pending;
}

async function build(set: HeParameterSet): Promise<SealContext> {
  const seal = await loadSeal();
  const parms = seal.EncryptionParameters(set.scheme === 'bgv' ? seal.SchemeType.bgv : seal.SchemeType.bfv);
  parms.setPolyModulusDegree(set.polyModulusDegree);
  parms.setCoeffModulus(seal.CoeffModulus.Create(set.polyModulusDegree, Int32Array.from(set.coeffModulusBits)));
  parms.setPlainModulus(seal.PlainModulus.Batching(set.polyModulusDegree, set.plainModulusBits));
  const level =
    set.securityBits === 256
      ? seal.SecurityLevel.tc256
      : set.securityBits === 192
        ? seal.SecurityLevel.tc192
        : seal.SecurityLevel.tc128;
  const context = seal.Context(parms, true, level);
  const primes = [...parms.coeffModulus];
  const plain = parms.plainModulus.value;
  parms.delete();
  if (!context.parametersSet()) {
    throw new TributaryError(
      'INTERNAL',
      `he: SEAL refused parameter set ${set.name} at ${set.securityBits}-bit security`,
    );
  }
  if (
    primes.length !== set.coeffModulus.length ||
    primes.some((q, i) => q !== set.coeffModulus[i]) ||
    plain !== set.plainModulus
  ) {
    throw new TributaryError(
      'INTERNAL',
      `he: SEAL chose other primes for ${set.name} (q = ${primes.join(', ')}, t = ${plain}) than the set records`,
    );
  }
  return { seal, set, context, encoder: seal.BatchEncoder(context) };
}
