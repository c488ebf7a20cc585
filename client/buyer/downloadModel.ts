import { contentHash, decodeTensors } from '../../shared/codec/modelCodec';
import type { NamedTensor } from '../../shared/codec/tensors';
import type { BuyerClient } from './client';
import { TributaryApiError } from './errors';
import { getJob } from './getJob';

export type DownloadModelParameters = {
  jobId: string;
  /** The round whose global model to fetch (0 = initial). @default the job's current round */
  round?: number;
};
export type DownloadModelReturnType = {
  round: number;
  /** Model codec bytes (shared/codec/modelCodec.ts). */
  bytes: Uint8Array;
  /** The decoded weights, in the job's manifest order. */
  tensors: NamedTensor[];
  /** SHA-256 of the bytes, checked against the job's model hash when downloading the current round. */
  modelHash: string;
};
export type DownloadModelErrorType = TributaryApiError<
  'JOB_NOT_FOUND' | 'JOB_NO_MODEL' | 'AUTH_REQUIRED' | 'AUTH_FORBIDDEN' | 'TRANSFER_HASH_MISMATCH' | 'CODEC_MALFORMED'
>;

/**
 * Downloads a job's global model (GET /v1/jobs/:id/checkpoints/:round) and decodes it; the current
 * model is checked against the hash the job reports.
 * @example
 * const { tensors } = await downloadModel(client, { jobId });
 * setNamedWeights(model, tensors);
 */
export async function downloadModel(
  client: BuyerClient,
  { jobId, round }: DownloadModelParameters,
): Promise<DownloadModelReturnType> {
  const job = round === undefined ? await getJob(client, { jobId }) : null;
  const wanted = round ?? job!.currentRound;
  const bytes = await client.request<Uint8Array>({
    method: 'GET',
    path: `/v1/jobs/${encodeURIComponent(jobId)}/checkpoints/${wanted}`,
    response: { bytes: true },
  });
  const modelHash = contentHash(bytes);
  if (job && job.currentRound === wanted && job.modelHash !== modelHash) {
    throw new TributaryApiError(
      'TRANSFER_HASH_MISMATCH',
      `The model of round ${wanted} does not hash to ${job.modelHash}.`,
      {
        status: 200,
        request: `GET /v1/jobs/${jobId}/checkpoints/${wanted}`,
      },
    );
  }
  return { round: wanted, bytes, tensors: decodeTensors(bytes), modelHash };
}
