import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import { Wallet } from 'ethers';
import { LEAF_ENCODING } from '../../contracts/payouts';
import type { ParticipantRecord } from '../store/store';
import { buildPayoutPlan } from './payoutPlan';

const at = new Date(Date.UTC(2031, 0, 1));
const participant = (clientId: string, payoutAddress?: string): ParticipantRecord => ({
  jobId: 'job_x', clientId, joinedAt: at, lastSeenAt: at, roundsCompleted: 1, ...(payoutAddress ? { payoutAddress } : {}),
});

describe('buildPayoutPlan', () => {
  const [a, b] = [Wallet.createRandom().address, Wallet.createRandom().address];

  it('splits the pool by score per payout address, floors, and leaves the dust to the buyer', () => {
    const plan = buildPayoutPlan('job_x', 1000n, [
      { clientId: 'alice', score: 2 }, { clientId: 'bob', score: 1 }, { clientId: 'carol', score: 0 }, { clientId: 'nobody', score: 5 },
    ], [participant('alice', a), participant('bob', b), participant('carol', a), participant('nobody')], 'participation', at);
    const byAccount = new Map(plan.allocations.map((x) => [x.account, x]));
    expect(byAccount.get(a)).toMatchObject({ amountWei: '666', score: 2, clientIds: ['alice'] });
    expect(byAccount.get(b)).toMatchObject({ amountWei: '333', score: 1, clientIds: ['bob'] });
    expect(plan).toMatchObject({ totalWei: '999', dustWei: '1', poolWei: '1000', scoreLabel: 'participation' });
    // Every proof verifies against the root in the contract's leaf encoding.
    for (const x of plan.allocations) {
      expect(StandardMerkleTree.verify(plan.root, [...LEAF_ENCODING], [x.account, BigInt(x.amountWei)], x.proof)).toBe(true);
    }
  });

  it('adds up clients that share an address and gives the same root whatever the input order', () => {
    const participants = [participant('p1', a), participant('p2', a), participant('p3', b)];
    const scores = [{ clientId: 'p1', score: 1 }, { clientId: 'p2', score: 2 }, { clientId: 'p3', score: 3 }];
    const plan = buildPayoutPlan('job_x', 600n, scores, participants, 'participation', at);
    expect(plan.allocations.find((x) => x.account === a)).toMatchObject({ amountWei: '300', score: 3, clientIds: ['p1', 'p2'] });
    const reversed = buildPayoutPlan('job_x', 600n, [...scores].reverse(), [...participants].reverse(), 'participation', at);
    expect(reversed.root).toBe(plan.root);
  });

  it('pays nothing when nobody scored (the whole pool is dust)', () => {
    const plan = buildPayoutPlan('job_x', 10n, [{ clientId: 'alice', score: 0 }], [participant('alice', a)], 'participation', at);
    expect(plan).toMatchObject({ totalWei: '0', dustWei: '10', allocations: [] });
  });
});
