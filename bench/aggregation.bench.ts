import { encodeTensors } from '../shared/codec/modelCodec';
import { JobSpecSchema } from '../shared/schemas/jobSpec';
import { PlaintextAggregator } from '../coordinator/aggregation/none/plaintextAggregator';
import { createStrategy } from '../coordinator/strategy/createStrategy';
import { bestOf, round } from './harness';

/**
 * FedAvg over 10 updates of 1M parameters: decode (zero copy) + finiteness check + weighted
 * accumulation + the server step, against a plain loop that sums ten Float32Arrays, in one run.
 */
export function aggregationBench(params = 1_000_000, clients = 10) {
  const updates = Array.from({ length: clients }, (_, c) => {
    const data = new Float32Array(params);
    for (let i = 0; i < params; i++) data[i] = Math.sin(i + c) * 1e-3;
    return { plain: data, encoded: encodeTensors([{ name: 'w', shape: [params], data }]) };
  });
  const manifest = [{ name: 'w', shape: [params] }];
  const global = [{ name: 'w', shape: [params], data: new Float32Array(params) }];
  const spec = JobSpecSchema.parse({
    name: 'b',
    model: { kind: 'builtin', name: 'mlp' },
    input: { shape: [1], numClasses: 2 },
    rounds: 1,
    secureAggregation: 'none',
  });
  const fedAvg = createStrategy(spec);

  const plainSeconds = bestOf(15, () => {
    const sum = new Float32Array(params);
    for (const u of updates) {
      const d = u.plain;
      for (let i = 0; i < params; i++) sum[i] += d[i];
    }
  });
  const fedAvgSeconds = bestOf(15, () => {
    const agg = new PlaintextAggregator(manifest, { maxExampleWeight: 1_000_000_000 });
    updates.forEach((u, c) => agg.accept(`c${c}`, u.encoded, 100 + c));
    fedAvg.aggregateTrain(global, agg.result(), undefined);
  });
  const total = params * clients;
  return {
    params,
    clients,
    fedAvgParamsPerSecond: round(total / fedAvgSeconds),
    plainFloat32SumParamsPerSecond: round(total / plainSeconds),
    fedAvgSeconds: round(fedAvgSeconds),
    plainSumSeconds: round(plainSeconds),
    /** FedAvg time / plain sum time (1.0 = as fast as the bare loop). */
    slowdownVsPlainSum: round(fedAvgSeconds / plainSeconds),
  };
}
