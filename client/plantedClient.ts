import type { NamedTensor } from '../shared/codec/tensors';
import type { RoundTask } from '../shared/schemas/messages';
import { type PlantedBehaviour, plantedDelta } from './plantedBehaviour';
import { TributaryClient, type TributaryClientOptions } from './tributaryClient';

/**
 * Research only (planted federations for contribution scoring and robustness): a client that sends
 * this misbehaviour's update instead of the trained one (see plantedBehaviour.ts). Kept out of the
 * production client's options on purpose.
 */
export class PlantedTributaryClient extends TributaryClient {
  constructor(
    options: TributaryClientOptions,
    private readonly behaviour: PlantedBehaviour,
  ) {
    super(options);
  }

  protected override deltaToSend(
    global: readonly NamedTensor[],
    trained: NamedTensor[],
    task: RoundTask,
  ): NamedTensor[] {
    return plantedDelta(this.behaviour, global, trained, task.config.seed);
  }
}

/** A planted client when `behaviour` is set, else an honest one. */
export function createResearchClient(options: TributaryClientOptions, behaviour?: PlantedBehaviour): TributaryClient {
  return behaviour ? new PlantedTributaryClient(options, behaviour) : new TributaryClient(options);
}
