import { generateIdentity } from '../../shared/identity/keyPair';
import { signListing, signListingDelete, type ListingDescription } from '../../shared/identity/listingSignature';
import { JobSpecSchema, type JobSpec } from '../../shared/schemas/jobSpec';
import { ListingSchema, MAX_LISTING_RESULTS, listingIdOf } from '../../shared/schemas/listing';
import { codeOfAsync } from '../../test/support/codeOf';
import { MemoryStore } from '../store/memoryStore';
import { assertInvitedListingsFit, assertMayJoin } from './jobAccess';
import { ListingRegistry } from './listingRegistry';

const WINDOW = 60_000;
const description: ListingDescription = {
  name: 'tabular',
  schema: { shape: [8], numClasses: 2 },
  rows: 120,
  tags: ['synthetic'],
  pricePerRoundWei: '5',
};

function setup() {
  let clock = 1_800_000_000_000;
  const store = new MemoryStore();
  const registry = new ListingRegistry(store, { windowMs: WINDOW, now: () => clock });
  return { store, registry, now: () => clock, advance: (ms: number) => (clock += ms) };
}

describe('ListingRegistry', () => {
  it('publishes a signed listing under its content id', async () => {
    const { store, registry, now } = setup();
    const provider = generateIdentity();
    const signed = signListing(provider, description, now());
    const record = await registry.publish(JSON.parse(JSON.stringify(signed)));
    expect(record.id).toBe(listingIdOf(signed.listing));
    expect(await store.getListing(record.id)).toStrictEqual(record);
    expect(await registry.get(record.id)).toStrictEqual(record);
    expect(await registry.search({ provider: provider.clientId, shape: '8' })).toStrictEqual([record]);
  });

  it('refuses tampered, forged, stale, future and replayed listings with codes, storing nothing', async () => {
    const { store, registry, now, advance } = setup();
    const provider = generateIdentity();
    const signed = signListing(provider, description, now());

    const tampered = structuredClone(signed);
    tampered.listing.pricePerRoundWei = '1';
    expect(await codeOfAsync(() => registry.publish(tampered))).toBe('LISTING_SIGNATURE_INVALID');
    // Someone else's signature over the same listing (claiming the provider's identity).
    const forged = { ...signed, signature: signListing(generateIdentity(), description, now()).signature };
    expect(await codeOfAsync(() => registry.publish(forged))).toBe('LISTING_SIGNATURE_INVALID');
    expect(await codeOfAsync(() => registry.publish(signListing(provider, description, now() - WINDOW - 1)))).toBe(
      'LISTING_STALE',
    );
    expect(await codeOfAsync(() => registry.publish(signListing(provider, description, now() + WINDOW + 1)))).toBe(
      'LISTING_STALE',
    );
    expect(
      await codeOfAsync(() =>
        registry.publish({ listing: { ...signed.listing, data: [[1, 2]] }, signature: signed.signature }),
      ),
    ).toBe('VALIDATION_FAILED');
    expect(await store.searchListings({})).toEqual([]);

    await registry.publish(signed);
    expect(await codeOfAsync(() => registry.publish(signed))).toBe('LISTING_REPLAY');
    // After a restart the nonce cache is empty; the content id still recognises the replay.
    const restarted = new ListingRegistry(store, { windowMs: WINDOW, now });
    expect(await codeOfAsync(() => restarted.publish(signed))).toBe('LISTING_REPLAY');
    advance(WINDOW + 1);
    expect(await codeOfAsync(() => restarted.publish(signed))).toBe('LISTING_STALE');
    expect(await store.searchListings({})).toHaveLength(1);
  });

  it("deletes only at the provider's fresh, unreplayed request", async () => {
    const { store, registry, now } = setup();
    const provider = generateIdentity();
    const record = await registry.publish(signListing(provider, description, now()));
    expect(
      await codeOfAsync(() => registry.remove(record.id, signListingDelete(generateIdentity(), record.id, now()))),
    ).toBe('LISTING_NOT_PROVIDER');
    const other = await registry.publish(signListing(provider, { ...description, name: 'other' }, now()));
    // A request signed for another listing of the same provider does not delete this one.
    expect(await codeOfAsync(() => registry.remove(record.id, signListingDelete(provider, other.id, now())))).toBe(
      'LISTING_NOT_PROVIDER',
    );
    expect(
      await codeOfAsync(() => registry.remove(record.id, signListingDelete(provider, record.id, now() - WINDOW - 1))),
    ).toBe('LISTING_STALE');
    expect(
      await codeOfAsync(() =>
        registry.remove('lst_000000000000000000000000', signListingDelete(provider, record.id, now())),
      ),
    ).toBe('LISTING_NOT_FOUND');
    expect(await codeOfAsync(() => registry.remove('../etc', signListingDelete(provider, record.id, now())))).toBe(
      'LISTING_NOT_FOUND',
    );
    expect(await store.getListing(record.id)).not.toBeNull();

    const request = signListingDelete(provider, record.id, now());
    await registry.remove(record.id, request);
    expect(await store.getListing(record.id)).toBeNull();
    expect(await codeOfAsync(() => registry.remove(record.id, request))).toBe('LISTING_NOT_FOUND');
    expect(await store.getListing(other.id)).not.toBeNull();
  });

  it('caps the listings one provider may have, refusing the next before storing it', async () => {
    let clock = 1_800_000_000_000;
    const store = new MemoryStore();
    const registry = new ListingRegistry(store, { windowMs: WINDOW, now: () => clock, maxListingsPerProvider: 2 });
    const provider = generateIdentity();
    for (const name of ['a', 'b']) await registry.publish(signListing(provider, { ...description, name }, clock));
    expect(await codeOfAsync(() => registry.publish(signListing(provider, { ...description, name: 'c' }, clock)))).toBe(
      'QUOTA_EXCEEDED',
    );
    expect(await store.countListings(provider.clientId)).toBe(2);
    // Another provider is not affected; deleting one frees a slot.
    await registry.publish(signListing(generateIdentity(), description, clock));
    const [first] = await store.searchListings({ provider: provider.clientId });
    clock += 1;
    await registry.remove(first.id, signListingDelete(provider, first.id, clock));
    await registry.publish(signListing(provider, { ...description, name: 'c' }, clock));
    expect(await store.countListings(provider.clientId)).toBe(2);
  });

  it('refuses search parameters that are not in the schema', async () => {
    const { registry } = setup();
    expect(await codeOfAsync(() => registry.search({ shape: 'four' }))).toBe('VALIDATION_FAILED');
    expect(await codeOfAsync(() => registry.search({ rows: '5' }))).toBe('VALIDATION_FAILED');
  });
});

describe('job access', () => {
  const job = (access: unknown, input: object = { shape: [8], numClasses: 2 }): JobSpec =>
    JobSpecSchema.parse({
      name: 'buyer job',
      model: { kind: 'builtin', name: 'mlp' },
      input,
      rounds: 1,
      secureAggregation: 'none',
      access,
    });

  it('public admits anyone; open admits providers with a matching listing; invite only invited providers', async () => {
    const { store, registry, now } = setup();
    const alice = generateIdentity();
    const bob = generateIdentity();
    const carol = generateIdentity();
    const a = await registry.publish(signListing(alice, description, now()));
    await registry.publish(signListing(bob, description, now()));
    await registry.publish(signListing(carol, { ...description, schema: { shape: [4], numClasses: 2 } }, now()));
    const stranger = generateIdentity().clientId;

    await expect(assertMayJoin('job_x', job(undefined), stranger, store)).resolves.toBeUndefined();
    await expect(assertMayJoin('job_x', job({ mode: 'public' }), stranger, store)).resolves.toBeUndefined();

    const open = job({ mode: 'open' });
    await expect(assertMayJoin('job_x', open, alice.clientId, store)).resolves.toBeUndefined();
    await expect(assertMayJoin('job_x', open, bob.clientId, store)).resolves.toBeUndefined();
    expect(await codeOfAsync(() => assertMayJoin('job_x', open, carol.clientId, store))).toBe('JOB_ACCESS_DENIED');
    expect(await codeOfAsync(() => assertMayJoin('job_x', open, stranger, store))).toBe('JOB_ACCESS_DENIED');

    const invite = job({ mode: 'invite', listings: [a.id] });
    await assertInvitedListingsFit(invite, store);
    await expect(assertMayJoin('job_x', invite, alice.clientId, store)).resolves.toBeUndefined();
    expect(await codeOfAsync(() => assertMayJoin('job_x', invite, bob.clientId, store))).toBe('JOB_ACCESS_DENIED');
    // Withdrawing the listing withdraws the invitation.
    await registry.remove(a.id, signListingDelete(alice, a.id, now()));
    expect(await codeOfAsync(() => assertMayJoin('job_x', invite, alice.clientId, store))).toBe('JOB_ACCESS_DENIED');
  });

  it('finds an invitation among more listings than one search returns', async () => {
    const store = new MemoryStore();
    const provider = generateIdentity();
    // Records straight into the store (unsigned: the store does not verify), the invited one the oldest.
    const ids: string[] = [];
    for (let i = 0; i <= MAX_LISTING_RESULTS; i++) {
      const listing = ListingSchema.parse({
        ...description,
        provider: provider.clientId,
        createdAt: 1,
        nonce: i.toString(16).padStart(32, '0'),
      });
      const id = listingIdOf(listing);
      await store.saveListing({ id, listing, signature: '0'.repeat(128), publishedAt: new Date(1_000 + i) });
      ids.push(id);
    }
    await expect(
      assertMayJoin('job_x', job({ mode: 'invite', listings: [ids[0]] }), provider.clientId, store),
    ).resolves.toBeUndefined();
    expect(
      await codeOfAsync(() =>
        assertMayJoin(
          'job_x',
          job({ mode: 'invite', listings: ['lst_000000000000000000000000'] }),
          provider.clientId,
          store,
        ),
      ),
    ).toBe('JOB_ACCESS_DENIED');
  });

  it('refuses invite jobs naming unknown listings or listings whose schema does not fit', async () => {
    const { store, registry, now } = setup();
    const four = await registry.publish(
      signListing(generateIdentity(), { ...description, schema: { shape: [4], numClasses: 2 } }, now()),
    );
    const eight = await registry.publish(signListing(generateIdentity(), description, now()));
    await expect(
      assertInvitedListingsFit(job({ mode: 'invite', listings: ['lst_000000000000000000000000'] }), store),
    ).rejects.toMatchObject({
      code: 'JOB_SPEC_INVALID',
      message: expect.stringContaining('no listing lst_000000000000000000000000'),
    });
    await expect(
      assertInvitedListingsFit(job({ mode: 'invite', listings: [eight.id, four.id] }), store),
    ).rejects.toMatchObject({
      code: 'JOB_SPEC_INVALID',
      message: expect.stringContaining(`schema of ${four.id} does not match`),
    });
    await expect(
      assertInvitedListingsFit(job({ mode: 'invite', listings: [eight.id] }), store),
    ).resolves.toBeUndefined();
  });
});
