import type { JobSpec } from '../../shared/schemas/jobSpec';
import { FedAdam } from './fedAdam';
import { FedAvg } from './fedAvg';
import { FedProx } from './fedProx';
import type { Strategy } from './strategy';

/** The strategy a job spec names, with its parameters. */
export function createStrategy(spec: JobSpec): Strategy {
  const s = spec.strategy;
  switch (s.name) {
    case 'fedavg':
      return new FedAvg(spec);
    case 'fedprox':
      return new FedProx(spec, s.mu);
    case 'fedadam':
      return new FedAdam(spec, {
        serverLearningRate: s.serverLearningRate,
        beta1: s.beta1,
        beta2: s.beta2,
        tau: s.tau,
      });
  }
}
