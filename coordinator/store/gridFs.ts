import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import mongoose from 'mongoose';

/*
 * Byte blobs in GridFS. Checkpoints reach tens of MB (10M float32 weights = 40 MB) and a BSON document
 * stops at 16 MB, so weights, strategy state and validation sets live in GridFS buckets and the metadata
 * documents hold only their file ids.
 */

type Bucket = mongoose.mongo.GridFSBucket;
type ObjectId = mongoose.Types.ObjectId;

/** Thrown by `downloadBytes` when the file is gone (e.g. replaced and deleted by a concurrent save). */
export class GridFsFileMissing extends Error {
  override readonly name = 'GridFsFileMissing';
}

/** Writes `bytes` as a new file and returns its id. A failed upload removes the chunks it wrote. */
export async function uploadBytes(
  bucket: Bucket,
  filename: string,
  bytes: Uint8Array,
  metadata: Record<string, unknown>,
): Promise<ObjectId> {
  const stream = bucket.openUploadStream(filename, { metadata });
  try {
    // A Buffer view over the caller's bytes: no copy, the driver slices it into chunks.
    await pipeline(Readable.from([Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)]), stream);
  } catch (err) {
    await stream.abort().catch(() => {});
    throw err;
  }
  return stream.id;
}

/** Reads a whole file into a fresh Uint8Array. Throws GridFsFileMissing if it does not exist. */
export async function downloadBytes(bucket: Bucket, id: ObjectId): Promise<Uint8Array> {
  const file = await bucket.find({ _id: id }).limit(1).next();
  if (!file) throw new GridFsFileMissing(`GridFS file ${id.toHexString()} does not exist.`);
  // One allocation of the known length instead of collecting chunks and concatenating them.
  const out = new Uint8Array(file.length);
  let offset = 0;
  try {
    for await (const chunk of bucket.openDownloadStream(id)) {
      const part = chunk as Buffer;
      if (offset + part.byteLength > out.byteLength)
        throw new Error(`GridFS file ${id.toHexString()} is longer than its length.`);
      out.set(part, offset);
      offset += part.byteLength;
    }
  } catch (err) {
    // The file doc or its chunks vanished between our find and the read: a concurrent replace deleted it.
    const missing =
      (err as { code?: unknown }).code === 'ENOENT' ||
      (err instanceof mongoose.mongo.MongoGridFSChunkError && err.message.startsWith('ChunkIsMissing'));
    if (missing) {
      throw new GridFsFileMissing(`GridFS file ${id.toHexString()} was deleted while being read.`);
    }
    throw err;
  }
  if (offset !== out.byteLength) {
    throw new Error(`GridFS file ${id.toHexString()} has ${offset} bytes, its length says ${out.byteLength}.`);
  }
  return out;
}

/** Deletes a file; a file that is already gone is not an error (deletes are redone after a crash). */
export async function deleteQuietly(bucket: Bucket, id: ObjectId | undefined | null): Promise<void> {
  if (!id) return;
  try {
    await bucket.delete(id);
  } catch (err) {
    if (!(err instanceof mongoose.mongo.MongoRuntimeError && /file not found/i.test(err.message))) throw err;
  }
}
