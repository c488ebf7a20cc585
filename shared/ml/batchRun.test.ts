import * as tf from '@tensorflow/tfjs-core';
import type { Dataset } from '../data/dataset';
import { selectBackend } from './backend';
import { disposeBatchRun, layOutBatchRun } from './batchRun';

/** 11 examples of shape [2, 3]: example j holds j·100 + 0..5, label j mod 4. */
const data: Dataset = {
  x: Float32Array.from({ length: 11 * 6 }, (_, i) => Math.floor(i / 6) * 100 + (i % 6)),
  y: Int32Array.from({ length: 11 }, (_, j) => j % 4),
  count: 11,
  exampleShape: [2, 3],
};
const order = [7, 2, 9, 0, 4, 10, 1, 3, 8, 6, 5];

/** What batch i of the run over order[start, end) must hold. */
function expected(start: number, end: number, batchSize: number, i: number) {
  const picked = order.slice(start, end).slice(i * batchSize, (i + 1) * batchSize);
  return {
    xs: picked.flatMap((j) => Array.from(data.x.subarray(j * 6, (j + 1) * 6))),
    oneHot: picked.flatMap((j) => [0, 1, 2, 3].map((c) => (c === data.y[j] ? 1 : 0))),
    n: picked.length,
  };
}

describe.each(['wasm', 'cpu'] as const)('layOutBatchRun on %s', (backend) => {
  beforeAll(async () => {
    await selectBackend(backend);
  });

  it.each([false, true])(
    'gathers each batch of the shuffled examples and their one-hot labels (reuseTensors %s)',
    (reuseTensors) => {
      const before = tf.memory().numTensors;
      // Examples order[1, 11): batches of 4, 4 and 2.
      const run = layOutBatchRun(data, order, 1, 11, 4, 4, { reuseTensors });
      expect(run.batches).toBe(3);
      expect(run.count).toBe(10);
      expect(Array.from(run.labels.dataSync())).toEqual(order.slice(1, 11).map((j) => data.y[j]));
      const seen: tf.Tensor[] = [];
      for (let i = 0; i < 3; i++) {
        const { xs, oneHot } = run.batch(i);
        const want = expected(1, 11, 4, i);
        expect(xs.shape).toEqual([want.n, 2, 3]);
        expect(Array.from(xs.dataSync())).toEqual(want.xs);
        expect(Array.from(oneHot.dataSync())).toEqual(want.oneHot);
        seen.push(xs);
        if (!run.reused || xs !== run.reused.xs) tf.dispose([xs, oneHot]);
      }
      // Reuse happens on wasm only, for full batches: batches 0 and 1 share their tensors, the partial one does not.
      const reuses = reuseTensors && backend === 'wasm';
      expect(run.reused !== null).toBe(reuses);
      expect(seen[0] === seen[1]).toBe(reuses);
      expect(seen[1] === seen[2]).toBe(false);
      disposeBatchRun(run);
      expect(tf.memory().numTensors).toBe(before);
    },
  );
});
