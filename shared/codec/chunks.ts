import { TributaryError } from '../errors';

/**
 * Chunked transfer, both directions: a payload larger than one socket message travels as consecutive
 * chunks of exactly `chunkBytes` (the last may be shorter), each acknowledged before the next.
 * `splitIntoChunks` is the sending half; `ChunkAssembler` the receiving half, which allocates the
 * declared total once (after the caller bounded it) and refuses, without changing what it holds, any
 * chunk out of order, of the wrong size, or past the total.
 */
export function splitIntoChunks(bytes: Uint8Array, chunkBytes: number): Uint8Array[] {
  if (!Number.isInteger(chunkBytes) || chunkBytes <= 0)
    throw new RangeError(`chunkBytes must be positive, got ${chunkBytes}`);
  const count = Math.max(1, Math.ceil(bytes.length / chunkBytes));
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < count; i++)
    chunks.push(bytes.subarray(i * chunkBytes, Math.min(bytes.length, (i + 1) * chunkBytes)));
  return chunks;
}

/** How many chunks of `chunkBytes` carry `totalBytes`. */
export function chunkCount(totalBytes: number, chunkBytes: number): number {
  return Math.max(1, Math.ceil(totalBytes / chunkBytes));
}

/**
 * Reassembles one payload of a known total size from `count` in-order chunks. With `chunkBytes` every
 * chunk but the last must hold exactly that many bytes (uploads); without it any non-empty chunk of at
 * most `maxChunkBytes` is taken as long as the chunks add up to exactly the total (SecAgg+ parts).
 */
export class ChunkAssembler {
  readonly count: number;
  private readonly buffer: Buffer;
  private next = 0;
  private received = 0;
  private lastLength = 0;

  constructor(
    readonly totalBytes: number,
    private readonly layout: { chunkBytes: number } | { count: number; maxChunkBytes: number },
  ) {
    this.count = 'chunkBytes' in layout ? chunkCount(totalBytes, layout.chunkBytes) : layout.count;
    this.buffer = Buffer.allocUnsafe(totalBytes);
  }

  /** Index of the chunk expected next. */
  get nextIndex(): number {
    return this.next;
  }

  get complete(): boolean {
    return this.next === this.count;
  }

  /** Adds chunk `index`; returns the whole payload with the last chunk, else null. TRANSFER_CHUNK_INVALID on any mismatch. */
  add(index: number, data: Uint8Array): Buffer | null {
    if (index !== this.next) {
      throw new TributaryError(
        'TRANSFER_CHUNK_INVALID',
        `Expected chunk ${this.next} of ${this.count}, got chunk ${index}.`,
      );
    }
    const last = index === this.count - 1;
    const remaining = this.totalBytes - this.received;
    if ('chunkBytes' in this.layout) {
      const expected = last ? remaining : this.layout.chunkBytes;
      if (data.length !== expected || data.length === 0) {
        throw new TributaryError(
          'TRANSFER_CHUNK_INVALID',
          `Chunk ${index} should hold ${expected} bytes, got ${data.length}.`,
        );
      }
    } else if (
      data.length === 0 ||
      data.length > this.layout.maxChunkBytes ||
      data.length > remaining ||
      (last && data.length !== remaining)
    ) {
      throw new TributaryError(
        'TRANSFER_CHUNK_INVALID',
        `The chunks must add up to exactly ${this.totalBytes} bytes; chunk ${index} of ${this.count} brings ${this.received} + ${data.length}.`,
      );
    }
    this.buffer.set(data, this.received);
    this.received += data.length;
    this.lastLength = data.length;
    this.next++;
    return last ? this.buffer : null;
  }

  /** Takes back the last chunk added (its payload was refused downstream), so it can be sent again. */
  undoLast(): void {
    if (this.next === 0) return;
    this.next--;
    this.received -= this.lastLength;
    this.lastLength = 0;
  }

  /** The payload once every chunk arrived; TRANSFER_INCOMPLETE before. */
  result(): Buffer {
    if (!this.complete) {
      throw new TributaryError('TRANSFER_INCOMPLETE', `Received ${this.next} of ${this.count} chunks.`);
    }
    return this.buffer;
  }
}
