import { clipAndWeightUpdate } from '../../shared/aggregation/weighting';
import { TributaryError } from '../../shared/errors';
import {
  HeEncryptionPool,
  HeEncryptor,
  heParameterSet,
  publicKeyFingerprint,
  type SignedHeUpload,
  signHeUpload,
} from '../../shared/he';
import { type HeOptions, heParamsOf, type JobSpec } from '../../shared/schemas/jobSpec';
import type { ClientAggregationMode, ClientModeContext, TrainedUpdate } from './clientAggregationMode';

function heOptions(spec: JobSpec): HeOptions {
  if (spec.secureAggregation !== 'he') throw new TributaryError('JOB_SPEC_INVALID', 'The job is not an he job.');
  return spec.he;
}

/**
 * Encryption pools by (parameter set, threads, public-key fingerprint), shared by the clients of this process;
 * a few jobs' worth, the oldest closed first. A pool that failed is replaced by an in-thread encryptor.
 */
const pools = new Map<string, HeEncryptionPool>();
const fallbacks = new Map<string, Promise<HeEncryptor>>();
const MAX_POOLS = 4;

async function encryptWith(options: HeOptions, threads: number, values: Float32Array) {
  const publicKey = Buffer.from(options.publicKey, 'base64');
  const set = heParameterSet(options.parameterSet);
  // The thread count is part of the key: a client asking for more workers gets its own pool.
  const key = `${options.parameterSet}:${Math.max(1, threads)}:${publicKeyFingerprint(publicKey)}`;
  const params = heParamsOf(options);
  let pool = pools.get(key);
  if (!pool) {
    pool = new HeEncryptionPool(set, publicKey, Math.max(1, threads));
    pools.set(key, pool);
    if (pools.size > MAX_POOLS) {
      const [oldest, evicted] = pools.entries().next().value as [string, HeEncryptionPool];
      pools.delete(oldest);
      void evicted.close();
    }
  }
  if (pool.usable) {
    try {
      return await pool.encrypt(values, params);
    } catch (err) {
      if (pool.usable) throw err;
    }
  }
  let fallback = fallbacks.get(key);
  if (!fallback) {
    fallback = HeEncryptor.create(set, publicKey);
    fallbacks.set(key, fallback);
    fallback.catch(() => fallbacks.delete(key));
  }
  return (await fallback).encrypt(values, params);
}

/**
 * Clips each delta value to the clipping range and weights (shared weighting: ratio-scaled, ratio
 * appended; the clipping is what lets the coordinator bound the decrypted sum), quantises and encrypts one trained update
 * under the job's public key (in worker threads: `threads` of them, at least one), and signs the ciphertexts for the task's round attempt; returns the
 * upload (ciphertexts ‖ signature) and its content hash (from the same SHA-256 pass as the signed digest).
 */
async function encryptUpdate(context: ClientModeContext, trained: TrainedUpdate): Promise<SignedHeUpload> {
  const { joined, identity, threads, warn } = context;
  const options = heOptions(joined.spec);
  const weighted = clipAndWeightUpdate(trained.delta, trained.numExamples, options.maxExampleWeight, options.clipRange);
  const { ciphertexts } = await encryptWith(options, threads, weighted.values);
  const clipped = weighted.clipped;
  if (clipped > 0) {
    warn(
      `round ${trained.task.round}: ${clipped} of ${trained.delta.length} update values were outside ` +
        `[-${options.clipRange}, ${options.clipRange}] and were clipped`,
    );
  }
  const { task } = trained;
  return signHeUpload(identity, { jobId: task.jobId, round: task.round, attempt: task.attempt }, ciphertexts);
}

/**
 * Mode `he` (client half): the encrypted, signed update goes through the ordinary chunked upload with
 * numExamples 1 and no metrics (the weight travels encrypted; metrics would leak per-client
 * information). `encrypt` is a property so research harnesses can observe what a client encrypts.
 */
export const heClientMode: ClientAggregationMode & {
  encrypt: (context: ClientModeContext, trained: TrainedUpdate) => Promise<SignedHeUpload>;
} = {
  name: 'he',
  encrypt: encryptUpdate,
  open: (context) => ({
    async onTask(task, training) {
      const trained = await training;
      if (!trained) return;
      const upload = await heClientMode.encrypt(context, trained);
      await context.connection.submitUpdate(task, upload.bytes, 1, {}, {}, upload.uploadHash);
    },
    close() {},
  }),
};
