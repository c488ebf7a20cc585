import type { NamedTensor } from '../shared/codec/tensors';
import type { RoundTask } from '../shared/schemas/messages';
import {
  attackerDataset,
  DEFAULT_ATTACK_OPTIONS,
  type AttackOptions,
  type PlantedBehaviour,
  plantedDelta,
  SOLO_ATTACKS,
  type SoloAttack,
  soloAttackDelta,
  soloAttackExamples,
} from './plantedBehaviour';
import { plantedModeFor } from './plantedModes';
import { TributaryClient, type TributaryClientOptions } from './tributaryClient';
import type { ClientAggregationMode } from './updates/clientAggregationMode';

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

/** What an AttackerClient needs besides the client options. */
export interface AttackerOptions {
  /** The job's class count (label-flip relabels l to numClasses - 1 - l). */
  numClasses: number;
  /** Seeds the data poisoning (backdoor's stamped examples). */
  seed: number;
  /** @default DEFAULT_ATTACK_OPTIONS */
  attack?: Readonly<AttackOptions>;
}

/**
 * Research only: a Byzantine data provider playing one of the robustness attacks on its own (issue 13,
 * plantedBehaviour.ts `SoloAttack`): it trains on poisoned data (`label-flip`, `backdoor`), sends the
 * attack's delta and declared example count, and for the attacks on the aggregate runs a modified
 * client half of the private modes (client/plantedModes.ts). Everything else, from the handshake to
 * the protocol messages, is the production client's.
 */
export class AttackerClient extends TributaryClient {
  private readonly strength: Readonly<AttackOptions>;

  constructor(
    options: TributaryClientOptions,
    readonly attack: SoloAttack,
    attacker: AttackerOptions,
  ) {
    if (!SOLO_ATTACKS.includes(attack)) {
      throw new RangeError(`a lone attacker plays one of ${SOLO_ATTACKS.join(', ')}; got ${attack}`);
    }
    const strength = attacker.attack ?? DEFAULT_ATTACK_OPTIONS;
    const poisonable = attack !== 'overflow' && attack !== 'negative-weight';
    const dataset = poisonable
      ? attackerDataset(attack, options.dataset, attacker.numClasses, attacker.seed, strength)
      : options.dataset;
    super({ ...options, dataset });
    this.strength = strength;
  }

  protected override deltaToSend(
    global: readonly NamedTensor[],
    trained: NamedTensor[],
    task: RoundTask,
  ): NamedTensor[] {
    return soloAttackDelta(this.attack, global, trained, task.config.seed, this.strength);
  }

  protected override examplesToClaim(trained: number, _task: RoundTask): number {
    return soloAttackExamples(this.attack, trained, this.strength);
  }

  protected override aggregationModeFor(name: string): ClientAggregationMode {
    return plantedModeFor(this.attack, name) ?? super.aggregationModeFor(name);
  }
}
