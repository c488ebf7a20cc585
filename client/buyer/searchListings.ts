import { z } from 'zod';
import type { ListingQuery, PublishedListing } from '../../shared/schemas/listing';
import type { BuyerClient } from './client';
import type { TributaryApiError } from './errors';
import { verifyPublishedListing } from '../listingVerification';

export type SearchListingsParameters = Omit<ListingQuery, 'ids' | 'after'> & {
  /** The nextCursor of the previous page. */
  cursor?: string;
};
export type SearchListingsReturnType = {
  /** Listings whose id and provider signature were re-verified here. */
  listings: PublishedListing[];
  nextCursor: string | null;
};
export type SearchListingsErrorType = TributaryApiError<
  'VALIDATION_FAILED' | 'RATE_LIMITED' | 'LISTING_SIGNATURE_INVALID'
>;

const AnswerSchema = z.object({
  listings: z.array(z.unknown()).max(1000),
  nextCursor: z.string().nullable().default(null),
});

/**
 * Searches dataset listings, newest first (GET /v1/listings); every criterion given must hold. Each
 * listing's id and provider signature are re-verified, so a coordinator cannot forge or alter one.
 * @example
 * const { listings } = await searchListings(client, { tags: ['weather'], shape: [8], minRows: 1000 });
 * const invite = { mode: 'invite', listings: listings.map((l) => l.id) };
 */
export async function searchListings(
  client: BuyerClient,
  parameters: SearchListingsParameters = {},
): Promise<SearchListingsReturnType> {
  const list = (values: readonly (string | number)[] | undefined) => (values ? values.join(',') : undefined);
  const answer = await client.request({
    method: 'GET',
    path: '/v1/listings',
    query: {
      tags: list(parameters.tags),
      shape: list(parameters.shape),
      featureColumns: list(parameters.featureColumns),
      numClasses: parameters.numClasses,
      labelColumn: parameters.labelColumn,
      minRows: parameters.minRows,
      provider: parameters.provider,
      limit: parameters.limit,
      cursor: parameters.cursor,
    },
    response: { schema: AnswerSchema },
  });
  return { listings: answer.listings.map(verifyPublishedListing), nextCursor: answer.nextCursor };
}
