import { contentHash } from '../../../shared/codec/modelCodec';
import { TributaryError } from '../../../shared/errors';
import type { UpdateChunkBody, UpdateCommitBody } from '../../../shared/schemas/messages';
import { WakeableWait } from '../../../shared/wakeableWait';
import type { RoundFailure } from '../../store/store';
import type { AggregatedUpdates, ClientEvaluation, UpdatePart } from '../../strategy/strategy';
import type {
  Collected,
  CollectionContext,
  Revealed,
  RevealedPrivacy,
  RoundCollection,
  RoundMessage,
} from '../aggregationMode';
import { UploadAssembler } from './uploadAssembler';

/**
 * What an upload-based mode does with a complete upload (`none`: decode and sum; `paillier`: check
 * the ciphertexts and the signed submission, and keep them). `accept` validates the whole payload
 * before changing any state. A refusal whose error names the sender in `details.members` is
 * sabotage, not a mistake: the collection drops the sender from the attempt (see UploadCollection).
 */
export interface UploadAggregator {
  /** Upper bound on one encoded update, in bytes, so uploads are bounded before allocation. */
  readonly maxUpdateBytes: number;
  /**
   * `commit` is the signed update:commit that completed the upload (its hash already checked; under DP,
   * `none` reads the unclipped bit in its metrics).
   */
  accept(clientId: string, payload: Uint8Array, numExamples: number, commit?: UpdateCommitBody): void;
  /**
   * The SHA-256 hex of a complete upload (checked against the commit's `updateHash` just before
   * `accept` gets the same bytes), for a mode that hashes the upload anyway and can compute both in
   * one pass (`he`). Absent: the collection hashes the upload itself (contentHash).
   */
  uploadHash?(bytes: Uint8Array): string;
  /** The sums (remote decryption included); parts when the mode keeps them; the unclipped count under DP. Rejects with a coded error. */
  reveal(): Promise<{ sum: AggregatedUpdates; parts?: UpdatePart[]; privacy?: RevealedPrivacy }>;
}

/**
 * Collects the selected clients' chunked uploads for one round attempt until every one has answered
 * or failed, or the deadline passes (modes `none` and `paillier`). Each client gets exactly one
 * accepted update; everything it sends is validated before it reaches the aggregator. A client may
 * retry after a refused upload, except when the aggregator attributes the refusal to it
 * (`details.members`): then it is a failure of this attempt, blamed, and left out of the retry.
 */
export class UploadCollection implements RoundCollection {
  private readonly pending: Set<string>;
  private readonly uploads = new Map<string, UploadAssembler>();
  private readonly participants: string[] = [];
  private readonly failures: RoundFailure[] = [];
  private readonly evaluations: ClientEvaluation[] = [];
  private readonly blamed: string[] = [];
  private readonly wait = new WakeableWait();
  private open = true;

  constructor(
    private readonly context: CollectionContext,
    private readonly aggregator: UploadAggregator,
    /** Whether clients report training metrics with their commit (they would leak in private modes). */
    private readonly options: { modeName: string; keepMetrics: boolean },
  ) {
    this.pending = new Set(context.selected);
  }

  async collect(): Promise<Collected> {
    await this.wait.until(() => !this.open || this.pending.size === 0, this.context.deadline - this.context.now());
    this.close();
    return {
      participants: [...this.participants],
      failures: [...this.failures],
      evaluations: this.options.keepMetrics ? [...this.evaluations] : [],
      ...(this.blamed.length > 0 ? { blamed: [...this.blamed] } : {}),
    };
  }

  async reveal(): Promise<Revealed> {
    const { sum, parts, privacy } = await this.aggregator.reveal();
    return {
      sum,
      participants: [...this.participants],
      failures: [...this.failures],
      ...(parts && parts.length > 0 ? { parts, partKind: 'client' as const } : {}),
      ...(privacy ? { privacy } : {}),
    };
  }

  receive(clientId: string, message: RoundMessage): void {
    switch (message.name) {
      case 'updateChunk':
        this.handleChunk(clientId, message.body, message.data);
        return;
      case 'updateCommit':
        this.handleCommit(clientId, message.body);
        return;
      default:
        throw new TributaryError(
          'VALIDATION_FAILED',
          `This job aggregates in mode "${this.options.modeName}": updates travel as update:chunk and update:commit, not ${message.name}.`,
        );
    }
  }

  dropped(clientId: string, reason: string): void {
    if (!this.open || !this.pending.delete(clientId)) return;
    this.uploads.delete(clientId);
    this.failures.push({ clientId, reason });
    this.wait.wake();
  }

  stop(): void {
    this.close();
  }

  private handleChunk(clientId: string, body: UpdateChunkBody, data: Uint8Array | undefined): void {
    this.assertCanSend(clientId);
    let upload = this.uploads.get(clientId);
    // A first chunk of another transfer restarts the upload: a client may retry after an error.
    if (!upload || (body.index === 0 && upload.currentTransferId !== body.transferId)) {
      upload = new UploadAssembler(this.aggregator.maxUpdateBytes, this.context.chunkBytes);
      this.uploads.set(clientId, upload);
    }
    upload.add(body, data);
  }

  private handleCommit(clientId: string, body: UpdateCommitBody): void {
    this.assertCanSend(clientId);
    const upload = this.uploads.get(clientId);
    if (!upload) {
      throw new TributaryError(
        'TRANSFER_UNKNOWN',
        `No upload ${body.transferId} in progress; send update:chunk first.`,
      );
    }
    const bytes = upload.complete(body.transferId);
    const hash = this.aggregator.uploadHash?.(bytes) ?? contentHash(bytes);
    if (hash !== body.updateHash) {
      this.uploads.delete(clientId);
      throw new TributaryError(
        'TRANSFER_HASH_MISMATCH',
        `The upload hashes to ${hash}, the commit says ${body.updateHash}.`,
      );
    }
    try {
      this.aggregator.accept(clientId, bytes, body.numExamples, body);
    } catch (err) {
      this.attribute(clientId, err);
      throw err;
    } finally {
      // Either way the bytes are no longer needed; a rejected client may retry with a fresh upload.
      this.uploads.delete(clientId);
    }
    this.pending.delete(clientId);
    this.participants.push(clientId);
    this.evaluations.push({ numExamples: body.numExamples, metrics: body.metrics });
    this.wait.wake();
  }

  /** A refusal that names its sender (sabotage such as a non-unit ciphertext): the sender is out of this attempt. */
  private attribute(clientId: string, err: unknown): void {
    const members = err instanceof TributaryError ? (err.details as { members?: unknown } | undefined)?.members : [];
    if (!Array.isArray(members) || !members.includes(clientId) || !this.pending.delete(clientId)) return;
    this.failures.push({ clientId, reason: `${(err as TributaryError).code}: ${(err as TributaryError).message}` });
    this.blamed.push(clientId);
    this.wait.wake();
  }

  /** Stops collecting: clients still pending are recorded as having missed the deadline. */
  private close(): void {
    if (!this.open) return;
    this.open = false;
    for (const clientId of this.pending) this.failures.push({ clientId, reason: 'DEADLINE_EXCEEDED' });
    this.pending.clear();
    this.uploads.clear();
    this.wait.wake();
  }

  private assertCanSend(clientId: string): void {
    const round = this.context.round;
    if (!this.open) throw new TributaryError('ROUND_LATE_UPDATE', `Round ${round} stopped collecting updates.`);
    if (this.participants.includes(clientId)) {
      throw new TributaryError('ROUND_DUPLICATE_UPDATE', `Round ${round} already has this client's update.`);
    }
    if (!this.pending.has(clientId)) {
      throw new TributaryError(
        'ROUND_NOT_SELECTED',
        `The client was not selected for round ${round} (or already failed it).`,
      );
    }
  }
}
