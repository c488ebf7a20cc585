import { TributaryError } from '../../shared/errors';
import type { UpdateChunkBody } from '../../shared/schemas/messages';

/**
 * Reassembles one client's chunked upload. The total size is checked against the round's bound on
 * the first chunk, before the buffer is allocated; chunks must arrive in order, each of the agreed
 * size (the last may be shorter), and no byte may land outside the declared total.
 */
export class UploadAssembler {
  private buffer: Buffer | null = null;
  private nextIndex = 0;
  private received = 0;
  private transferId: string | null = null;
  private count = 0;

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
    if (this.transferId === null) {
      if (body.index !== 0)
        throw new TributaryError('TRANSFER_CHUNK_INVALID', `Expected chunk 0 first, got ${body.index}.`);
      if (body.totalBytes > this.maxBytes) {
        throw new TributaryError(
          'PAYLOAD_TOO_LARGE',
          `Upload declares ${body.totalBytes} bytes; this round accepts at most ${this.maxBytes}.`,
        );
      }
      if (body.count !== Math.ceil(body.totalBytes / this.chunkBytes)) {
        throw new TributaryError(
          'TRANSFER_CHUNK_INVALID',
          `Expected ${Math.ceil(body.totalBytes / this.chunkBytes)} chunks of ${this.chunkBytes} bytes for ${body.totalBytes} bytes, got count ${body.count}.`,
        );
      }
      this.transferId = body.transferId;
      this.count = body.count;
      this.buffer = Buffer.allocUnsafe(body.totalBytes);
    } else if (body.transferId !== this.transferId) {
      throw new TributaryError('TRANSFER_UNKNOWN', `Expected transfer ${this.transferId}, got ${body.transferId}.`);
    }
    const buffer = this.buffer as Buffer;
    if (body.index !== this.nextIndex || body.count !== this.count || body.totalBytes !== buffer.length) {
      throw new TributaryError(
        'TRANSFER_CHUNK_INVALID',
        `Expected chunk ${this.nextIndex} of ${this.count}, got ${body.index} of ${body.count}.`,
      );
    }
    const isLast = body.index === this.count - 1;
    const expectedLength = isLast ? buffer.length - this.received : this.chunkBytes;
    if (data.length !== expectedLength) {
      throw new TributaryError(
        'TRANSFER_CHUNK_INVALID',
        `Chunk ${body.index} should hold ${expectedLength} bytes, got ${data.length}.`,
      );
    }
    buffer.set(data, this.received);
    this.received += data.length;
    this.nextIndex++;
  }

  /** The complete upload; throws if it is for another transfer or not every chunk arrived. */
  complete(transferId: string): Buffer {
    if (this.transferId !== transferId) {
      throw new TributaryError('TRANSFER_UNKNOWN', `No upload with transfer id ${transferId} is in progress.`);
    }
    if (this.nextIndex !== this.count) {
      throw new TributaryError('TRANSFER_INCOMPLETE', `Received ${this.nextIndex} of ${this.count} chunks.`);
    }
    return this.buffer as Buffer;
  }
}
