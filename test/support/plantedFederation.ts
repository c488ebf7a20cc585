import { withShuffledLabels, plantedDelta, type PlantedBehaviour } from '../../client/plantedBehaviour';
import type { NamedTensor } from '../../shared/codec/tensors';
import type { Dataset } from '../../shared/data/dataset';
import { deriveSeed } from '../../shared/data/random';
import { evaluateModel } from '../../shared/ml/evaluate';
import { buildModel } from '../../shared/ml/modelZoo';
import { trainLocal } from '../../shared/ml/train';
import { getNamedWeights, setNamedWeights } from '../../shared/ml/weights';
import { ContributionOptionsSchema, type ContributionOptions, type JobSpecInput } from '../../shared/schemas/jobSpec';
import { splitCohorts } from '../../coordinator/aggregation/secagg/secaggCohorts';
import { sumUpdates } from '../../coordinator/strategy/sumUpdates';
import { fedAvgStep, type ModelMetric } from '../../coordinator/contribution/coalitionUtility';
import { privateScores } from '../../coordinator/contribution/contributionReport';
import { scoreRound, type RoundPlayer } from '../../coordinator/contribution/roundScoring';
import type { RoundContribution } from '../../coordinator/store/store';
import { separableDataset } from './syntheticCsv';

/** The planted federation of issue 6: two honest providers (2x and 1x data) and four bad ones. */
export const PLANTED_CLIENTS = ['honest-2x', 'honest-1x', 'free-rider', 'zeros', 'shuffled-labels', 'noise'] as const;
export type PlantedClient = (typeof PLANTED_CLIENTS)[number];
export const BAD_CLIENTS: readonly PlantedClient[] = ['free-rider', 'zeros', 'shuffled-labels', 'noise'];

export const PLANTED_FEATURES = 8;
/** Examples of a 1x provider. */
export const PLANTED_BASE_EXAMPLES = 120;

/** Each planted client's data (honest-2x has twice the examples; shuffled-labels has its labels permuted). */
export function plantedDatasets(seed = 3): Record<PlantedClient, Dataset> {
  const data = (count: number, i: number) => separableDataset(count, PLANTED_FEATURES, seed * 100 + i);
  return {
    'honest-2x': data(2 * PLANTED_BASE_EXAMPLES, 1),
    'honest-1x': data(PLANTED_BASE_EXAMPLES, 2),
    'free-rider': data(PLANTED_BASE_EXAMPLES, 3),
    zeros: data(PLANTED_BASE_EXAMPLES, 4),
    'shuffled-labels': withShuffledLabels(data(PLANTED_BASE_EXAMPLES, 5), seed),
    noise: data(PLANTED_BASE_EXAMPLES, 6),
  };
}

export function plantedBehaviourOf(client: PlantedClient): PlantedBehaviour | undefined {
  return client === 'free-rider' || client === 'zeros' || client === 'noise' ? client : undefined;
}

export const plantedValidationSet = (seed = 3): Dataset => separableDataset(400, PLANTED_FEATURES, seed * 100 + 99);

/** The job every planted federation trains (the e2e tests post it; the simulation mirrors it). */
export function plantedJobSpec(
  mode: 'none' | 'secagg',
  rounds: number,
  contribution: Partial<ContributionOptions> = {},
): JobSpecInput {
  return {
    name: `planted-${mode}`,
    model: { kind: 'builtin', name: 'mlp', hiddenUnits: [16] },
    input: { shape: [PLANTED_FEATURES], numClasses: 2 },
    rounds,
    minClients: PLANTED_CLIENTS.length,
    localEpochs: 1,
    batchSize: 16,
    learningRate: 0.2,
    roundDeadlineMs: 60_000,
    quorumTimeoutMs: 60_000,
    maxRoundRetries: 1,
    seed: 7,
    secureAggregation: mode,
    ...(mode === 'secagg' ? { secagg: { cohortSize: 3, stageTimeoutMs: 20_000, maxExampleWeight: 1000 } } : {}),
    contribution,
  };
}

export interface SimulatedRound {
  plaintext: RoundContribution;
  /** Cohort Shapley of the same round's updates, cohorts of `cohortSize` re-drawn per round. */
  cohorts: RoundContribution;
  /** With `compareGtg`: GTG-Shapley of the same per-client game. */
  gtg?: RoundContribution;
  evaluationsMs: number;
  trainingMs: number;
}

/**
 * The planted federation in one process, without sockets: every round each client trains from the
 * global model (or misbehaves), the round is scored both ways from the same updates (per-client
 * Shapley, and cohort Shapley of random cohorts), and the global model takes the FedAvg step.
 */
export async function simulatePlantedFederation(options: {
  rounds: number;
  metric?: 'accuracy' | 'loss';
  cohortSize?: number;
  seed?: number;
  exactUpTo?: number;
  compareGtg?: boolean;
  onRound?: (round: number, r: SimulatedRound) => void;
}): Promise<SimulatedRound[]> {
  const spec = plantedJobSpec('none', options.rounds);
  const parsedModel = { kind: 'builtin' as const, name: 'mlp' as const, hiddenUnits: [16] };
  const input = { shape: [PLANTED_FEATURES], numClasses: 2, labelColumn: 'label' };
  const seed = options.seed ?? 7;
  const datasets = plantedDatasets();
  const validation = plantedValidationSet();
  const model = await buildModel(parsedModel, input, seed);
  const evalModel = await buildModel(parsedModel, input, seed);
  const contribution: ContributionOptions = ContributionOptionsSchema.parse({
    metric: options.metric ?? 'loss',
    exactUpTo: options.exactUpTo ?? 8,
  });
  let evaluationsMs = 0;
  const metric: ModelMetric = async (weights) => {
    const t = performance.now();
    setNamedWeights(evalModel, weights as NamedTensor[]);
    const r = await evaluateModel(evalModel, validation, 1024);
    evaluationsMs += performance.now() - t;
    return contribution.metric === 'accuracy' ? r.accuracy : -r.loss;
  };
  let global = getNamedWeights(model);
  const out: SimulatedRound[] = [];
  try {
    for (let round = 1; round <= options.rounds; round++) {
      const trainStart = performance.now();
      const players: RoundPlayer[] = [];
      for (const client of PLANTED_CLIENTS) {
        const data = datasets[client];
        setNamedWeights(model, global);
        const config = {
          localEpochs: Number(spec.localEpochs),
          batchSize: 16,
          learningRate: Number(spec.learningRate),
          proximalMu: 0,
          seed: deriveSeed(seed, client, round),
        };
        const result = await trainLocal(model, data, config);
        const behaviour = plantedBehaviourOf(client);
        const local = getNamedWeights(model);
        const trained = local.map((t, i) => ({ ...t, data: t.data.map((v, j) => v - global[i].data[j]) }));
        const delta = behaviour ? plantedDelta(behaviour, global, trained, config.seed) : trained;
        players.push({
          members: [client],
          updates: {
            weightedDeltaSum: delta.map((t) => Float64Array.from(t.data, (v) => v * result.numExamples)),
            totalWeight: result.numExamples,
            clientCount: 1,
          },
        });
      }
      const trainingMs = performance.now() - trainStart;
      evaluationsMs = 0;
      const plaintext = await scoreRound({
        previous: global,
        players,
        metric,
        options: contribution,
        seed: deriveSeed(seed, 'gtg', round),
      });
      const plaintextMs = evaluationsMs;
      const cohortMembers = splitCohorts([...PLANTED_CLIENTS], options.cohortSize ?? 3, { seed, round, attempt: 0 });
      const cohortPlayers = cohortMembers.map((members) => ({
        members,
        updates: sumUpdates(members.map((m) => players[PLANTED_CLIENTS.indexOf(m as PlantedClient)].updates)),
      }));
      const cohorts = await scoreRound({
        previous: global,
        players: cohortPlayers,
        metric,
        options: contribution,
        seed: round,
      });
      const gtg = options.compareGtg
        ? await scoreRound({
            previous: global,
            players,
            metric,
            options: { ...contribution, exactUpTo: 1 },
            seed: deriveSeed(seed, 'gtg', round),
          })
        : undefined;
      global = fedAvgStep(
        global,
        players.map((p) => p.updates),
      );
      const r = { plaintext, cohorts, evaluationsMs: plaintextMs, trainingMs, ...(gtg ? { gtg } : {}) };
      out.push(r);
      options.onRound?.(round, r);
    }
  } finally {
    model.dispose();
    evalModel.dispose();
  }
  return out;
}

/** Accumulated plaintext scores (Σ per-round Shapley values) and private scores (least squares on cohort values, as contributionReport.ts pays them) after `rounds`. */
export function plantedScores(rounds: readonly SimulatedRound[]): {
  plaintext: Record<PlantedClient, number>;
  private: Record<PlantedClient, number>;
  privateEstimate: Record<PlantedClient, number>;
} {
  const plaintext = Object.fromEntries(PLANTED_CLIENTS.map((c) => [c, 0])) as Record<PlantedClient, number>;
  for (const r of rounds) for (const v of r.plaintext.values) plaintext[v.members[0] as PlantedClient] += v.value;
  const priv = Object.fromEntries(PLANTED_CLIENTS.map((c) => [c, 0])) as Record<PlantedClient, number>;
  const privateEstimate = { ...priv };
  for (const e of privateScores(rounds.map((r) => r.cohorts))) {
    priv[e.clientId as PlantedClient] = e.score;
    privateEstimate[e.clientId as PlantedClient] = e.estimate;
  }
  return { plaintext, private: priv, privateEstimate };
}
