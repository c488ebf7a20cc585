import nacl from 'tweetnacl';
import { generateIdentity } from '../identity/keyPair';
import {
  signListing,
  signListingDelete,
  verifyListingSignature,
  type ListingDescription,
} from '../identity/listingSignature';
import { SignatureVerifier, signFields } from '../identity/signing';
import { JobSpecSchema } from './jobSpec';
import {
  LISTING_SIGNING_DOMAIN,
  ListingSchema,
  ListingSearchParamsSchema,
  SignedListingSchema,
  listingDeleteBytes,
  listingIdOf,
  listingMatches,
  listingSigningBytes,
  queryForInput,
  type SignedListing,
} from './listing';

const description: ListingDescription = {
  name: 'Seattle weather',
  schema: { shape: [4], numClasses: 5, featureColumns: ['precipitation', 'temp_max', 'temp_min', 'wind'] },
  rows: 1461,
  tags: ['weather', 'seattle'],
  pricePerRoundWei: '1000000000000000',
};
const verifier = new SignatureVerifier();

describe('dataset listings', () => {
  it('signs the listing with defaults filled in, and the signature verifies with node:crypto', () => {
    const provider = generateIdentity();
    const signed = signListing(provider, description, 1_700_000_000_000);
    expect(signed.listing).toMatchObject({
      provider: provider.clientId,
      createdAt: 1_700_000_000_000,
      description: '',
    });
    expect(signed.listing.schema.labelColumn).toBe('label');
    expect(signed.listing.nonce).toMatch(/^[0-9a-f]{32}$/);
    expect(SignedListingSchema.parse(JSON.parse(JSON.stringify(signed)))).toStrictEqual(signed);
    expect(verifyListingSignature(verifier, signed)).toBe(true);
  });

  it('detects tampering with any field', () => {
    const signed = signListing(generateIdentity(), description);
    const other = generateIdentity().clientId;
    const tampered: Array<(l: SignedListing['listing']) => void> = [
      (l) => (l.name = 'Seattle weather!'),
      (l) => (l.description = 'x'),
      (l) => (l.rows += 1),
      (l) => l.tags.reverse(),
      (l) => (l.pricePerRoundWei = '1'),
      (l) => (l.provider = other),
      (l) => (l.createdAt += 1),
      (l) => (l.nonce = '0'.repeat(32)),
      (l) => (l.schema.numClasses = 6),
      (l) => (l.schema.shape = [2, 2]),
      (l) => (l.schema.labelColumn = 'weather'),
      (l) => l.schema.featureColumns!.reverse(),
    ];
    for (const change of tampered) {
      const copy = structuredClone(signed);
      change(copy.listing);
      expect(verifyListingSignature(verifier, copy)).toBe(false);
    }
  });

  it('is domain-separated: a message or delete signature is never a listing signature, and back', () => {
    const provider = generateIdentity();
    const signed = signListing(provider, description);
    expect(listingSigningBytes(signed.listing).toString('utf8')).toContain(LISTING_SIGNING_DOMAIN);
    const id = listingIdOf(signed.listing);
    const del = signListingDelete(provider, id);
    expect(
      verifier.verifyBytes(provider.clientId, listingDeleteBytes(id, del.timestamp, del.nonce), del.signature),
    ).toBe(true);
    expect(verifyListingSignature(verifier, { listing: signed.listing, signature: del.signature })).toBe(false);
    expect(
      verifier.verifyBytes(provider.clientId, listingDeleteBytes(id, del.timestamp, del.nonce), signed.signature),
    ).toBe(false);
    // The same key signing a protocol message over lookalike fields still does not produce a listing signature.
    const message = signFields(provider.secretKey, {
      jobId: id,
      round: 0,
      stage: 'listing',
      payloadHash: '0'.repeat(64),
      nonce: signed.listing.nonce,
    });
    expect(verifyListingSignature(verifier, { listing: signed.listing, signature: message })).toBe(false);
    // Raw bytes without the domain tag neither.
    const bare = Buffer.from(
      nacl.sign.detached(Buffer.from(JSON.stringify(signed.listing)), provider.secretKey),
    ).toString('hex');
    expect(verifyListingSignature(verifier, { listing: signed.listing, signature: bare })).toBe(false);
  });

  it('derives a stable content id that differs between listings', () => {
    const provider = generateIdentity();
    const a = signListing(provider, description, 1_700_000_000_000);
    const b = signListing(provider, description, 1_700_000_000_000);
    expect(listingIdOf(a.listing)).toMatch(/^lst_[0-9a-f]{24}$/);
    expect(listingIdOf(structuredClone(a.listing))).toBe(listingIdOf(a.listing));
    expect(listingIdOf(b.listing)).not.toBe(listingIdOf(a.listing)); // fresh nonce
  });

  it('bounds every field and says what was expected', () => {
    const base = signListing(generateIdentity(), description).listing;
    const bad = (patch: Record<string, unknown>) => ListingSchema.safeParse({ ...base, ...patch });
    expect(bad({}).success).toBe(true);
    expect(bad({ pricePerRoundWei: '-1' }).success).toBe(false);
    expect(bad({ pricePerRoundWei: '01' }).success).toBe(false);
    expect(bad({ pricePerRoundWei: '1.5' }).success).toBe(false);
    expect(bad({ pricePerRoundWei: (2n ** 256n - 1n).toString() }).success).toBe(true);
    expect(bad({ pricePerRoundWei: (2n ** 256n).toString() }).success).toBe(false);
    expect(bad({ tags: ['Weather'] }).success).toBe(false);
    expect(bad({ tags: ['a', 'a'] }).success).toBe(false);
    expect(bad({ tags: Array.from({ length: 17 }, (_, i) => `t${i}`) }).success).toBe(false);
    expect(bad({ rows: 0 }).success).toBe(false);
    expect(bad({ provider: 'ab' }).success).toBe(false);
    expect(bad({ data: [1, 2, 3] }).success).toBe(false); // a listing never carries data: unknown fields are refused
    expect(bad({ schema: { shape: [4], numClasses: 5, featureColumns: ['a'] } }).success).toBe(false);
    const message = bad({ pricePerRoundWei: 'lots' }).error!.issues[0].message;
    expect(message).toMatch(/wei as a decimal string/);
  });

  it('matches a job input spec on shape, classes, label column and feature columns as a set', () => {
    const listing = signListing(generateIdentity(), description).listing;
    const input = (extra: object = {}) =>
      JobSpecSchema.parse({
        name: 'j',
        model: { kind: 'builtin', name: 'mlp' },
        rounds: 1,
        secureAggregation: 'none',
        input: { shape: [4], numClasses: 5, ...extra },
      }).input;
    expect(listingMatches(listing, queryForInput(input()))).toBe(true);
    expect(
      listingMatches(
        listing,
        queryForInput(input({ featureColumns: ['wind', 'temp_min', 'temp_max', 'precipitation'] })),
      ),
    ).toBe(true);
    expect(
      listingMatches(listing, queryForInput(input({ featureColumns: ['wind', 'temp_min', 'temp_max', 'humidity'] }))),
    ).toBe(false);
    expect(listingMatches(listing, queryForInput(input({ numClasses: 4 })))).toBe(false);
    expect(listingMatches(listing, queryForInput(input({ labelColumn: 'weather' })))).toBe(false);
    expect(listingMatches(listing, queryForInput({ ...input(), shape: [2, 2] }))).toBe(false);
    // A listing that names no feature columns cannot promise the job's named ones.
    const unnamed = signListing(generateIdentity(), { ...description, schema: { shape: [4], numClasses: 5 } }).listing;
    expect(listingMatches(unnamed, queryForInput(input()))).toBe(true);
    expect(listingMatches(unnamed, queryForInput(input({ featureColumns: ['a', 'b', 'c', 'd'] })))).toBe(false);
  });

  it('parses search query parameters (comma lists, repeated keys, numbers) and refuses bad ones', () => {
    expect(
      ListingSearchParamsSchema.parse({
        tags: 'weather, seattle',
        shape: '28,28,1',
        numClasses: '10',
        minRows: '100',
        limit: '5',
      }),
    ).toEqual({
      tags: ['weather', 'seattle'],
      shape: [28, 28, 1],
      numClasses: 10,
      minRows: 100,
      limit: 5,
    });
    expect(ListingSearchParamsSchema.parse({ tags: ['a', 'b,c'] }).tags).toEqual(['a', 'b', 'c']);
    expect(ListingSearchParamsSchema.safeParse({ shape: '28,x' }).success).toBe(false);
    expect(ListingSearchParamsSchema.safeParse({ shape: '0' }).success).toBe(false);
    expect(ListingSearchParamsSchema.safeParse({ numClasses: '1' }).success).toBe(false);
    expect(ListingSearchParamsSchema.safeParse({ limit: '100000' }).success).toBe(false);
    expect(ListingSearchParamsSchema.safeParse({ provider: 'nothex' }).success).toBe(false);
    expect(ListingSearchParamsSchema.safeParse({ color: 'red' }).success).toBe(false);
  });

  it('adds an access policy to job specs: absent means public; invite needs distinct listing ids', () => {
    const spec = (access?: unknown) =>
      JobSpecSchema.safeParse({
        name: 'j',
        model: { kind: 'builtin', name: 'mlp' },
        input: { shape: [4], numClasses: 5 },
        rounds: 1,
        secureAggregation: 'none',
        ...(access === undefined ? {} : { access }),
      });
    expect(spec().success && spec().data!.access).toBeUndefined();
    expect(spec({ mode: 'open' }).success).toBe(true);
    expect(spec({ mode: 'invite', listings: ['lst_0123456789abcdef01234567'] }).success).toBe(true);
    expect(spec({ mode: 'invite', listings: [] }).success).toBe(false);
    expect(
      spec({ mode: 'invite', listings: ['lst_0123456789abcdef01234567', 'lst_0123456789abcdef01234567'] }).success,
    ).toBe(false);
    expect(spec({ mode: 'invite', listings: ['job_abc'] }).success).toBe(false);
    expect(spec({ mode: 'open', listings: ['lst_0123456789abcdef01234567'] }).success).toBe(false);
    expect(spec({ mode: 'private' }).success).toBe(false);
  });
});
