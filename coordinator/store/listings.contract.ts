import { randomBytes } from 'node:crypto';
import { generateIdentity, type Identity } from '../../shared/identity/keyPair';
import { signListing, type ListingDescription } from '../../shared/identity/listingSignature';
import { listingIdOf } from '../../shared/schemas/listing';
import type { ListingRecord, Store } from './store';

/*
 * The listing part of the Store contract (registered by runStoreContract, so it runs against every
 * backend). Tests share one store, so each scopes its searches to fresh providers or a fresh tag.
 */

/** A unique tag, so a search sees only the listings one test published. */
const freshTag = () => `t-${randomBytes(8).toString('hex')}`;

function makeListing(
  provider: Identity,
  overrides: Partial<ListingDescription> = {},
  publishedAt = Date.UTC(2031, 0, 1),
): ListingRecord {
  const signed = signListing(
    provider,
    {
      name: 'weather stations ✓',
      description: 'hourly readings',
      schema: { shape: [4], numClasses: 5, featureColumns: ['precipitation', 'temp_max', 'temp_min', 'wind'] },
      rows: 1_000,
      tags: ['weather'],
      pricePerRoundWei: '1000000000000000000',
      ...overrides,
    },
    publishedAt - 1_000,
  );
  return {
    id: listingIdOf(signed.listing),
    listing: signed.listing,
    signature: signed.signature,
    publishedAt: new Date(publishedAt),
  };
}

/** Registers the listing tests; `store` returns the suite's shared store. */
export function describeListingContract(store: () => Store): void {
  describe('listings', () => {
    it('saves a listing and gets back an equal record with a real Date', async () => {
      const record = makeListing(generateIdentity());
      await store().saveListing(record);
      const got = await store().getListing(record.id);
      expect(got).toStrictEqual(record);
      expect(got!.publishedAt).toBeInstanceOf(Date);
      expect(await store().getListing('lst_000000000000000000000000')).toBeNull();
    });

    it('refuses the same listing twice with LISTING_REPLAY and keeps the first', async () => {
      const record = makeListing(generateIdentity());
      await store().saveListing(record);
      await expect(
        store().saveListing({ ...record, publishedAt: new Date(Date.UTC(2032, 0, 1)) }),
      ).rejects.toMatchObject({ code: 'LISTING_REPLAY' });
      expect(await store().getListing(record.id)).toStrictEqual(record);
    });

    it('searches by tags (all of), schema, minRows and provider, newest first', async () => {
      const tag = freshTag();
      const alice = generateIdentity();
      const bob = generateIdentity();
      const a = makeListing(alice, { tags: [tag, 'weather'], rows: 500 }, Date.UTC(2031, 0, 1));
      const b = makeListing(bob, { tags: ['weather', tag, 'seattle'], rows: 2_000 }, Date.UTC(2031, 0, 3));
      // Same columns in another order: still the same feature set.
      const c = makeListing(
        bob,
        {
          tags: [tag],
          rows: 3_000,
          schema: { shape: [4], numClasses: 5, featureColumns: ['wind', 'temp_min', 'temp_max', 'precipitation'] },
        },
        Date.UTC(2031, 0, 2),
      );
      const images = makeListing(
        alice,
        { tags: [tag, 'images'], schema: { shape: [28, 28, 1], numClasses: 10 }, rows: 60_000 },
        Date.UTC(2031, 0, 4),
      );
      for (const r of [a, b, c, images]) await store().saveListing(r);
      const ids = async (query: Parameters<Store['searchListings']>[0]) =>
        (await store().searchListings(query)).map((r) => r.id);

      expect(await ids({ tags: [tag] })).toEqual([images.id, b.id, c.id, a.id]);
      expect(await ids({ tags: [tag, 'weather'] })).toEqual([b.id, a.id]);
      expect(await ids({ tags: [tag, 'weather', 'seattle'] })).toEqual([b.id]);
      expect(await ids({ tags: [tag, 'no-such-tag'] })).toEqual([]);
      expect(await ids({ tags: [tag], shape: [4] })).toEqual([b.id, c.id, a.id]);
      expect(await ids({ tags: [tag], shape: [28, 28, 1], numClasses: 10 })).toEqual([images.id]);
      expect(await ids({ tags: [tag], shape: [28, 28], numClasses: 10 })).toEqual([]);
      expect(await ids({ tags: [tag], numClasses: 5 })).toEqual([b.id, c.id, a.id]);
      expect(await ids({ tags: [tag], featureColumns: ['temp_max', 'precipitation', 'wind', 'temp_min'] })).toEqual([
        b.id,
        c.id,
        a.id,
      ]);
      expect(await ids({ tags: [tag], featureColumns: ['temp_max', 'precipitation', 'wind'] })).toEqual([]);
      expect(await ids({ tags: [tag], labelColumn: 'label' })).toEqual([images.id, b.id, c.id, a.id]);
      expect(await ids({ tags: [tag], labelColumn: 'weather' })).toEqual([]);
      expect(await ids({ tags: [tag], minRows: 2_000 })).toEqual([images.id, b.id, c.id]);
      expect(await ids({ provider: bob.clientId })).toEqual([b.id, c.id]);
      expect(await ids({ provider: alice.clientId, shape: [4], minRows: 100 })).toEqual([a.id]);
      expect(await ids({ tags: [tag], limit: 2 })).toEqual([images.id, b.id]);
      expect(await ids({ ids: [a.id, c.id, images.id] })).toEqual([images.id, c.id, a.id]);
      expect(await ids({ ids: [a.id, c.id, images.id], provider: bob.clientId })).toEqual([c.id]);
      expect(await ids({ ids: [a.id], provider: bob.clientId })).toEqual([]);
      expect(await ids({ ids: [] })).toEqual([]);
    });

    it('orders listings published at the same time by id', async () => {
      const tag = freshTag();
      const same = Date.UTC(2031, 5, 1);
      const records = [0, 1, 2].map(() => makeListing(generateIdentity(), { tags: [tag] }, same));
      for (const r of records) await store().saveListing(r);
      expect((await store().searchListings({ tags: [tag] })).map((r) => r.id)).toEqual(records.map((r) => r.id).sort());
    });

    it('pages a search after a cursor, through ties, and counts listings per provider', async () => {
      const tag = freshTag();
      const provider = generateIdentity();
      const t = Date.UTC(2031, 7, 1);
      const newest = makeListing(provider, { tags: [tag], name: 'newest' }, t + 1000);
      const tied = [0, 1, 2].map((i) => makeListing(provider, { tags: [tag], name: `tied ${i}` }, t));
      for (const r of [...tied, newest]) await store().saveListing(r);
      const all = [newest.id, ...tied.map((r) => r.id).sort()];
      const first = await store().searchListings({ tags: [tag], limit: 2 });
      const last = first[first.length - 1];
      const rest = await store().searchListings({ tags: [tag], after: { publishedAt: last.publishedAt, id: last.id } });
      expect([...first, ...rest].map((r) => r.id)).toEqual(all);
      expect(await store().countListings(provider.clientId)).toBe(4);
      expect(await store().countListings(generateIdentity().clientId)).toBe(0);
    });

    it('deletes a listing once', async () => {
      const provider = generateIdentity();
      const keep = makeListing(provider, { name: 'keep' });
      const drop = makeListing(provider, { name: 'drop' });
      await store().saveListing(keep);
      await store().saveListing(drop);
      expect(await store().deleteListing(drop.id)).toBe(true);
      expect(await store().deleteListing(drop.id)).toBe(false);
      expect(await store().getListing(drop.id)).toBeNull();
      expect((await store().searchListings({ provider: provider.clientId })).map((r) => r.id)).toEqual([keep.id]);
      // A deleted id may be published again (the registry's nonce and freshness checks stop replays).
      await store().saveListing(drop);
      expect(await store().getListing(drop.id)).toStrictEqual(drop);
    });

    it('hands out copies: mutating a result changes nothing stored', async () => {
      const record = makeListing(generateIdentity());
      await store().saveListing(record);
      const got = (await store().getListing(record.id))!;
      got.listing.tags.push('mutated');
      got.listing.schema.shape[0] = 99;
      got.publishedAt.setTime(0);
      expect(await store().getListing(record.id)).toStrictEqual(record);
    });
  });
}
