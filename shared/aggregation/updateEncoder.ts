import type { NamedTensor } from '../codec/tensors';
import { encodeTensors } from '../codec/modelCodec';
import { TributaryError } from '../errors';
import type { AggregationMode } from '../schemas/jobSpec';

/**
 * The client half of an aggregation mode: turns a local model delta into the bytes uploaded to the
 * coordinator. Secure modes (secagg, paillier) implement this seam with masked or encrypted payloads;
 * `none` sends the delta in the model codec.
 */
export interface UpdateEncoder {
  readonly mode: AggregationMode;
  /** Exact size of an encoded update, so the coordinator can bound uploads before allocating. */
  encode(delta: readonly NamedTensor[], numExamples: number): Uint8Array;
}

/** Plaintext updates: the delta itself, codec-encoded. The coordinator sees every client's update. */
export const plaintextUpdateEncoder: UpdateEncoder = {
  mode: 'none',
  encode: (delta) => encodeTensors(delta),
};

export function updateEncoderFor(mode: AggregationMode): UpdateEncoder {
  switch (mode) {
    case 'none':
      return plaintextUpdateEncoder;
    case 'secagg':
      // SecAgg+ updates are not uploaded: SecAggPlusClient masks them stage by stage (tributaryClient.ts).
      throw new TributaryError(
        'CONFIG_INVALID',
        'secagg updates are masked by the SecAgg+ client, not encoded for upload',
      );
    case 'paillier':
      // Paillier updates are encrypted asynchronously under the job's public key (tributaryClient.ts).
      throw new TributaryError(
        'CONFIG_INVALID',
        'paillier updates are encrypted by the client (encryptVector), not encoded here',
      );
  }
}
