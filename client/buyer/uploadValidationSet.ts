import type { z } from 'zod';
import { ValidationSetUploadedSchema } from '../../shared/schemas/restApi';
import type { BuyerClient } from './client';
import type { TributaryApiError } from './errors';

export type UploadValidationSetParameters = {
  jobId: string;
  /** The validation set: CSV with a header, or JSON lines, matching the job's input spec. */
  data: string | Uint8Array;
  /** @default "csv" */
  format?: 'csv' | 'jsonl';
};
export type UploadValidationSetReturnType = z.infer<typeof ValidationSetUploadedSchema>;
export type UploadValidationSetErrorType = TributaryApiError<
  | 'AUTH_REQUIRED'
  | 'AUTH_FORBIDDEN'
  | 'VALIDATION_SET_INVALID'
  | 'PAYLOAD_TOO_LARGE'
  | 'UPLOAD_IN_PROGRESS'
  | 'RATE_LIMITED'
  | 'JOB_NOT_FOUND'
>;

/**
 * Uploads or replaces the job's validation set (PUT /v1/jobs/:id/validation-set; owner or delegate).
 * It decides the metrics and the contribution scores, so only the job's managers may set it.
 * @example
 * const { examples, sha256 } = await uploadValidationSet(client, { jobId, data: readFileSync('val.csv', 'utf8') });
 */
export async function uploadValidationSet(
  client: BuyerClient,
  { jobId, data, format = 'csv' }: UploadValidationSetParameters,
): Promise<UploadValidationSetReturnType> {
  return client.request({
    method: 'PUT',
    path: `/v1/jobs/${encodeURIComponent(jobId)}/validation-set`,
    body: { bytes: data, contentType: format === 'csv' ? 'text/csv' : 'application/x-ndjson' },
    response: { schema: ValidationSetUploadedSchema },
  });
}
