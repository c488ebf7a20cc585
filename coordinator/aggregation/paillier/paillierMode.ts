import { TributaryError } from '../../../shared/errors';
import { SignatureVerifier } from '../../../shared/identity/signing';
import { ciphertextCount, ciphertextWidth } from '../../../shared/paillier';
import {
  type JobSpec,
  PAILLIER_MAX_PARAMETERS,
  type PaillierOptions,
  paillierParamsOf,
} from '../../../shared/schemas/jobSpec';
import {
  MAX_CHUNK_BYTES,
  MAX_DECRYPT_REQUEST_BYTES,
  MAX_PAILLIER_UPDATE_BYTES,
} from '../../../shared/schemas/messages';
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

/** Bytes of one client's encrypted update for a model of `parameters` parameters. */
export function paillierUpdateBytes(spec: JobSpec, parameters: number): number {
  const options = paillierOptions(spec);
  const params = paillierParamsOf({ maxClients: spec.maxClients, paillier: options });
  return ciphertextCount(params, parameters + 1) * ciphertextWidth(BigInt(`0x${options.publicKey.n}`));
}

/** The coordinator half of mode `paillier`, with its key-holder registry (tests drive it as a malicious coordinator would). */
export interface PaillierCoordinatorMode extends CoordinatorAggregationMode {
  readonly keyHolders: KeyHolderRegistry;
}

/**
 * Mode `paillier` (packed Paillier, BatchCrypt): clients upload ciphertexts of their weighted deltas
 * with a signed submission through the ordinary chunked upload; the coordinator checks and keeps
 * them, and the job's key holder (a role of this mode: `keyholder:join`, `aggregate:result`)
 * receives every contribution, checks it, multiplies and decrypts only the sum. Clients send no
 * training metrics (they would leak per-client information).
 */
export function createPaillierMode(): PaillierCoordinatorMode {
  const keyHolders = new KeyHolderRegistry();
  const verifier = new SignatureVerifier();
  return {
    name: 'paillier',
    keyHolders,
    assertModelFits(spec: JobSpec, parameters: number): void {
      if (parameters > PAILLIER_MAX_PARAMETERS) {
        throw new TributaryError(
          'JOB_SPEC_INVALID',
          `secureAggregation "paillier" supports models of at most ${PAILLIER_MAX_PARAMETERS} parameters (the decrypted sums travel as one ${MAX_CHUNK_BYTES}-byte message); this model has ${parameters}.`,
          { details: { parameters, maxParameters: PAILLIER_MAX_PARAMETERS } },
        );
      }
      // The key holder receives every contributor's whole update each round: bound it before any round runs.
      const updateBytes = paillierUpdateBytes(spec, parameters);
      const roundBytes = updateBytes * spec.maxClients;
      if (updateBytes > MAX_PAILLIER_UPDATE_BYTES || roundBytes > MAX_DECRYPT_REQUEST_BYTES) {
        throw new TributaryError(
          'JOB_SPEC_INVALID',
          `secureAggregation "paillier": the key holder receives every client's ciphertexts, maxClients ${spec.maxClients} × ${updateBytes} bytes = ${roundBytes} bytes per round, more than ${MAX_DECRYPT_REQUEST_BYTES}; lower maxClients to at most ${Math.floor(MAX_DECRYPT_REQUEST_BYTES / updateBytes)} or use a smaller model.`,
          { details: { updateBytes, maxClients: spec.maxClients, maxDecryptRequestBytes: MAX_DECRYPT_REQUEST_BYTES } },
        );
      }
    },
    parts: () => undefined,
    // The key holder decrypts the plain sum, so the noise is added after it, by the coordinator.
    privacyNoise: ['central'],
    openCollection(context: CollectionContext): RoundCollection {
      const { job, round, attempt, selected } = context;
      const options = paillierOptions(job.spec);
      const aggregator = new PaillierAggregator(job.weightManifest, {
        params: paillierParamsOf({ maxClients: job.spec.maxClients, paillier: options }),
        n: BigInt(`0x${options.publicKey.n}`),
        maxExampleWeight: options.maxExampleWeight,
        ref: { jobId: job.id, round, attempt },
        verifier,
        privacy: context.privacy !== undefined,
        decrypt: (aggregate) =>
          keyHolders.decrypt({ jobId: job.id, round, attempt, selected, ...aggregate }, options.decryptTimeoutMs),
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
