/**
 * A paid job survives coordinator restarts (same store, same port): a job created while underfunded is
 * picked up by the next coordinator, which activates it once the escrow holds the budget; a
 * coordinator stopped mid-job hands over to the next one, which resumes the rounds and the chain
 * commits from the store and the chain; every round is committed exactly once and every provider
 * is paid exactly once.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JsonRpcProvider } from 'ethers';
import { claimPayout } from '../client/claimPayout';
import type { ScoresFor } from '../coordinator/chain/participationScores';
import type { RoundCompletedEvent } from '../coordinator/ports';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { MemoryStore } from '../coordinator/store/memoryStore';
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
import { waitFor } from './support/processes';
import { createJob } from './support/rest';
import { separableDataset } from './support/syntheticCsv';

jest.setTimeout(300_000);

const BUDGET = 3n * 10n ** 17n + 2n;

describe('paid jobs across coordinator restarts', () => {
  let anvil: Anvil | undefined;
  let provider: JsonRpcProvider | undefined;
  const coordinators: Coordinator[] = [];
  let providers: PaidProvider[] = [];
  let store = new MemoryStore();
  const stores = [store];

  afterAll(async () => {
    for (const p of providers) p.client.close();
    for (const c of coordinators) await c.close();
    provider?.destroy();
    await anvil?.stop();
    for (const s of stores) await s.close();
  });

  async function start(
    port: number,
    onRoundCompleted?: (e: RoundCompletedEvent) => Promise<void>,
    scoresFor?: ScoresFor,
  ): Promise<Coordinator> {
    const c = await startCoordinator(
      {
        port,
        logLevel: 'error',
        ...testChainOptions(anvil!.url, 3000),
      },
      { store, onRoundCompleted, scoresFor },
    );
    coordinators.push(c);
    return c;
  }

  it('activates, resumes commits and settles once after restarts', async () => {
    anvil = await startAnvil();
    provider = localProvider(anvil.url);
    const { buyer, escrow } = await deployAsBuyer(provider);
    const rounds = 4;
    const spec: Omit<JobSpecInput, 'chain'> = {
      name: 'paid-resume',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [8] },
      input: { shape: [6], numClasses: 2 },
      rounds,
      minClients: 3,
      batchSize: 16,
      learningRate: 0.1,
      roundDeadlineMs: 120_000,
      quorumTimeoutMs: 120_000,
      secureAggregation: 'none',
    };

    // 1. Created while the escrow holds less than the spec's budgetWei, then the coordinator stops.
    const first = await start(0);
    const port = first.port;
    const bound = await fundAndBindJob(escrow, provider, first.chain.coordinatorAddress!, spec, BUDGET - 2n, {
      budgetWei: BUDGET,
    });
    const jobId = await createJob(first.url, bound);
    expect((await store.getJob(jobId))!.status).toBe('pending');
    await first.close();

    // 2. Funded in full while no coordinator runs; the next one finds the funding and recruits. It
    //    stops after round 2 is committed on chain (the hook holds round 3 until then).
    await escrow.connect(buyer).topUp(1n, 2n);
    let stopping!: () => void;
    const held = new Promise<void>((resolve) => (stopping = resolve));
    const second = await start(port, async (e) => {
      if (e.round.round === 2) await held;
    });
    await waitFor(async () => (await store.getJob(jobId))!.status === 'running', 30_000, 'the job to be activated');
    providers = await paidProviders(
      second.url,
      jobId,
      [0, 1, 2].map((i) => separableDataset(50, 6, 90 + i)),
      buyer,
    );
    const runs = providers.map((p) => p.client.run());
    await waitFor(async () => (await escrow.getJob(1n)).lastRound >= 2n, 30_000, 'round 2 on chain');
    const closing = second.close();
    stopping();
    await closing;
    expect((await store.getJob(jobId))!.status).toBe('running');

    // 3. A third coordinator on the same port and store: the clients reconnect, the job finishes,
    //    the missing rounds are committed and the plan settles.
    const third = await start(port);
    const finished = await Promise.all(runs);
    expect(finished.map((f) => f.status)).toEqual(['completed', 'completed', 'completed']);
    const settled = await third.chain.whenSettled(jobId);
    expect(settled.settlement.status).toBe('settled');
    expect(settled.commits.map((c) => [c.round, c.status])).toEqual([
      [1, 'committed'],
      [2, 'committed'],
      [3, 'committed'],
      [4, 'committed'],
    ]);

    const events = await escrow.contract.queryFilter(escrow.contract.filters.RoundCommitted(1n));
    expect(events.map((e) => Number((e as unknown as { args: { round: bigint } }).args.round)).sort()).toEqual([
      1, 2, 3, 4,
    ]);
    const settledEvents = await escrow.contract.queryFilter(escrow.contract.filters.Settled(1n));
    expect(settledEvents).toHaveLength(1);
    // Commits made before the restart keep their transaction hashes (found in the escrow's logs).
    expect(settled.commits.every((c) => /^0x[0-9a-f]{64}$/.test(c.txHash ?? ''))).toBe(true);

    let paid = 0n;
    for (const p of providers) {
      const r = await claimPayout({ coordinator: third.url, jobId, rpcUrl: anvil.url, wallet: p.wallet });
      expect(r.alreadyClaimed).toBe(false);
      paid += BigInt(r.amountWei);
    }
    const plan = (await store.loadPayoutPlan(jobId))!;
    expect(paid).toBe(BigInt(plan.totalWei));
    expect(BigInt(plan.totalWei) + BigInt(plan.dustWei)).toBe(BUDGET);
    await escrow.connect(buyer).refund(1n);
    const onChain = await escrow.getJob(1n);
    expect(onChain.claimed + onChain.refunded).toBe(BUDGET);
    expect(onChain.held).toBe(0n);
  });

  it('settles the stored plan after a restart between building it and posting it, whatever the new scores say', async () => {
    // A fresh chain that keeps its state across the restart below, and a fresh store (the chain is
    // new, so the same escrow address and job id come back: the old store already binds them).
    store = new MemoryStore();
    stores.push(store);
    await anvil?.stop();
    provider?.destroy();
    const stateFile = join(mkdtempSync(join(tmpdir(), 'trib-anvil-plan-')), 'state.json');
    const stateful = await startAnvil({ args: ['--state', stateFile] });
    anvil = stateful;
    provider = localProvider(stateful.url);
    const { buyer, escrow } = await deployAsBuyer(provider);
    const spec: Omit<JobSpecInput, 'chain'> = {
      name: 'paid-plan',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
      input: { shape: [6], numClasses: 2 },
      rounds: 1,
      minClients: 3,
      batchSize: 16,
      learningRate: 0.1,
      roundDeadlineMs: 120_000,
      quorumTimeoutMs: 120_000,
      secureAggregation: 'none',
    };
    // The first coordinator scores everyone equally, and the RPC dies while it builds the plan.
    const port = stateful.port;
    let firstScores: Array<{ clientId: string; score: number }> = [];
    const first = await start(0, undefined, async (jobId) => {
      firstScores = (await store.listParticipants(jobId)).map((p) => ({ clientId: p.clientId, score: 1 }));
      await stateful.stop();
      return { label: 'test-scores', scores: firstScores };
    });
    const bound = await fundAndBindJob(escrow, provider!, first.chain.coordinatorAddress!, spec, BUDGET);
    const jobId = await createJob(first.url, bound);
    const paidBy = await paidProviders(
      first.url,
      jobId,
      [0, 1, 2].map((i) => separableDataset(40, 6, 120 + i)),
      buyer,
    );
    providers.push(...paidBy);
    await Promise.all(paidBy.map((p) => p.client.run()));
    const plan = await waitFor(() => store.loadPayoutPlan(jobId), 30_000, 'the stored plan');
    expect(plan.scoreLabel).toBe('test-scores');
    await waitFor(
      async () => first.chain.status((await store.getJob(jobId))!).consecutiveFailures > 0,
      30_000,
      'the settle to fail',
    );
    await first.close();

    // anvil comes back from its state, and a new coordinator whose scores differ must still settle
    // the stored plan.
    anvil = await startAnvil({ port, args: ['--state', stateFile] });
    expect((await escrow.getJob(1n)).lastRound).toBe(1n);
    const second = await start(0, undefined, async () => ({
      label: 'test-scores',
      scores: firstScores.map((s, i) => ({ ...s, score: i + 1 })),
    }));
    const settled = await second.chain.whenSettled(jobId);
    expect(settled.settlement).toMatchObject({ status: 'settled', root: plan.root, totalWei: plan.totalWei });
    expect((await escrow.getJob(1n)).payoutRoot).toBe(plan.root);
    expect(new Set(plan.allocations.map((a) => a.amountWei)).size).toBe(1); // the first coordinator's equal split
  });
});
