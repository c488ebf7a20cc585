import { uploadValidationSet as uploadValidationSetAs } from '../../client/buyer';
import { AttackerClient } from '../../client/plantedClient';
import type { SoloAttack } from '../../client/plantedBehaviour';
import { TributaryClient, type TributaryClientOptions } from '../../client/tributaryClient';
import type { NamedTensor } from '../../shared/codec/tensors';
import { datasetToCsv } from '../../shared/data/csvWriter';
import type { Dataset } from '../../shared/data/dataset';
import { generateIdentity } from '../../shared/identity/keyPair';
import type { JobSpecInput } from '../../shared/schemas/jobSpec';
import type { RoundTask } from '../../shared/schemas/messages';
import type { Store } from '../../coordinator/store/store';
import { buyerClient } from './rest';
import { roundModel } from './secureRounds';
import { separableDataset } from './syntheticCsv';

/** Shared pieces of the bounded-influence e2e tests (issue 13), one file per aggregation mode. */

export const FEATURES = 8;
export const INPUT = { shape: [FEATURES], numClasses: 2, labelColumn: 'label' };
/** Every client holds this many examples, so honest weights are equal and attacks can be computed exactly. */
export const EXAMPLES = 100;
/** The honest clients' delta, per value (the issue's +0.01). */
export const HONEST_DELTA = 0.01;

export const dataset = (seed: number): Dataset => separableDataset(EXAMPLES, FEATURES, seed);

/** The job every bounded-influence test posts, in `mode`, with the overrides of the test. */
export function influenceSpec(name: string, overrides: Partial<JobSpecInput>): JobSpecInput {
  return {
    name,
    model: { kind: 'builtin', name: 'mlp', hiddenUnits: [16] },
    input: { shape: [FEATURES], numClasses: 2 },
    rounds: 2,
    localEpochs: 1,
    batchSize: 16,
    learningRate: 0.1,
    roundDeadlineMs: 30_000,
    quorumTimeoutMs: 30_000,
    maxRoundRetries: 1,
    seed: 13,
    ...overrides,
  } as JobSpecInput;
}

/**
 * The production client, trained as usual, that sends a constant `value` as every delta value and
 * declares `examples` (default: the count it trained on). Honest ones send +0.01; the first
 * attacker sends -5 claiming 1e9 examples. Constant updates make every expected model exact.
 */
export class ScriptedClient extends TributaryClient {
  constructor(
    options: TributaryClientOptions,
    private readonly value: number,
    private readonly examples?: number,
  ) {
    super(options);
  }

  protected override deltaToSend(global: readonly NamedTensor[]): NamedTensor[] {
    return global.map((t) => ({
      name: t.name,
      shape: [...t.shape],
      data: new Float32Array(t.data.length).fill(this.value),
    }));
  }

  protected override examplesToClaim(trained: number, _task: RoundTask): number {
    return this.examples ?? trained;
  }
}

/** What one client of a test federation is. */
export type Role =
  | { kind: 'scripted'; value: number; examples?: number }
  | { kind: 'honest' }
  | { kind: 'attacker'; attack: SoloAttack };

/**
 * Starts one client per role on `jobId` (datasets seeded by index); returns them in role order. The
 * roles listed in `first` start, and have joined, before the others: a round starts as soon as
 * minClients have joined, so this is how a test makes sure an attacker is in the first round.
 */
export async function startFederation(
  url: string,
  jobId: string,
  roles: readonly Role[],
  started: TributaryClient[],
  first: readonly number[] = [],
): Promise<TributaryClient[]> {
  const clients = roles.map((role, i) => {
    const options: TributaryClientOptions = {
      url,
      jobId,
      identity: generateIdentity(),
      dataset: dataset(31 + i),
      backend: 'cpu',
      allowPlaintext: true, // influenceNone runs these in mode none
    };
    const client =
      role.kind === 'scripted'
        ? new ScriptedClient(options, role.value, role.examples)
        : role.kind === 'attacker'
          ? new AttackerClient(options, role.attack, { numClasses: 2, seed: 5 })
          : new TributaryClient(options);
    started.push(client);
    return client;
  });
  const run = (c: TributaryClient) => void c.run().catch(() => undefined);
  await Promise.all(
    first.map((i) => {
      const joined = new Promise((resolve) => clients[i].once('joined', resolve));
      run(clients[i]);
      return joined;
    }),
  );
  clients.forEach((c, i) => first.includes(i) || run(c));
  return clients;
}

/** Uploads the buyer's validation set (contribution scoring needs it). */
export async function uploadValidationSet(url: string, jobId: string): Promise<void> {
  // Signed by the test buyer, the job's owner (only its managers may set the validation set).
  await uploadValidationSetAs(buyerClient(url), {
    jobId,
    data: datasetToCsv(separableDataset(200, FEATURES, 999), INPUT),
  });
}

/** Every weight's change in `round` (model after minus model before), flattened. */
export async function roundStep(store: Store, jobId: string, round: number): Promise<Float64Array> {
  const before = await roundModel(store, jobId, round - 1);
  const after = await roundModel(store, jobId, round);
  const out: number[] = [];
  after.forEach((t, i) => t.data.forEach((v, j) => out.push(v - before[i].data[j])));
  return Float64Array.from(out);
}

/** Whether every weight of the model committed after `round` is finite. */
export async function modelIsFinite(store: Store, jobId: string, round: number): Promise<boolean> {
  return (await roundModel(store, jobId, round)).every((t) => t.data.every((v) => Number.isFinite(v)));
}

/** max |step - expected| over every weight, less the float32 rounding of both stored models (2 ulps of the weight). */
export async function worstStepError(store: Store, jobId: string, round: number, expected: number): Promise<number> {
  const before = await roundModel(store, jobId, round - 1);
  const after = await roundModel(store, jobId, round);
  let worst = 0;
  after.forEach((t, i) =>
    t.data.forEach((v, j) => {
      const ulps = 2 * (Math.abs(v) + Math.abs(before[i].data[j])) * 2 ** -24;
      worst = Math.max(worst, Math.abs(v - before[i].data[j] - expected) - ulps);
    }),
  );
  return worst;
}
