/**
 * Per-batch time of the stock cpu Conv2DBackpropFilter against the typed-array one, on the tensors
 * that mnist-cnn training really produces (batch 64, real MNIST digits).
 * Run: npx tsx shared/ml/conv2dBackpropFilter.bench.ts
 */
import * as tf from '@tensorflow/tfjs-core';
import { loadMnist } from '../data/mnist';
import { selectBackend } from './backend';
import { registerConv2DBackpropFilter, restoreStockConv2DBackpropFilter } from './conv2dBackpropFilter';
import { buildModel } from './modelZoo';
import { trainLocal } from './train';

interface Captured {
  x: tf.Tensor;
  dy: tf.Tensor;
  attrs: Record<string, unknown>;
}

function timeKernel(c: Captured, repeats: number): number {
  const started = performance.now();
  for (let i = 0; i < repeats; i++)
    tf.dispose(tf.engine().runKernel('Conv2DBackpropFilter', { x: c.x, dy: c.dy }, c.attrs as never));
  return (performance.now() - started) / repeats;
}

async function main(): Promise<void> {
  await selectBackend('cpu');
  // Capture one call per conv layer from a few real training steps.
  const ours = tf.getKernel('Conv2DBackpropFilter', 'cpu');
  if (!ours) throw new Error('kernel not registered');
  const captured: Captured[] = [];
  tf.unregisterKernel('Conv2DBackpropFilter', 'cpu');
  tf.registerKernel({
    ...ours,
    kernelFunc: (args) => {
      const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
      if (captured.length < 4) {
        const backend = args.backend as { readSync(id: object): Float32Array };
        captured.push({
          // Kept: the kernel runs inside the training step's tidy.
          x: tf.keep(tf.tensor(backend.readSync(x.dataId).slice(), x.shape)),
          dy: tf.keep(tf.tensor(backend.readSync(dy.dataId).slice(), dy.shape)),
          attrs: { ...(args.attrs as object) },
        });
      }
      return ours.kernelFunc(args);
    },
  });
  const model = await buildModel(
    { kind: 'builtin', name: 'mnist-cnn' },
    { shape: [28, 28, 1], labelColumn: 'label', numClasses: 10 },
    0,
  );
  await trainLocal(model, loadMnist({ count: 128 }), {
    localEpochs: 1,
    batchSize: 64,
    learningRate: 0.1,
    proximalMu: 0,
    seed: 0,
  });
  model.dispose();
  tf.unregisterKernel('Conv2DBackpropFilter', 'cpu');
  tf.registerKernel(ours);

  for (const c of captured.slice(2)) {
    registerConv2DBackpropFilter('cpu');
    const typed = timeKernel(c, 20);
    restoreStockConv2DBackpropFilter('cpu');
    const stock = timeKernel(c, 2);
    registerConv2DBackpropFilter('cpu');
    const zeros = Array.from(c.x.dataSync()).filter((v) => v === 0).length / c.x.size;
    console.log(
      `x [${c.x.shape}] (${(100 * zeros).toFixed(0)}% zeros) dy [${c.dy.shape}]: stock ${stock.toFixed(1)} ms, typed-array ${typed.toFixed(2)} ms (${(stock / typed).toFixed(0)}x)`,
    );
  }
}

void main();
