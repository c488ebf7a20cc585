import type { ListingId } from '../schemas/jobAccess';
import {
  ListingSchema,
  listingDeleteBytes,
  listingSigningBytes,
  type ListingDeleteRequest,
  type ListingInput,
  type SignedListing,
} from '../schemas/listing';
import { parseInput } from '../schemas/parseInput';
import type { Identity } from './keyPair';
import { newNonce, signBytes, type SignatureVerifier } from './signing';

/** What a provider describes; the signer adds its client id, the time and a fresh nonce. */
export type ListingDescription = Omit<ListingInput, 'provider' | 'createdAt' | 'nonce'>;

/**
 * Signs a listing as `identity` (tweetnacl, provider side). The listing is validated first
 * (VALIDATION_FAILED naming the field otherwise) and signed with its defaults filled in, which is the form
 * the coordinator verifies.
 */
export function signListing(
  identity: Identity,
  description: ListingDescription,
  now: number = Date.now(),
): SignedListing {
  const listing = parseInput(ListingSchema, {
    ...description,
    provider: identity.clientId,
    createdAt: now,
    nonce: newNonce(),
  });
  return { listing, signature: signBytes(identity.secretKey, listingSigningBytes(listing)) };
}

/** A provider's signed request to delete its listing `id`. */
export function signListingDelete(identity: Identity, id: ListingId, now: number = Date.now()): ListingDeleteRequest {
  const nonce = newNonce();
  return { timestamp: now, nonce, signature: signBytes(identity.secretKey, listingDeleteBytes(id, now, nonce)) };
}

/** Whether the signature of a (parsed) signed listing verifies under the listing's provider key. */
export function verifyListingSignature(verifier: SignatureVerifier, signed: SignedListing): boolean {
  return verifier.verifyBytes(signed.listing.provider, listingSigningBytes(signed.listing), signed.signature);
}
