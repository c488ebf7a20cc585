/**
 * Contribution scoring end to end on a planted federation: an in-process coordinator on 127.0.0.1
 * and six in-process TributaryClients (honest 2x and 1x data, a free-rider, one sending an all-zero
 * model, one with shuffled labels, one sending random noise) on a small MLP. The coordinator scores
 * every round by itself; the test reads the result over REST and checks the ranking
 * honest-2x > honest-1x > every bad client and that no bad client gets more than 2 % of the payout,
 * in plaintext mode (per-client Shapley) and in private mode (SecAgg+ cohorts of 3, cohort Shapley,
 * least squares on membership).
 */
import { createResearchClient } from '../client/plantedClient';
import type { TributaryClient } from '../client/tributaryClient';
import { CONTRIBUTION_LABEL, settlementScores } from '../coordinator/contribution/settlementScores';
import type { ContributionReport } from '../coordinator/contribution/contributionReport';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { datasetToCsv } from '../shared/data/csvWriter';
import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import { identityFromSecretKey } from '../shared/identity/keyPair';
import {
  BAD_CLIENTS,
  PLANTED_CLIENTS,
  PLANTED_FEATURES,
  plantedBehaviourOf,
  plantedDatasets,
  plantedJobSpec,
  plantedValidationSet,
  type PlantedClient,
} from './support/plantedFederation';
import { getClientContribution, getContributions, isApiError, uploadValidationSet } from '../client/buyer';
import { buyerClient, createJob } from './support/rest';

jest.setTimeout(480_000);

const INPUT = { shape: [PLANTED_FEATURES], numClasses: 2, labelColumn: 'label' };

/** Fixed identities: cohorts are drawn from the sorted client ids, so the run repeats exactly. */
const identityOf = (name: string, run: string) =>
  identityFromSecretKey(
    nacl.sign.keyPair.fromSeed(createHash('sha256').update(`planted:${run}:${name}`).digest()).secretKey,
  );

describe('contribution scoring on a planted federation', () => {
  let coordinator: Coordinator;
  const clients: TributaryClient[] = [];

  beforeAll(async () => {
    coordinator = await startCoordinator({ port: 0, logLevel: 'error', backend: 'cpu' });
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await coordinator?.close();
  });

  /** Runs the planted federation to completion; returns the job id and which client id is which. */
  async function runPlanted(
    mode: 'none' | 'secagg',
    rounds: number,
    withValidation = true,
  ): Promise<{ jobId: string; who: Map<string, PlantedClient> }> {
    const jobId = await createJob(coordinator.url, plantedJobSpec(mode, rounds));
    if (withValidation) {
      const upload = await uploadValidationSet(buyerClient(coordinator.url), {
        jobId,
        data: datasetToCsv(plantedValidationSet(), INPUT),
      });
      expect(upload.examples).toBeGreaterThan(0);
    }
    const datasets = plantedDatasets();
    const who = new Map<string, PlantedClient>();
    for (const name of PLANTED_CLIENTS) {
      const identity = identityOf(name, `${mode}:${rounds}`);
      who.set(identity.clientId, name);
      const behaviour = plantedBehaviourOf(name);
      const client = createResearchClient(
        {
          url: coordinator.url,
          jobId,
          identity,
          dataset: datasets[name],
          backend: 'cpu',
          allowPlaintext: true, // mode none: the coordinator scores each update
        },
        behaviour,
      );
      client.run().catch(() => undefined);
      clients.push(client);
    }
    const job = await coordinator.jobs.waitForJob(jobId);
    expect(job.status).toBe('completed');
    await coordinator.contributions.whenIdle(jobId);
    return { jobId, who };
  }

  /** The buyer (the job's owner) reads every client's score. */
  async function report(jobId: string): Promise<ContributionReport> {
    return getContributions(buyerClient(coordinator.url), { jobId });
  }

  function checkRanking(r: ContributionReport, who: Map<string, PlantedClient>, label: string): void {
    const score = new Map(r.clients.map((c) => [who.get(c.clientId)!, c]));
    // eslint-disable-next-line no-console
    console.log(
      `${label}: ${PLANTED_CLIENTS.map((n) => `${n} ${score.get(n)!.score.toFixed(4)} (${(100 * score.get(n)!.share).toFixed(1)} %)`).join(', ')}`,
    );
    expect(r.clients).toHaveLength(PLANTED_CLIENTS.length);
    expect(score.get('honest-2x')!.score).toBeGreaterThan(score.get('honest-1x')!.score);
    for (const bad of BAD_CLIENTS) {
      expect(score.get('honest-1x')!.score).toBeGreaterThan(score.get(bad)!.score);
      expect(score.get(bad)!.share).toBeLessThanOrEqual(0.02);
    }
    const shares = r.clients.reduce((s, c) => s + c.share, 0);
    expect(shares).toBeCloseTo(1, 9);
  }

  it('plaintext mode: per-client Shapley values rank honest-2x > honest-1x > each bad client, bad shares <= 2 %', async () => {
    const { jobId, who } = await runPlanted('none', 10);
    const r = await report(jobId);
    expect(r.status).toBe('scored');
    expect(r.method).toBe('shapley');
    expect(r.metric).toBe('loss');
    expect(r.unscoredRounds).toEqual([]);
    expect(r.rounds.map((x) => x.round)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    for (const round of r.rounds) {
      expect(round.method).toBe('exact');
      // 2^6 coalitions, the empty one needs no model, plus the previous global model.
      expect(round.evaluations).toBe(64);
      expect(round.values).toHaveLength(6);
      // Efficiency: the values add up to the round's improvement.
      expect(round.values.reduce((s, v) => s + v.value, 0)).toBeCloseTo(round.improvement, 9);
    }
    checkRanking(r, who, 'plaintext, 10 rounds');

    // Each client sees how its score was computed; the settlement's scoresFor agrees with the report.
    const [honest] = [...who.entries()].find(([, n]) => n === 'honest-2x')!;
    const honestIdentity = identityOf('honest-2x', 'none:10');
    expect(honestIdentity.clientId).toBe(honest);
    // Signed with its own key, a provider reads its own contribution; another provider may not.
    const body = await getClientContribution(buyerClient(coordinator.url, honestIdentity), { jobId, clientId: honest });
    const nosy = await getClientContribution(buyerClient(coordinator.url, identityOf('noise', 'none:10')), {
      jobId,
      clientId: honest,
    }).catch((e: unknown) => e);
    expect(isApiError(nosy, 'AUTH_FORBIDDEN')).toBe(true);
    expect(body.roundValues).toHaveLength(10);
    expect(body.roundValues.every((v) => v.members.length === 1 && v.members[0] === honest)).toBe(true);
    expect(body.roundValues.reduce((s, v) => s + v.value, 0)).toBeCloseTo(body.score, 9);
    const settlement = await settlementScores(coordinator.store, coordinator.contributions)(jobId);
    expect(settlement.label).toBe(CONTRIBUTION_LABEL);
    expect(new Map(settlement.scores.map((s) => [s.clientId, s.score])).get(honest)).toBeCloseTo(body.score, 12);

    const unknown = await getClientContribution(buyerClient(coordinator.url), {
      jobId,
      clientId: 'f'.repeat(64),
    }).catch((e: unknown) => e);
    expect(unknown).toMatchObject({ code: 'CONTRIBUTION_CLIENT_UNKNOWN', status: 404 });
  });

  it('private mode (SecAgg+ cohorts of 3): cohort Shapley + least squares on membership gives the same ranking after 20 rounds', async () => {
    const { jobId, who } = await runPlanted('secagg', 20);
    const r = await report(jobId);
    expect(r.status).toBe('scored');
    expect(r.method).toBe('cohort-shapley-least-squares');
    expect(r.rounds).toHaveLength(20);
    for (const round of r.rounds) {
      // Two cohorts of three: only cohort sums were ever scored.
      expect(round.values.map((v) => v.members.length)).toEqual([3, 3]);
      expect(round.evaluations).toBe(4);
    }
    checkRanking(r, who, 'private, 20 rounds');
    // Private scores are paid on the lower confidence bound of the least-squares estimate.
    for (const c of r.clients) {
      expect(c.standardError).toBeGreaterThan(0);
      expect(c.score).toBeCloseTo(c.estimate! - 2 * c.standardError! * c.rounds, 9);
    }
  });

  it('skips scoring, and says so, for a job without a validation set', async () => {
    const { jobId } = await runPlanted('none', 1, false);
    const r = await report(jobId);
    expect(r.status).toBe('skipped');
    expect(r.reason).toMatch(/no validation set/);
    expect(r.clients).toEqual([]);
    expect(r.unscoredRounds).toEqual([1]);
  });
});
