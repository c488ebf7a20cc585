import { contentHash } from '../../shared/codec/modelCodec';
import { TributaryError } from '../../shared/errors';
import type { UpdateChunkBody, UpdateCommitBody } from '../../shared/schemas/messages';
import type { UpdateAggregator } from '../aggregation/updateAggregator';
import type { RoundFailure } from '../store/store';
import type { ClientEvaluation } from '../strategy/strategy';
import { UploadAssembler } from '../transport/uploadAssembler';

export interface CollectionResult {
  participants: string[];
  failures: RoundFailure[];
  evaluations: ClientEvaluation[];
}

/**
 * Collects the selected clients' updates for one round attempt until every one has answered or
 * failed, or the deadline passes. Each client gets exactly one accepted update; everything it sends
 * is validated before it reaches the aggregator.
 */
export class RoundCollector {
  private readonly pending: Set<string>;
  private readonly uploads = new Map<string, UploadAssembler>();
  private readonly participants: string[] = [];
  private readonly failures: RoundFailure[] = [];
  private readonly evaluations: ClientEvaluation[] = [];
  private open = true;
  private timer: NodeJS.Timeout | undefined;
  private resolveDone!: () => void;
  /** Resolves when every selected client answered or failed, or at the deadline. */
  readonly done: Promise<void>;

  constructor(
    readonly round: number,
    selected: readonly string[],
    private readonly aggregator: UpdateAggregator,
    private readonly chunkBytes: number,
    deadlineMs: number,
  ) {
    this.pending = new Set(selected);
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.timer = setTimeout(() => this.finish(), deadlineMs);
    if (this.pending.size === 0) this.finish();
  }

  get isOpen(): boolean {
    return this.open;
  }

  handleChunk(clientId: string, body: UpdateChunkBody, data: Uint8Array | undefined): void {
    this.assertCanSend(clientId);
    let upload = this.uploads.get(clientId);
    // A first chunk of another transfer restarts the upload: a client may retry after an error.
    if (!upload || (body.index === 0 && upload.currentTransferId !== body.transferId)) {
      upload = new UploadAssembler(this.aggregator.maxUpdateBytes, this.chunkBytes);
      this.uploads.set(clientId, upload);
    }
    upload.add(body, data);
  }

  handleCommit(clientId: string, body: UpdateCommitBody): void {
    this.assertCanSend(clientId);
    const upload = this.uploads.get(clientId);
    if (!upload)
      throw new TributaryError(
        'TRANSFER_UNKNOWN',
        `No upload ${body.transferId} in progress; send update:chunk first.`,
      );
    const bytes = upload.complete(body.transferId);
    const hash = contentHash(bytes);
    if (hash !== body.updateHash) {
      this.uploads.delete(clientId);
      throw new TributaryError(
        'TRANSFER_HASH_MISMATCH',
        `The upload hashes to ${hash}, the commit says ${body.updateHash}.`,
      );
    }
    try {
      this.aggregator.accept(clientId, bytes, body.numExamples);
    } finally {
      // Either way the bytes are no longer needed; a rejected client may retry with a fresh upload.
      this.uploads.delete(clientId);
    }
    this.pending.delete(clientId);
    this.participants.push(clientId);
    this.evaluations.push({ numExamples: body.numExamples, metrics: body.metrics });
    if (this.pending.size === 0) this.finish();
  }

  /** A selected client disconnected or otherwise cannot answer. */
  markFailed(clientId: string, reason: string): void {
    if (!this.open || !this.pending.delete(clientId)) return;
    this.uploads.delete(clientId);
    this.failures.push({ clientId, reason });
    if (this.pending.size === 0) this.finish();
  }

  /** Stops collecting: clients still pending are recorded as having missed the deadline. */
  close(): CollectionResult {
    this.finish();
    return { participants: [...this.participants], failures: [...this.failures], evaluations: [...this.evaluations] };
  }

  private finish(): void {
    if (!this.open) return;
    this.open = false;
    clearTimeout(this.timer);
    for (const clientId of this.pending) this.failures.push({ clientId, reason: 'DEADLINE_EXCEEDED' });
    this.pending.clear();
    this.uploads.clear();
    this.resolveDone();
  }

  private assertCanSend(clientId: string): void {
    if (!this.open) throw new TributaryError('ROUND_LATE_UPDATE', `Round ${this.round} stopped collecting updates.`);
    if (this.participants.includes(clientId)) {
      throw new TributaryError('ROUND_DUPLICATE_UPDATE', `Round ${this.round} already has this client's update.`);
    }
    if (!this.pending.has(clientId)) {
      throw new TributaryError(
        'ROUND_NOT_SELECTED',
        `The client was not selected for round ${this.round} (or already failed it).`,
      );
    }
  }
}
