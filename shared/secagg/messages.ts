import { endianness } from 'node:os';
import { z } from 'zod';
import { MODULUS } from './quantize';
import { SECAGG_STAGES } from './stages';
import { KEY_BYTES } from './keys';
import { SHARE_BYTES, MAX_SHARES } from './shamir';
import { SIGNATURE_HEX } from './signatures';

/**
 * The messages between the SecAgg+ server and client halves, as zod schemas (types derived with
 * z.infer). Binary fields are Uint8Array (socket.io delivers Buffers, which are Uint8Arrays). Every
 * array and byte string is bounded here, before any decryption, reconstruction or allocation.
 */
export const SECAGG_LIMITS = {
  /** 2^32 / 2^22: the most clients Flower's default quantisation can sum without wrapping. */
  maxClients: 1023,
  maxNeighbours: MAX_SHARES,
  /** 2^26 values = 256 MiB of masked vector: far above any model we train. */
  maxVectorLength: 2 ** 26,
  maxCiphertextBytes: 1024,
} as const;

const bytes = (n: number) =>
  z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length === n, `expected ${n} bytes`);
const bytesUpTo = (max: number) =>
  z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length <= max, `expected at most ${max} bytes`);

/** Client ids are Ed25519 public keys in lowercase hex: every signature in the protocol is checked under them. */
export const ClientIdSchema = z
  .string()
  .regex(/^[0-9a-f]{64}$/, 'expected a client id that is an Ed25519 public key (64 lowercase hex characters)');
export const RoundIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'expected a round id of 1-128 characters [A-Za-z0-9_.:-]');
const idList = (max: number) => z.array(ClientIdSchema).max(max);
const SignatureSchema = z.string().regex(SIGNATURE_HEX, 'expected an Ed25519 signature (128 lowercase hex characters)');

export const SecAggParametersSchema = z.strictObject({
  vectorLength: z.number().int().min(1).max(SECAGG_LIMITS.maxVectorLength),
  neighbourCount: z.number().int().min(2).max(SECAGG_LIMITS.maxNeighbours),
  threshold: z.number().int().min(2).max(SECAGG_LIMITS.maxNeighbours),
  clippingRange: z.number().positive().finite(),
  quantizationRange: z
    .number()
    .int()
    .min(2)
    .max(2 ** 31),
  modulus: z.literal(MODULUS),
  graphSeed: z.string().min(1).max(128),
});
export type SecAggParameters = z.infer<typeof SecAggParametersSchema>;

const PublicKeysSchema = z.strictObject({
  clientId: ClientIdSchema,
  encryptionPublicKey: bytes(KEY_BYTES),
  maskPublicKey: bytes(KEY_BYTES),
  /** The owner's signature over both keys (signatures.ts advertisedKeysBytes), relayed unchanged. */
  keySignature: SignatureSchema,
});
const nonce = bytes(24);
const ciphertext = bytesUpTo(SECAGG_LIMITS.maxCiphertextBytes);

// ---- server -> client
export const SetupRequestSchema = z.strictObject({
  stage: z.literal(SECAGG_STAGES.setup),
  roundId: RoundIdSchema,
  params: SecAggParametersSchema,
  /** Every client sampled for the round; the graph is computed from these and params.graphSeed. */
  clientIds: idList(SECAGG_LIMITS.maxClients).min(3),
});
export const ShareKeysRequestSchema = z.strictObject({
  stage: z.literal(SECAGG_STAGES.shareKeys),
  roundId: RoundIdSchema,
  /** The signed keys of the client's neighbours that answered setup. */
  peers: z.array(PublicKeysSchema).max(SECAGG_LIMITS.maxNeighbours),
});
export const CollectMaskedVectorsRequestSchema = z.strictObject({
  stage: z.literal(SECAGG_STAGES.collectMaskedVectors),
  roundId: RoundIdSchema,
  /** The share bundles addressed to this client, routed unopened by the server. */
  bundles: z.array(z.strictObject({ from: ClientIdSchema, nonce, ciphertext })).max(SECAGG_LIMITS.maxNeighbours),
});
export const ConsistencyCheckRequestSchema = z.strictObject({
  stage: z.literal(SECAGG_STAGES.consistencyCheck),
  roundId: RoundIdSchema,
  /** The clients whose masked vectors the server claims it received (sorted): the client signs this set. */
  survivorIds: idList(SECAGG_LIMITS.maxClients).min(1),
});
const NeighbourSignatureSchema = z.strictObject({ clientId: ClientIdSchema, signature: SignatureSchema });
export const UnmaskRequestSchema = z.strictObject({
  stage: z.literal(SECAGG_STAGES.unmask),
  roundId: RoundIdSchema,
  /** Neighbours whose masked vector arrived: reveal their self-mask-seed shares. */
  activeIds: idList(SECAGG_LIMITS.maxNeighbours),
  /** Neighbours that dropped after share-keys: reveal their mask-key shares. */
  droppedIds: idList(SECAGG_LIMITS.maxNeighbours),
  /** The client's neighbours' signatures over the survivor set it signed (at least threshold must verify). */
  signatures: z.array(NeighbourSignatureSchema).max(SECAGG_LIMITS.maxNeighbours),
});
export const ServerToClientSchema = z.discriminatedUnion('stage', [
  SetupRequestSchema,
  ShareKeysRequestSchema,
  CollectMaskedVectorsRequestSchema,
  ConsistencyCheckRequestSchema,
  UnmaskRequestSchema,
]);
export type SetupRequest = z.infer<typeof SetupRequestSchema>;
export type ShareKeysRequest = z.infer<typeof ShareKeysRequestSchema>;
export type CollectMaskedVectorsRequest = z.infer<typeof CollectMaskedVectorsRequestSchema>;
export type ConsistencyCheckRequest = z.infer<typeof ConsistencyCheckRequestSchema>;
export type UnmaskRequest = z.infer<typeof UnmaskRequestSchema>;
export type ServerToClient = z.infer<typeof ServerToClientSchema>;

// ---- client -> server
const replyBase = { roundId: RoundIdSchema, clientId: ClientIdSchema };
export const SetupReplySchema = z.strictObject({
  stage: z.literal(SECAGG_STAGES.setup),
  ...replyBase,
  encryptionPublicKey: bytes(KEY_BYTES),
  maskPublicKey: bytes(KEY_BYTES),
  /** Ed25519 signature by clientId over (round id, setup digest, client id, both keys). */
  keySignature: SignatureSchema,
});
export const ShareKeysReplySchema = z.strictObject({
  stage: z.literal(SECAGG_STAGES.shareKeys),
  ...replyBase,
  /** One sealed bundle (keys.ts seal) per peer; only that peer can open it. */
  bundles: z.array(z.strictObject({ to: ClientIdSchema, nonce, ciphertext })).max(SECAGG_LIMITS.maxNeighbours),
});
export const CollectMaskedVectorsReplySchema = z.strictObject({
  stage: z.literal(SECAGG_STAGES.collectMaskedVectors),
  ...replyBase,
  /** The masked vector, little-endian uint32 bytes (see vectorToBytes). */
  maskedVector: z.custom<Uint8Array>(
    (v) =>
      v instanceof Uint8Array && v.length % 4 === 0 && v.length > 0 && v.length <= 4 * SECAGG_LIMITS.maxVectorLength,
    'expected a non-empty multiple of 4 bytes within the vector limit',
  ),
});
export const ConsistencyCheckReplySchema = z.strictObject({
  stage: z.literal(SECAGG_STAGES.consistencyCheck),
  ...replyBase,
  /** Ed25519 signature by clientId over (round id, setup digest, the survivor set it was sent). */
  signature: SignatureSchema,
});
const ShareSchema = z.strictObject({ ownerId: ClientIdSchema, share: bytes(SHARE_BYTES) });
export const UnmaskReplySchema = z.strictObject({
  stage: z.literal(SECAGG_STAGES.unmask),
  ...replyBase,
  selfMaskShares: z.array(ShareSchema).max(SECAGG_LIMITS.maxNeighbours),
  maskKeyShares: z.array(ShareSchema).max(SECAGG_LIMITS.maxNeighbours),
});
export const ClientToServerSchema = z.discriminatedUnion('stage', [
  SetupReplySchema,
  ShareKeysReplySchema,
  CollectMaskedVectorsReplySchema,
  ConsistencyCheckReplySchema,
  UnmaskReplySchema,
]);
export type SetupReply = z.infer<typeof SetupReplySchema>;
export type ShareKeysReply = z.infer<typeof ShareKeysReplySchema>;
export type CollectMaskedVectorsReply = z.infer<typeof CollectMaskedVectorsReplySchema>;
export type ConsistencyCheckReply = z.infer<typeof ConsistencyCheckReplySchema>;
export type UnmaskReply = z.infer<typeof UnmaskReplySchema>;
export type ClientToServer = z.infer<typeof ClientToServerSchema>;

// ---- inside a sealed bundle (client -> client); the server never sees this.
const hexShare = z.string().regex(new RegExp(`^[0-9a-f]{${SHARE_BYTES * 2}}$`));
export const ShareBundlePlaintextSchema = z.strictObject({
  v: z.literal(1),
  roundId: RoundIdSchema,
  from: ClientIdSchema,
  to: ClientIdSchema,
  selfMaskShare: hexShare,
  maskKeyShare: hexShare,
});
export type ShareBundlePlaintext = z.infer<typeof ShareBundlePlaintextSchema>;

const LITTLE_ENDIAN = endianness() === 'LE';

/** Uint32Array -> little-endian bytes for the wire (a copy). */
export function vectorToBytes(v: Uint32Array): Uint8Array {
  // On a little-endian host the bytes already are the wire format: one memcpy.
  if (LITTLE_ENDIAN) return new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
  const out = Buffer.alloc(v.length * 4);
  for (let i = 0; i < v.length; i++) out.writeUInt32LE(v[i], i * 4);
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/** Uint32Array -> little-endian bytes for the wire, as a view of `v` on a little-endian host (no copy: `v` must not change afterwards). */
export function vectorBytesView(v: Uint32Array): Uint8Array {
  return LITTLE_ENDIAN ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : vectorToBytes(v);
}

/** Little-endian bytes from the wire -> Uint32Array (a copy). */
export function bytesToVector(b: Uint8Array): Uint32Array {
  if (LITTLE_ENDIAN) return new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  const out = new Uint32Array(b.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = buf.readUInt32LE(i * 4);
  return out;
}
