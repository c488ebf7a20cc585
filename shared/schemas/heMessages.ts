import { z } from 'zod';
import { HE_MAX_PARAMETERS, MAX_HE_DECRYPT_BYTES } from './aggregationSpec';
import { LIMITS } from './jobSpec';
import { JobIdSchema } from './messages';

const hex = (bytes: number) =>
  z.string().regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`), `expected ${bytes} bytes as lowercase hex`);

export { MAX_HE_DECRYPT_BYTES };

/** One contribution to an `he` aggregate: who, the SHA-256 of its ciphertexts, and its signature over them. */
export const HeContributionSchema = z.object({ clientId: hex(32), digest: hex(32), signature: hex(64) }).strict();
export type HeContribution = z.infer<typeof HeContributionSchema>;

/**
 * Coordinator -> key holder (`he` jobs), event `he:decrypt`: decrypt the sum of the `contributions`
 * to round `round` attempt `attempt`, vectors of `length` values (the weighted delta in manifest
 * order, then the weight). `selected` is the attempt's selection as the coordinator records it. Each
 * contribution names its sender, the digest of the ciphertexts it uploaded and its signature over
 * them (shared/he/submission.ts). `form` says what `ciphertexts` holds: `sum`, the coordinator's
 * homomorphic sum (one vector of ciphertexts), or `contributions`, every contribution's ciphertexts
 * in order (jobs with `he.keyHolderSums`: the key holder checks each against its digest and adds
 * them itself). The key holder answers with `aggregate:result`.
 */
export const HeDecryptRequestSchema = z
  .object({
    jobId: JobIdSchema,
    round: z.number().int().positive(),
    attempt: z.number().int().min(0),
    length: z
      .number()
      .int()
      .positive()
      .max(HE_MAX_PARAMETERS + 1),
    selected: z.array(hex(32)).max(LIMITS.maxClientsPerRound),
    contributions: z.array(HeContributionSchema).min(1).max(LIMITS.maxClientsPerRound),
    form: z.enum(['sum', 'contributions']),
    ciphertexts: z
      .custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected binary ciphertexts')
      .refine((v) => v.length <= MAX_HE_DECRYPT_BYTES, `at most ${MAX_HE_DECRYPT_BYTES} bytes of ciphertexts`),
  })
  .strict();
export type HeDecryptRequest = z.infer<typeof HeDecryptRequestSchema>;
