import { z } from 'zod';
import { HE_MAX_PARAMETERS } from './aggregationSpec';
import { HE_PARAMETER_SETS } from '../he/parameters';
import { LIMITS } from './jobSpec';
import { JobIdSchema } from './messages';

const hex = (bytes: number) =>
  z.string().regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`), `expected ${bytes} bytes as lowercase hex`);

/** Most ciphertext bytes one `he:decrypt` carries: a sum of the largest vector the mode allows. */
export const MAX_HE_DECRYPT_BYTES = Math.max(
  ...Object.values(HE_PARAMETER_SETS).map(
    (s) => Math.ceil((HE_MAX_PARAMETERS + 1) / s.polyModulusDegree) * s.ciphertextBytes,
  ),
);

/** One contribution to an `he` aggregate: who, the SHA-256 of its ciphertexts, and its signature over them. */
export const HeContributionSchema = z.object({ clientId: hex(32), digest: hex(32), signature: hex(64) }).strict();
export type HeContribution = z.infer<typeof HeContributionSchema>;

/**
 * Coordinator -> key holder (`he` jobs), event `he:decrypt`: decrypt the homomorphic sum
 * `ciphertexts` of the `contributions` to round `round` attempt `attempt`, vectors of `length`
 * values (the weighted delta in manifest order, then the weight). `selected` is the attempt's
 * selection as the coordinator records it. Each contribution names its sender, the digest of the
 * ciphertexts it uploaded and its signature over them (shared/he/submission.ts), so the key holder
 * can check who it decrypts for; a key holder that wants to recompute the sum itself needs the
 * contributions' ciphertexts too (docs/secure-aggregation.md, "What the key holder trusts").
 * The key holder answers with `aggregate:result`.
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
    ciphertexts: z
      .custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected binary ciphertexts')
      .refine((v) => v.length <= MAX_HE_DECRYPT_BYTES, `at most ${MAX_HE_DECRYPT_BYTES} bytes of ciphertexts`),
  })
  .strict();
export type HeDecryptRequest = z.infer<typeof HeDecryptRequestSchema>;

/**
 * How the key holder's `aggregate:result` says it refused (a check failed and nothing was
 * decrypted) rather than failed to decrypt: its `error` starts with this.
 */
export const HE_REFUSAL_PREFIX = 'refused: ';
