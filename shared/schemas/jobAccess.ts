import { z } from 'zod';

/**
 * A dataset listing's id: "lst_" and the first 24 hex digits of the SHA-256 of the signed listing's
 * canonical bytes (shared/schemas/listing.ts). Content-derived, so the same signed listing always
 * gets the same id and a replay is recognised by the store.
 */
export const ListingIdSchema = z
  .string()
  .regex(/^lst_[0-9a-f]{24}$/, 'expected a listing id ("lst_" and 24 hex digits)');
export type ListingId = z.infer<typeof ListingIdSchema>;

/** At most this many listings may be invited to one job. */
export const MAX_INVITED_LISTINGS = 1_000;

/**
 * Who may join a job as a data provider (checked at job:join; a paillier job's key holder is not a
 * provider and is unaffected):
 * - `public` (the default): anyone with a key, as before listings existed;
 * - `open`: providers with a published listing whose schema matches the job's input spec;
 * - `invite`: only the providers of the listed listings (which must exist and match at job creation).
 */
export const JobAccessSchema = z.discriminatedUnion('mode', [
  z.object({ mode: z.literal('public') }).strict(),
  z.object({ mode: z.literal('open') }).strict(),
  z
    .object({
      mode: z.literal('invite'),
      listings: z
        .array(ListingIdSchema)
        .min(1)
        .max(MAX_INVITED_LISTINGS)
        .refine((ids) => new Set(ids).size === ids.length, { message: 'listing ids must be distinct' }),
    })
    .strict(),
]);
export type JobAccess = z.infer<typeof JobAccessSchema>;
