/**
 * The buyer's whole flow on a real anvil and real sockets on 127.0.0.1: providers list their
 * datasets; the buyer searches, creates an invite-only paid job whose budget is the invited
 * listings' prices times the rounds, and funds its escrow; an uninvited provider waits for funding
 * like everyone else and is then refused with JOB_ACCESS_DENIED, changing nothing; the invited
 * providers train; the coordinator commits every round and settles; every invited provider claims
 * its payout; the buyer takes the rest and downloads the model.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JsonRpcProvider, Wallet } from 'ethers';
import { claimPayout } from '../client/claimPayout';
import { loadOrCreateIdentity, loadOrCreatePayoutKey } from '../client/keyFile';
import { publishListing, searchListings } from '../client/listings';
import { createPayoutBinding } from '../client/payoutBinding';
import { TributaryClient } from '../client/tributaryClient';
import { JobStatus } from '../contracts/escrow';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { decodeTensors } from '../shared/codec/modelCodec';
import type { Identity } from '../shared/identity/keyPair';
import { startAnvil, type Anvil } from './support/anvil';
import { deployAsBuyer, fundAndBindJob, localProvider, testChainOptions } from './support/chainJob';
import { codeOfAsync } from './support/codeOf';
import { createSignedFetch } from '../client/signedFetch';
import { createJob, testBuyer } from './support/rest';
import { separableDataset } from './support/syntheticCsv';

jest.setTimeout(300_000);

const FEATURES = 6;
const ROUNDS = 2;

interface Provider {
  identity: Identity;
  wallet: Wallet;
  client?: TributaryClient;
}

describe("the buyer's flow: list, search, create and fund, train, settle, claim, download", () => {
  let anvil: Anvil | undefined;
  let provider: JsonRpcProvider | undefined;
  let coordinator: Coordinator | undefined;
  const providers: Provider[] = [];

  afterAll(async () => {
    for (const p of providers) p.client?.close();
    await coordinator?.close();
    provider?.destroy();
    await anvil?.stop();
  });

  it('pays exactly the invited providers from the escrow and hands the buyer the model', async () => {
    anvil = await startAnvil();
    provider = localProvider(anvil.url);
    const { buyer, escrow } = await deployAsBuyer(provider);
    coordinator = await startCoordinator({
      port: 0,
      logLevel: 'error',
      backend: 'cpu',
      ...testChainOptions(anvil.url),
    });
    const url = coordinator.url;

    // 1. Four providers, each with a key file holding its Ed25519 identity and a payout key, list their data.
    const dir = mkdtempSync(join(tmpdir(), 'trib-buyer-'));
    // Not divisible by the three invited providers' scores: the rounding dust goes back to the buyer.
    const prices = [301n, 500n, 700n, 900n];
    for (const [i, price] of prices.entries()) {
      const keyFile = join(dir, `p${i}.key`);
      const p: Provider = { identity: loadOrCreateIdentity(keyFile), wallet: loadOrCreatePayoutKey(keyFile) };
      await (await buyer.sendTransaction({ to: p.wallet.address, value: 10n ** 18n })).wait(); // gas for the claim
      await publishListing({
        url,
        identity: p.identity,
        listing: {
          name: `provider ${i}`,
          schema: { shape: [FEATURES], numClasses: 2 },
          rows: 60 + 20 * i,
          tags: ['tabular', i === 3 ? 'retail' : 'sensors'],
          pricePerRoundWei: price.toString(),
        },
      });
      providers.push(p);
    }
    const [invitedA, invitedB, invitedC, outsider] = providers;

    // 2. The buyer searches and invites what it found; the budget is what those providers ask.
    const found = await searchListings(url, {
      tags: ['tabular', 'sensors'],
      shape: [FEATURES],
      numClasses: 2,
      minRows: 50,
    });
    expect(found.map((l) => l.listing.provider).sort()).toEqual(
      [invitedA, invitedB, invitedC].map((p) => p.identity.clientId).sort(),
    );
    const budget = BigInt(ROUNDS) * found.reduce((sum, l) => sum + BigInt(l.listing.pricePerRoundWei), 0n);
    expect(budget).toBe(2n * (301n + 500n + 700n));

    // 3. It funds the escrow job with 1 wei less than the budget for the paid, invite-only job (its
    //    spec hash, signed binding) and creates the job; the job waits for the full budget.
    const bound = await fundAndBindJob(
      escrow,
      provider,
      coordinator.chain.coordinatorAddress!,
      {
        name: 'bought model',
        model: { kind: 'builtin', name: 'mlp', hiddenUnits: [8] },
        input: { shape: [FEATURES], numClasses: 2 },
        rounds: ROUNDS,
        minClients: 3,
        batchSize: 16,
        learningRate: 0.1,
        roundDeadlineMs: 120_000,
        quorumTimeoutMs: 120_000,
        secureAggregation: 'none',
        access: { mode: 'invite', listings: found.map((l) => l.id) },
      },
      budget - 1n,
      { budgetWei: budget },
    );
    const jobId = await createJob(url, bound);
    expect((await coordinator.store.getJob(jobId))!.status).toBe('pending');

    // 4. Every provider starts (the outsider too); all wait for funding; then the buyer funds the escrow.
    const start = async (p: Provider, i: number) => {
      p.client = new TributaryClient({
        url,
        jobId,
        identity: p.identity,
        backend: 'cpu',
        allowPlaintext: true, // mode none
        reconnectDelayMs: 50,
        dataset: separableDataset(60 + 20 * i, FEATURES, 90 + i),
        payout: await createPayoutBinding(p.identity, p.wallet),
      });
      return p.client.run();
    };
    const outsiderRun = codeOfAsync(() => start(outsider, 3));
    const runs = [invitedA, invitedB, invitedC].map((p, i) => start(p, i));
    await escrow.connect(buyer).topUp(1n, 1n);

    // 5. Once the job recruits, the outsider is refused and is never a participant.
    expect(await outsiderRun).toBe('JOB_ACCESS_DENIED');
    const finished = await Promise.all(runs);
    expect(finished.map((f) => f.status)).toEqual(['completed', 'completed', 'completed']);
    const participants = await coordinator.store.listParticipants(jobId);
    expect(participants.map((p) => p.clientId).sort()).toEqual(
      [invitedA, invitedB, invitedC].map((p) => p.identity.clientId).sort(),
    );
    expect(participants.map((p) => p.payoutAddress).sort()).toEqual(
      [invitedA, invitedB, invitedC].map((p) => p.wallet.address).sort(),
    );

    // 6. Rounds committed and the payout settled on chain.
    const settled = await coordinator.chain.whenSettled(jobId);
    expect(settled.settlement).toMatchObject({ status: 'settled' });
    const onChain = await escrow.getJob(1n);
    expect(onChain.status).toBe(JobStatus.Settled);
    expect(onChain.lastRound).toBe(BigInt(ROUNDS));

    // 7. Each invited provider claims; the outsider has nothing to claim.
    const paid: bigint[] = [];
    for (const p of [invitedA, invitedB, invitedC]) {
      const result = await claimPayout({ coordinator: url, jobId, rpcUrl: anvil.url, wallet: p.wallet });
      expect(result.alreadyClaimed).toBe(false);
      paid.push(BigInt(result.amountWei));
    }
    expect(paid.every((x) => x === budget / 3n)).toBe(true); // participation scores: every round each
    expect(
      await codeOfAsync(() => claimPayout({ coordinator: url, jobId, rpcUrl: anvil!.url, wallet: outsider.wallet })),
    ).toBe('PAYOUT_NOT_FOUND');

    // 8. The buyer takes the rest (the dust); the escrow is empty and balanced.
    await escrow.connect(buyer).refund(1n);
    const closed = await escrow.getJob(1n);
    expect(closed.claimed).toBe(paid.reduce((a, b) => a + b, 0n));
    expect(closed.refunded).toBe(budget % 3n);
    expect(closed.claimed + closed.refunded).toBe(budget);
    expect(await provider.getBalance(escrow.address)).toBe(0n);

    // 9. The buyer downloads the trained model: the final checkpoint's weights, committed on chain by hash.
    const job = (await coordinator.store.getJob(jobId))!;
    expect(job.status).toBe('completed');
    // The buyer owns the job: its downloads are signed.
    const signedFetch = createSignedFetch(testBuyer);
    const modelJson = (await (await signedFetch(`${url}/v1/jobs/${jobId}/model/model.json`)).json()) as {
      tributary: { round: number; modelHash: string };
    };
    expect(modelJson.tributary).toEqual({ jobId, round: ROUNDS, modelHash: job.modelHash });
    expect((await escrow.getRound(1n, ROUNDS)).modelHash).toBe(`0x${job.modelHash}`);
    const weightsBin = Buffer.from(
      await (await signedFetch(`${url}/v1/jobs/${jobId}/model/weights.bin`)).arrayBuffer(),
    );
    const checkpoint = decodeTensors(Buffer.from((await coordinator.store.loadCheckpoint(jobId, ROUNDS))!.weights));
    expect(
      weightsBin.equals(
        Buffer.concat(checkpoint.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))),
      ),
    ).toBe(true);
  });
});
