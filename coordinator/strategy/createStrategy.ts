import type { JobSpec } from '../../shared/schemas/jobSpec';
import { AdaptiveOptimizer } from './optimizers/adaptive';
import { FedAvgM } from './optimizers/fedAvgM';
import { PlainStep } from './optimizers/plainStep';
import type { ServerOptimizer } from './optimizers/serverOptimizer';
import { ServerStrategy } from './serverStrategy';
import type { Strategy } from './strategy';

/** The server optimiser a strategy spec names, with its parameters. */
function optimizerOf(s: JobSpec['strategy']): ServerOptimizer {
  switch (s.name) {
    case 'fedavg':
    case 'fedprox':
      return new PlainStep();
    case 'fedavgm':
      return new FedAvgM({ serverLearningRate: s.serverLearningRate, momentum: s.momentum });
    case 'fedadam':
    case 'fedyogi':
      return new AdaptiveOptimizer(s.name, s);
    case 'fedadagrad':
      return new AdaptiveOptimizer('fedadagrad', { ...s, beta2: 0 });
  }
}

/** The strategy a job spec names: its server optimiser, FedProx's mu, and the optional robust rule and norm bound. */
export function createStrategy(spec: JobSpec): Strategy {
  const s = spec.strategy;
  return new ServerStrategy(spec, {
    name: s.name,
    proximalMu: s.name === 'fedprox' ? s.mu : 0,
    optimizer: optimizerOf(s),
    ...(s.robust ? { robust: s.robust } : {}),
    ...(s.maxUpdateNorm !== undefined ? { maxUpdateNorm: s.maxUpdateNorm } : {}),
  });
}
