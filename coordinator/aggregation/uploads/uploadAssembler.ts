import { ChunkAssembler, chunkCount } from '../../../shared/codec/chunks';
import { TributaryError } from '../../../shared/errors';
import type { UpdateChunkBody } from '../../../shared/schemas/messages';

/**
 * Reassembles one client's chunked upload (`update:chunk` messages). The declared total is checked
 * against the round's bound on the first chunk, before anything is allocated; the chunks themselves
 * go through the shared ChunkAssembler (in order, exact sizes, nothing past the total).
 */
export class UploadAssembler {
  private chunks: ChunkAssembler | null = null;
  private transferId: string | null = null;

  constructor(
    private readonly maxBytes: number,
    private readonly chunkBytes: number,
  ) {}

  /** The transfer this assembler is receiving, once its first chunk arrived. */
  get currentTransferId(): string | null {
    return this.transferId;
  }

  add(body: UpdateChunkBody, data: Uint8Array | undefined): void {
    if (!data || data.length === 0) {
      throw new TributaryError('TRANSFER_CHUNK_INVALID', 'Expected a binary chunk attached to update:chunk.');
    }
    if (this.chunks === null) {
      if (body.index !== 0)
        throw new TributaryError('TRANSFER_CHUNK_INVALID', `Expected chunk 0 first, got ${body.index}.`);
      if (body.totalBytes > this.maxBytes) {
        throw new TributaryError(
          'PAYLOAD_TOO_LARGE',
          `Upload declares ${body.totalBytes} bytes; this round accepts at most ${this.maxBytes}.`,
        );
      }
      const count = chunkCount(body.totalBytes, this.chunkBytes);
      if (body.count !== count) {
        throw new TributaryError(
          'TRANSFER_CHUNK_INVALID',
          `Expected ${count} chunks of ${this.chunkBytes} bytes for ${body.totalBytes} bytes, got count ${body.count}.`,
        );
      }
      this.chunks = new ChunkAssembler(body.totalBytes, { chunkBytes: this.chunkBytes });
      this.transferId = body.transferId;
    } else if (body.transferId !== this.transferId) {
      throw new TributaryError('TRANSFER_UNKNOWN', `Expected transfer ${this.transferId}, got ${body.transferId}.`);
    }
    const chunks = this.chunks;
    if (body.count !== chunks.count || body.totalBytes !== chunks.totalBytes) {
      throw new TributaryError(
        'TRANSFER_CHUNK_INVALID',
        `Expected chunk ${chunks.nextIndex} of ${chunks.count}, got ${body.index} of ${body.count}.`,
      );
    }
    chunks.add(body.index, data);
  }

  /** The complete upload; throws if it is for another transfer or not every chunk arrived. */
  complete(transferId: string): Buffer {
    if (this.transferId !== transferId || !this.chunks) {
      throw new TributaryError('TRANSFER_UNKNOWN', `No upload with transfer id ${transferId} is in progress.`);
    }
    return this.chunks.result();
  }
}
