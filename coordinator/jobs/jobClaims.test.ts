import { hasCode } from '../../shared/errors';
import { JobSpecSchema, type JobSpec } from '../../shared/schemas/jobSpec';
import { MemoryStore } from '../store/memoryStore';
import type { JobRecord, Store } from '../store/store';
import { claimJobSlots } from './jobClaims';

const ESCROW = { chainId: 31337, escrow: `0x${'Ab'.repeat(20)}`, jobId: '7' };

const baseSpec = JobSpecSchema.parse({
  name: 'claims',
  model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
  input: { shape: [3], numClasses: 2 },
  rounds: 1,
  secureAggregation: 'none',
});
// Only the escrow job's coordinates matter to the claims; the rest of the chain config is checked on chain.
const paidSpec = { ...baseSpec, chain: { ...ESCROW } } as unknown as JobSpec;

const recordOf = (id: string, spec: JobSpec, owner: string): JobRecord => ({
  id,
  spec,
  status: spec.chain ? 'pending' : 'running',
  currentRound: 0,
  modelHash: '0'.repeat(64),
  weightManifest: [],
  owner,
  createdAt: new Date(),
  updatedAt: new Date(),
});

let next = 0;
/**
 * One job creation as a coordinator node runs it: the creation checks (ChainService.assertUsable's
 * "no job is bound to this escrow job yet" and its quota count), an await (the chain read), the
 * claims, then the record. Several of these at once are several nodes admitting at once.
 */
async function create(store: Store, spec: JobSpec, owner: string, limit?: number): Promise<string> {
  const bound = !!spec.chain && (await store.listJobs()).some((j) => j.spec.chain?.jobId === spec.chain?.jobId);
  if (bound) return 'ESCROW_ALREADY_BOUND (listed)';
  await new Promise((resolve) => setTimeout(resolve, 5));
  const id = `job_claims${next++}`;
  try {
    const release = await claimJobSlots(store, id, spec, limit === undefined ? undefined : { owner, limit });
    if (owner === 'fails') {
      await release();
      return 'creation failed';
    }
  } catch (err) {
    return hasCode(err, 'ESCROW_ALREADY_BOUND') ? 'ESCROW_ALREADY_BOUND' : String((err as { code?: string }).code);
  }
  await store.createJob(recordOf(id, spec, owner));
  return 'created';
}

/** A MemoryStore whose claims always succeed: the coordinator before claim slots. */
function withoutClaims(store: MemoryStore): Store {
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'claimSlot') return async () => ({ outcome: 'claimed' });
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

describe('claimJobSlots', () => {
  it('binds one job to an escrow job when four creations race, and without the claim binds all four', async () => {
    const store = new MemoryStore();
    const outcomes = await Promise.all([0, 1, 2, 3].map((i) => create(store, paidSpec, `buyer${i}`)));
    expect(outcomes.sort()).toEqual([
      'ESCROW_ALREADY_BOUND',
      'ESCROW_ALREADY_BOUND',
      'ESCROW_ALREADY_BOUND',
      'created',
    ]);
    // Later posts are refused by the claim and by the list alike.
    expect(await create(store, paidSpec, 'late')).toBe('ESCROW_ALREADY_BOUND (listed)');

    // The control: the same race with the claim removed admits every post (the list check alone has a gap).
    const unguarded = withoutClaims(new MemoryStore());
    const racing = await Promise.all([0, 1, 2, 3].map((i) => create(unguarded, paidSpec, `buyer${i}`)));
    expect(racing).toEqual(['created', 'created', 'created', 'created']);
  });

  it('holds an owner quota under a burst, and without the claim lets the burst through', async () => {
    const store = new MemoryStore();
    const outcomes = await Promise.all(Array.from({ length: 6 }, () => create(store, baseSpec, 'owner', 2)));
    expect(outcomes.filter((o) => o === 'created')).toHaveLength(2);
    expect(outcomes.filter((o) => o === 'QUOTA_EXCEEDED')).toHaveLength(4);

    const unguarded = withoutClaims(new MemoryStore());
    const racing = await Promise.all(Array.from({ length: 6 }, () => create(unguarded, baseSpec, 'owner', 2)));
    expect(racing.filter((o) => o === 'created')).toHaveLength(6);
  });

  it('gives the escrow job and the quota slot back when the creation fails', async () => {
    const store = new MemoryStore();
    expect(await create(store, paidSpec, 'fails', 1)).toBe('creation failed');
    expect(await create(store, paidSpec, 'fails', 1)).toBe('creation failed');
    expect(await create(store, paidSpec, 'buyer', 1)).toBe('created');
  });

  it('refuses a quota over its limit before claiming the escrow job for good', async () => {
    const store = new MemoryStore();
    expect(await create(store, baseSpec, 'owner', 1)).toBe('created');
    expect(await create(store, paidSpec, 'owner', 1)).toBe('QUOTA_EXCEEDED');
    // The escrow claim of the refused creation was given back: another identity binds it.
    expect(await create(store, paidSpec, 'other', 1)).toBe('created');
  });
});
