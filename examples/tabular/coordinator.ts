import type { InputSpec, JobSpecInput } from '../../shared/schemas/jobSpec';
import type { ExampleOptions } from '../exampleTask';

/** The five weather classes, in label order. */
export const WEATHER_CLASSES = ['drizzle', 'rain', 'sun', 'snow', 'fog'] as const;

/** Six named numeric columns, as a provider's CSV header has them. */
export const TABULAR_INPUT: InputSpec = {
  shape: [6],
  featureColumns: ['precipitation', 'temp_max', 'temp_min', 'wind', 'month_sin', 'month_cos'],
  labelColumn: 'weather',
  numClasses: WEATHER_CLASSES.length,
};

/**
 * The buyer's job for the tabular example: a small MLP and FedProx (mu 0.01), which keeps clients
 * with skewed label mixes (try --partition dirichlet:0.5) from drifting far from the global model.
 */
export function tabularJobSpec(options: ExampleOptions): JobSpecInput {
  return {
    name: `seattle-weather-${options.partition.kind}`,
    model: { kind: 'builtin', name: 'mlp', hiddenUnits: [32, 16] },
    input: TABULAR_INPUT,
    rounds: options.rounds,
    minClients: options.clients,
    maxClients: options.clients,
    localEpochs: 5,
    batchSize: 16,
    learningRate: 0.05,
    strategy: { name: 'fedprox', mu: 0.01 },
    roundDeadlineMs: 120_000,
    quorumTimeoutMs: 120_000,
    seed: options.seed,
  };
}
