/**
 * Paid jobs in a cluster (issue 16, chain part), multi-process and real: anvil (the escrow), FerretDB
 * (store, leases), redis-server, three coordinator processes sharing one coordinator key and RPC, and
 * three client processes. A paid job's chain worker runs on the node holding the job's chain lease.
 *
 * (1) A stale chain-lease holder: the holder is paused (SIGSTOP) past its lease, another node takes
 *   the chain lease, the paused one is resumed (SIGCONT) and stands down (its heartbeat or its stored
 *   status is refused) without sending a transaction.
 * (2) The chain-lease holder is SIGKILLed once round 1 is on chain: another node takes the chain lease
 *   and goes on from the chain's state; every round is committed on chain exactly once (events and
 *   the coordinator's transaction count: no transaction sent twice), the job settles once, every node
 *   still up serves the chain status and the payouts, and every provider claims its payout.
 * (4) A buyer's cancel posted at a node that does not hold the chain lease: the holder (another node)
 *   sees the job failed and releases the budget, once; every node shows the release.
 * (3) What a stale holder could still send, sent with the coordinator's key after settlement (round
 *   commits again, a conflicting round, another root, a release) is a no-op or refused by the escrow,
 *   and its stale status is refused by the store: the outcome on chain and in the store is unchanged.
 */
import { type JsonRpcProvider, Wallet } from 'ethers';
import { getJob as getJobAction, getPayouts } from '../client/buyer';
import { claimPayout } from '../client/claimPayout';
import { loadOrCreatePayoutKey } from '../client/keyFile';
import {
  EscrowClient,
  EscrowRevertError,
  JobStatus as EscrowStatus,
  type EscrowClient as Escrow,
} from '../contracts/escrow';
import { cancelRequestOf, signCancelJob, type UnboundJobSpecInput } from '../contracts/escrowBinding';
import type { ChainJobStatus } from '../coordinator/chain/chainJobStatus';
import { MongoStore } from '../coordinator/store/mongoStore';
import { hasCode } from '../shared/errors';
import { ChainStatusSchema, JobViewSchema } from '../shared/schemas/restApi';
import { startAnvil, type Anvil } from './support/anvil';
import { anvilKey, deployAsBuyer, fundAndBindJob, localProvider } from './support/chainJob';
import {
  ClusterHarness,
  type ClusterNode,
  clusterJobSpec,
  describeWithCluster,
  finished,
  ownerOf,
} from './support/clusterNodes';
import { waitFor } from './support/processes';
import { buyerClient, createJob } from './support/rest';

jest.setTimeout(900_000);

const describeIfReady = describeWithCluster('cluster chain test');

const LEASE_TTL_MS = 3_000;
const ROUNDS = 4;
const BUDGET = 3n * 10n ** 17n + 2n;
const ESCROW_JOB = 1n;

function roundsOf(events: unknown[]): number[] {
  return events.map((e) => Number((e as { args: { round: bigint } }).args.round)).sort((a, b) => a - b);
}

describeIfReady('a paid job on a cluster of three coordinators', () => {
  let anvil: Anvil;
  let provider: JsonRpcProvider;
  let store: MongoStore | undefined;
  let cluster: ClusterHarness;
  /** The nodes still up after the first test (the second reuses them). */
  let liveNodes: ClusterNode[] = [];
  const coordinatorKey = anvilKey(1);
  const coordinator = new Wallet(coordinatorKey).address;
  const spec = clusterJobSpec('cluster-paid', ROUNDS) as UnboundJobSpecInput;

  beforeAll(async () => {
    cluster = await ClusterHarness.start(LEASE_TTL_MS);
    anvil = await startAnvil();
    provider = localProvider(anvil.url);
  });
  afterAll(async () => {
    // The store before the harness stops the database under it.
    await store?.close();
    await cluster?.stop();
    provider?.destroy();
    await anvil?.stop();
  });

  const chainStatus = async (url: string, jobId: string): Promise<ChainJobStatus> =>
    (await buyerClient(url).request({
      method: 'GET',
      path: `/v1/jobs/${jobId}/chain`,
      response: { schema: ChainStatusSchema },
    })) as unknown as ChainJobStatus;

  const chainHolder = (nodes: ClusterNode[], jobId: string) => ownerOf(nodes, jobId, 'chainLeases');

  /** Lines since `from` in a node's log that say its chain work stood down. */
  const stoodDown = (node: ClusterNode, from: number) =>
    node.process.stderr
      .slice(from)
      .some((l) => /chain lease lost|chain status refused|another node holds the chain lease/.test(l));

  it('(1, 2, 3) fails the chain work over, commits every round once, settles once, and a stale holder changes nothing', async () => {
    const { buyer, escrow } = await deployAsBuyer(provider);
    const nodes = await cluster.startNodes(3, {
      TRIBUTARY_RPC_URL: anvil.url,
      TRIBUTARY_COORDINATOR_KEY: coordinatorKey,
      TRIBUTARY_CHAIN_POLL_MS: '200',
      TRIBUTARY_CHAIN_RETRY_MS: '100',
      TRIBUTARY_CHAIN_RETRY_MAX_MS: '1000',
      TRIBUTARY_CHAIN_TX_TIMEOUT_MS: '20000',
    });
    const bound = await fundAndBindJob(escrow, provider, coordinator, spec, BUDGET);
    const txsBefore = await provider.getTransactionCount(coordinator);
    const jobId = await createJob(nodes[0].url, bound);
    const getJobAt = (url: string) => getJobAction(buyerClient(url), { jobId });

    // The job is funded: the chain-lease holder activates it.
    const first = (await waitFor(() => chainHolder(nodes, jobId), 60_000, 'a node to take the chain lease'))!;
    await waitFor(async () => (await getJobAt(nodes[1].url)).status === 'running', 60_000, 'the job to be activated');

    // (1) Pause the chain-lease holder past its lease: another node takes the chain lease over.
    first.process.kill('SIGSTOP');
    const others = nodes.filter((n) => n !== first);
    const second = (await waitFor(() => chainHolder(others, jobId), 60_000, 'another node to take the chain lease'))!;
    const resumedAt = first.process.stderr.length;
    first.process.kill('SIGCONT');
    await waitFor(async () => stoodDown(first, resumedAt), 60_000, 'the resumed former holder to stand down');
    // It no longer lists the chain lease, and the new holder still holds it.
    expect(await ownerOf([first], jobId, 'chainLeases')).toBeNull();
    expect(await chainHolder(nodes, jobId)).toBe(second);

    // (2) Providers join (spread over the nodes); once round 1 is on chain, kill the chain-lease holder.
    const clients = cluster.startClients(nodes, jobId, 3, 'paid');
    await waitFor(async () => (await escrow.getJob(ESCROW_JOB)).lastRound >= 1n, 300_000, 'round 1 on chain', 100);
    const killed = (await chainHolder(nodes, jobId))!;
    const lastRoundAtKill = Number((await escrow.getJob(ESCROW_JOB)).lastRound);
    const killedAt = Date.now();
    killed.process.kill('SIGKILL');
    expect(await killed.process.exit).toBe('SIGKILL');
    const survivors = nodes.filter((n) => n !== killed);
    liveNodes = survivors;
    const third = (await waitFor(() => chainHolder(survivors, jobId), 60_000, 'a survivor to take the chain lease'))!;
    expect(third).not.toBe(killed);
    const chainFailoverMs = Date.now() - killedAt;

    const final = await finished(survivors[0].url, jobId, 'the job to finish');
    expect(final.status).toBe('completed');
    expect(final.currentRound).toBe(ROUNDS);
    const settledAt = await waitFor(
      async () => ((await escrow.getJob(ESCROW_JOB)).payoutTotal > 0n ? escrow.getJob(ESCROW_JOB) : null),
      120_000,
      'the settlement on chain',
    );
    for (const c of clients) expect(await c.exit).toBe(0);
    const index = (n: ClusterNode) => nodes.indexOf(n);
    console.log(
      JSON.stringify({
        chainLeases: {
          paused: index(first),
          tookOverFromPaused: index(second),
          killed: index(killed),
          tookOverFromKilled: index(third),
          killedWithRoundsOnChain: lastRoundAtKill,
          chainFailoverMs,
          leaseTtlMs: LEASE_TTL_MS,
        },
      }),
    );

    // Every round on chain exactly once, one settlement, and no transaction sent twice: the coordinator
    // sent one commit per round and one settle, whichever nodes sent them.
    const c = escrow.contract;
    expect(roundsOf(await c.queryFilter(c.filters.RoundCommitted(ESCROW_JOB)))).toEqual([1, 2, 3, 4]);
    expect(await c.queryFilter(c.filters.Settled(ESCROW_JOB))).toHaveLength(1);
    expect(settledAt.lastRound).toBe(BigInt(ROUNDS));
    expect((await provider.getTransactionCount(coordinator)) - txsBefore).toBe(ROUNDS + 1);

    // Every node still up answers the chain view (from the stored status) and the payouts alike.
    for (const node of survivors) {
      const status = await waitFor(
        async () => {
          const s = await chainStatus(node.url, jobId);
          return s.settlement.status === 'settled' ? s : null;
        },
        60_000,
        `the settled chain status at ${node.url}`,
      );
      expect(status.commits.map((x) => [x.round, x.status])).toEqual([1, 2, 3, 4].map((r) => [r, 'committed']));
      expect(status.settlement.root?.toLowerCase()).toBe(settledAt.payoutRoot.toLowerCase());
    }
    const payoutsAt = await Promise.all(survivors.map((n) => getPayouts(buyerClient(n.url), { jobId })));
    expect(payoutsAt[0]).toHaveLength(3);
    expect(payoutsAt[1]).toEqual(payoutsAt[0]);

    // Every provider claims its payout (the proof fetched from a surviving node), once.
    let paid = 0n;
    for (let i = 0; i < 3; i++) {
      const wallet = loadOrCreatePayoutKey(cluster.clientKeyFile('paid', i));
      await (await buyer.sendTransaction({ to: wallet.address, value: 10n ** 17n })).wait();
      const r = await claimPayout({ coordinator: survivors[i % 2].url, jobId, rpcUrl: anvil.url, wallet });
      expect(r.alreadyClaimed).toBe(false);
      paid += BigInt(r.amountWei);
    }
    expect(paid).toBe(settledAt.payoutTotal);

    // (3) A stale holder's transactions, sent with the coordinator's own key and the project's escrow client.
    const before = await escrow.getJob(ESCROW_JOB);
    const stale: Escrow = new EscrowClient(escrow.address, new Wallet(coordinatorKey, provider));
    const refusedWith = (p: Promise<unknown>) =>
      p.then(
        () => 'sent',
        (e: unknown) => (e instanceof EscrowRevertError ? e.errorName : String(e)),
      );
    const tries: Array<[string, () => Promise<unknown>]> = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const stored = await escrow.getRound(ESCROW_JOB, round);
      // Its commits again, as stored (what a holder that missed the takeover would resend).
      tries.push([
        `commitRound ${round} again`,
        () =>
          stale.commitRound(ESCROW_JOB, {
            round,
            modelHash: stored.modelHash,
            metric: Number(stored.metric),
            transcriptHash: stored.transcriptHash,
          }),
      ]);
    }
    tries.push(
      [
        'commitRound 2 with another result',
        () =>
          stale.commitRound(ESCROW_JOB, {
            round: 2,
            modelHash: `0x${'ee'.repeat(32)}`,
            metric: 1,
            transcriptHash: `0x${'ee'.repeat(32)}`,
          }),
      ],
      [
        'commitRound 5',
        () => stale.commitRound(ESCROW_JOB, { round: ROUNDS + 1, modelHash: `0x${'ee'.repeat(32)}`, metric: 1 }),
      ],
      ['settle another root', () => stale.settle(ESCROW_JOB, `0x${'ab'.repeat(32)}`, 1n)],
      ['release', () => stale.release(ESCROW_JOB)],
    );
    const refusals: Record<string, string> = {};
    // One at a time: the coordinator's nonce is shared.
    for (const [what, attempt] of tries) refusals[what] = await refusedWith(attempt());
    expect(refusals).toEqual({
      'commitRound 1 again': 'JobNotOpen',
      'commitRound 2 again': 'JobNotOpen',
      'commitRound 3 again': 'JobNotOpen',
      'commitRound 4 again': 'JobNotOpen',
      'commitRound 2 with another result': 'JobNotOpen',
      'commitRound 5': 'JobNotOpen',
      'settle another root': 'AlreadySettled',
      release: 'AlreadySettled',
    });
    const after = await escrow.getJob(ESCROW_JOB);
    expect(after).toEqual(before);
    expect(roundsOf(await c.queryFilter(c.filters.RoundCommitted(ESCROW_JOB)))).toEqual([1, 2, 3, 4]);
    expect(await c.queryFilter(c.filters.Settled(ESCROW_JOB))).toHaveLength(1);

    // Its stale status (the first holder's token) is refused by the store; the stored one stays settled.
    store = await MongoStore.connect(cluster.mongo.uri, { dbName: nodes[0].dbName });
    const kept = (await store.loadChainState(jobId))!;
    expect(kept.done).toBe(true);
    const staleWrite = await store
      .saveChainState({
        ...kept,
        done: false,
        fence: 1,
        status: { ...kept.status, settlement: { ...kept.status.settlement, status: 'waiting' } },
      })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(hasCode(staleWrite, 'LEASE_LOST')).toBe(true);
    expect((await store.loadChainState(jobId))!.status.settlement.status).toBe('settled');
    // Nobody takes the chain lease of a job whose chain work is done.
    expect(await store.acquireChainLease(jobId, { owner: 'late', url: '', ttlMs: 1_000, now: new Date() })).toBeNull();

    // The paused-and-resumed first holder sent nothing in its stale tenure: no chain transaction in its
    // log after SIGCONT until it took the chain lease again (if it did, after the kill, with a new token).
    const afterResume = first.process.stderr.slice(resumedAt);
    const retaken = afterResume.findIndex((l) => l.includes('chain lease taken'));
    const staleTenure = retaken < 0 ? afterResume : afterResume.slice(0, retaken);
    expect(staleTenure.filter((l) => /round committed on chain|job settled on chain|budget released/.test(l))).toEqual(
      [],
    );
  });

  it('(4) a buyer cancel at a node without the chain lease: the holder releases the budget once, every node shows it', async () => {
    expect(liveNodes).toHaveLength(2);
    const { buyer, escrow } = await deployAsBuyer(provider);
    const bound = await fundAndBindJob(escrow, provider, coordinator, { ...spec, name: 'cluster-paid-cancel' }, BUDGET);
    const txsBefore = await provider.getTransactionCount(coordinator);
    const jobId = await createJob(liveNodes[0].url, bound);
    const holder = (await waitFor(() => chainHolder(liveNodes, jobId), 60_000, 'a node to take the chain lease'))!;
    await waitFor(
      async () => (await getJobAction(buyerClient(holder.url), { jobId })).status === 'running',
      60_000,
      'the job to be activated',
    );
    const canceller = liveNodes.find((n) => n !== holder)!;
    const signature = await signCancelJob(buyer, cancelRequestOf(jobId, bound.chain, coordinator));
    const cancelled = await buyerClient(canceller.url).request({
      method: 'POST',
      path: `/v1/jobs/${jobId}/cancel`,
      json: { signature },
      response: { schema: JobViewSchema },
    });
    expect(cancelled.status).toBe('failed');
    await waitFor(
      async () => (await escrow.getJob(ESCROW_JOB)).status === EscrowStatus.Recovered,
      60_000,
      'the budget to be released',
    );
    for (const node of liveNodes) {
      await waitFor(
        async () => (await chainStatus(node.url, jobId)).settlement.status === 'released',
        60_000,
        `the release to show at ${node.url}`,
      );
    }
    const c = escrow.contract;
    expect(await c.queryFilter(c.filters.Released(ESCROW_JOB))).toHaveLength(1);
    expect((await provider.getTransactionCount(coordinator)) - txsBefore).toBe(1);
    // The release was sent by the chain-lease holder, not by the node that took the cancel.
    expect(holder.process.stderr.some((l) => l.includes('budget released') && l.includes(jobId))).toBe(true);
    expect(canceller.process.stderr.some((l) => l.includes('budget released') && l.includes(jobId))).toBe(false);
  });
});
