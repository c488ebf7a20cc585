import { id, type ContractTransactionReceipt, type JsonRpcSigner } from 'ethers';
import {
  decodeRevert,
  deployEscrow,
  deployRewardToken,
  type EscrowClient,
  JobStatus,
  NATIVE,
  type RewardToken,
  type CreateJobParams,
} from './escrow';
import { computePayouts } from './payouts';
import { startLocalChain, type LocalChain } from './testing';

let chain: LocalChain;
let escrow: EscrowClient;
let token: RewardToken;
let buyer: JsonRpcSigner, coordinator: JsonRpcSigner, relayer: JsonRpcSigner, stranger: JsonRpcSigner;
let contributors: JsonRpcSigner[];

beforeAll(async () => {
  chain = await startLocalChain();
  [buyer, coordinator, relayer, stranger, ...contributors] = chain.signers;
  contributors = contributors.slice(0, 4);
  escrow = await deployEscrow(buyer);
  token = await deployRewardToken(buyer);
  await token.mint(buyer.address, 10n ** 24n);
});
afterAll(async () => {
  await chain?.stop();
});

const as = (s: JsonRpcSigner) => escrow.connect(s);
const fee = (r: ContractTransactionReceipt) => r.fee;

async function newJob(over: Partial<CreateJobParams> = {}): Promise<bigint> {
  const now = await chain.now();
  const { jobId } = await escrow.createJob({
    specHash: id('spec'),
    token: token.address,
    budget: 10_000n,
    coordinator: coordinator.address,
    deadline: now + 3600n,
    challengeWindow: 600,
    ...over,
  });
  return jobId;
}

async function commitRounds(jobId: bigint, n: number): Promise<void> {
  for (let r = 1; r <= n; r++)
    await as(coordinator).commitRound(jobId, { round: r, modelHash: id(`model-${r}`), metric: 9000 + r });
}

async function settledJob(over: Partial<CreateJobParams> = {}, pool = 10_000n) {
  const jobId = await newJob(over);
  await commitRounds(jobId, 1);
  const plan = computePayouts(
    pool,
    contributors.slice(0, 3).map((c, i) => ({ account: c.address, score: i + 1 })),
  );
  await as(coordinator).settle(jobId, plan.root, plan.total);
  return { jobId, plan };
}

describe('happy path', () => {
  test('ERC-20: create, top up, commit rounds, settle, every contributor claims, buyer refunds the rest', async () => {
    const buyerStart = await token.balanceOf(buyer.address);
    const jobId = await newJob({ budget: 7_000n });
    await escrow.topUp(jobId, 3_001n);
    await commitRounds(jobId, 3);
    expect(await escrow.getRound(jobId, 2)).toEqual({ modelHash: id('model-2'), metric: 9002n });

    // 10 001 split 1:2:3:4 → 1000, 2000, 3000, 4000 + 1 dust (10001*k/10 floors).
    const plan = computePayouts(
      10_001n,
      contributors.map((c, i) => ({ account: c.address, score: i + 1 })),
    );
    expect(plan.allocations.map((a) => a.amount)).toEqual([1000n, 2000n, 3000n, 4000n]);
    expect(plan.dust).toBe(1n);
    await as(coordinator).settle(jobId, plan.root, plan.total);
    await chain.increaseTime(600);
    for (const a of plan.allocations) {
      // Contributors claim for themselves here; the ETH test uses a relayer.
      const c = contributors.find((s) => s.address === a.account)!;
      await as(c).claim(jobId, a);
      expect(await token.balanceOf(a.account)).toBe(a.amount);
      expect(await escrow.hasClaimed(jobId, a.account)).toBe(true);
    }
    await escrow.refund(jobId);

    const job = await escrow.getJob(jobId);
    expect(job).toMatchObject({
      status: JobStatus.Settled,
      budget: 10_001n,
      payoutTotal: 10_000n,
      claimed: 10_000n,
      refunded: 1n,
      held: 0n,
      lastRound: 3n,
    });
    expect(await token.balanceOf(buyer.address)).toBe(buyerStart - 10_000n);
    expect(await token.balanceOf(escrow.address)).toBe(0n);
  });

  test('native ETH: balances move exactly (gas accounted)', async () => {
    const p = chain.provider;
    const budget = 10n ** 18n + 2n;
    const buyerStart = await p.getBalance(buyer.address);
    const before = await Promise.all(contributors.map((c) => p.getBalance(c.address)));
    const now = await chain.now();
    const created = await escrow.createJob({
      specHash: id('eth'),
      token: NATIVE,
      budget: 10n ** 18n,
      coordinator: coordinator.address,
      deadline: now + 3600n,
      challengeWindow: 60,
    });
    const jobId = created.jobId;
    const topped = await escrow.topUp(jobId, 2n);
    await commitRounds(jobId, 2);
    const plan = computePayouts(
      budget,
      contributors.map((c, i) => ({ account: c.address, score: BigInt(i + 1) })),
    );
    await as(coordinator).settle(jobId, plan.root, plan.total);
    await chain.increaseTime(60);
    for (const a of plan.allocations) await as(relayer).claim(jobId, a);
    const refunded = await escrow.refund(jobId);

    const after = await Promise.all(contributors.map((c) => p.getBalance(c.address)));
    plan.allocations.forEach((a, i) => expect(after[i] - before[i]).toBe(a.amount));
    const spentOnGas = fee(created.receipt) + fee(topped) + fee(refunded);
    expect(buyerStart - (await p.getBalance(buyer.address)) - spentOnGas).toBe(plan.total);
    expect(await p.getBalance(escrow.address)).toBe(0n);
    expect((await escrow.getJob(jobId)).refunded).toBe(budget - plan.total);
  });

  test('recover after the deadline returns the whole budget', async () => {
    const now = await chain.now();
    const start = await token.balanceOf(buyer.address);
    const jobId = await newJob({ deadline: now + 100n });
    await commitRounds(jobId, 2);
    await chain.increaseTime(101);
    await escrow.recoverAfterDeadline(jobId);
    expect(await token.balanceOf(buyer.address)).toBe(start);
    expect(await escrow.getJob(jobId)).toMatchObject({ status: JobStatus.Recovered, held: 0n, refunded: 10_000n });
  });

  test('commitRound is idempotent for an identical retry and rejects conflicting data', async () => {
    const jobId = await newJob();
    const c = as(coordinator);
    expect((await c.commitRound(jobId, { round: 1, modelHash: id('a'), metric: 1 })).recorded).toBe(true);
    const retry = await c.commitRound(jobId, { round: 1, modelHash: id('a'), metric: 1 });
    expect(retry.recorded).toBe(false);
    expect(retry.receipt.logs).toHaveLength(0);
    expect((await escrow.getJob(jobId)).lastRound).toBe(1n);
    await expect(c.commitRound(jobId, { round: 1, modelHash: id('b'), metric: 1 })).rejects.toMatchObject({
      errorName: 'RoundConflict',
    });
    await expect(c.commitRound(jobId, { round: 1, modelHash: id('a'), metric: 2 })).rejects.toMatchObject({
      errorName: 'RoundConflict',
    });
    await expect(c.commitRound(jobId, { round: 3, modelHash: id('c'), metric: 1 })).rejects.toMatchObject({
      errorName: 'RoundOutOfOrder',
      args: [jobId, 2n, 3n],
    });
    await expect(c.commitRound(jobId, { round: 0, modelHash: id('c'), metric: 1 })).rejects.toMatchObject({
      errorName: 'RoundOutOfOrder',
    });
    expect((await c.commitRound(jobId, { round: 2, modelHash: id('c'), metric: 1 })).recorded).toBe(true);
  });
});

describe('reverts', () => {
  const revert = (p: Promise<unknown>, errorName: string) =>
    expect(p.catch((e: unknown) => Promise.reject(decodeRevert(e) ?? e))).rejects.toMatchObject({
      name: 'EscrowRevertError',
      errorName,
    });

  test('createJob validates its inputs and the deposit', async () => {
    const now = await chain.now();
    const base = {
      specHash: id('x'),
      token: NATIVE,
      budget: 5n,
      coordinator: coordinator.address,
      deadline: now + 100n,
      challengeWindow: 0,
    };
    await revert(escrow.createJob({ ...base, coordinator: NATIVE }), 'ZeroAddress');
    await revert(escrow.createJob({ ...base, budget: 0n }), 'ZeroAmount');
    await revert(escrow.createJob({ ...base, deadline: now }), 'InvalidDeadline');
    await revert(
      escrow.contract.createJob(base.specHash, NATIVE, 5n, coordinator.address, now + 100n, 0, { value: 4n }),
      'ValueMismatch',
    );
    await revert(
      escrow.contract.createJob(base.specHash, token.address, 5n, coordinator.address, now + 100n, 0, { value: 1n }),
      'ValueMismatch',
    );
  });

  test('unknown job', async () => {
    await revert(escrow.getJob(10_000n), 'UnknownJob');
    await revert(as(coordinator).commitRound(10_000n, { round: 1, modelHash: id('m'), metric: 1 }), 'UnknownJob');
  });

  test('top-up by a non-buyer, after settlement, after the deadline', async () => {
    const jobId = await newJob({ deadline: (await chain.now()) + 100n });
    await token.mint(stranger.address, 100n);
    await revert(as(stranger).topUp(jobId, 5n, { token: token.address }), 'NotBuyer');
    await chain.increaseTime(101);
    await revert(escrow.topUp(jobId, 5n), 'DeadlinePassed');
    const { jobId: settled } = await settledJob();
    await revert(escrow.topUp(settled, 5n), 'JobNotOpen');
  });

  test('non-coordinator commit or settle', async () => {
    const jobId = await newJob();
    await revert(as(stranger).commitRound(jobId, { round: 1, modelHash: id('m'), metric: 1 }), 'NotCoordinator');
    await revert(as(buyer).commitRound(jobId, { round: 1, modelHash: id('m'), metric: 1 }), 'NotCoordinator');
    await commitRounds(jobId, 1);
    await revert(as(stranger).settle(jobId, id('root'), 1n), 'NotCoordinator');
    await revert(as(buyer).settle(jobId, id('root'), 1n), 'NotCoordinator');
  });

  test('settle twice, without rounds, with a zero root, above the budget, after the deadline', async () => {
    const jobId = await newJob({ deadline: (await chain.now()) + 100n });
    await revert(as(coordinator).settle(jobId, id('root'), 1n), 'NoRoundsCommitted');
    await commitRounds(jobId, 1);
    await revert(as(coordinator).settle(jobId, id('root'), 10_001n), 'PayoutExceedsBudget');
    await revert(as(coordinator).settle(jobId, `0x${'00'.repeat(32)}`, 1n), 'InvalidPayoutRoot');
    await as(coordinator).settle(jobId, id('root'), 10_000n);
    await revert(as(coordinator).settle(jobId, id('root'), 10_000n), 'AlreadySettled');
    await revert(as(coordinator).commitRound(jobId, { round: 2, modelHash: id('m'), metric: 1 }), 'JobNotOpen');

    const late = await newJob({ deadline: (await chain.now()) + 100n });
    await commitRounds(late, 1);
    await chain.increaseTime(101);
    await revert(as(coordinator).settle(late, id('root'), 1n), 'DeadlinePassed');
    await revert(as(coordinator).commitRound(late, { round: 2, modelHash: id('m'), metric: 1 }), 'DeadlinePassed');
  });

  test('claim before settlement and before the challenge window ends', async () => {
    const jobId = await newJob();
    await commitRounds(jobId, 1);
    const plan = computePayouts(10_000n, [
      { account: contributors[0].address, score: 1 },
      { account: contributors[1].address, score: 1 },
    ]);
    await revert(escrow.claim(jobId, plan.allocations[0]), 'NotSettled');
    await as(coordinator).settle(jobId, plan.root, plan.total);
    await revert(escrow.claim(jobId, plan.allocations[0]), 'ClaimsNotOpen');
    await chain.increaseTime(598);
    await revert(escrow.claim(jobId, plan.allocations[0]), 'ClaimsNotOpen');
    await chain.increaseTime(2);
    await escrow.claim(jobId, plan.allocations[0]);
  });

  test('double claim, bad proof, claim above allocation', async () => {
    const { jobId, plan } = await settledJob();
    await chain.increaseTime(600);
    const [a, b] = plan.allocations;
    await escrow.claim(jobId, a);
    await revert(escrow.claim(jobId, a), 'AlreadyClaimed');
    await revert(escrow.claim(jobId, { ...b, proof: [id('junk')] }), 'InvalidProof');
    await revert(escrow.claim(jobId, { ...b, proof: [] }), 'InvalidProof');
    // b's proof with a's (larger or smaller) amount, and b's amount for another account.
    await revert(escrow.claim(jobId, { ...b, amount: b.amount + 1n }), 'InvalidProof');
    await revert(escrow.claim(jobId, { ...b, account: stranger.address }), 'InvalidProof');
    await escrow.claim(jobId, b);
  });

  test('a root whose leaves sum above its total cannot pay more than the total', async () => {
    const jobId = await newJob();
    await commitRounds(jobId, 1);
    const plan = computePayouts(10_000n, [
      { account: contributors[0].address, score: 1 },
      { account: contributors[1].address, score: 1 },
    ]);
    await as(coordinator).settle(jobId, plan.root, 6_000n); // leaves sum to 10 000
    await chain.increaseTime(600);
    await escrow.claim(jobId, plan.allocations[0]);
    await revert(escrow.claim(jobId, plan.allocations[1]), 'ClaimExceedsTotal');
    await escrow.refund(jobId);
    expect((await escrow.getJob(jobId)).refunded).toBe(4_000n);
  });

  test('early refund, refund by a non-buyer, refund twice (only the remainder)', async () => {
    const jobId = await newJob();
    await revert(escrow.refund(jobId), 'NotSettled');
    await commitRounds(jobId, 1);
    const plan = computePayouts(9_000n, [{ account: contributors[0].address, score: 1 }]);
    await as(coordinator).settle(jobId, plan.root, plan.total);
    await revert(as(stranger).refund(jobId), 'NotBuyer');
    const start = await token.balanceOf(buyer.address);
    await escrow.refund(jobId);
    expect((await token.balanceOf(buyer.address)) - start).toBe(1_000n);
    await revert(escrow.refund(jobId), 'NothingToRefund');
    await chain.increaseTime(600);
    await escrow.claim(jobId, plan.allocations[0]);
    expect((await escrow.getJob(jobId)).held).toBe(0n);
  });

  test('recover before the deadline, after settlement, twice, by a non-buyer', async () => {
    const { jobId } = await settledJob();
    await revert(escrow.recoverAfterDeadline(jobId), 'AlreadySettled');
    await chain.increaseTime(3601);
    await revert(escrow.recoverAfterDeadline(jobId), 'AlreadySettled');

    const open = await newJob({ deadline: (await chain.now()) + 100n });
    await revert(escrow.recoverAfterDeadline(open), 'DeadlineNotReached');
    await chain.increaseTime(101);
    await revert(as(stranger).recoverAfterDeadline(open), 'NotBuyer');
    await escrow.recoverAfterDeadline(open);
    await revert(escrow.recoverAfterDeadline(open), 'JobNotOpen');
    await revert(escrow.refund(open), 'NotSettled');
  });
});

test('contractGasBench reports commitRound and claim gas', async () => {
  const { contractGasBench } = await import('./gas.bench');
  const g = await contractGasBench(8);
  for (const v of [g.commitRoundFirst, g.commitRoundNext, g.commitRoundRetry, g.claimErc20, g.claimEth]) {
    expect(v).toBeGreaterThan(21_000);
    expect(v).toBeLessThan(150_000);
  }
  expect(g.commitRoundRetry).toBeLessThan(g.commitRoundNext);
});
