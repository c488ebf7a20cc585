import { id, ZeroHash, type ContractTransactionReceipt, type JsonRpcSigner } from 'ethers';
import {
  claimableAmount,
  decodeRevert,
  DEFAULT_CLAIM_PERIOD,
  deployEscrow,
  deployRewardToken,
  type EscrowClient,
  JobStatus,
  NATIVE,
  type RewardToken,
  type CreateJobParams,
  MAX_WINDOW,
  MIN_ARBITRATION_WINDOW,
  MIN_CLAIM_PERIOD,
} from './escrow';
import { computePayouts } from './payouts';
import { startLocalChain, type LocalChain } from './testing';

let chain: LocalChain;
let escrow: EscrowClient;
let token: RewardToken;
let buyer: JsonRpcSigner, coordinator: JsonRpcSigner, relayer: JsonRpcSigner, stranger: JsonRpcSigner;
let arbiter: JsonRpcSigner;
let contributors: JsonRpcSigner[];

beforeAll(async () => {
  chain = await startLocalChain();
  [buyer, coordinator, relayer, stranger, ...contributors] = chain.signers;
  arbiter = chain.signers[8];
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
    arbiter: arbiter.address,
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
    expect(await escrow.getRound(jobId, 2)).toEqual({
      modelHash: id('model-2'),
      metric: 9002n,
      transcriptHash: ZeroHash,
    });

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
      arbiter: arbiter.address,
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
      arbiter: arbiter.address,
      deadline: now + 100n,
      challengeWindow: 0,
    };
    const terms = (over: Record<string, unknown> = {}) => ({
      specHash: base.specHash,
      token: NATIVE,
      amount: 5n,
      coordinator: coordinator.address,
      arbiter: arbiter.address,
      deadline: now + 100n,
      challengeWindow: 0,
      arbitrationWindow: MIN_ARBITRATION_WINDOW,
      claimPeriod: MIN_CLAIM_PERIOD,
      ...over,
    });
    await revert(escrow.createJob({ ...base, coordinator: NATIVE }), 'ZeroAddress');
    await revert(escrow.createJob({ ...base, budget: 0n }), 'ZeroAmount');
    await revert(escrow.createJob({ ...base, deadline: now }), 'InvalidDeadline');
    await revert(escrow.contract.createJob(terms(), { value: 4n }), 'ValueMismatch');
    await revert(escrow.contract.createJob(terms({ token: token.address }), { value: 1n }), 'ValueMismatch');
  });

  test('createJob refuses an arbiter that is nobody, the buyer or the coordinator, and windows out of bounds', async () => {
    const now = await chain.now();
    const base = {
      specHash: id('x'),
      token: NATIVE,
      budget: 5n,
      coordinator: coordinator.address,
      arbiter: arbiter.address,
      deadline: now + 100n,
      challengeWindow: 0,
    };
    for (const bad of [NATIVE, buyer.address, coordinator.address])
      await expect(escrow.createJob({ ...base, arbiter: bad })).rejects.toMatchObject({
        errorName: 'InvalidArbiter',
        args: [bad],
      });
    await expect(escrow.createJob({ ...base, arbitrationWindow: MIN_ARBITRATION_WINDOW - 1n })).rejects.toMatchObject({
      errorName: 'ArbitrationWindowTooShort',
      args: [MIN_ARBITRATION_WINDOW - 1n, MIN_ARBITRATION_WINDOW],
    });
    await expect(escrow.createJob({ ...base, claimPeriod: MIN_CLAIM_PERIOD - 1n })).rejects.toMatchObject({
      errorName: 'ClaimPeriodTooShort',
    });
    for (const over of [
      { challengeWindow: MAX_WINDOW + 1n },
      { arbitrationWindow: MAX_WINDOW + 1n },
      { claimPeriod: 2n ** 64n - 1n },
    ])
      await expect(escrow.createJob({ ...base, ...over })).rejects.toMatchObject({ errorName: 'WindowTooLong' });
    const next = (await escrow.contract.nextJobId()) as bigint;
    const { jobId } = await escrow.createJob({ ...base, arbitrationWindow: MAX_WINDOW, claimPeriod: MIN_CLAIM_PERIOD });
    expect(jobId).toBe(next); // nothing above consumed an id
    expect(await escrow.getJob(jobId)).toMatchObject({
      arbiter: arbiter.address,
      arbitrationWindow: MAX_WINDOW,
      claimPeriod: MIN_CLAIM_PERIOD,
      disputed: false,
      haircut: false,
      swept: 0n,
    });
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

describe('round transcripts', () => {
  test('commitRound records the transcript hash; a retry must repeat it exactly', async () => {
    const jobId = await newJob();
    const c = as(coordinator);
    const first = { round: 1, modelHash: id('m1'), metric: 7, transcriptHash: id('transcript-1') };
    const { recorded, receipt } = await c.commitRound(jobId, first);
    expect(recorded).toBe(true);
    const event = receipt.logs
      .map((l) => escrow.contract.interface.parseLog(l))
      .find((e) => e?.name === 'RoundCommitted');
    expect(event?.args.transcriptHash).toBe(id('transcript-1'));
    expect(await escrow.getRound(jobId, 1)).toEqual({
      modelHash: id('m1'),
      metric: 7n,
      transcriptHash: id('transcript-1'),
    });
    expect((await c.commitRound(jobId, first)).recorded).toBe(false);
    await expect(c.commitRound(jobId, { ...first, transcriptHash: id('other') })).rejects.toMatchObject({
      errorName: 'RoundConflict',
    });
    await expect(c.commitRound(jobId, { ...first, transcriptHash: undefined })).rejects.toMatchObject({
      errorName: 'RoundConflict',
    });
    // Without a transcript the round records bytes32 0.
    await c.commitRound(jobId, { round: 2, modelHash: id('m2'), metric: 8 });
    expect((await escrow.getRound(jobId, 2)).transcriptHash).toBe(ZeroHash);
  });
});

/** A settled job whose root the coordinator tampered with: it pays itself everything. */
async function tamperedJob(pool = 10_000n) {
  const jobId = await newJob({ budget: pool });
  await commitRounds(jobId, 2);
  const honest = computePayouts(
    pool,
    contributors.slice(0, 3).map((c, i) => ({ account: c.address, score: i + 1 })),
  );
  const tampered = computePayouts(pool, [
    { account: coordinator.address, score: 1 },
    { account: contributors[3].address, score: 0 },
  ]);
  await as(coordinator).settle(jobId, tampered.root, tampered.total);
  return { jobId, honest, tampered };
}

describe('disputes', () => {
  const revert = (p: Promise<unknown>, errorName: string, args?: unknown[]) =>
    expect(p).rejects.toMatchObject(args ? { errorName, args } : { errorName });

  test('a tampered root disputed by the buyer is corrected by the arbiter: claims freeze, then pay the corrected tree', async () => {
    const { jobId, honest, tampered } = await tamperedJob();
    const start = await token.balanceOf(buyer.address);
    const raised = await escrow.dispute(jobId);
    const disputedAt = BigInt((await chain.provider.getBlock(raised.blockNumber))!.timestamp);
    const ev = raised.logs.map((l) => escrow.contract.interface.parseLog(l)).find((e) => e?.name === 'DisputeRaised');
    expect(ev?.args.by).toBe(buyer.address);
    expect(ev?.args.arbitrationEndsAt).toBe(disputedAt + 3n * 86_400n);
    expect(await escrow.getJob(jobId)).toMatchObject({ status: JobStatus.Disputed, disputed: true, disputedAt });

    // Frozen: past the challenge window nobody claims, the buyer cannot refund, the coordinator cannot re-settle.
    await chain.increaseTime(601);
    await revert(escrow.claim(jobId, tampered.allocations[0]), 'NotSettled', [jobId, BigInt(JobStatus.Disputed)]);
    await revert(escrow.refund(jobId), 'NotSettled');
    await revert(escrow.sweep(jobId), 'NotSettled');
    await revert(as(coordinator).settle(jobId, honest.root, honest.total), 'AlreadySettled');
    await revert(escrow.recoverAfterDeadline(jobId), 'AlreadySettled');

    // Only the arbiter answers, with a root and a total the escrow can pay.
    await revert(escrow.resolveDispute(jobId, honest.root, honest.total), 'NotArbiter');
    await revert(as(coordinator).resolveDispute(jobId, honest.root, honest.total), 'NotArbiter');
    await revert(as(arbiter).resolveDispute(jobId, honest.root, 10_001n), 'PayoutExceedsBudget');
    await revert(as(arbiter).resolveDispute(jobId, ZeroHash, 1n), 'InvalidPayoutRoot');
    const resolved = await as(arbiter).resolveDispute(jobId, honest.root, honest.total);
    const now = BigInt((await chain.provider.getBlock(resolved.blockNumber))!.timestamp);
    expect(await escrow.getJob(jobId)).toMatchObject({
      status: JobStatus.Settled,
      payoutRoot: honest.root,
      payoutTotal: honest.total,
      claimsOpenAt: now,
    });
    await revert(as(arbiter).resolveDispute(jobId, honest.root, honest.total), 'NotDisputed');
    await revert(escrow.dispute(jobId), 'AlreadyDisputed'); // one dispute per job

    // The coordinator's tampered leaf is worthless now; the honest leaves pay in full, at once.
    await revert(escrow.claim(jobId, tampered.allocations[0]), 'InvalidProof');
    for (const a of honest.allocations) {
      const before = await token.balanceOf(a.account);
      await as(relayer).claim(jobId, a);
      expect((await token.balanceOf(a.account)) - before).toBe(a.amount);
    }
    expect(await token.balanceOf(coordinator.address)).toBe(0n);
    await escrow.refund(jobId);
    expect((await token.balanceOf(buyer.address)) - start).toBe(honest.dust);
    expect(await escrow.getJob(jobId)).toMatchObject({ held: 0n, claimed: honest.total, refunded: honest.dust });
  });

  test('an unanswered dispute expires: claims reopen at half, the other half returns to the buyer', async () => {
    const { jobId, tampered } = await tamperedJob(10_001n);
    // The arbiter may raise the dispute too.
    await as(arbiter).dispute(jobId);
    await revert(escrow.expireDispute(jobId), 'ArbitrationPending');
    await chain.increaseTime(3n * 86_400n - 5n);
    await revert(as(stranger).expireDispute(jobId), 'ArbitrationPending');
    await chain.increaseTime(5);
    // Too late for the arbiter; anyone may apply the rule.
    await revert(as(arbiter).resolveDispute(jobId, tampered.root, tampered.total), 'ArbitrationOver');
    const start = await token.balanceOf(buyer.address);
    await as(stranger).expireDispute(jobId);
    const job = await escrow.getJob(jobId);
    expect(job).toMatchObject({ status: JobStatus.Settled, haircut: true, payoutRoot: tampered.root });
    expect(job.payoutTotal).toBe(tampered.total / 2n);
    await revert(escrow.expireDispute(jobId), 'NotDisputed');

    // The coordinator's stolen leaf pays half; a claim cannot be replayed for the other half.
    const [leaf] = tampered.allocations;
    expect(leaf.amount).toBe(10_001n);
    await escrow.claim(jobId, leaf);
    expect(await token.balanceOf(coordinator.address)).toBe(claimableAmount(job, leaf.amount));
    expect(claimableAmount(job, leaf.amount)).toBe(5_000n);
    await revert(escrow.claim(jobId, leaf), 'AlreadyClaimed');
    await escrow.refund(jobId);
    expect((await token.balanceOf(buyer.address)) - start).toBe(5_001n);
    expect(await escrow.getJob(jobId)).toMatchObject({ held: 0n, claimed: 5_000n, refunded: 5_001n });
    // Give the coordinator's tokens back so later tests start from zero.
    await (await token.connect(coordinator).contract.transfer(buyer.address, 5_000n)).wait();
  });

  test('dispute reverts: wrong caller, not settled, after the challenge window, twice', async () => {
    const open = await newJob();
    await revert(escrow.dispute(open), 'NotSettled', [open, BigInt(JobStatus.Open)]);
    await revert(as(arbiter).expireDispute(open), 'NotDisputed');
    const { jobId } = await tamperedJob();
    await revert(as(stranger).dispute(jobId), 'NotDisputant', [jobId, stranger.address]);
    await revert(as(coordinator).dispute(jobId), 'NotDisputant');
    await escrow.dispute(jobId);
    await revert(as(arbiter).dispute(jobId), 'AlreadyDisputed');

    const late = await tamperedJob();
    await chain.increaseTime(600);
    const { claimsOpenAt } = await escrow.getJob(late.jobId);
    await revert(escrow.dispute(late.jobId), 'ChallengeWindowOver', [late.jobId, claimsOpenAt]);
    // No challenge window: no dispute at all.
    const instant = await newJob({ challengeWindow: 0 });
    await commitRounds(instant, 1);
    await as(coordinator).settle(instant, id('root'), 1n);
    await revert(escrow.dispute(instant), 'ChallengeWindowOver');
  });

  test("the arbiter's total is capped by what the escrow still holds after an early refund", async () => {
    const jobId = await newJob();
    await commitRounds(jobId, 1);
    const small = computePayouts(4_000n, [{ account: contributors[0].address, score: 1 }]);
    await as(coordinator).settle(jobId, small.root, small.total);
    await escrow.refund(jobId); // 6 000 back at once
    await escrow.dispute(jobId);
    const big = computePayouts(5_000n, [{ account: contributors[0].address, score: 1 }]);
    await revert(as(arbiter).resolveDispute(jobId, big.root, 5_000n), 'PayoutExceedsBudget', [jobId, 5_000n, 4_000n]);
    await as(arbiter).resolveDispute(jobId, small.root, small.total);
    await escrow.claim(jobId, small.allocations[0]);
    expect((await escrow.getJob(jobId)).held).toBe(0n);
  });
});

describe('sweep and release', () => {
  const revert = (p: Promise<unknown>, errorName: string) => expect(p).rejects.toMatchObject({ errorName });

  test('the buyer sweeps unclaimed allocations only after the claim period, which also ends claims', async () => {
    const { jobId, plan } = await settledJob();
    await revert(escrow.sweep(jobId), 'ClaimPeriodNotOver');
    await chain.increaseTime(600);
    const [first, second, third] = plan.allocations;
    await escrow.claim(jobId, first);
    const { claimsOpenAt } = await escrow.getJob(jobId);
    await chain.increaseTime(DEFAULT_CLAIM_PERIOD - 10n);
    await escrow.claim(jobId, second); // still inside the period
    await revert(escrow.sweep(jobId), 'ClaimPeriodNotOver');
    await chain.increaseTime(10);
    await expect(escrow.claim(jobId, third)).rejects.toMatchObject({
      errorName: 'ClaimPeriodOver',
      args: [jobId, claimsOpenAt + DEFAULT_CLAIM_PERIOD],
    });
    await revert(as(stranger).sweep(jobId), 'NotBuyer');
    const start = await token.balanceOf(buyer.address);
    await escrow.sweep(jobId);
    const job = await escrow.getJob(jobId);
    // Unclaimed third allocation plus the never-refunded dust.
    expect(job.swept).toBe(third.amount + plan.dust);
    expect((await token.balanceOf(buyer.address)) - start).toBe(job.swept);
    expect(job).toMatchObject({ status: JobStatus.Swept, held: 0n });
    expect(job.claimed + job.refunded + job.swept).toBe(job.budget);
    await revert(escrow.claim(jobId, third), 'NotSettled');
    await revert(escrow.sweep(jobId), 'NotSettled');
    await revert(escrow.refund(jobId), 'NotSettled');
  });

  test('nothing to sweep when everything was claimed and refunded; no sweep of an open job', async () => {
    const { jobId, plan } = await settledJob();
    await revert(escrow.sweep(jobId), 'ClaimPeriodNotOver');
    await chain.increaseTime(600);
    for (const a of plan.allocations) await escrow.claim(jobId, a);
    await escrow.refund(jobId);
    await chain.increaseTime(DEFAULT_CLAIM_PERIOD);
    await revert(escrow.sweep(jobId), 'NothingToSweep');
    await revert(escrow.sweep(await newJob()), 'NotSettled');
  });

  test('the coordinator releases an open job: the whole budget returns to the buyer at once', async () => {
    const start = await token.balanceOf(buyer.address);
    const jobId = await newJob();
    await escrow.topUp(jobId, 5n);
    await revert(as(stranger).release(jobId), 'NotCoordinator');
    await revert(escrow.release(jobId), 'NotCoordinator');
    await as(coordinator).release(jobId);
    expect(await token.balanceOf(buyer.address)).toBe(start);
    expect(await escrow.getJob(jobId)).toMatchObject({ status: JobStatus.Recovered, held: 0n, refunded: 10_005n });
    await revert(as(coordinator).release(jobId), 'JobNotOpen');
    await revert(as(coordinator).commitRound(jobId, { round: 1, modelHash: id('m'), metric: 1 }), 'JobNotOpen');
    const { jobId: settled } = await settledJob();
    await revert(as(coordinator).release(settled), 'AlreadySettled');
  });
});

test('contractGasBench reports the gas of every escrow path', async () => {
  const { contractGasBench } = await import('./gas.bench');
  const g = await contractGasBench(8);
  const paths = [
    g.commitRoundFirst,
    g.commitRoundNext,
    g.commitRoundRetry,
    g.settle,
    g.claimErc20,
    g.claimEth,
    g.dispute,
    g.resolveDispute,
    g.expireDispute,
    g.claimAfterHaircut,
    g.sweep,
  ];
  for (const v of paths) {
    expect(v).toBeGreaterThan(21_000);
    expect(v).toBeLessThan(150_000);
  }
  for (const v of [g.createJobErc20, g.createJobEth]) {
    expect(v).toBeGreaterThan(100_000);
    expect(v).toBeLessThan(400_000);
  }
  expect(g.commitRoundRetry).toBeLessThan(g.commitRoundNext);
});
