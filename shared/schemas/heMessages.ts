import { z } from 'zod';
import { HE_MAX_PARAMETERS, MAX_HE_DECRYPT_BYTES } from './aggregationSpec';
import { LIMITS } from './jobSpec';
import { JobIdSchema } from './messages';

const hex = (bytes: number) =>
  z.string().regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`), `expected ${bytes} bytes as lowercase hex`);

const binaryCiphertexts = z
  .custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected binary ciphertexts')
  .refine((v) => v.length <= MAX_HE_DECRYPT_BYTES, `at most ${MAX_HE_DECRYPT_BYTES} bytes of ciphertexts`);

export { MAX_HE_DECRYPT_BYTES };

/** One contribution to an `he` aggregate: who, the SHA-256 of its ciphertexts, and its signature over them. */
export const HeContributionSchema = z.object({ clientId: hex(32), digest: hex(32), signature: hex(64) }).strict();
export type HeContribution = z.infer<typeof HeContributionSchema>;

const header = {
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
};

/**
 * Coordinator -> key holder (`he` jobs), event `he:decrypt`: decrypt the sum of the `contributions`
 * to round `round` attempt `attempt`, vectors of `length` values (the weighted delta in manifest
 * order, then the weight). `selected` is the attempt's selection as the coordinator records it. Each
 * contribution names its sender, the digest of the ciphertexts it uploaded and its signature over
 * them (shared/he/submission.ts). `form` says how the ciphertexts travel:
 * - `contributions` (the default, `he.keyHolderSums`): `contributions.length` `he:ciphertexts`
 *   messages follow, in order, one per contribution; the key holder checks each against its signed
 *   digest and adds them itself, so it trusts no sum;
 * - `sum` (only jobs with `he.keyHolderSums: false`): `ciphertexts` is the coordinator's homomorphic
 *   sum, one vector of ciphertexts, which the key holder has to take on trust.
 * The key holder answers with `aggregate:result`.
 */
export const HeDecryptRequestSchema = z.discriminatedUnion('form', [
  z.object({ ...header, form: z.literal('contributions') }).strict(),
  z.object({ ...header, form: z.literal('sum'), ciphertexts: binaryCiphertexts }).strict(),
]);
export type HeDecryptRequest = z.infer<typeof HeDecryptRequestSchema>;

/**
 * Coordinator -> key holder, event `he:ciphertexts`: the ciphertexts of contribution `index` of the
 * `contributions`-form decryption just requested (one update's bytes, never more than one message's
 * bound: MAX_HE_DECRYPT_BYTES).
 */
export const HeCiphertextsSchema = z
  .object({
    jobId: JobIdSchema,
    round: z.number().int().positive(),
    attempt: z.number().int().min(0),
    index: z
      .number()
      .int()
      .min(0)
      .max(LIMITS.maxClientsPerRound - 1),
    ciphertexts: binaryCiphertexts,
  })
  .strict();
export type HeCiphertexts = z.infer<typeof HeCiphertextsSchema>;
