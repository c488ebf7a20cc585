/**
 * The escrow binds to its buyer (issue 11.1), on a real anvil and real sockets. The squatting
 * attack from issue 11 — a stranger posts a job naming the next escrow job id before the buyer
 * creates it — is refused with a code and changes nothing; the buyer's job then runs and the
 * stranger is paid nothing. The buyer (and only the buyer, for this very job) can cancel: a job
 * waiting for funding returns the whole budget at once; a job cancelled mid-way still pays its
 * providers for the rounds already committed.
 */
import { generateIdentity } from '../shared/identity/keyPair';
import { createSignedFetch } from '../client/signedFetch';
import type { JsonRpcProvider, JsonRpcSigner } from 'ethers';
import { claimPayout } from '../client/claimPayout';
import { JobStatus, type EscrowClient } from '../contracts/escrow';
import {
  cancelRequestOf,
  canonicalSpecHash,
  parseSpecForHash,
  signCancelJob,
  signEscrowBinding,
} from '../contracts/escrowBinding';
import type { RoundCompletedEvent } from '../coordinator/ports';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import { startAnvil, type Anvil } from './support/anvil';
import {
  deployAsBuyer,
  fundAndBindJob,
  localProvider,
  paidProviders,
  type PaidProvider,
  testChainOptions,
} from './support/chainJob';
import { codeOfAsync } from './support/codeOf';
import { waitFor } from './support/processes';
import { createJob } from './support/rest';
import { separableDataset } from './support/syntheticCsv';

jest.setTimeout(300_000);

const FEATURES = 6;
const BUDGET = 6n * 10n ** 17n + 1n;

function unbound(rounds: number, name = 'bound-e2e'): Omit<JobSpecInput, 'chain'> {
  return {
    name,
    model: { kind: 'builtin', name: 'mlp', hiddenUnits: [8] },
    input: { shape: [FEATURES], numClasses: 2 },
    rounds,
    minClients: 3,
    batchSize: 16,
    learningRate: 0.1,
    roundDeadlineMs: 120_000,
    quorumTimeoutMs: 120_000,
    secureAggregation: 'none',
  };
}

/** REST writes are signed: posts here come from an identity of their own (not the escrow's buyer). */
const signedPost = createSignedFetch(generateIdentity());

async function post(coordinator: Coordinator, body: unknown): Promise<{ status: number; code?: string }> {
  const res = await signedPost(`${coordinator.url}/v1/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as { error?: { code: string } };
  return { status: res.status, code: json.error?.code };
}

describe('escrow binding on a real chain', () => {
  let anvil: Anvil | undefined;
  let provider: JsonRpcProvider | undefined;
  let coordinator: Coordinator | undefined;
  let providers: PaidProvider[] = [];
  let buyer: JsonRpcSigner;
  let stranger: JsonRpcSigner;
  let escrow: EscrowClient;

  async function start(onRoundCompleted?: (e: RoundCompletedEvent) => Promise<void>): Promise<Coordinator> {
    anvil = await startAnvil();
    provider = localProvider(anvil.url);
    ({ buyer, escrow } = await deployAsBuyer(provider));
    stranger = await provider.getSigner(2);
    coordinator = await startCoordinator(
      {
        port: 0,
        logLevel: 'error',
        ...testChainOptions(anvil.url, 3000),
      },
      { onRoundCompleted },
    );
    return coordinator;
  }

  afterEach(async () => {
    for (const p of providers) p.client.close();
    providers = [];
    await coordinator?.close();
    coordinator = undefined;
    provider?.destroy();
    provider = undefined;
    await anvil?.stop();
    anvil = undefined;
  });

  it("refuses a stranger squatting the next escrow job id; the buyer's job runs and the stranger is paid nothing", async () => {
    const c = await start();
    const coordinatorAddress = c.chain.coordinatorAddress!;
    const strangerStart = await provider!.getBalance(stranger.address);
    const nextId = (await escrow.contract.nextJobId()) as bigint;

    // 1. Before the escrow job exists, the stranger posts a job naming it, signed by itself.
    const chain = { escrow: escrow.address, jobId: nextId.toString(), chainId: 31337, budgetWei: BUDGET.toString() };
    const squatSpec = { ...unbound(2, 'squat'), chain };
    const squatSignature = await signEscrowBinding(stranger, {
      chainId: 31337,
      escrow: escrow.address,
      escrowJobId: nextId,
      coordinator: coordinatorAddress,
      specHash: canonicalSpecHash(parseSpecForHash(squatSpec)),
    });
    const squat = { ...squatSpec, chain: { ...chain, authorization: { signature: squatSignature } } };
    expect(await post(c, squat)).toEqual({ status: 409, code: 'ESCROW_JOB_UNKNOWN' });
    expect(await post(c, squatSpec)).toEqual({ status: 409, code: 'ESCROW_JOB_UNKNOWN' });
    expect(await c.store.listJobs()).toEqual([]);

    // 2. The buyer creates and funds that very escrow job for its own spec and signs the binding.
    const bound = await fundAndBindJob(escrow, provider!, coordinatorAddress, unbound(2), BUDGET, {
      expectedId: nextId,
      budgetWei: BUDGET,
    });

    // 3. The stranger tries again now that it exists: its own spec (the escrow pays for another),
    //    the buyer's spec signed by itself, the buyer's signature on a spec it changed.
    expect(await post(c, squat)).toEqual({ status: 409, code: 'ESCROW_SPEC_MISMATCH' });
    const forged = await signEscrowBinding(stranger, {
      chainId: 31337,
      escrow: escrow.address,
      escrowJobId: nextId,
      coordinator: coordinatorAddress,
      specHash: canonicalSpecHash(parseSpecForHash(bound)),
    });
    expect(await post(c, { ...bound, chain: { ...bound.chain, authorization: { signature: forged } } })).toEqual({
      status: 403,
      code: 'ESCROW_BINDING_INVALID',
    });
    expect(await post(c, { ...bound, rounds: 1, learningRate: 1 })).toEqual({
      status: 409,
      code: 'ESCROW_SPEC_MISMATCH',
    });
    const { authorization: _a, ...unsigned } = bound.chain;
    expect(await post(c, { ...bound, chain: unsigned })).toEqual({ status: 403, code: 'ESCROW_BINDING_INVALID' });
    // Nothing changed: no job stored, the escrow job as the buyer funded it.
    expect(await c.store.listJobs()).toEqual([]);
    expect(await escrow.getJob(nextId)).toMatchObject({
      status: JobStatus.Open,
      budget: BUDGET,
      buyer: buyer.address,
      lastRound: 0n,
    });

    // 4. The buyer's job is accepted and runs to settlement.
    const jobId = await createJob(c.url, bound);
    expect((await c.store.listJobs()).map((j) => j.id)).toEqual([jobId]);
    providers = await paidProviders(
      c.url,
      jobId,
      [0, 1, 2].map((i) => separableDataset(50, FEATURES, 300 + i)),
      buyer,
    );
    expect((await Promise.all(providers.map((p) => p.client.run()))).map((f) => f.status)).toEqual([
      'completed',
      'completed',
      'completed',
    ]);
    expect((await c.chain.whenSettled(jobId)).settlement.status).toBe('settled');
    for (const p of providers) await claimPayout({ coordinator: c.url, jobId, rpcUrl: anvil!.url, wallet: p.wallet });

    // 5. The stranger is paid nothing: every claim went to the buyer's providers, and the stranger
    //    spent and received nothing on chain.
    const claimed = await escrow.contract.queryFilter(escrow.contract.filters.Claimed(nextId));
    const paidTo = claimed.map((e) => (e as unknown as { args: { account: string } }).args.account).sort();
    expect(paidTo).toEqual(providers.map((p) => p.wallet.address).sort());
    expect(paidTo).not.toContain(stranger.address);
    expect(await provider!.getBalance(stranger.address)).toBe(strangerStart);
    const onChain = await escrow.getJob(nextId);
    expect(onChain.claimed).toBe(onChain.payoutTotal);
  });

  it('refuses, with a code and nothing stored, a job naming no escrow contract, another chain, a closed escrow job, or a dead RPC', async () => {
    const c = await start();
    const bound = await fundAndBindJob(escrow, provider!, c.chain.coordinatorAddress!, unbound(1), BUDGET);
    const nowhere = { ...bound, chain: { ...bound.chain, escrow: buyer.address } };
    expect(await post(c, nowhere)).toEqual({ status: 409, code: 'ESCROW_JOB_UNKNOWN' });
    expect(await post(c, { ...bound, chain: { ...bound.chain, chainId: 1 } })).toEqual({
      status: 400,
      code: 'JOB_SPEC_INVALID',
    });
    // The coordinator gave the escrow job up (as after a cancel): it can fund no job any more.
    await escrow.connect(await provider!.getSigner(1)).release(1n);
    expect(await post(c, bound)).toEqual({ status: 409, code: 'ESCROW_JOB_CLOSED' });
    await anvil!.stop();
    anvil = undefined;
    expect(await post(c, bound)).toEqual({ status: 503, code: 'CHAIN_UNAVAILABLE' });
    expect(await c.store.listJobs()).toEqual([]);
  });

  it('the buyer cancels a job waiting for funding and gets the budget back at once; nobody else, and no other job, can', async () => {
    const c = await start();
    const coordinatorAddress = c.chain.coordinatorAddress!;
    const a = await fundAndBindJob(escrow, provider!, coordinatorAddress, unbound(1, 'a'), BUDGET - 1n, {
      budgetWei: BUDGET,
    });
    const b = await fundAndBindJob(escrow, provider!, coordinatorAddress, unbound(1, 'b'), BUDGET - 1n, {
      budgetWei: BUDGET,
      expectedId: 2n,
    });
    const jobA = await c.jobs.getJob(await createJob(c.url, a));
    const jobB = await c.jobs.getJob(await createJob(c.url, b));
    const requestA = cancelRequestOf(jobA.id, jobA.spec.chain!, coordinatorAddress);

    // A stranger's cancel, and the buyer's cancel of job B presented for job A, change nothing.
    expect(await codeOfAsync(() => c.chain.cancelJob(jobA, '0x1234'))).toBe('ESCROW_BINDING_INVALID');
    const byStranger = await signCancelJob(stranger, requestA);
    expect(await codeOfAsync(() => c.chain.cancelJob(jobA, byStranger))).toBe('ESCROW_BINDING_INVALID');
    const forB = await signCancelJob(buyer, cancelRequestOf(jobB.id, jobB.spec.chain!, coordinatorAddress));
    expect(await codeOfAsync(() => c.chain.cancelJob(jobA, forB))).toBe('ESCROW_BINDING_INVALID');
    expect((await c.jobs.getJob(jobA.id)).status).toBe('pending');
    expect((await escrow.getJob(1n)).status).toBe(JobStatus.Open);

    // The buyer's own cancel: the job fails with the reason and the coordinator releases the budget.
    const before = await provider!.getBalance(buyer.address);
    const cancelled = await c.chain.cancelJob(jobA, await signCancelJob(buyer, requestA));
    expect(cancelled).toMatchObject({
      status: 'failed',
      failureReason: `cancelled by the escrow buyer ${buyer.address}`,
    });
    const status = await c.chain.whenSettled(jobA.id);
    expect(status.settlement.status).toBe('released');
    expect(await escrow.getJob(1n)).toMatchObject({ status: JobStatus.Recovered, refunded: BUDGET - 1n, held: 0n });
    // The buyer signed off-chain and paid no gas: its balance grew by exactly the budget.
    expect((await provider!.getBalance(buyer.address)) - before).toBe(BUDGET - 1n);
    expect(await codeOfAsync(() => c.chain.cancelJob(jobA, forB))).toBe('ESCROW_BINDING_INVALID');
    expect(await codeOfAsync(async () => c.chain.cancelJob(jobA, await signCancelJob(buyer, requestA)))).toBe(
      'ESCROW_JOB_CLOSED',
    );
    // Job B is untouched.
    expect((await c.jobs.getJob(jobB.id)).status).toBe('pending');
    expect((await escrow.getJob(2n)).status).toBe(JobStatus.Open);
  });

  it('a buyer who cancels mid-job still pays the providers for the rounds already committed', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    // Round 2 waits until the test has cancelled, so the cancel lands after round 1 whatever the speed.
    const c = await start(async (e) => {
      if (e.round.round === 1) await held;
    });
    const bound = await fundAndBindJob(escrow, provider!, c.chain.coordinatorAddress!, unbound(3), BUDGET);
    const jobId = await createJob(c.url, bound);
    providers = await paidProviders(
      c.url,
      jobId,
      [0, 1, 2].map((i) => separableDataset(50, FEATURES, 320 + i)),
      buyer,
    );
    // The clients wait for a round 2 that never comes; afterEach closes them.
    for (const p of providers) void p.client.run().catch(() => undefined);
    await waitFor(async () => (await escrow.getJob(1n)).lastRound >= 1n, 30_000, 'round 1 on chain');

    const job = await c.jobs.getJob(jobId);
    const signature = await signCancelJob(buyer, cancelRequestOf(jobId, job.spec.chain!, c.chain.coordinatorAddress!));
    const cancelling = c.chain.cancelJob(job, signature);
    release();
    expect(await cancelling).toMatchObject({ status: 'failed', currentRound: 1 });

    const settled = await c.chain.whenSettled(jobId);
    expect(settled.settlement.status).toBe('settled');
    const onChain = await escrow.getJob(1n);
    expect(onChain).toMatchObject({ status: JobStatus.Settled, lastRound: 1n });
    // Participation over the one committed round: the three providers share the budget.
    expect(onChain.payoutTotal).toBe(BUDGET - (BUDGET % 3n));
    for (const p of providers) {
      const r = await claimPayout({ coordinator: c.url, jobId, rpcUrl: anvil!.url, wallet: p.wallet });
      expect(BigInt(r.amountWei)).toBe(BUDGET / 3n);
    }
  });
});
