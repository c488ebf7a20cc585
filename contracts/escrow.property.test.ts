import fc from 'fast-check';
import { id, type JsonRpcSigner } from 'ethers';
import { deployEscrow, deployRewardToken, type EscrowClient, type RewardToken } from './escrow';
import { computePayouts, type PayoutPlan } from './payouts';
import { startLocalChain, type LocalChain } from './testing';

let chain: LocalChain;
let token: RewardToken;
let buyer: JsonRpcSigner, coordinator: JsonRpcSigner;
let contributors: JsonRpcSigner[];

beforeAll(async () => {
  chain = await startLocalChain();
  [buyer, coordinator, ...contributors] = chain.signers;
  contributors = contributors.slice(0, 4);
  token = await deployRewardToken(buyer);
  await token.mint(buyer.address, 10n ** 30n);
});
afterAll(async () => {
  await chain?.stop();
});

type Action =
  | { kind: 'create'; amount: bigint }
  | { kind: 'topUp'; job: number; amount: bigint }
  | { kind: 'commit'; job: number }
  | { kind: 'settle'; job: number; poolPct: number; scores: number[] }
  | { kind: 'claim'; job: number; who: number; tamper: boolean }
  | { kind: 'refund'; job: number }
  | { kind: 'recover'; job: number }
  | { kind: 'wait'; seconds: number };

const job = fc.nat({ max: 2 });
const action: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ kind: fc.constant('create' as const), amount: fc.bigInt({ min: 1n, max: 10n ** 20n }) }),
  fc.record({ kind: fc.constant('topUp' as const), job, amount: fc.bigInt({ min: 1n, max: 10n ** 20n }) }),
  fc.record({ kind: fc.constant('commit' as const), job }),
  fc.record({
    kind: fc.constant('settle' as const),
    job,
    poolPct: fc.integer({ min: 0, max: 110 }),
    scores: fc.array(fc.nat({ max: 1000 }), { minLength: 4, maxLength: 4 }),
  }),
  fc.record({ kind: fc.constant('claim' as const), job, who: fc.nat({ max: 3 }), tamper: fc.boolean() }),
  fc.record({ kind: fc.constant('refund' as const), job }),
  fc.record({ kind: fc.constant('recover' as const), job }),
  fc.record({ kind: fc.constant('wait' as const), seconds: fc.integer({ min: 1, max: 400 }) }),
);

interface Tracked {
  id: bigint;
  rounds: number;
  deposited: bigint;
  paid: bigint;
  refunded: bigint;
  plan?: PayoutPlan;
}

/** Runs `fn`; a revert is an expected outcome of a random sequence, anything else fails the test. */
async function attempt(fn: () => Promise<unknown>): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch (e) {
    if ((e as { name?: string }).name === 'EscrowRevertError') return false;
    throw e;
  }
}

async function run(escrow: EscrowClient, actions: Action[]): Promise<void> {
  const jobs: Tracked[] = [];
  const balances = () => Promise.all([buyer, ...contributors].map((s) => token.balanceOf(s.address)));
  for (const a of actions) {
    const t = 'job' in a ? jobs[a.job] : undefined;
    const before = await balances();
    let ok = false;
    switch (a.kind) {
      case 'create':
        ok = await attempt(async () => {
          const { jobId } = await escrow.createJob({
            specHash: id('p'),
            token: token.address,
            budget: a.amount,
            coordinator: coordinator.address,
            deadline: (await chain.now()) + 600n,
            challengeWindow: 120,
          });
          jobs.push({ id: jobId, rounds: 0, deposited: a.amount, paid: 0n, refunded: 0n });
        });
        break;
      case 'topUp':
        if (t) ok = await attempt(() => escrow.topUp(t.id, a.amount, { token: token.address }));
        if (t && ok) t.deposited += a.amount;
        break;
      case 'commit':
        if (t)
          ok = await attempt(() =>
            escrow
              .connect(coordinator)
              .commitRound(t.id, { round: t.rounds + 1, modelHash: id(`m${t.rounds + 1}`), metric: 1 }),
          );
        if (t && ok) t.rounds++;
        break;
      case 'settle':
        if (t) {
          const plan = computePayouts(
            (t.deposited * BigInt(a.poolPct)) / 100n,
            contributors.map((c, i) => ({ account: c.address, score: a.scores[i] })),
          );
          ok = await attempt(() => escrow.connect(coordinator).settle(t.id, plan.root, plan.total));
          expect(ok).toBe(plan.total <= t.deposited && t.rounds > 0 ? ok : false);
          if (ok) t.plan = plan;
        }
        break;
      case 'claim': {
        const alloc = t?.plan?.allocations.find((x) => x.account === contributors[a.who].address);
        if (t && alloc)
          ok = await attempt(() => escrow.claim(t.id, a.tamper ? { ...alloc, amount: alloc.amount + 1n } : alloc));
        if (a.tamper) expect(ok).toBe(false);
        break;
      }
      case 'refund':
        if (t) ok = await attempt(() => escrow.refund(t.id));
        break;
      case 'recover':
        if (t) ok = await attempt(() => escrow.recoverAfterDeadline(t.id));
        break;
      case 'wait':
        await chain.increaseTime(a.seconds);
        break;
    }
    const after = await balances();
    if (t && (a.kind === 'claim' || a.kind === 'refund' || a.kind === 'recover')) {
      t.paid += after.slice(1).reduce((s, x, i) => s + x - before[i + 1], 0n);
      if (a.kind !== 'claim') t.refunded += after[0] - before[0];
    }
    // deposited == paid + refunded + held, per job and for the escrow's whole balance.
    let held = 0n;
    const states = await Promise.all(jobs.map((j) => escrow.getJob(j.id)));
    for (const [i, j] of jobs.entries()) {
      const s = states[i];
      expect({ budget: s.budget, claimed: s.claimed, refunded: s.refunded }).toEqual({
        budget: j.deposited,
        claimed: j.paid,
        refunded: j.refunded,
      });
      expect(j.deposited).toBe(j.paid + j.refunded + s.held);
      expect(s.held).toBeGreaterThanOrEqual(0n);
      if (s.status === 2) expect(j.paid).toBeLessThanOrEqual(s.payoutTotal);
      held += s.held;
    }
    expect(await token.balanceOf(escrow.address)).toBe(held);
  }
}

test('random action sequences conserve funds: deposited == paid + refunded + held', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(action, { minLength: 15, maxLength: 15 }), async (actions) => {
      const escrow = await deployEscrow(buyer);
      await run(escrow, [{ kind: 'create', amount: 10n ** 18n }, ...actions]);
    }),
    { numRuns: 20, seed: Number(process.env.FC_SEED ?? 20260501) },
  );
});
