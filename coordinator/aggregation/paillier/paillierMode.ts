import { TributaryError } from '../../../shared/errors';
import {
  type JobSpec,
  PAILLIER_MAX_PARAMETERS,
  type PaillierOptions,
  paillierParamsOf,
} from '../../../shared/schemas/jobSpec';
import { MAX_CHUNK_BYTES } from '../../../shared/schemas/messages';
import type {
  CollectionContext,
  CoordinatorAggregationMode,
  RoleContext,
  RoleMessage,
  RoundCollection,
} from '../aggregationMode';
import { UploadCollection } from '../uploads/uploadCollection';
import { KeyHolderRegistry } from './keyHolderRegistry';
import { PaillierAggregator } from './paillierAggregator';

/** The paillier options of a spec of this mode. */
export function paillierOptions(spec: JobSpec): PaillierOptions {
  if (spec.secureAggregation !== 'paillier') throw new TributaryError('INTERNAL', 'Job is not in mode "paillier".');
  return spec.paillier;
}

/**
 * Mode `paillier` (packed Paillier, BatchCrypt): clients upload ciphertexts of their weighted deltas
 * through the ordinary chunked upload; the coordinator multiplies them and the job's key holder
 * (a role of this mode: `keyholder:join`, `aggregate:result`) decrypts only the product. Clients send
 * no training metrics (they would leak per-client information).
 */
export function createPaillierMode(): CoordinatorAggregationMode {
  const keyHolders = new KeyHolderRegistry();
  return {
    name: 'paillier',
    assertModelFits(_spec: JobSpec, parameters: number): void {
      if (parameters > PAILLIER_MAX_PARAMETERS) {
        throw new TributaryError(
          'JOB_SPEC_INVALID',
          `secureAggregation "paillier" supports models of at most ${PAILLIER_MAX_PARAMETERS} parameters (the decrypted sums travel as one ${MAX_CHUNK_BYTES}-byte message); this model has ${parameters}.`,
          { details: { parameters, maxParameters: PAILLIER_MAX_PARAMETERS } },
        );
      }
    },
    parts: () => undefined,
    // The key holder decrypts the plain sum, so the noise is added after it, by the coordinator.
    privacyNoise: ['central'],
    openCollection(context: CollectionContext): RoundCollection {
      const { job, round, attempt } = context;
      const options = paillierOptions(job.spec);
      const aggregator = new PaillierAggregator(job.weightManifest, {
        params: paillierParamsOf({ maxClients: job.spec.maxClients, paillier: options }),
        n: BigInt(`0x${options.publicKey.n}`),
        maxExampleWeight: options.maxExampleWeight,
        privacy: context.privacy !== undefined,
        decrypt: (aggregate) =>
          keyHolders.decrypt({ jobId: job.id, round, attempt, ...aggregate }, options.decryptTimeoutMs),
      });
      return new UploadCollection(context, aggregator, { modeName: 'paillier', keepMetrics: false });
    },
    async handleRoleMessage(context: RoleContext, message: RoleMessage) {
      const { job, clientId } = context;
      if (paillierOptions(job.spec).keyHolder !== clientId) {
        throw new TributaryError('PAILLIER_NOT_KEY_HOLDER', `The client is not the key holder of job ${job.id}.`);
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
