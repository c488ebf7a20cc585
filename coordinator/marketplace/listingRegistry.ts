import type { z } from 'zod';
import { TributaryError } from '../../shared/errors';
import { verifyListingSignature } from '../../shared/identity/listingSignature';
import { NonceCache } from '../../shared/identity/nonceCache';
import { SignatureVerifier } from '../../shared/identity/signing';
import { ListingIdSchema } from '../../shared/schemas/jobAccess';
import {
  ListingDeleteRequestSchema,
  ListingSearchParamsSchema,
  SignedListingSchema,
  listingDeleteBytes,
  listingIdOf,
} from '../../shared/schemas/listing';
import { parseInput as parse } from '../../shared/schemas/parseInput';
import { CREATION_CLAIM_PENDING_MS } from '../store/slotClaims';
import type { ListingRecord, Store } from '../store/store';

/** Options of the ListingRegistry. */
export interface ListingRegistryOptions {
  /** How far a listing's `createdAt` (or a delete request's `timestamp`) may be from the coordinator's clock, in ms. */
  windowMs: number;
  /** The clock. @default Date.now */
  now?: () => number;
  /** Listings one provider may have published at once. @default 100 */
  maxListingsPerProvider?: number;
}

/**
 * The coordinator's half of the marketplace: accepts signed listings from providers, serves
 * searches to buyers, and deletes a listing at its provider's signed request.
 *
 * A listing is checked in order: schema → signature under its `provider` key (over the canonical
 * bytes, so any altered field fails) → freshness (`createdAt` within `windowMs`) → nonce not seen →
 * id (a content hash) not already stored. Only then is it saved; every failure is a coded error
 * that changes nothing. The nonce cache stops replays within one process; the content-hash id
 * stops them across restarts, and the window bounds both.
 */
export class ListingRegistry {
  private readonly verifier = new SignatureVerifier();
  private readonly nonces = new NonceCache();
  private readonly now: () => number;

  constructor(
    private readonly store: Store,
    private readonly options: ListingRegistryOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Verifies and stores a signed listing (the body of POST /v1/listings). */
  async publish(body: unknown): Promise<ListingRecord> {
    const signed = parse(SignedListingSchema, body);
    const { listing } = signed;
    if (!verifyListingSignature(this.verifier, signed)) {
      throw new TributaryError(
        'LISTING_SIGNATURE_INVALID',
        "The listing's signature does not verify under its provider key: the listing was altered or not signed by that provider.",
      );
    }
    this.assertFresh(listing.createdAt, 'createdAt');
    return this.save(signed);
  }

  /** The quota, the nonce, a claim slot of the quota (held cluster-wide, in the store), then the write. */
  private async save(signed: z.output<typeof SignedListingSchema>): Promise<ListingRecord> {
    const { listing } = signed;
    const quota = this.options.maxListingsPerProvider ?? 100;
    const overQuota = (published: number) =>
      new TributaryError(
        'QUOTA_EXCEEDED',
        `This provider has ${published} listings; at most ${quota} are allowed. Delete one first.`,
        { details: { resource: 'listings', limit: quota } },
      );
    // Listings published before claim slots existed hold none: counted here.
    const published = await this.store.countListings(listing.provider);
    if (published >= quota) throw overQuota(published);
    if (!this.nonces.checkAndRemember(`listing:${listing.provider}`, listing.nonce)) {
      throw new TributaryError('LISTING_REPLAY', `Nonce ${listing.nonce} was already used by this provider.`);
    }
    const id = listingIdOf(listing);
    const claim = await this.store.claimSlot({
      kind: 'listings',
      scope: listing.provider,
      holder: id,
      limit: quota,
      now: new Date(this.now()),
      pendingMs: CREATION_CLAIM_PENDING_MS,
    });
    if (claim.outcome === 'refused') throw overQuota(claim.holders.length);
    try {
      const record: ListingRecord = { id, listing, signature: signed.signature, publishedAt: new Date(this.now()) };
      await this.store.saveListing(record);
      return record;
    } catch (err) {
      // A slot this call took goes back, unless the listing is stored (a copy posted at another node won).
      if (claim.outcome === 'claimed' && !(await this.store.getListing(id).catch(() => null)))
        await this.store.releaseSlot('listings', listing.provider, id).catch(() => {});
      throw err;
    }
  }

  /** One listing; LISTING_NOT_FOUND if absent. */
  async get(id: unknown): Promise<ListingRecord> {
    const parsed = ListingIdSchema.safeParse(id);
    const record = parsed.success ? await this.store.getListing(parsed.data) : null;
    if (!record) throw new TributaryError('LISTING_NOT_FOUND', `No listing with id "${String(id)}".`);
    return record;
  }

  /** Listings matching the query parameters of GET /v1/listings (validated here); `page` overrides their limit. */
  async search(
    params: unknown,
    page: { limit?: number; after?: { publishedAt: Date; id: string } } = {},
  ): Promise<ListingRecord[]> {
    return this.store.searchListings({ ...parse(ListingSearchParamsSchema, params), ...page });
  }

  /** Deletes a listing at its provider's signed request (the body of DELETE /v1/listings/:id). */
  async remove(id: unknown, body: unknown): Promise<void> {
    const request = parse(ListingDeleteRequestSchema, body);
    const record = await this.get(id);
    const bytes = listingDeleteBytes(record.id, request.timestamp, request.nonce);
    if (!this.verifier.verifyBytes(record.listing.provider, bytes, request.signature)) {
      throw new TributaryError(
        'LISTING_NOT_PROVIDER',
        `The delete request for ${record.id} is not signed by the listing's provider.`,
      );
    }
    this.assertFresh(request.timestamp, 'timestamp');
    if (!this.nonces.checkAndRemember(`listing:${record.listing.provider}`, request.nonce)) {
      throw new TributaryError('LISTING_REPLAY', `Nonce ${request.nonce} was already used by this provider.`);
    }
    if (!(await this.store.deleteListing(record.id))) {
      throw new TributaryError('LISTING_NOT_FOUND', `Listing ${record.id} was deleted meanwhile.`);
    }
    await this.store.releaseSlot('listings', record.listing.provider, record.id);
  }

  private assertFresh(signedAt: number, field: string): void {
    const skew = Math.abs(this.now() - signedAt);
    if (skew > this.options.windowMs) {
      throw new TributaryError(
        'LISTING_STALE',
        `The signed ${field} is ${skew} ms from the coordinator's clock; at most ${this.options.windowMs} ms is accepted. Sign it again.`,
      );
    }
  }
}
