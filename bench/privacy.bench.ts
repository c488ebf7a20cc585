/**
 * Differential privacy: what the accountant and the noise cost, and what DP does to accuracy.
 *
 * 1. Accountant speed: one round's RDP curve (155 orders), epsilon, roundsWithin and noiseFor.
 * 2. Noise speed: central Gaussian samples/s, exact discrete Gaussian samples/s, and a client's whole
 *    distributed-noise encoding of a 101,770-value update (the MLP [128]), plus the coordinator's decode.
 * 3. Utility: DP-FedAvg on real MNIST simulated in one process (no sockets; SecAgg+ is replaced by the
 *    plain mod-2^32 sum of the encoded vectors, which is exactly what its unmasking yields). A population
 *    of N clients with equal IID shares, m sampled per round (q = m / N), adaptive clipping (Andrew et
 *    al.'s target quantile 0.5 and rate 0.2, from C = 1: round-1 update norms are ~2 here), the noise multiplier derived from the budget by `assertPrivacyUsable`, the
 *    accountant stepped every round. Configurations: no DP, central and distributed noise at
 *    epsilon 1, 3 and 8 (delta 1e-5). Distributed noise is sized for n_min = 80 % of m survivors, so
 *    it carries m / n_min = 1.25x the accounted variance when nobody drops out.
 *
 * Run: node -r tsx/cjs bench/privacy.bench.ts [--rounds N]   (table on stdout, bench/privacy-results.json)
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { sizeOfShape } from '../shared/codec/tensors';
import type { Dataset } from '../shared/data/dataset';
import { loadMnist } from '../shared/data/mnist';
import { createRng, permutation } from '../shared/data/random';
import { buildModel, evaluateModel, getNamedWeights, selectBackend, setNamedWeights, trainLocal } from '../shared/ml';
import {
  addGaussianNoise,
  clipToNorm,
  cryptoRandom,
  DEFAULT_RDP_ORDERS,
  DiscreteGaussianSampler,
  decodeDistributedSum,
  encodeDistributedUpdate,
  GaussianSampler,
  nextClippingNorm,
  noisedCount,
  noiseFor,
  planDistributedNoise,
  RdpAccountant,
  rdpCurve,
} from '../shared/privacy';
import { assertPrivacyUsable, type PrivacyPlan } from '../shared/schemas/privacySpec';
import { bestOf, round } from './harness';

const INPUT = { shape: [28, 28, 1], numClasses: 10, labelColumn: 'label' };

export interface PrivacyBenchOptions {
  /** Training rounds per configuration. @default 30 */
  rounds: number;
  /** N, the population. @default 500 */
  population: number;
  /** m, clients sampled per round. @default 50 */
  clientsPerRound: number;
  /** Hidden layer widths of the MLP ([] = softmax regression, 7,850 parameters). @default [] */
  hiddenUnits: number[];
  epsilons: number[];
  delta: number;
  seed: number;
}

export const PRIVACY_BENCH_DEFAULTS: PrivacyBenchOptions = {
  rounds: 30,
  population: 500,
  clientsPerRound: 50,
  hiddenUnits: [],
  epsilons: [1, 3, 8],
  delta: 1e-5,
  seed: 0,
};

function accountantSpeed() {
  const q = 0.1;
  const z = 1.1;
  const stepMs = bestOf(5, () => rdpCurve(q, z, DEFAULT_RDP_ORDERS)) * 1000;
  const accountant = new RdpAccountant().step(q, z, 100);
  const epsilonMs = bestOf(20, () => accountant.epsilon(1e-5)) * 1000;
  const roundsWithinMs = bestOf(3, () => accountant.roundsWithin(8, 1e-5, q, z)) * 1000;
  const noiseForMs = bestOf(3, () => noiseFor(3, 1e-5, q, 100)) * 1000;
  return {
    orders: DEFAULT_RDP_ORDERS.length,
    stepMs: round(stepMs),
    epsilonMs: round(epsilonMs),
    roundsWithinMs: round(roundsWithinMs),
    noiseForMs: round(noiseForMs),
  };
}

function noiseSpeed() {
  const random = cryptoRandom();
  const n = 1_000_000;
  const gaussian = new GaussianSampler(random);
  const gaussianSeconds = bestOf(3, () => {
    for (let i = 0; i < n; i++) gaussian.next();
  });
  const dimension = 101_770;
  const plan = planDistributedNoise({
    dimension,
    clipNorm: 1,
    noiseMultiplier: 1,
    minContributors: 40,
    maxContributors: 50,
    countNoiseStddev: 5,
  });
  const discrete = new DiscreteGaussianSampler(plan.perClientVariance, random);
  const discreteSeconds = bestOf(3, () => {
    for (let i = 0; i < n; i++) discrete.next();
  });
  const update = Float32Array.from({ length: dimension }, (_, i) => Math.sin(i) * 0.01);
  const encodeSeconds = bestOf(3, () => encodeDistributedUpdate(update, plan, 'bench', random));
  const sum = encodeDistributedUpdate(update, plan, 'bench', random).values;
  const decodeSeconds = bestOf(3, () => decodeDistributedSum(sum, 40, plan, 'bench'));
  return {
    gaussianSamplesPerSecond: round(n / gaussianSeconds),
    discreteGaussianSamplesPerSecond: round(n / discreteSeconds),
    discreteGaussianVariance: plan.perClientVariance,
    encodeDimension: dimension,
    encodePaddedDimension: plan.paddedDimension,
    clientEncodeMs: round(encodeSeconds * 1000),
    coordinatorDecodeMs: round(decodeSeconds * 1000),
  };
}

/** Flat Float32 view of a model's weights, and back. */
function flatten(model: Parameters<typeof getNamedWeights>[0]): Float32Array {
  const tensors = getNamedWeights(model);
  const out = new Float32Array(tensors.reduce((n, t) => n + t.data.length, 0));
  let offset = 0;
  for (const t of tensors) {
    out.set(t.data, offset);
    offset += t.data.length;
  }
  return out;
}

function loadFlat(model: Parameters<typeof getNamedWeights>[0], flat: Float32Array): void {
  const tensors = getNamedWeights(model);
  let offset = 0;
  for (const t of tensors) {
    const size = sizeOfShape(t.shape);
    t.data = flat.slice(offset, offset + size);
    offset += size;
  }
  setNamedWeights(model, tensors);
}

function slice(data: Dataset, from: number, to: number): Dataset {
  const pixels = 28 * 28;
  return {
    x: data.x.slice(from * pixels, to * pixels),
    y: data.y.slice(from, to),
    count: to - from,
    exampleShape: data.exampleShape,
  };
}

type Noise = 'none' | 'central' | 'distributed';

interface RunResult {
  noise: Noise;
  parameters: number;
  epsilonTarget: number | null;
  epsilonSpent: number | null;
  noiseMultiplier: number | null;
  updateNoiseMultiplier: number | null;
  finalClipNorm: number | null;
  meanClippedFraction: number | null;
  accuracyByRound: Array<{ round: number; accuracy: number }>;
  finalAccuracy: number;
  seconds: number;
  noiseSecondsPerRound: number;
}

async function simulate(
  options: PrivacyBenchOptions,
  clients: Dataset[],
  test: Dataset,
  noise: Noise,
  epsilon: number | null,
): Promise<RunResult> {
  const started = performance.now();
  const { rounds, population: n, clientsPerRound: m } = options;
  const minContributors = Math.ceil(0.8 * m);
  let plan: PrivacyPlan | undefined;
  if (noise !== 'none' && epsilon !== null) {
    plan = assertPrivacyUsable({
      rounds,
      minClients: minContributors,
      maxClients: m,
      fractionFit: m / n,
      secureAggregation: 'secagg',
      privacy: { epsilon, delta: options.delta, population: n, adaptiveClipping: { initialNorm: 1 }, noise },
    });
  }
  const model = await buildModel(
    { kind: 'builtin', name: 'mlp', hiddenUnits: options.hiddenUnits },
    INPUT,
    options.seed,
  );
  const accountant = new RdpAccountant();
  const random = cryptoRandom();
  let clipNorm = plan?.clipping.mode === 'adaptive' ? plan.clipping.initialNorm : 0;
  let global = flatten(model);
  const rng = createRng(options.seed + 1);
  const accuracyByRound: RunResult['accuracyByRound'] = [];
  const clippedFractions: number[] = [];
  let noiseSeconds = 0;
  for (let r = 1; r <= rounds; r++) {
    if (plan && accountant.roundsWithin(plan.epsilon, plan.delta, plan.samplingRate, plan.noiseMultiplier) < 1) break;
    const selected = Array.from(permutation(n, rng).subarray(0, m));
    const deltas: Float32Array[] = [];
    for (const c of selected) {
      loadFlat(model, global);
      await trainLocal(model, clients[c], {
        localEpochs: 2,
        batchSize: 8,
        learningRate: 0.3,
        proximalMu: 0,
        seed: options.seed * 100_000 + r * 1_000 + c,
      });
      const local = flatten(model);
      deltas.push(local.map((w, i) => w - global[i]));
    }
    const t0 = performance.now();
    const sum = new Float64Array(global.length);
    let unclipped = m;
    if (!plan) {
      for (const d of deltas) for (let i = 0; i < d.length; i++) sum[i] += d[i];
    } else if (plan.noise === 'central') {
      // Clients clip; the coordinator adds N(0, (z_Delta C)^2) to the sum and N(0, sigma_b^2) to the count.
      unclipped = 0;
      for (const d of deltas) {
        const clipped = clipToNorm(d, clipNorm);
        if (!clipped.clipped) unclipped++;
        for (let i = 0; i < d.length; i++) sum[i] += clipped.update[i];
      }
      addGaussianNoise(sum, plan.updateNoiseMultiplier * clipNorm, random);
      unclipped = noisedCount(unclipped, plan.clippedCountNoise, random);
    } else {
      // Every client clips, quantises and adds its share of the noise; the coordinator sees the mod-2^32 sum.
      const encoding = planDistributedNoise({
        dimension: global.length,
        clipNorm,
        noiseMultiplier: plan.updateNoiseMultiplier,
        minContributors: plan.minContributors,
        maxContributors: plan.maxContributors,
        countNoiseStddev: plan.clippedCountNoise,
      });
      const seed = `bench:${noise}:${epsilon}:${r}`;
      const total = new Uint32Array(encoding.encodedLength);
      for (const d of deltas) {
        const v = encodeDistributedUpdate(d, encoding, seed, random).values;
        for (let i = 0; i < total.length; i++) total[i] = total[i] + v[i];
      }
      const decoded = decodeDistributedSum(total, m, encoding, seed);
      sum.set(decoded.sum);
      unclipped = decoded.unclippedCount;
    }
    if (plan) {
      clippedFractions.push(Math.min(1, Math.max(0, 1 - unclipped / m)));
      if (plan.clipping.mode === 'adaptive') clipNorm = nextClippingNorm(clipNorm, unclipped, m, plan.clipping);
      accountant.step(plan.samplingRate, plan.noiseMultiplier);
    }
    noiseSeconds += (performance.now() - t0) / 1000;
    // Uniform weights: the mean of the (clipped, noised) updates, server learning rate 1.
    global = global.map((w, i) => w + sum[i] / m);
    if (r % 10 === 0 || r === rounds) {
      loadFlat(model, global);
      accuracyByRound.push({ round: r, accuracy: round((await evaluateModel(model, test)).accuracy, 4) });
    }
  }
  model.dispose();
  const done = accuracyByRound.length > 0 ? accuracyByRound[accuracyByRound.length - 1].accuracy : Number.NaN;
  return {
    noise,
    parameters: global.length,
    epsilonTarget: epsilon,
    epsilonSpent: plan ? round(accountant.epsilon(plan.delta), 4) : null,
    noiseMultiplier: plan ? round(plan.noiseMultiplier, 4) : null,
    updateNoiseMultiplier: plan ? round(plan.updateNoiseMultiplier, 4) : null,
    finalClipNorm: plan ? round(clipNorm, 3) : null,
    meanClippedFraction: plan ? round(clippedFractions.reduce((a, b) => a + b, 0) / clippedFractions.length, 3) : null,
    accuracyByRound,
    finalAccuracy: done,
    seconds: round((performance.now() - started) / 1000),
    noiseSecondsPerRound: round(noiseSeconds / rounds),
  };
}

export async function privacyBench(overrides: Partial<PrivacyBenchOptions> = {}) {
  const options = { ...PRIVACY_BENCH_DEFAULTS, ...overrides };
  const backend = await selectBackend('auto');
  const perClient = Math.floor(8000 / options.population);
  const train = loadMnist({ count: perClient * options.population, seed: options.seed });
  const test = loadMnist({ offset: 8000, count: 2000, seed: options.seed });
  const clients = Array.from({ length: options.population }, (_, i) =>
    slice(train, i * perClient, (i + 1) * perClient),
  );
  const runs: RunResult[] = [];
  const configs: Array<[Noise, number | null]> = [
    ['none', null],
    ...options.epsilons.flatMap((e) => [['central', e] as [Noise, number], ['distributed', e] as [Noise, number]]),
  ];
  for (const [noise, epsilon] of configs) {
    process.stderr.write(`privacy bench: ${noise}${epsilon === null ? '' : ` epsilon ${epsilon}`}...`);
    const result = await simulate(options, clients, test, noise, epsilon);
    process.stderr.write(` ${result.finalAccuracy} in ${result.seconds} s\n`);
    runs.push(result);
  }
  return {
    accountant: accountantSpeed(),
    noise: noiseSpeed(),
    utility: {
      backend: backend.name,
      model: { kind: 'mlp', hiddenUnits: options.hiddenUnits, parameters: runs[0]?.parameters },
      population: options.population,
      clientsPerRound: options.clientsPerRound,
      examplesPerClient: perClient,
      samplingRate: options.clientsPerRound / options.population,
      rounds: options.rounds,
      delta: options.delta,
      testExamples: test.count,
      training: { localEpochs: 2, batchSize: 8, learningRate: 0.3, serverLearningRate: 1 },
      clipping: 'adaptive (targetQuantile 0.5, learningRate 0.2, initialNorm 1)',
      distributedMinContributors: Math.ceil(0.8 * options.clientsPerRound),
      runs,
    },
  };
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--rounds');
  const overrides: Partial<PrivacyBenchOptions> = i > 0 ? { rounds: Number(process.argv[i + 1]) } : {};
  const startedAt = new Date();
  const loadAverage1mAtStart = loadavg()[0];
  const t0 = performance.now();
  const results = await privacyBench(overrides);
  const out = {
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, node: process.version, loadAverage1mAtStart },
    startedAt,
    durationSeconds: round((performance.now() - t0) / 1000),
    ...results,
  };
  writeFileSync(join(__dirname, 'privacy-results.json'), `${JSON.stringify(out, null, 2)}\n`);
  const a = results.accountant;
  process.stdout.write(
    `\naccountant (${a.orders} orders): round step ${a.stepMs} ms, epsilon ${a.epsilonMs} ms, roundsWithin ${a.roundsWithinMs} ms, noiseFor ${a.noiseForMs} ms\n`,
  );
  const s = results.noise;
  process.stdout.write(
    `noise: Gaussian ${s.gaussianSamplesPerSecond.toLocaleString('en-US')}/s, discrete Gaussian ${s.discreteGaussianSamplesPerSecond.toLocaleString('en-US')}/s (variance ${s.discreteGaussianVariance}); client encode of ${s.encodeDimension} values ${s.clientEncodeMs} ms, coordinator decode ${s.coordinatorDecodeMs} ms\n`,
  );
  const u = results.utility;
  process.stdout.write(
    `\nMNIST DP-FedAvg: N = ${u.population}, m = ${u.clientsPerRound} (q = ${u.samplingRate}), ${u.rounds} rounds, delta ${u.delta}, ${u.backend}\n`,
  );
  process.stdout.write('noise        epsilon  spent   z       acc     clipped  C      noise s/round\n');
  for (const r of u.runs) {
    process.stdout.write(
      `${r.noise.padEnd(12)} ${String(r.epsilonTarget ?? '-').padEnd(8)} ${String(r.epsilonSpent ?? '-').padEnd(7)} ${String(r.noiseMultiplier ?? '-').padEnd(7)} ${String(r.finalAccuracy).padEnd(7)} ${String(r.meanClippedFraction ?? '-').padEnd(8)} ${String(r.finalClipNorm ?? '-').padEnd(6)} ${r.noiseSecondsPerRound}\n`,
    );
  }
  process.stdout.write(`\nwrote ${join(__dirname, 'privacy-results.json')} in ${out.durationSeconds} s\n`);
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`${String(err?.stack ?? err)}\n`);
    process.exit(1);
  });
}
