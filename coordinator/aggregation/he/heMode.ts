import { TributaryError } from '../../../shared/errors';
import { SignatureVerifier } from '../../../shared/identity/signing';
import { encryptedVectorBytes } from '../../../shared/he';
import {
  HE_MAX_PARAMETERS,
  type HeOptions,
  heParamsOf,
  type JobSpec,
  MAX_HE_DECRYPT_BYTES,
} from '../../../shared/schemas/jobSpec';
import type {
  CollectionContext,
  CoordinatorAggregationMode,
  RoleContext,
  RoleMessage,
  RoundCollection,
} from '../aggregationMode';
import { UploadCollection } from '../uploads/uploadCollection';
import { HeAggregator } from './heAggregator';
import { HeKeyHolders } from './heKeyHolders';

/** The he options of a spec of this mode. */
export function heOptions(spec: JobSpec): HeOptions {
  if (spec.secureAggregation !== 'he') throw new TributaryError('INTERNAL', 'Job is not in mode "he".');
  return spec.he;
}

/**
 * Mode `he` (packed BGV or BFV through Microsoft SEAL): clients upload signed ciphertexts of their weighted
 * deltas through the ordinary chunked upload; the coordinator checks and adds them (it never loads
 * SEAL) and the job's key holder (a role of this mode: `keyholder:join`, `he:decrypt` and, by
 * default, one `he:ciphertexts` per contribution, `aggregate:result`) decrypts only the sum, which it
 * adds itself from the signed contributions unless the spec sets `he.keyHolderSums: false`. Clients
 * send no training metrics (they would leak per-client information).
 */
export function createHeMode(): CoordinatorAggregationMode {
  const keyHolders = new HeKeyHolders();
  const verifier = new SignatureVerifier();
  return {
    name: 'he',
    assertModelFits(spec: JobSpec, parameters: number): void {
      if (parameters > HE_MAX_PARAMETERS) {
        throw new TributaryError(
          'JOB_SPEC_INVALID',
          `secureAggregation "he" supports models of at most ${HE_MAX_PARAMETERS} parameters (the decrypted sums travel as one message); this model has ${parameters}.`,
          { details: { parameters, maxParameters: HE_MAX_PARAMETERS } },
        );
      }
      // Each message to the key holder carries one vector of ciphertexts (the sum, or one
      // contribution with keyHolderSums), so the bound is per update, whatever maxClients is.
      const bytes = encryptedVectorBytes(heParamsOf(heOptions(spec)).set, parameters + 1);
      if (bytes > MAX_HE_DECRYPT_BYTES) {
        throw new TributaryError(
          'JOB_SPEC_INVALID',
          `An he update of ${parameters} parameters is ${bytes} bytes of ciphertexts, more than one message to the key holder carries (${MAX_HE_DECRYPT_BYTES}).`,
          { details: { parameters, bytes, maxBytes: MAX_HE_DECRYPT_BYTES } },
        );
      }
    },
    parts: () => undefined,
    openCollection(context: CollectionContext): RoundCollection {
      const { job, round, attempt } = context;
      const options = heOptions(job.spec);
      const aggregator = new HeAggregator(job.weightManifest, {
        params: heParamsOf(options),
        maxExampleWeight: options.maxExampleWeight,
        ref: { jobId: job.id, round, attempt },
        selected: context.selected,
        verifier,
        keyHolderSums: options.keyHolderSums,
        decrypt: (request) => keyHolders.decrypt(request, options.decryptTimeoutMs),
      });
      return new UploadCollection(context, aggregator, { modeName: 'he', keepMetrics: false });
    },
    async handleRoleMessage(context: RoleContext, message: RoleMessage) {
      const { job, clientId } = context;
      if (heOptions(job.spec).keyHolder !== clientId) {
        throw new TributaryError('HE_NOT_KEY_HOLDER', `The client is not the HE key holder of job ${job.id}.`);
      }
      switch (message.name) {
        case 'keyholderJoin':
          // The key holder is not a provider: never selected, not a member.
          keyHolders.register(job.id, clientId, context.link);
          return {
            jobId: job.id,
            spec: job.spec,
            status: job.status,
            currentRound: job.currentRound,
            weightManifest: job.weightManifest,
          };
        case 'aggregateResult':
          keyHolders.handleResult(clientId, job.id, context.round, message.body, message.data);
          return undefined;
      }
    },
    connectionClosed: (link) => keyHolders.unregister(link),
    close: () => keyHolders.cancelAll('The coordinator is shutting down.'),
  };
}
