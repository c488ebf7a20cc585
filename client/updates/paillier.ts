import { PublicKey } from 'paillier-bigint';
import { clippedWithBit, privacyPlanOf, roundClippingNorm } from '../../shared/aggregation/privateUpdate';
import { clipAndWeightUpdate } from '../../shared/aggregation/weighting';
import { totalParameters } from '../../shared/codec/tensors';
import { TributaryError } from '../../shared/errors';
import {
  ciphertextsToBytes,
  ciphertextWidth,
  encryptVector,
  ParallelEncryptor,
  type PlaintextEncryptor,
  signSubmission,
} from '../../shared/paillier';
import { type JobSpec, type PaillierOptions, paillierParamsOf } from '../../shared/schemas/jobSpec';
import type { ClientAggregationMode, ClientModeContext, TrainedUpdate } from './clientAggregationMode';

function paillierOptions(spec: JobSpec): PaillierOptions {
  if (spec.secureAggregation !== 'paillier')
    throw new TributaryError('JOB_SPEC_INVALID', 'The job is not a paillier job.');
  return spec.paillier;
}

const publicKeys = new Map<string, PublicKey>();
/** One PublicKey object per modulus, so the encryptor cached for it (encryptorFor) is reused across rounds. */
function paillierPublicKey(nHex: string): PublicKey {
  let key = publicKeys.get(nHex);
  if (!key) {
    const n = BigInt(`0x${nHex}`);
    key = new PublicKey(n, n + 1n);
    publicKeys.set(nHex, key);
  }
  return key;
}

/**
 * Research hooks of the paillier client half (planted attackers and tests; `paillierClientMode` has none).
 */
export interface PaillierClientHooks {
  /**
   * The vector this client encrypts (weighted values, then the weight ratio), given the honest one.
   * A client running modified code can encrypt anything in [-clipRange, clipRange] here.
   */
  vectorToEncrypt?(
    vector: Float32Array,
    info: { trained: TrainedUpdate; options: PaillierOptions; context: ClientModeContext },
  ): Float32Array;
}

/**
 * Clips the delta to clipRange, weights it (shared weighting: ratio-scaled, ratio appended), packs and
 * encrypts it under the job's public key; returns the fixed-width ciphertext bytes. Under DP (central
 * noise, added by the coordinator to the decrypted sum) the update is clipped to the round's C instead
 * and the weight slot carries the unclipped bit (shared/aggregation/privateUpdate.ts).
 */
async function encryptUpdate(
  context: ClientModeContext,
  trained: TrainedUpdate,
  hooks: PaillierClientHooks = {},
  encryptor?: PlaintextEncryptor,
): Promise<Uint8Array> {
  const { joined, threads, warn } = context;
  const options = paillierOptions(joined.spec);
  const params = paillierParamsOf({ maxClients: joined.spec.maxClients, paillier: options });
  const publicKey = paillierPublicKey(options.publicKey.n);
  const plan = privacyPlanOf(joined.spec, totalParameters(joined.weightManifest));
  const weighted = plan
    ? {
        values: clippedWithBit(trained.delta, roundClippingNorm(plan, trained.task.config)).vector,
        clipped: 0,
        maxAbs: 0,
      }
    : clipAndWeightUpdate(trained.delta, trained.numExamples, options.maxExampleWeight, options.clipRange);
  if (weighted.clipped > 0) {
    warn(
      `round ${trained.task.round}: ${weighted.clipped} of ${trained.delta.length} update values were outside ` +
        `[-${options.clipRange}, ${options.clipRange}] (largest |x| ${weighted.maxAbs.toPrecision(3)}) and were clipped`,
    );
  }
  const vector = hooks.vectorToEncrypt
    ? hooks.vectorToEncrypt(weighted.values, { trained, options, context })
    : weighted.values;
  const encrypted = await encryptVector(publicKey, vector, params, encryptor ? { encryptor } : { threads });
  return ciphertextsToBytes(encrypted.ciphertexts, ciphertextWidth(publicKey.n));
}

/** A paillier client half; `encrypt` is a property so research harnesses can observe (or, in tests, subvert) what a client encrypts. */
export type PaillierClientMode = ClientAggregationMode & {
  /** Encrypts the update; with `encryptor` (the session's worker threads) rather than in this thread. */
  encrypt: (context: ClientModeContext, trained: TrainedUpdate, encryptor?: PlaintextEncryptor) => Promise<Uint8Array>;
};

/**
 * Mode `paillier` (client half): the encrypted update goes through the ordinary chunked upload with
 * numExamples 1 and no metrics (the weight travels encrypted; metrics would leak per-client
 * information). Delta values are clipped to clipRange before weighting, so the coordinator can check
 * the decrypted aggregate against what honest clients produce (coordinator/aggregation/honestSumBounds.ts).
 * `hooks` are for research (client/plantedModes.ts); production uses `paillierClientMode`.
 */
export function createPaillierClientMode(hooks: PaillierClientHooks = {}): PaillierClientMode {
  const mode: PaillierClientMode = {
    name: 'paillier',
    encrypt: (context, trained, encryptor) => encryptUpdate(context, trained, hooks, encryptor),
    open: (context) => {
      // Encryption runs in worker threads (at least one), kept for the session: a 2048-bit key
      // encrypts ~400 values a second per thread, so a large model in this thread would block the
      // event loop past socket.io's ping timeout (30 s) and the coordinator would drop the client.
      let encryptor: ParallelEncryptor | undefined;
      const encryptorFor = (nHex: string): ParallelEncryptor => {
        const publicKey = paillierPublicKey(nHex);
        if (encryptor?.publicKey !== publicKey) {
          void encryptor?.close();
          encryptor = new ParallelEncryptor(publicKey, { threads: Math.max(1, context.threads) });
        }
        return encryptor;
      };
      return {
        async onTask(task, training) {
          const trained = await training;
          if (!trained) return;
          const encryptorHere = encryptorFor(paillierOptions(context.joined.spec).publicKey.n);
          const payload = await mode.encrypt(context, trained, encryptorHere);
          // Signed over the ciphertexts' SHA-256 and the task's (job, round, attempt): checked by the
          // coordinator at upload and by the key holder before it decrypts a sum this update is in.
          const ref = { jobId: task.jobId, round: task.round, attempt: task.attempt };
          const submissionSignature = signSubmission(context.identity, ref, payload);
          await context.connection.submitUpdate(task, payload, 1, {}, { submissionSignature });
        },
        close() {
          void encryptor?.close();
          encryptor = undefined;
        },
      };
    },
  };
  return mode;
}

export const paillierClientMode: PaillierClientMode = createPaillierClientMode();
