import type { JobSpec } from '../../shared/schemas/jobSpec';
import { FedAvg } from './fedAvg';

/**
 * FedProx (Li et al., MLSys 2020): server aggregation is FedAvg's; the difference is on the client,
 * which adds (mu/2)·||w - w_global||² to its local loss. The strategy only ships mu in the config.
 */
export class FedProx extends FedAvg {
  override readonly name: JobSpec['strategy']['name'] = 'fedprox';

  constructor(
    spec: JobSpec,
    private readonly mu: number,
  ) {
    super(spec);
  }

  protected override proximalMu(): number {
    return this.mu;
  }
}
