import { weightUpdate } from '../../shared/aggregation/weighting';
import { TributaryError } from '../../shared/errors';
import { HeEncryptor, heParameterSet, publicKeyFingerprint, signedHeUpload } from '../../shared/he';
import { type HeOptions, heParamsOf, type JobSpec } from '../../shared/schemas/jobSpec';
import type { ClientAggregationMode, ClientModeContext, TrainedUpdate } from './clientAggregationMode';

function heOptions(spec: JobSpec): HeOptions {
  if (spec.secureAggregation !== 'he') throw new TributaryError('JOB_SPEC_INVALID', 'The job is not an he job.');
  return spec.he;
}

/** Encryptors by (parameter set, public-key fingerprint); a few jobs' worth, the oldest freed first. */
const encryptors = new Map<string, Promise<HeEncryptor>>();
const MAX_ENCRYPTORS = 4;

function encryptorFor(options: HeOptions): Promise<HeEncryptor> {
  const publicKey = Buffer.from(options.publicKey, 'base64');
  const key = `${options.parameterSet}:${publicKeyFingerprint(publicKey)}`;
  let encryptor = encryptors.get(key);
  if (!encryptor) {
    encryptor = HeEncryptor.create(heParameterSet(options.parameterSet), publicKey);
    encryptors.set(key, encryptor);
    encryptor.catch(() => encryptors.delete(key));
    if (encryptors.size > MAX_ENCRYPTORS) {
      const [oldest, evicted] = encryptors.entries().next().value as [string, Promise<HeEncryptor>];
      encryptors.delete(oldest);
      evicted.then(
        (e) => e.delete(),
        () => undefined,
      );
    }
  }
  return encryptor;
}

/**
 * Weights (shared weighting: ratio-scaled, ratio appended), quantises and encrypts one trained update
 * under the job's public key, and signs the ciphertexts for the task's round attempt; returns the
 * upload (ciphertexts ‖ signature).
 */
async function encryptUpdate(context: ClientModeContext, trained: TrainedUpdate): Promise<Uint8Array> {
  const { joined, identity, warn } = context;
  const options = heOptions(joined.spec);
  const encryptor = await encryptorFor(options);
  const vector = weightUpdate(trained.delta, trained.numExamples, options.maxExampleWeight);
  const { ciphertexts, clipped } = encryptor.encrypt(vector, heParamsOf(options));
  if (clipped > 0) {
    warn(
      `round ${trained.task.round}: ${clipped} of ${trained.delta.length} weighted update values were outside ` +
        `[-${options.clipRange}, ${options.clipRange}] and were clipped`,
    );
  }
  const { task } = trained;
  return signedHeUpload(identity, { jobId: task.jobId, round: task.round, attempt: task.attempt }, ciphertexts);
}

/**
 * Mode `he` (client half): the encrypted, signed update goes through the ordinary chunked upload with
 * numExamples 1 and no metrics (the weight travels encrypted; metrics would leak per-client
 * information). `encrypt` is a property so research harnesses can observe what a client encrypts.
 */
export const heClientMode: ClientAggregationMode & {
  encrypt: (context: ClientModeContext, trained: TrainedUpdate) => Promise<Uint8Array>;
} = {
  name: 'he',
  encrypt: encryptUpdate,
  open: (context) => ({
    async onTask(task, training) {
      const trained = await training;
      if (!trained) return;
      const payload = await heClientMode.encrypt(context, trained);
      await context.connection.submitUpdate(task, payload, 1, {});
    },
    close() {},
  }),
};
