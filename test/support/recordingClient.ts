import { TributaryClient, type TributaryClientOptions } from '../../client/tributaryClient';
import { flattenByManifest } from '../../shared/codec/manifestVector';
import type { NamedTensor, TensorManifestEntry } from '../../shared/codec/tensors';
import type { RoundTask } from '../../shared/schemas/messages';
import { quantize, weightUpdate } from '../../shared/secagg';

/**
 * An honest TributaryClient that also records, for the test, the quantised SecAgg+ input of each
 * (round, attempt) it trained: the trained delta, weighted and quantised exactly as its secagg half
 * does (client/updates/secagg.ts). This is the ground truth a test compares the adversary's
 * reconstructions with; the client itself behaves as the production one.
 */
export class RecordingClient extends TributaryClient {
  /** `${round}:${attempt}` -> the quantised input the client masks in that attempt. */
  readonly inputs = new Map<string, Uint32Array>();
  private manifest: readonly TensorManifestEntry[] = [];
  private last: { task: RoundTask; tensors: NamedTensor[] } | null = null;

  constructor(
    options: TributaryClientOptions,
    private readonly secagg: { maxExampleWeight: number; clippingRange: number },
  ) {
    super(options);
    this.on('joined', (joined) => {
      this.manifest = joined.weightManifest;
    });
    // Emitted right after deltaToSend, in the same training call.
    this.on('roundTrained', ({ round, numExamples }) => {
      const last = this.last;
      if (!last || last.task.round !== round) return;
      const weighted = weightUpdate(
        flattenByManifest(last.tensors, this.manifest),
        numExamples,
        this.secagg.maxExampleWeight,
      );
      const q = quantize(weighted, { clippingRange: this.secagg.clippingRange, quantizationRange: 2 ** 22 });
      this.inputs.set(`${round}:${last.task.attempt}`, q.values);
    });
  }

  /** The quantised input of round 1, attempt `attempt` (throws if it never trained it). */
  inputOf(attempt: number, round = 1): Uint32Array {
    const input = this.inputs.get(`${round}:${attempt}`);
    if (!input) throw new Error(`${this.clientId} has no input for round ${round} attempt ${attempt}`);
    return input;
  }

  protected override deltaToSend(
    _global: readonly NamedTensor[],
    trained: NamedTensor[],
    task: RoundTask,
  ): NamedTensor[] {
    this.last = { task, tensors: trained };
    return trained;
  }
}
