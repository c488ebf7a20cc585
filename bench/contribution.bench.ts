/**
 * Contribution scoring costs and accuracy on the planted federation of issue 6 (honest 2x and 1x
 * data, a free-rider, an all-zero model, shuffled labels, random noise; test/support/plantedFederation.ts).
 *
 * Cost: a real in-process coordinator and six TributaryClients on 127.0.0.1 run the plaintext job
 * twice, without a validation set (plain rounds: nothing is scored) and with one (every round scored
 * by exact Shapley over the 6 clients); scoring time per round / plain round time, and model
 * evaluations per round, come from the coordinator's own "round scored" log lines.
 *
 * Accuracy: the federation simulated in one process (same data, model and training), every round
 * scored both ways from the same updates: per-client exact Shapley (plaintext) and SecAgg+ cohorts
 * of 3 re-drawn per round (private: cohort Shapley + least squares on membership, paid on the lower
 * confidence bound). Spearman of private vs plaintext scores, bad clients' shares, after 10/20/40 rounds.
 */
import { createResearchClient } from '../client/plantedClient';
import type { TributaryClient } from '../client/tributaryClient';
import { createBuyerClient, createJob, uploadValidationSet } from '../client/buyer';
import { startCoordinator } from '../coordinator/server';
import { payoutShares } from '../coordinator/contribution/contributionReport';
import { spearman } from '../coordinator/contribution/shapley';
import { datasetToCsv } from '../shared/data/csvWriter';
import { generateIdentity } from '../shared/identity/keyPair';
import type { Logger } from '../coordinator/logger';
import {
  BAD_CLIENTS,
  PLANTED_CLIENTS,
  PLANTED_FEATURES,
  plantedBehaviourOf,
  plantedDatasets,
  plantedJobSpec,
  plantedScores,
  plantedValidationSet,
  simulatePlantedFederation,
  type PlantedClient,
} from '../test/support/plantedFederation';
import { median, round } from './harness';

const INPUT = { shape: [PLANTED_FEATURES], numClasses: 2, labelColumn: 'label' };

/** One plaintext planted job over real sockets; returns round durations and the scorer's per-round figures. */
async function runJob(
  rounds: number,
  withValidation: boolean,
): Promise<{ roundMs: number[]; scoringMs: number[]; evaluations: number[] }> {
  const scored: Array<{ ms: number; evaluations: number }> = [];
  const logger: Logger = {
    error: () => undefined,
    info: () => undefined,
    debug: (message, fields) => {
      if (message === 'round scored') scored.push({ ms: Number(fields?.ms), evaluations: Number(fields?.evaluations) });
    },
  };
  const coordinator = await startCoordinator({ port: 0, logLevel: 'error', backend: 'cpu' }, { logger });
  const clients: TributaryClient[] = [];
  try {
    const buyer = createBuyerClient({ url: coordinator.url, identity: generateIdentity() });
    const jobId = (await createJob(buyer, { spec: plantedJobSpec('none', rounds) })).id;
    if (withValidation) {
      await uploadValidationSet(buyer, { jobId, data: datasetToCsv(plantedValidationSet(), INPUT) });
    }
    const datasets = plantedDatasets();
    for (const name of PLANTED_CLIENTS) {
      const behaviour = plantedBehaviourOf(name);
      const client = createResearchClient(
        {
          url: coordinator.url,
          jobId,
          identity: generateIdentity(),
          dataset: datasets[name],
          backend: 'cpu',
          allowPlaintext: true, // mode none: the coordinator scores each update
        },
        behaviour,
      );
      client.run().catch(() => undefined);
      clients.push(client);
    }
    await coordinator.jobs.waitForJob(jobId);
    await coordinator.contributions.whenIdle(jobId);
    const records = (await coordinator.store.listRounds(jobId)).filter((r) => r.status === 'completed');
    return {
      roundMs: records.map((r) => r.metrics.durationMs),
      scoringMs: scored.map((s) => s.ms),
      evaluations: scored.map((s) => s.evaluations),
    };
  } finally {
    for (const c of clients) c.close();
    await coordinator.close();
  }
}

interface Checkpoint {
  rounds: number;
  /** Least-squares estimates vs accumulated exact Shapley. */
  spearmanPrivateVsExact: number;
  /** The paid scores (lower confidence bound) vs accumulated exact Shapley. */
  spearmanPaidVsExact: number;
  plaintextShares: Record<PlantedClient, number>;
  privateShares: Record<PlantedClient, number>;
  plaintextPasses: boolean;
  privatePasses: boolean;
}

export async function contributionBench(costRounds = 8, reportRounds = [10, 20, 40], seeds = [1, 2, 3, 4, 5, 6, 7, 8]) {
  // Warm-up (TF.js kernels, model builds), then the measured pair.
  await runJob(2, true);
  const plain = await runJob(costRounds, false);
  const scoredRun = await runJob(costRounds, true);
  const plainRoundMs = median(plain.roundMs);
  const scoringMs = median(scoredRun.scoringMs);

  const maxRounds = Math.max(...reportRounds);
  const simulations: Array<{ seed: number; checkpoints: Checkpoint[] }> = [];
  for (const seed of seeds) {
    const sim = await simulatePlantedFederation({ rounds: maxRounds, metric: 'loss', seed });
    const checkpoints = reportRounds.map((n): Checkpoint => {
      const s = plantedScores(sim.slice(0, n));
      const plaintext = PLANTED_CLIENTS.map((c) => s.plaintext[c]);
      const priv = PLANTED_CLIENTS.map((c) => s.private[c]);
      const shares = (xs: number[]) =>
        Object.fromEntries(PLANTED_CLIENTS.map((c, i) => [c, round(payoutShares(xs)[i], 4)])) as Record<
          PlantedClient,
          number
        >;
      const passes = (sc: Record<PlantedClient, number>, sh: Record<PlantedClient, number>) =>
        sc['honest-2x'] > sc['honest-1x'] && BAD_CLIENTS.every((b) => sc['honest-1x'] > sc[b] && sh[b] <= 0.02);
      const plaintextShares = shares(plaintext);
      const privateShares = shares(priv);
      return {
        rounds: n,
        spearmanPrivateVsExact: round(
          spearman(
            PLANTED_CLIENTS.map((c) => s.privateEstimate[c]),
            plaintext,
          ),
          3,
        ),
        spearmanPaidVsExact: round(spearman(priv, plaintext), 3),
        plaintextShares,
        privateShares,
        plaintextPasses: passes(s.plaintext, plaintextShares),
        privatePasses: passes(s.private, privateShares),
      };
    });
    simulations.push({ seed, checkpoints });
  }
  const summary = reportRounds.map((n, k) => {
    const at = simulations.map((s) => s.checkpoints[k]);
    return {
      rounds: n,
      spearmanMedian: round(median(at.map((c) => c.spearmanPrivateVsExact)), 3),
      spearmanMin: round(Math.min(...at.map((c) => c.spearmanPrivateVsExact)), 3),
      spearmanPaidMedian: round(median(at.map((c) => c.spearmanPaidVsExact)), 3),
      plaintextPassRate: `${at.filter((c) => c.plaintextPasses).length}/${at.length}`,
      privatePassRate: `${at.filter((c) => c.privatePasses).length}/${at.length}`,
      worstBadSharePrivate: round(Math.max(...at.flatMap((c) => BAD_CLIENTS.map((b) => c.privateShares[b]))), 4),
    };
  });
  return {
    clients: PLANTED_CLIENTS.length,
    model: 'mlp 8-16-2',
    validationExamples: plantedValidationSet().count,
    cost: {
      rounds: costRounds,
      plainRoundMsMedian: round(plainRoundMs),
      scoredRoundMsMedian: round(median(scoredRun.roundMs)),
      scoringMsPerRoundMedian: round(scoringMs),
      scoringTimeVsPlainRound: round(scoringMs / plainRoundMs, 3),
      evaluationsPerRound: scoredRun.evaluations[0] ?? null,
      scoringMsPerRound: scoredRun.scoringMs,
    },
    planted: { metric: 'loss', cohortSize: 3, seeds, summary, simulations },
  };
}
