import { TributaryError } from '../shared/errors';
import { verifyListingSignature } from '../shared/identity/listingSignature';
import { SignatureVerifier } from '../shared/identity/signing';
import { listingIdOf, type PublishedListing, PublishedListingSchema } from '../shared/schemas/listing';
import { parseInput } from '../shared/schemas/parseInput';

const verifier = new SignatureVerifier();

/** Validates a listing from the coordinator and re-checks its id and the provider's signature. */
export function verifyPublishedListing(raw: unknown): PublishedListing {
  const published = parseInput(PublishedListingSchema, raw);
  if (listingIdOf(published.listing) !== published.id || !verifyListingSignature(verifier, published)) {
    throw new TributaryError(
      'LISTING_SIGNATURE_INVALID',
      `Listing ${published.id} from the coordinator does not verify under its provider's key (or its id does not match its content).`,
    );
  }
  return published;
}
