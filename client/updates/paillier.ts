import { PublicKey } from 'paillier-bigint';
import { clippedWithBit, privacyPlanOf, roundClippingNorm } from '../../shared/aggregation/privateUpdate';
import { weightUpdate } from '../../shared/aggregation/weighting';
import { totalParameters } from '../../shared/codec/tensors';
import { TributaryError } from '../../shared/errors';
import { ciphertextsToBytes, ciphertextWidth, encryptVector, signSubmission } from '../../shared/paillier';
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
 * Weights (shared weighting: ratio-scaled, ratio appended), packs and encrypts one trained update
 * under the job's public key; returns the fixed-width ciphertext bytes. Under DP (central noise, added
 * by the coordinator to the decrypted sum) the update is clipped to the round's C and the weight slot
 * carries the unclipped bit instead (shared/aggregation/privateUpdate.ts).
 */
async function encryptUpdate(context: ClientModeContext, trained: TrainedUpdate): Promise<Uint8Array> {
  const { joined, threads, warn } = context;
  const options = paillierOptions(joined.spec);
  const params = paillierParamsOf({ maxClients: joined.spec.maxClients, paillier: options });
  const publicKey = paillierPublicKey(options.publicKey.n);
  const plan = privacyPlanOf(joined.spec, totalParameters(joined.weightManifest));
  const vector = plan
    ? clippedWithBit(trained.delta, roundClippingNorm(plan, trained.task.config)).vector
    : weightUpdate(trained.delta, trained.numExamples, options.maxExampleWeight);
  const encrypted = await encryptVector(publicKey, vector, params, { threads });
  if (encrypted.clipped > 0) {
    warn(
      `round ${trained.task.round}: ${encrypted.clipped} of ${trained.delta.length} weighted update values were outside ` +
        `[-${options.clipRange}, ${options.clipRange}] and were clipped`,
    );
  }
  return ciphertextsToBytes(encrypted.ciphertexts, ciphertextWidth(publicKey.n));
}

/**
 * Mode `paillier` (client half): the encrypted update goes through the ordinary chunked upload with
 * numExamples 1 and no metrics (the weight travels encrypted; metrics would leak per-client
 * information), and the commit carries the client's signature over the ciphertexts' SHA-256 bound to
 * the task's (job, round, attempt): the coordinator checks it, and the key holder checks it again
 * before it decrypts a sum this update is part of. `encrypt` is a property so research harnesses
 * can observe (or, in tests, subvert) what a client encrypts.
 */
export const paillierClientMode: ClientAggregationMode & {
  encrypt: (context: ClientModeContext, trained: TrainedUpdate) => Promise<Uint8Array>;
} = {
  name: 'paillier',
  encrypt: encryptUpdate,
  open: (context) => ({
    async onTask(task, training) {
      const trained = await training;
      if (!trained) return;
      const payload = await paillierClientMode.encrypt(context, trained);
      const ref = { jobId: task.jobId, round: task.round, attempt: task.attempt };
      const submissionSignature = signSubmission(context.identity, ref, payload);
      await context.connection.submitUpdate(task, payload, 1, {}, { submissionSignature });
    },
    close() {},
  }),
};
