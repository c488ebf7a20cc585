/**
 * Paid jobs end to end on a real anvil: a job with a `chain` config is accepted only with its escrow
 * buyer's binding, is not recruited before its escrow holds the budget, every round is committed on
 * chain (with its transcript hash), the payouts are settled and served as Merkle proofs, every
 * provider claims, and the escrow balances exactly (deposited == paid + refunded). A second test
 * stops anvil mid-job and restarts it from its dumped state: commits wait and resume, and no payout
 * is lost or paid twice.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Wallet, type JsonRpcProvider } from 'ethers';
import { claimPayout, fetchPayoutProof } from '../client/claimPayout';
import { loadOrCreatePayoutKey } from '../client/keyFile';
import { CoordinatorConnection } from '../client/coordinatorConnection';
import { createPayoutBinding } from '../client/payoutBinding';
import { deployRewardToken, JobStatus, type EscrowClient } from '../contracts/escrow';
import type { ChainJobStatus } from '../coordinator/chain/chainJobStatus';
import type { RoundCompletedEvent } from '../coordinator/ports';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { generateIdentity } from '../shared/identity/keyPair';
import { JobSpecSchema, type JobSpecInput } from '../shared/schemas/jobSpec';
import { startAnvil, type Anvil } from './support/anvil';
import { MemoryStore } from '../coordinator/store/memoryStore';
import type { RoundRecord, Store } from '../coordinator/store/store';
import {
  deployAsBuyer,
  fundAndBindJob,
  localProvider,
  paidProviders,
  type PaidProvider,
  testChainOptions,
} from './support/chainJob';
import { codeOfAsync } from './support/codeOf';
import { createSignedFetch } from '../client/signedFetch';
import { createJob, testBuyer } from './support/rest';
import { spawnTs, waitFor } from './support/processes';
import { separableDataset, writeSeparableCsv } from './support/syntheticCsv';
import { datasetToCsv } from '../shared/data/csvWriter';

jest.setTimeout(300_000);

const FEATURES = 6;
const BUDGET = 10n ** 18n + 7n; // not divisible by the scores: some dust goes back to the buyer

/** The job without its `chain` (fundAndBindJob adds it, signed). */
function unbound(rounds: number): JobSpecInput {
  return {
    name: 'paid-e2e',
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

/** A chain spec as a stranger would write it: no authorization. */
function spec(escrow: string, rounds: number): JobSpecInput {
  return { ...unbound(rounds), chain: { escrow, jobId: '1', chainId: 31337, budgetWei: BUDGET.toString() } };
}

/**
 * A MemoryStore that gives every completed round a transcript hash when it is saved, standing in
 * for the round runner's signed transcript (the chain worker only reads the field).
 */
class TranscriptStore extends MemoryStore {
  override async saveRound(record: RoundRecord): Promise<void> {
    const transcriptHash =
      record.status === 'completed'
        ? createHash('sha256').update(`transcript:${record.jobId}:${record.round}:${record.modelHash}`).digest('hex')
        : undefined;
    return super.saveRound(transcriptHash ? { ...record, transcriptHash } : record);
  }
}

/** Signed by the buyer, the jobs' owner: a paid job's escrow status, contributions and payouts are private. */
const signedFetch = createSignedFetch(testBuyer);

async function getJson<T>(url: string): Promise<{ status: number; body: T }> {
  const res = await signedFetch(url);
  return { status: res.status, body: (await res.json()) as T };
}

const chainStatus = async (c: Coordinator, jobId: string) =>
  (await getJson<ChainJobStatus>(`${c.url}/v1/jobs/${jobId}/chain`)).body;

async function startPaidCoordinator(
  rpcUrl: string,
  onRoundCompleted?: (e: RoundCompletedEvent) => Promise<void>,
  store?: Store,
): Promise<Coordinator> {
  return startCoordinator(
    {
      port: 0,
      logLevel: 'error',
      ...testChainOptions(rpcUrl, 3000),
    },
    { onRoundCompleted, ...(store ? { store } : {}) },
  );
}

/** `tributary client claim` in its own process, as a provider would run it. */
async function claimWithCli(coordinator: Coordinator, jobId: string, rpcUrl: string, keyFile: string) {
  const p = spawnTs('cli/tributary.ts', [
    'client',
    'claim',
    '--job',
    jobId,
    '--coordinator',
    coordinator.url,
    '--rpc-url',
    rpcUrl,
    '--key',
    keyFile,
    '--json',
  ]);
  expect(await p.exit).toBe(0);
  return JSON.parse(p.lines[p.lines.length - 1]) as {
    account: string;
    amountWei: string;
    txHash: string | null;
    alreadyClaimed: boolean;
  };
}

/**
 * Every provider claims (the first through the CLI, the others through the library); returns what
 * each received net of gas, and checks a second claim sends nothing.
 */
async function claimAll(
  coordinator: Coordinator,
  jobId: string,
  rpcUrl: string,
  providers: PaidProvider[],
  provider: JsonRpcProvider,
) {
  const received: bigint[] = [];
  for (const [i, p] of providers.entries()) {
    const before = await provider.getBalance(p.wallet.address);
    const result =
      i === 0
        ? await claimWithCli(coordinator, jobId, rpcUrl, p.keyFile)
        : await claimPayout({ coordinator: coordinator.url, jobId, rpcUrl, wallet: p.wallet });
    expect(result.account).toBe(p.wallet.address);
    expect(result.alreadyClaimed).toBe(false);
    const receipt = await provider.getTransactionReceipt(result.txHash!);
    const after = await provider.getBalance(p.wallet.address);
    expect(after - before + receipt!.fee).toBe(BigInt(result.amountWei));
    received.push(BigInt(result.amountWei));
    const again = await claimPayout({ coordinator: coordinator.url, jobId, rpcUrl, wallet: p.wallet });
    expect(again).toMatchObject({ alreadyClaimed: true, txHash: null });
  }
  return received;
}

/** The buyer takes the rest; then the escrow holds nothing and deposited == paid + refunded. */
async function refundAndCheck(escrow: EscrowClient, provider: JsonRpcProvider, paid: bigint[]) {
  await escrow.refund(1n);
  const onChain = await escrow.getJob(1n);
  const totalPaid = paid.reduce((a, b) => a + b, 0n);
  expect(onChain.claimed).toBe(totalPaid);
  expect(onChain.budget).toBe(BUDGET);
  expect(onChain.claimed + onChain.refunded).toBe(BUDGET);
  expect(onChain.held).toBe(0n);
  expect(await provider.getBalance(escrow.address)).toBe(0n);
  return onChain;
}

describe('paid jobs on a real chain', () => {
  let anvil: Anvil | undefined;
  let provider: JsonRpcProvider | undefined;
  let coordinator: Coordinator | undefined;
  let providers: PaidProvider[] = [];

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

  it('refuses a paid job on a coordinator without a chain, and has no chain view or payouts for an unpaid job', async () => {
    coordinator = await startCoordinator({ port: 0, logLevel: 'error' });
    const paid = await signedFetch(`${coordinator.url}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(spec(Wallet.createRandom().address, 1)),
    });
    expect(paid.status).toBe(400);
    expect(((await paid.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: 'JOB_SPEC_INVALID',
      message: expect.stringMatching(/TRIBUTARY_RPC_URL/),
    });
    expect(await coordinator.store.listJobs()).toEqual([]);
    const { chain: _chain, ...unpaidSpec } = spec(Wallet.createRandom().address, 1);
    const jobId = await createJob(coordinator.url, unpaidSpec);
    expect(
      (await getJson<{ error: { code: string } }>(`${coordinator.url}/v1/jobs/${jobId}/chain`)).body.error.code,
    ).toBe('NOT_FOUND');
    expect(
      (
        await getJson<{ error: { code: string } }>(
          `${coordinator.url}/v1/jobs/${jobId}/payouts/${Wallet.createRandom().address}`,
        )
      ).body.error.code,
    ).toBe('PAYOUT_NOT_FOUND');
  });

  it('refuses a job whose escrow job names another coordinator, and never recruits for a stored job whose binding fails on chain', async () => {
    anvil = await startAnvil();
    provider = localProvider(anvil.url);
    const { buyer, escrow } = await deployAsBuyer(provider);
    coordinator = await startPaidCoordinator(anvil.url);
    // The buyer named itself as coordinator and signed for that: this coordinator refuses the job.
    const foreign = await fundAndBindJob(escrow, provider, buyer.address, unbound(1), BUDGET);
    const refused = await signedFetch(`${coordinator.url}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(foreign),
    });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: 'ESCROW_BINDING_INVALID',
      message: expect.stringMatching(new RegExp(`names coordinator ${buyer.address}`)),
    });
    expect(await coordinator.store.listJobs()).toEqual([]);

    // A funded escrow job for this coordinator, and a job in the store without the buyer's
    // signature (e.g. written by an older version): the worker checks the binding again at
    // activation, halts with the code, and the job never recruits.
    const ours = await fundAndBindJob(escrow, provider, coordinator.chain.coordinatorAddress!, unbound(1), BUDGET, {
      expectedId: 2n,
    });
    const { authorization: _signature, ...unsigned } = ours.chain;
    const now = new Date();
    const stored = {
      id: 'job_unbound',
      spec: JobSpecSchema.parse({ ...ours, chain: unsigned }),
      status: 'pending' as const,
      currentRound: 0,
      modelHash: '0'.repeat(64),
      weightManifest: [],
      createdAt: now,
      updatedAt: now,
    };
    await coordinator.store.createJob(stored);
    coordinator.chain.track(stored);
    const halted = await coordinator.chain.whenSettled(stored.id);
    expect(halted.lastRpcError!.message).toMatch(/^ESCROW_BINDING_INVALID: chain.authorization is missing/);
    expect(halted.funded).toBe(false);
    expect((await coordinator.store.getJob(stored.id))!.status).toBe('pending');
    expect((await escrow.getJob(2n)).lastRound).toBe(0n);
  });

  it('recruits only after funding, commits every round, settles, serves proofs and every provider claims', async () => {
    anvil = await startAnvil();
    provider = localProvider(anvil.url);
    const { buyer, escrow } = await deployAsBuyer(provider);
    const store = new TranscriptStore();
    coordinator = await startPaidCoordinator(anvil.url, undefined, store);
    const rounds = 3;
    // The escrow job exists but holds 7 wei less than the spec's budgetWei.
    const bound = await fundAndBindJob(
      escrow,
      provider,
      coordinator.chain.coordinatorAddress!,
      unbound(rounds),
      BUDGET - 7n,
      { budgetWei: BUDGET },
    );
    const jobId = await createJob(coordinator.url, bound);
    // One escrow job pays one job: the same signed spec posted again is refused.
    const twin = await signedFetch(`${coordinator.url}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...bound, chain: { ...bound.chain, escrow: escrow.address.toLowerCase() } }),
    });
    expect(twin.status).toBe(409);
    expect(((await twin.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: 'ESCROW_ALREADY_BOUND',
      message: expect.stringMatching(new RegExp(`already pays job ${jobId}`)),
    });

    // Before funding: pending, not funded, and a join is refused with JOB_NOT_FUNDED.
    expect((await getJson<{ status: string }>(`${coordinator.url}/v1/jobs/${jobId}`)).body.status).toBe('pending');
    expect(await chainStatus(coordinator, jobId)).toMatchObject({
      funded: false,
      commits: [],
      settlement: { status: 'waiting' },
    });
    const earlyIdentity = generateIdentity();
    const early = new CoordinatorConnection({ url: coordinator.url, identity: earlyIdentity });
    early.connect();
    await waitFor(async () => early.socket.connected, 30_000, 'an early connection');
    expect(await codeOfAsync(() => early.join(jobId))).toBe('JOB_NOT_FUNDED');
    // A join without a payout address is refused too, once the job recruits (checked below).
    const payouts = await getJson<{ error: { code: string } }>(
      `${coordinator.url}/v1/jobs/${jobId}/payouts/${Wallet.createRandom().address}`,
    );
    expect(payouts.status).toBe(409);
    expect(payouts.body.error.code).toBe('PAYOUT_NOT_READY');
    // Nothing to claim yet: the CLI says so with the code and exits 2.
    const claimKey = join(mkdtempSync(join(tmpdir(), 'trib-chain-claim-')), 'k.key');
    const claim = spawnTs('cli/tributary.ts', [
      'client',
      'claim',
      '--job',
      jobId,
      '--coordinator',
      coordinator.url,
      '--rpc-url',
      anvil.url,
      '--key',
      claimKey,
    ]);
    expect(await claim.exit).toBe(2);
    expect(claim.stderr.join('\n')).toMatch(/PAYOUT_NOT_READY/);

    // Providers start before funding and wait; then the buyer tops the escrow up to the budget.
    providers = await paidProviders(
      coordinator.url,
      jobId,
      [0, 1, 2].map((i) => separableDataset(60 + 20 * i, FEATURES, 40 + i)),
      buyer,
    );
    const runs = providers.map((p) => p.client.run());
    await escrow.connect(buyer).topUp(1n, 7n);
    await waitFor(
      async () => (await coordinator!.store.getJob(jobId))!.status === 'running',
      30_000,
      'the job to start recruiting',
    );
    expect(await codeOfAsync(() => early.join(jobId))).toBe('PAYOUT_BINDING_INVALID');
    // A binding whose Ethereum signature is another key's is refused over the socket and stores nothing.
    const honest = await createPayoutBinding(earlyIdentity, Wallet.createRandom());
    const foreign = await createPayoutBinding(earlyIdentity, Wallet.createRandom());
    expect(await codeOfAsync(() => early.join(jobId, { ...honest, ethSignature: foreign.ethSignature }))).toBe(
      'PAYOUT_BINDING_INVALID',
    );
    expect((await coordinator.store.listParticipants(jobId)).map((p) => p.clientId)).not.toContain(
      earlyIdentity.clientId,
    );
    early.close();

    const finished = await Promise.all(runs);
    expect(finished.map((f) => f.status)).toEqual(['completed', 'completed', 'completed']);
    const settled = await coordinator.chain.whenSettled(jobId);
    expect(settled.settlement).toMatchObject({ status: 'settled', scoreLabel: 'participation' });

    // Every round committed once, on chain, with the store's model hash.
    const status = await chainStatus(coordinator, jobId);
    expect(status.funded).toBe(true);
    expect(status.budgetWei).toBe(BUDGET.toString());
    expect(status.commits.map((c) => [c.round, c.status])).toEqual([
      [1, 'committed'],
      [2, 'committed'],
      [3, 'committed'],
    ]);
    for (const c of status.commits) {
      expect(c.txHash).toMatch(/^0x[0-9a-f]{64}$/);
      const onChainRound = await escrow.getRound(1n, c.round);
      const record = (await coordinator.store.listRounds(jobId)).find(
        (r) => r.round === c.round && r.status === 'completed',
      )!;
      expect(onChainRound.modelHash).toBe(`0x${record.modelHash}`);
      expect(Number(onChainRound.metric)).toBe(c.metric);
      // The round's transcript hash is committed with it (the store gave every round one).
      expect(record.transcriptHash).toMatch(/^[0-9a-f]{64}$/);
      expect(onChainRound.transcriptHash).toBe(`0x${record.transcriptHash}`);
      expect(c.transcriptHash).toBe(onChainRound.transcriptHash);
    }
    const onChain = await escrow.getJob(1n);
    expect(onChain.status).toBe(JobStatus.Settled);
    expect(onChain.lastRound).toBe(BigInt(rounds));
    expect(onChain.payoutRoot).toBe(status.settlement.root);

    // Proofs are served per address; each provider took part in every round, so all get the same share.
    const all = (
      await getJson<{ payouts: Array<{ account: string; amountWei: string; score: number }> }>(
        `${coordinator.url}/v1/jobs/${jobId}/payouts`,
      )
    ).body.payouts;
    expect(all.map((p) => p.account).sort()).toEqual(providers.map((p) => p.wallet.address).sort());
    expect(all.every((p) => p.score === rounds && p.amountWei === (BUDGET / 3n).toString())).toBe(true);
    const proof = await fetchPayoutProof(
      coordinator.url,
      jobId,
      providers[0].wallet.address.toLowerCase(),
      providers[0].wallet,
    );
    expect(proof).toMatchObject({
      account: providers[0].wallet.address,
      amountWei: (BUDGET / 3n).toString(),
      scoreLabel: 'participation',
    });
    expect(proof.proof.length).toBeGreaterThan(0);
    const stranger = await getJson<{ error: { code: string } }>(
      `${coordinator.url}/v1/jobs/${jobId}/payouts/${Wallet.createRandom().address}`,
    );
    expect(stranger.body.error.code).toBe('PAYOUT_NOT_FOUND');
    // The stored participants carry the bound addresses.
    const participants = (
      await getJson<{ participants: Array<{ payoutAddress?: string }> }>(
        `${coordinator.url}/v1/jobs/${jobId}/participants`,
      )
    ).body.participants;
    expect(participants.map((p) => p.payoutAddress).sort()).toEqual(providers.map((p) => p.wallet.address).sort());

    const paid = await claimAll(coordinator, jobId, anvil.url, providers, provider);
    expect(paid.reduce((a, b) => a + b, 0n)).toBe(BigInt(status.settlement.totalWei!));
    const final = await refundAndCheck(escrow.connect(buyer), provider, paid);
    expect(final.refunded).toBe(BUDGET - 3n * (BUDGET / 3n));
  });

  it("a provider running the CLI joins a paid job with its key file's payout address and is paid there, after the challenge window", async () => {
    anvil = await startAnvil();
    provider = localProvider(anvil.url);
    const { buyer, escrow } = await deployAsBuyer(provider);
    coordinator = await startPaidCoordinator(anvil.url);
    const bound = await fundAndBindJob(
      escrow,
      provider,
      coordinator.chain.coordinatorAddress!,
      { ...unbound(1), minClients: 2 },
      BUDGET,
      { challengeWindow: 600, budgetWei: BUDGET },
    );
    const jobId = await createJob(coordinator.url, bound);
    const dir = mkdtempSync(join(tmpdir(), 'trib-chain-cli-'));
    const csv = join(dir, 'data.csv');
    writeSeparableCsv(csv, 60, FEATURES, 160);
    const keyFile = join(dir, 'cli.key');
    const cli = spawnTs('client/cli.ts', [
      '--coordinator',
      coordinator.url,
      '--job',
      jobId,
      '--data',
      csv,
      '--key',
      keyFile,
      '--backend',
      'cpu',
      '--allow-plaintext', // mode none
      '--json',
    ]);
    providers = await paidProviders(coordinator.url, jobId, [separableDataset(60, FEATURES, 161)], buyer);
    await providers[0].client.run();
    expect(await cli.exit).toBe(0);
    const cliAddress = loadOrCreatePayoutKey(keyFile).address;
    const participants = await coordinator.store.listParticipants(jobId);
    expect(participants.map((p) => p.payoutAddress)).toContain(cliAddress);
    await coordinator.chain.whenSettled(jobId);
    const proof = await fetchPayoutProof(coordinator.url, jobId, cliAddress, loadOrCreatePayoutKey(keyFile));
    expect(BigInt(proof.amountWei)).toBe(BUDGET / 2n);
    // Claims wait for the challenge window; then they go through.
    const early = await codeOfAsync(() =>
      claimPayout({ coordinator: coordinator!.url, jobId, rpcUrl: anvil!.url, wallet: providers[0].wallet }),
    );
    expect(early).toBe('PAYOUT_NOT_READY');
    expect(await escrow.hasClaimed(1n, providers[0].wallet.address)).toBe(false);
    await provider.send('evm_increaseTime', [601]);
    await provider.send('evm_mine', []);
    const claimed = await claimPayout({
      coordinator: coordinator.url,
      jobId,
      rpcUrl: anvil.url,
      wallet: providers[0].wallet,
    });
    expect(claimed.amountWei).toBe((BUDGET / 2n).toString());
  });

  it('pays an ERC-20 budget the same way, to the token unit', async () => {
    anvil = await startAnvil();
    provider = localProvider(anvil.url);
    const { buyer, escrow } = await deployAsBuyer(provider);
    const token = await deployRewardToken(buyer);
    await token.mint(buyer.address, BUDGET);
    coordinator = await startPaidCoordinator(anvil.url);
    const bound = await fundAndBindJob(escrow, provider, coordinator.chain.coordinatorAddress!, unbound(2), BUDGET, {
      token: token.address,
      budgetWei: BUDGET,
    });
    const jobId = await createJob(coordinator.url, bound);
    providers = await paidProviders(
      coordinator.url,
      jobId,
      [0, 1, 2].map((i) => separableDataset(40, FEATURES, 150 + i)),
      buyer,
    );
    expect((await Promise.all(providers.map((p) => p.client.run()))).map((f) => f.status)).toEqual([
      'completed',
      'completed',
      'completed',
    ]);
    expect((await coordinator.chain.whenSettled(jobId)).settlement.status).toBe('settled');
    let paid = 0n;
    for (const p of providers) {
      const r = await claimPayout({ coordinator: coordinator.url, jobId, rpcUrl: anvil.url, wallet: p.wallet });
      expect(await token.balanceOf(p.wallet.address)).toBe(BigInt(r.amountWei));
      paid += BigInt(r.amountWei);
    }
    await escrow.refund(1n);
    expect(await token.balanceOf(escrow.address)).toBe(0n);
    expect(await token.balanceOf(buyer.address)).toBe(BUDGET - paid);
    const onChain = await escrow.getJob(1n);
    expect(onChain.claimed + onChain.refunded).toBe(BUDGET);
  });

  it('settles a job with a validation set on contribution scores: a free-rider gets nothing, the others in proportion to their scores', async () => {
    anvil = await startAnvil();
    provider = localProvider(anvil.url);
    const { buyer, escrow } = await deployAsBuyer(provider);
    coordinator = await startPaidCoordinator(anvil.url);
    const bound = await fundAndBindJob(escrow, provider, coordinator.chain.coordinatorAddress!, unbound(3), BUDGET, {
      budgetWei: BUDGET,
    });
    const jobId = await createJob(coordinator.url, bound);
    const validation = await signedFetch(`${coordinator.url}/v1/jobs/${jobId}/validation-set`, {
      method: 'PUT',
      headers: { 'content-type': 'text/csv' },
      body: datasetToCsv(separableDataset(200, FEATURES, 7), { shape: [FEATURES], labelColumn: 'label' }),
    });
    expect(validation.status).toBeLessThan(300);
    // Provider 2 returns the global model unchanged every round.
    providers = await paidProviders(
      coordinator.url,
      jobId,
      [0, 1, 2].map((i) => separableDataset(40 + 40 * i, FEATURES, 170 + i)),
      buyer,
      [undefined, undefined, 'free-rider'],
    );
    expect((await Promise.all(providers.map((p) => p.client.run()))).map((f) => f.status)).toEqual([
      'completed',
      'completed',
      'completed',
    ]);
    const settled = await coordinator.chain.whenSettled(jobId);
    expect(settled.settlement).toMatchObject({ status: 'settled', scoreLabel: 'contribution' });

    const report = (
      await getJson<{ clients: Array<{ clientId: string; score: number }> }>(
        `${coordinator.url}/v1/jobs/${jobId}/contributions`,
      )
    ).body;
    const scoreOf = new Map(report.clients.map((c) => [c.clientId, c.score]));
    const all = (
      await getJson<{ payouts: Array<{ account: string; amountWei: string; score: number }> }>(
        `${coordinator.url}/v1/jobs/${jobId}/payouts`,
      )
    ).body.payouts;
    const paidTo = new Map(all.map((p) => [p.account, p]));
    // The free-rider has no leaf at all; the honest ones are paid floor(pool * score / Σ positive scores).
    expect(paidTo.has(providers[2].wallet.address)).toBe(false);
    expect(scoreOf.get(providers[2].client.clientId)! <= 0).toBe(true);
    const honest = providers.slice(0, 2).map((p) => scoreOf.get(p.client.clientId)!);
    expect(honest.every((s) => s > 0)).toBe(true);
    const positive = honest.reduce((a, b) => a + b, 0);
    for (const [i, p] of providers.slice(0, 2).entries()) {
      const payout = paidTo.get(p.wallet.address)!;
      expect(payout.score).toBeCloseTo(honest[i], 9);
      expect(Number((BigInt(payout.amountWei) * 1_000_000n) / BUDGET) / 1_000_000).toBeCloseTo(honest[i] / positive, 5);
    }
    const claimed: bigint[] = [];
    for (const p of providers.slice(0, 2))
      claimed.push(
        BigInt(
          (await claimPayout({ coordinator: coordinator.url, jobId, rpcUrl: anvil.url, wallet: p.wallet })).amountWei,
        ),
      );
    const onChain = await escrow.getJob(1n);
    expect(onChain.claimed).toBe(claimed[0] + claimed[1]);
  });

  it('keeps federating while the RPC is down, resumes commits after anvil restarts from its state, and pays each provider once', async () => {
    const stateFile = join(mkdtempSync(join(tmpdir(), 'trib-anvil-state-')), 'state.json');
    anvil = await startAnvil({ args: ['--state', stateFile] });
    provider = localProvider(anvil.url);
    const { buyer, escrow } = await deployAsBuyer(provider);
    // Round 2 starts only once anvil is down (the hook holds the runner after round 1), so the
    // stop lands mid-job whatever the machine's speed.
    let releaseRound2!: () => void;
    const anvilDown = new Promise<void>((resolve) => (releaseRound2 = resolve));
    coordinator = await startPaidCoordinator(anvil.url, async (e) => {
      if (e.round.round === 1) await anvilDown;
    });
    const rounds = 5;
    const bound = await fundAndBindJob(
      escrow,
      provider,
      coordinator.chain.coordinatorAddress!,
      unbound(rounds),
      BUDGET,
      { budgetWei: BUDGET },
    );
    const jobId = await createJob(coordinator.url, bound);
    providers = await paidProviders(
      coordinator.url,
      jobId,
      [0, 1, 2].map((i) => separableDataset(60, FEATURES, 70 + i)),
      buyer,
    );
    const runs = providers.map((p) => p.client.run());
    await waitFor(async () => (await escrow.getJob(1n)).lastRound >= 1n, 30_000, 'round 1 on chain');

    await anvil.stop(); // graceful: anvil writes its state to the file
    expect(statSync(stateFile).size).toBeGreaterThan(0);
    const port = anvil.port;
    releaseRound2();
    const down = await waitFor(
      async () => {
        const s = await chainStatus(coordinator!, jobId);
        return s.consecutiveFailures > 0 && s.lastRpcError ? s : undefined;
      },
      30_000,
      'a failed chain request',
    );
    expect(down.lastRpcError!.message.length).toBeGreaterThan(0);
    expect(down.lastRpcError!.message).not.toContain(anvil.url); // hosted RPC URLs carry API keys
    // The federation goes on without the chain.
    const finished = await Promise.all(runs);
    expect(finished.map((f) => f.status)).toEqual(['completed', 'completed', 'completed']);
    // The worker's next (failing) attempt lists the rounds waiting for the chain.
    const whileDown = await waitFor(
      async () => {
        const s = await chainStatus(coordinator!, jobId);
        return s.commits.length === rounds ? s : undefined;
      },
      30_000,
      'every round listed in the chain status',
    );
    expect(whileDown.settlement.status).not.toBe('settled');
    expect(whileDown.retries).toBeGreaterThan(0);
    // Rounds 2-5 wait for the chain. Round 1 is on chain, but its receipt may have been lost with
    // the RPC: then it shows pending too, and the resumed worker must find it there, not resend it.
    expect(whileDown.commits.slice(1).map((c) => c.status)).toEqual(['pending', 'pending', 'pending', 'pending']);
    expect(['committed', 'pending']).toContain(whileDown.commits[0].status);

    anvil = await startAnvil({ port, args: ['--state', stateFile] });
    // The state survived: the escrow still holds the budget and the commits made before the stop.
    expect((await escrow.getJob(1n)).budget).toBe(BUDGET);
    expect(Number((await escrow.getJob(1n)).lastRound)).toBeGreaterThanOrEqual(1);

    const settled = await coordinator.chain.whenSettled(jobId);
    expect(settled.settlement.status).toBe('settled');
    expect(settled.commits.map((c) => c.status)).toEqual(Array(rounds).fill('committed'));
    expect(settled.consecutiveFailures).toBe(0);
    // Each round committed exactly once: one RoundCommitted event per round.
    const events = await escrow.contract.queryFilter(escrow.contract.filters.RoundCommitted(1n));
    const committedRounds = events.map((e) => Number((e as unknown as { args: { round: bigint } }).args.round));
    expect(committedRounds.sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5]);

    const paid = await claimAll(coordinator, jobId, anvil.url, providers, provider);
    expect(paid).toHaveLength(3);
    await refundAndCheck(escrow.connect(buyer), provider, paid);
  });
});
