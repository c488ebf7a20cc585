import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import fc from 'fast-check';
import { Wallet } from 'ethers';
import { LEAF_ENCODING } from '../../contracts/payouts';
import type { ParticipantRecord } from '../store/store';
import { buildPayoutPlan } from './payoutPlan';

const at = new Date(Date.UTC(2031, 0, 1));
const participant = (clientId: string, payoutAddress?: string): ParticipantRecord => ({
  jobId: 'job_x',
  clientId,
  joinedAt: at,
  lastSeenAt: at,
  roundsCompleted: 1,
  ...(payoutAddress ? { payoutAddress } : {}),
});

describe('buildPayoutPlan', () => {
  const [a, b] = [Wallet.createRandom().address, Wallet.createRandom().address];

  it('splits the pool by score per payout address, floors, and leaves the dust to the buyer', () => {
    const plan = buildPayoutPlan(
      'job_x',
      1000n,
      [
        { clientId: 'alice', score: 2 },
        { clientId: 'bob', score: 1 },
        { clientId: 'carol', score: 0 },
        { clientId: 'nobody', score: 5 },
      ],
      [participant('alice', a), participant('bob', b), participant('carol', a), participant('nobody')],
      'participation',
      at,
    );
    const byAccount = new Map(plan.allocations.map((x) => [x.account, x]));
    expect(byAccount.get(a)).toMatchObject({ amountWei: '666', score: 2, clientIds: ['alice'] });
    expect(byAccount.get(b)).toMatchObject({ amountWei: '333', score: 1, clientIds: ['bob'] });
    expect(plan).toMatchObject({ totalWei: '999', dustWei: '1', poolWei: '1000', scoreLabel: 'participation' });
    // Every proof verifies against the root in the contract's leaf encoding.
    for (const x of plan.allocations) {
      expect(StandardMerkleTree.verify(plan.root, [...LEAF_ENCODING], [x.account, BigInt(x.amountWei)], x.proof)).toBe(
        true,
      );
    }
  });

  it('adds up clients that share an address and gives the same root whatever the input order', () => {
    const participants = [participant('p1', a), participant('p2', a), participant('p3', b)];
    const scores = [
      { clientId: 'p1', score: 1 },
      { clientId: 'p2', score: 2 },
      { clientId: 'p3', score: 3 },
    ];
    const plan = buildPayoutPlan('job_x', 600n, scores, participants, 'participation', at);
    expect(plan.allocations.find((x) => x.account === a)).toMatchObject({
      amountWei: '300',
      score: 3,
      clientIds: ['p1', 'p2'],
    });
    const reversed = buildPayoutPlan(
      'job_x',
      600n,
      [...scores].reverse(),
      [...participants].reverse(),
      'participation',
      at,
    );
    expect(reversed.root).toBe(plan.root);
  });

  it('pays nothing when nobody scored (the whole pool is dust)', () => {
    const plan = buildPayoutPlan(
      'job_x',
      10n,
      [{ clientId: 'alice', score: 0 }],
      [participant('alice', a)],
      'participation',
      at,
    );
    expect(plan).toMatchObject({ totalWei: '0', dustWei: '10', allocations: [] });
  });

  it('never pays more than the pool, loses nothing (paid + dust == pool), and pays only bound addresses', () => {
    const wallets = Array.from({ length: 4 }, () => Wallet.createRandom().address);
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 10n ** 24n }),
        fc.array(
          fc.record({ client: fc.integer({ min: 0, max: 7 }), score: fc.double({ min: 0, max: 1e6, noNaN: true }) }),
          { maxLength: 12 },
        ),
        fc.array(fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }), { minLength: 8, maxLength: 8 }),
        (pool, scored, bindings) => {
          const participants = bindings.map((w, i) => participant(`c${i}`, w === undefined ? undefined : wallets[w]));
          // One score per client (the scorer's contract); later entries for a client are dropped.
          const seen = new Set<number>();
          const scores = scored
            .filter((s) => !seen.has(s.client) && seen.add(s.client))
            .map((s) => ({ clientId: `c${s.client}`, score: s.score }));
          const plan = buildPayoutPlan('job_x', pool, scores, participants, 'participation', at);
          const paid = plan.allocations.reduce((sum, a) => sum + BigInt(a.amountWei), 0n);
          expect(paid).toBe(BigInt(plan.totalWei));
          expect(paid + BigInt(plan.dustWei)).toBe(pool);
          expect(paid <= pool).toBe(true);
          for (const a of plan.allocations) {
            expect(BigInt(a.amountWei) > 0n).toBe(true);
            expect(
              a.clientIds.every((id) => participants.find((p) => p.clientId === id)?.payoutAddress === a.account),
            ).toBe(true);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
