import { createHash } from 'node:crypto';
import { z } from 'zod';
import { TributaryError } from '../errors';
import { LIMITS } from '../schemas/jobSpec';
import { type NamedTensor, type TensorManifestEntry, sizeOfShape } from './tensors';

/**
 * Binary layout of a set of named Float32 tensors (model weights, updates, strategy state):
 *
 *   offset 0   "TRBT"             magic
 *          4   u16 LE             format version (1)
 *          6   u16 LE             reserved (0)
 *          8   u32 LE             header length H (bytes of UTF-8 JSON)
 *         12   H bytes            header JSON: { tensors: [{ name, shape }] }
 *   12+H..     0-3 zero bytes     padding so the data starts 4-byte aligned
 *          D   float32 LE         every tensor's data, in header order, concatenated
 *
 * The header is validated (and every declared size checked against limits) before anything is
 * allocated, and the total length must match the header exactly.
 */
export const CODEC_MAGIC = 'TRBT';
export const CODEC_VERSION = 1;
const PREFIX_BYTES = 12;

export interface CodecLimits {
  /** Largest header JSON accepted. @default 4 MiB */
  maxHeaderBytes: number;
  /** Most tensors in one payload. @default LIMITS.maxTensorCount */
  maxTensors: number;
  /** Most Float32 values in one payload. @default LIMITS.maxParameters */
  maxParameters: number;
}

export const DEFAULT_CODEC_LIMITS: Readonly<CodecLimits> = Object.freeze({
  maxHeaderBytes: 4 * 1024 * 1024,
  maxTensors: LIMITS.maxTensorCount,
  maxParameters: LIMITS.maxParameters,
});

const HeaderSchema = z.object({
  tensors: z.array(
    z.object({
      name: z.string().min(1).max(512),
      shape: z.array(z.number().int().nonnegative().max(LIMITS.maxParameters)).max(LIMITS.maxTensorRank),
    }),
  ),
});

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function padTo4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/** Exact byte length of `encodeTensors` output for tensors with this manifest. */
export function encodedByteLength(manifest: readonly TensorManifestEntry[]): number {
  const header = { tensors: manifest.map((t) => ({ name: t.name, shape: [...t.shape] })) };
  const headerLength = Buffer.byteLength(JSON.stringify(header), 'utf8');
  const values = manifest.reduce((n, t) => n + sizeOfShape(t.shape), 0);
  return PREFIX_BYTES + headerLength + padTo4(PREFIX_BYTES + headerLength) + values * 4;
}

/** Encodes named tensors into one buffer. Throws CODEC_LIMIT_EXCEEDED if limits are exceeded. */
export function encodeTensors(tensors: readonly NamedTensor[], limits: CodecLimits = DEFAULT_CODEC_LIMITS): Buffer {
  const header = { tensors: tensors.map((t) => ({ name: t.name, shape: [...t.shape] })) };
  checkManifestLimits(header.tensors, limits);
  for (const t of tensors) {
    if (t.data.length !== sizeOfShape(t.shape)) {
      throw new TributaryError(
        'CODEC_MALFORMED',
        `Tensor "${t.name}" has shape [${t.shape}] (${sizeOfShape(t.shape)} values) but ${t.data.length} values.`,
      );
    }
  }
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  if (headerBytes.length > limits.maxHeaderBytes) {
    throw new TributaryError(
      'CODEC_LIMIT_EXCEEDED',
      `Header of ${headerBytes.length} bytes exceeds ${limits.maxHeaderBytes}.`,
    );
  }
  const dataOffset = PREFIX_BYTES + headerBytes.length + padTo4(PREFIX_BYTES + headerBytes.length);
  const totalValues = tensors.reduce((n, t) => n + t.data.length, 0);
  const out = Buffer.alloc(dataOffset + totalValues * 4);
  out.write(CODEC_MAGIC, 0, 'latin1');
  out.writeUInt16LE(CODEC_VERSION, 4);
  out.writeUInt16LE(0, 6);
  out.writeUInt32LE(headerBytes.length, 8);
  headerBytes.copy(out, PREFIX_BYTES);
  let offset = dataOffset;
  for (const t of tensors) {
    if (littleEndian) {
      out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), offset);
    } else {
      for (let i = 0; i < t.data.length; i++) out.writeFloatLE(t.data[i], offset + i * 4);
    }
    offset += t.data.byteLength;
  }
  return out;
}

export interface DecodeOptions {
  limits?: CodecLimits;
  /** Reject NaN and +-Infinity with CODEC_NON_FINITE. @default true */
  requireFinite?: boolean;
  /** Check names and shapes against this manifest (MODEL_SHAPE_MISMATCH). */
  expected?: readonly TensorManifestEntry[];
  /**
   * Return views into `bytes` when aligned (no copy). Callers that keep the tensors beyond the
   * lifetime of `bytes` must pass false. @default false
   */
  zeroCopy?: boolean;
}

/** Reads only the header: names and shapes, validated against limits. */
export function decodeManifest(
  bytes: Uint8Array,
  limits: CodecLimits = DEFAULT_CODEC_LIMITS,
): {
  manifest: TensorManifestEntry[];
  dataOffset: number;
  totalValues: number;
} {
  if (bytes.length < PREFIX_BYTES) {
    throw new TributaryError('CODEC_MALFORMED', `Expected at least ${PREFIX_BYTES} bytes, got ${bytes.length}.`);
  }
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.toString('latin1', 0, 4);
  if (magic !== CODEC_MAGIC) {
    throw new TributaryError('CODEC_MALFORMED', `Expected magic "${CODEC_MAGIC}", got ${JSON.stringify(magic)}.`);
  }
  const version = view.readUInt16LE(4);
  if (version !== CODEC_VERSION) {
    throw new TributaryError('CODEC_MALFORMED', `Expected codec version ${CODEC_VERSION}, got ${version}.`);
  }
  const headerLength = view.readUInt32LE(8);
  if (headerLength > limits.maxHeaderBytes) {
    throw new TributaryError(
      'CODEC_LIMIT_EXCEEDED',
      `Header declares ${headerLength} bytes; the limit is ${limits.maxHeaderBytes}.`,
    );
  }
  if (PREFIX_BYTES + headerLength > bytes.length) {
    throw new TributaryError(
      'CODEC_MALFORMED',
      `Header declares ${headerLength} bytes but only ${bytes.length - PREFIX_BYTES} follow.`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(view.toString('utf8', PREFIX_BYTES, PREFIX_BYTES + headerLength));
  } catch {
    throw new TributaryError('CODEC_MALFORMED', 'The header is not valid JSON.');
  }
  const header = HeaderSchema.safeParse(parsed);
  if (!header.success) {
    throw new TributaryError(
      'CODEC_MALFORMED',
      `The header does not match { tensors: [{ name, shape }] }: ${header.error.issues[0]?.message}.`,
    );
  }
  const manifest = header.data.tensors;
  const totalValues = checkManifestLimits(manifest, limits);
  const dataOffset = PREFIX_BYTES + headerLength + padTo4(PREFIX_BYTES + headerLength);
  const expectedLength = dataOffset + totalValues * 4;
  if (bytes.length !== expectedLength) {
    throw new TributaryError(
      'CODEC_MALFORMED',
      `The header declares ${totalValues} values (${expectedLength} bytes in all) but the payload has ${bytes.length} bytes.`,
    );
  }
  return { manifest, dataOffset, totalValues };
}

/** Decodes a buffer made by encodeTensors. Exact inverse: values are bit-identical. */
export function decodeTensors(bytes: Uint8Array, options: DecodeOptions = {}): NamedTensor[] {
  const limits = options.limits ?? DEFAULT_CODEC_LIMITS;
  const { manifest, dataOffset } = decodeManifest(bytes, limits);
  if (options.expected) assertManifestMatches(manifest, options.expected);
  const out: NamedTensor[] = [];
  let offset = bytes.byteOffset + dataOffset;
  for (const entry of manifest) {
    const n = sizeOfShape(entry.shape);
    let data: Float32Array;
    if (littleEndian && options.zeroCopy && offset % 4 === 0) {
      data = new Float32Array(bytes.buffer, offset, n);
    } else if (littleEndian) {
      data = new Float32Array(n);
      new Uint8Array(data.buffer).set(new Uint8Array(bytes.buffer, offset, n * 4));
    } else {
      const dv = new DataView(bytes.buffer, offset, n * 4);
      data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = dv.getFloat32(i * 4, true);
    }
    if (options.requireFinite !== false) assertFinite(entry.name, data);
    out.push({ name: entry.name, shape: [...entry.shape], data });
    offset += n * 4;
  }
  return out;
}

/** SHA-256 (hex) of the codec bytes: the content hash used in signatures, checkpoints and on chain. */
export function contentHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Throws MODEL_SHAPE_MISMATCH naming the first difference. */
export function assertManifestMatches(
  actual: readonly TensorManifestEntry[],
  expected: readonly TensorManifestEntry[],
): void {
  if (actual.length !== expected.length) {
    throw new TributaryError('MODEL_SHAPE_MISMATCH', `Expected ${expected.length} tensors, got ${actual.length}.`);
  }
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (a.name !== e.name || a.shape.length !== e.shape.length || a.shape.some((d, j) => d !== e.shape[j])) {
      throw new TributaryError(
        'MODEL_SHAPE_MISMATCH',
        `Tensor ${i}: expected "${e.name}" [${e.shape}], got "${a.name}" [${a.shape}].`,
      );
    }
  }
}

function assertFinite(name: string, data: Float32Array): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    // v - v is NaN for NaN and +-Infinity, 0 otherwise: one branch per element.
    if (v - v !== 0) {
      throw new TributaryError(
        'CODEC_NON_FINITE',
        `Tensor "${name}" holds ${v} at index ${i}; expected finite values.`,
      );
    }
  }
}

function checkManifestLimits(manifest: readonly TensorManifestEntry[], limits: CodecLimits): number {
  if (manifest.length > limits.maxTensors) {
    throw new TributaryError(
      'CODEC_LIMIT_EXCEEDED',
      `Payload declares ${manifest.length} tensors; the limit is ${limits.maxTensors}.`,
    );
  }
  let total = 0;
  for (const t of manifest) {
    if (t.shape.length > LIMITS.maxTensorRank) {
      throw new TributaryError(
        'CODEC_LIMIT_EXCEEDED',
        `Tensor "${t.name}" has rank ${t.shape.length}; the limit is ${LIMITS.maxTensorRank}.`,
      );
    }
    total += sizeOfShape(t.shape);
    if (total > limits.maxParameters) {
      throw new TributaryError('CODEC_LIMIT_EXCEEDED', `Payload declares more than ${limits.maxParameters} values.`);
    }
  }
  return total;
}
