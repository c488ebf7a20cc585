import { randomUUID } from 'node:crypto';
import type { ApiKeyRecord, JobRecord, SlotClaim, Store } from './store';

/*
 * The claim-slot part of the Store contract (registered by runStoreContract, so it runs against
 * every backend): a quota of N admits N holders and no more, also when claimants race on separate
 * connections (two nodes); a slot frees when its holder's record ends, is released, or never
 * appears within pendingMs; escrow slots stay bound to a job whatever its status.
 */

const T0 = new Date(Date.UTC(2031, 5, 1, 0, 0, 0));
const at = (ms: number) => new Date(T0.getTime() + ms);
const PENDING_MS = 60_000;

const claimOf = (scope: string, holder: string, overrides: Partial<SlotClaim> = {}): SlotClaim => ({
  kind: 'jobs',
  scope,
  holder,
  limit: 2,
  now: at(0),
  pendingMs: PENDING_MS,
  ...overrides,
});

/** Registers the claim-slot contract tests; `second` opens another store on the same data (or returns the same one). */
export function describeSlotClaimContract(
  getStore: () => Store,
  second: () => Promise<Store>,
  makeJob: (overrides?: Partial<JobRecord>) => JobRecord,
): void {
  describe('claim slots (cluster-wide admission)', () => {
    const scopeOf = () => `owner-${randomUUID()}`;

    it('admits `limit` holders, answers a holder that asks again with "held", and refuses the next with the holders', async () => {
      const store = getStore();
      const scope = scopeOf();
      expect(await store.claimSlot(claimOf(scope, 'a'))).toEqual({ outcome: 'claimed' });
      expect(await store.claimSlot(claimOf(scope, 'b'))).toEqual({ outcome: 'claimed' });
      expect(await store.claimSlot(claimOf(scope, 'a'))).toEqual({ outcome: 'held' });
      const refused = await store.claimSlot(claimOf(scope, 'c'));
      expect(refused.outcome).toBe('refused');
      expect(refused.outcome === 'refused' && [...refused.holders].sort()).toEqual(['a', 'b']);
      // Another scope has its own slots.
      expect(await store.claimSlot(claimOf(scopeOf(), 'c'))).toEqual({ outcome: 'claimed' });
    });

    it('frees a slot on release, and once pendingMs passes without the holder record appearing', async () => {
      const store = getStore();
      const scope = scopeOf();
      await store.claimSlot(claimOf(scope, 'a', { limit: 1 }));
      expect((await store.claimSlot(claimOf(scope, 'b', { limit: 1, now: at(PENDING_MS - 1) }))).outcome).toBe(
        'refused',
      );
      expect(await store.claimSlot(claimOf(scope, 'b', { limit: 1, now: at(PENDING_MS) }))).toEqual({
        outcome: 'claimed',
      });
      await store.releaseSlot('jobs', scope, 'b');
      // Releasing what one does not hold changes nothing.
      await store.releaseSlot('jobs', scope, 'nobody');
      expect(await store.claimSlot(claimOf(scope, 'c', { limit: 1 }))).toEqual({ outcome: 'claimed' });
      expect((await store.claimSlot(claimOf(scope, 'd', { limit: 1 }))).outcome).toBe('refused');
    });

    it('holds a job quota slot while the job is pending or running, and frees it once the job ends', async () => {
      const store = getStore();
      const scope = scopeOf();
      const job = makeJob({ id: `job_slot-${randomUUID()}`, status: 'running' });
      await store.claimSlot(claimOf(scope, job.id, { limit: 1 }));
      await store.createJob(job);
      // Long past pendingMs: the record exists and runs, so the slot is still held.
      const later = at(10 * PENDING_MS);
      expect((await store.claimSlot(claimOf(scope, 'next', { limit: 1, now: later }))).outcome).toBe('refused');
      await store.updateJob(job.id, { status: 'completed' });
      expect(await store.claimSlot(claimOf(scope, 'next', { limit: 1, now: later }))).toEqual({ outcome: 'claimed' });
    });

    it('keeps an escrow slot bound to its job whatever the job status', async () => {
      const store = getStore();
      const scope = `31337:0x${'ab'.repeat(20)}:${Math.floor(Math.random() * 1e9) + 1}`;
      const job = makeJob({ id: `job_slot-${randomUUID()}`, status: 'pending' });
      const escrow = (holder: string) => claimOf(scope, holder, { kind: 'escrow', limit: 1, now: at(10 * PENDING_MS) });
      await store.claimSlot({ ...escrow(job.id), now: at(0) });
      await store.createJob(job);
      await store.updateJob(job.id, { status: 'failed' });
      expect(await store.claimSlot(escrow('other'))).toEqual({ outcome: 'refused', holders: [job.id] });
    });

    it('frees an API key slot when the key is revoked or expires', async () => {
      const store = getStore();
      const scope = scopeOf();
      const key = (id: string, expiresAt: Date): ApiKeyRecord => ({
        id,
        owner: scope,
        name: id,
        scopes: ['jobs:read'],
        tokenHash: 'f'.repeat(64),
        createdAt: at(0),
        expiresAt,
      });
      const keyId = () => randomUUID().replace(/-/g, '').slice(0, 16);
      const [a, b, c] = [keyId(), keyId(), keyId()];
      const keys = (holder: string, now = at(1)) => claimOf(scope, holder, { kind: 'api-keys', now });
      await store.claimSlot(keys(a));
      await store.saveApiKey(key(a, at(PENDING_MS * 100)));
      await store.claimSlot(keys(b));
      await store.saveApiKey(key(b, at(PENDING_MS * 2)));
      expect((await store.claimSlot(keys(c))).outcome).toBe('refused');
      await store.revokeApiKey(a, at(2));
      expect(await store.claimSlot(keys(c))).toEqual({ outcome: 'claimed' });
      await store.saveApiKey(key(c, at(PENDING_MS * 100)));
      expect((await store.claimSlot(keys('d', at(PENDING_MS * 2 - 1)))).outcome).toBe('refused');
      // b expired: its slot is free again.
      expect(await store.claimSlot(keys('d', at(PENDING_MS * 2)))).toEqual({ outcome: 'claimed' });
    });

    it('admits exactly `limit` of many claimants racing on two connections', async () => {
      const stores = [getStore(), await second()];
      const scope = scopeOf();
      const outcomes = await Promise.all(
        Array.from({ length: 12 }, (_, i) => stores[i % 2].claimSlot(claimOf(scope, `h${i}`, { limit: 3 }))),
      );
      expect(outcomes.filter((o) => o.outcome === 'claimed')).toHaveLength(3);
      expect(outcomes.filter((o) => o.outcome === 'refused')).toHaveLength(9);
      const final = await getStore().claimSlot(claimOf(scope, 'late', { limit: 3 }));
      expect(final.outcome === 'refused' && final.holders).toHaveLength(3);
    });
  });
}
