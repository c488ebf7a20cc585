/**
 * Where one training step of the built-in models goes, kernel by kernel, on one backend.
 * Run: node -r tsx/cjs bench/trainStepProfile.ts [backend=wasm] [steps=200]   (about 20 s on wasm)
 *
 * Per model (mnist-cnn, mlp [128]; one 32-digit MNIST batch): the step's time (best of five timed
 * rounds, wall and this process's CPU time), then every kernel the step runs with its mean and its
 * minimum over `steps` profiled steps (tf.profile; op scopes such as fusedConv2d__op are listed too
 * but not added to the sums). The minimum is the kernel's own cost without interference from other
 * work on the machine, so the sum of minima is the step's floor in kernels alone: compare it with
 * PyTorch's whole step (bench/torchTraining.py). Prints a table; nothing is written. See docs/backends.md.
 */
import * as tf from '@tensorflow/tfjs-core';
import { loadMnist } from '../shared/data/mnist';
import { type BackendPreference, selectBackend } from '../shared/ml/backend';
import { buildModel } from '../shared/ml/modelZoo';
import { createTrainStep, type TrainStep } from '../shared/ml/trainStep';

interface KernelFigure {
  calls: number;
  totalMs: number;
  minMs: number;
}

/** Best per-step wall and CPU milliseconds of `rounds` rounds of `steps` steps. */
function stepTime(step: TrainStep, xs: tf.Tensor, oneHot: tf.Tensor2D, steps: number, rounds = 5) {
  let wall = Number.POSITIVE_INFINITY;
  let cpu = Number.POSITIVE_INFINITY;
  for (let r = 0; r < rounds; r++) {
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    for (let i = 0; i < steps; i++) tf.dispose(tf.tidy(() => step.run(xs, oneHot)));
    const used = process.cpuUsage(cpuBefore);
    wall = Math.min(wall, (performance.now() - started) / steps);
    cpu = Math.min(cpu, (used.user + used.system) / 1000 / steps);
  }
  return { wall, cpu };
}

async function profileKernels(step: TrainStep, xs: tf.Tensor, oneHot: tf.Tensor2D, steps: number) {
  const kernels = new Map<string, KernelFigure>();
  for (let i = 0; i < steps; i++) {
    const info = await tf.profile(() => {
      tf.dispose(tf.tidy(() => step.run(xs, oneHot)));
    });
    for (const k of info.kernels) {
      const ms = (await k.kernelTimeMs) as number;
      const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
      const figure = kernels.get(key) ?? { calls: 0, totalMs: 0, minMs: Number.POSITIVE_INFINITY };
      figure.calls++;
      figure.totalMs += ms;
      figure.minMs = Math.min(figure.minMs, ms);
      kernels.set(key, figure);
    }
  }
  return kernels;
}

async function main(): Promise<void> {
  const backend = (process.argv[2] ?? 'wasm') as Exclude<BackendPreference, 'auto'>;
  const steps = Number(process.argv[3] ?? 200);
  const { name } = await selectBackend(backend);
  const data = loadMnist({ count: 32 });
  const input = { shape: [28, 28, 1], labelColumn: 'label', numClasses: 10 };
  const xs = tf.tensor4d(data.x.subarray(0, 32 * 784), [32, 28, 28, 1]);
  const oneHot = tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(data.y.subarray(0, 32), 'int32'), 10), 'float32'));
  for (const model of ['mnist-cnn', 'mlp'] as const) {
    const m = await buildModel({ kind: 'builtin', name: model }, input, 0);
    const step = createTrainStep(m, { learningRate: 0.05 });
    // Warm-up: JIT, XNNPACK operator caches.
    for (let i = 0; i < 50; i++) tf.dispose(tf.tidy(() => step.run(xs, oneHot as tf.Tensor2D)));
    const time = stepTime(step, xs, oneHot as tf.Tensor2D, model === 'mlp' ? 200 : 40);
    const kernels = await profileKernels(step, xs, oneHot as tf.Tensor2D, steps);
    const counted = [...kernels].filter(([key]) => !key.includes('__op '));
    const perStep = (f: (k: KernelFigure) => number) => counted.reduce((sum, [, k]) => sum + f(k), 0) / steps;
    console.log(
      `\n${name} ${model} (${step.gradients}): step ${time.wall.toFixed(3)} ms wall, ${time.cpu.toFixed(3)} ms CPU ` +
        `(${(32_000 / time.cpu).toFixed(0)} samples per CPU second); ${perStep((k) => k.calls)} kernels per step, ` +
        `mean sum ${perStep((k) => k.totalMs).toFixed(3)} ms, sum of minima ${perStep((k) => k.minMs * k.calls).toFixed(3)} ms`,
    );
    for (const [key, k] of [...kernels].sort((a, b) => b[1].totalMs - a[1].totalMs)) {
      const calls = k.calls / steps;
      console.log(
        `  ${(k.totalMs / k.calls).toFixed(4).padStart(8)} mean ${k.minMs.toFixed(4).padStart(8)} min  x${calls}  ${key}`,
      );
    }
    step.dispose();
    m.dispose();
  }
  tf.dispose([xs, oneHot]);
}

void main();
