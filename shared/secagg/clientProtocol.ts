import { TributaryError } from '../errors';
import { generateKeyPair, open, pairwiseMaskSeed, randomSeed, seal, type X25519KeyPair } from './keys';
import { applyMask } from './masks';
import {
  ServerToClientSchema,
  ShareBundlePlaintextSchema,
  type ShareBundlePlaintext,
  vectorToBytes,
  type ClientToServer,
  type CollectMaskedVectorsReply,
  type CollectMaskedVectorsRequest,
  type SecAggParameters,
  type ServerToClient,
  type SetupReply,
  type SetupRequest,
  type ShareKeysReply,
  type ShareKeysRequest,
  type UnmaskReply,
  type UnmaskRequest,
} from './messages';
import { neighbourGraph, validateGraphParameters, type ClientId } from './neighbours';
import { validateQuantization } from './quantize';
import { splitSecret } from './shamir';
import {
  isClientTransition,
  secaggError,
  stageOutOfOrder,
  STAGE_ORDER,
  type ClientState,
  type SecAggStage,
} from './stages';

interface PeerKeys {
  encryptionPublicKey: Uint8Array;
  maskPublicKey: Uint8Array;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

/**
 * The client half of SecAgg+ (see serverProtocol.ts for the protocol). One instance per round:
 * `handle` takes each server message in order and returns the reply; a message for any stage but the
 * next one is refused ("expected X stage, got Y stage"). The quantised input is needed only at
 * collect-masked-vectors. Secrets (encryption key, mask key, self-mask seed) never leave this object
 * except as Shamir shares sealed to individual neighbours, and are dropped after unmask.
 */
export class SecAggPlusClient {
  readonly clientId: ClientId;
  private state: ClientState = 'idle';
  private roundId = '';
  private params?: SecAggParameters;
  private neighbours = new Set<ClientId>();
  private encryptionKeys?: X25519KeyPair;
  private maskKeys?: X25519KeyPair;
  private selfMaskSeed?: Uint8Array;
  /** Neighbours whose keys arrived at share-keys. */
  private peers = new Map<ClientId, PeerKeys>();
  /** Shares this client holds for each neighbour that sent it a bundle. */
  private held = new Map<ClientId, { selfMaskShare: Uint8Array; maskKeyShare: Uint8Array }>();

  constructor(clientId: ClientId) {
    this.clientId = clientId;
  }

  /** The last stage this client answered ('idle' before setup). */
  get stage(): ClientState {
    return this.state;
  }

  /**
   * Validates a server message (zod), checks it is the next stage, and answers it. `input` (quantised,
   * length params.vectorLength, every value <= quantizationRange) is required at collect-masked-vectors.
   */
  async handle(message: unknown, input?: Uint32Array): Promise<ClientToServer> {
    const parsed = ServerToClientSchema.safeParse(message);
    if (!parsed.success) {
      throw secaggError(
        'SECAGG_MESSAGE_INVALID',
        `SecAgg+ client: malformed server message: ${parsed.error.issues[0]?.message}`,
        {
          issues: parsed.error.issues.slice(0, 5),
        },
      );
    }
    const msg: ServerToClient = parsed.data;
    this.enter(msg.stage);
    if (msg.stage !== 'setup' && msg.roundId !== this.roundId) {
      throw secaggError('SECAGG_MESSAGE_INVALID', `SecAgg+ client: expected round ${this.roundId}, got ${msg.roundId}`);
    }
    switch (msg.stage) {
      case 'setup':
        return this.setup(msg);
      case 'share-keys':
        return this.shareKeys(msg);
      case 'collect-masked-vectors':
        if (!input)
          throw new TributaryError(
            'VALIDATION_FAILED',
            'SecAgg+ client: collect-masked-vectors needs the quantised input',
          );
        return this.collectMaskedVectors(msg, input);
      case 'unmask':
        return this.unmask(msg);
    }
  }

  private enter(stage: SecAggStage): void {
    if (!isClientTransition(this.state, stage)) {
      const next = this.state === 'idle' ? STAGE_ORDER[0] : STAGE_ORDER[STAGE_ORDER.indexOf(this.state) + 1];
      throw stageOutOfOrder(next ?? '(none: the round is over)', stage, 'client');
    }
    // A stage is entered once even if answering it fails: a failed client is a dropout, not a retry.
    this.state = stage;
  }

  private setup(msg: SetupRequest): SetupReply {
    const p = msg.params;
    const ids = msg.clientIds;
    if (!ids.includes(this.clientId)) {
      throw secaggError('SECAGG_MESSAGE_INVALID', `SecAgg+ client: ${this.clientId} is not among the round's clients`);
    }
    validateGraphParameters(ids.length, p.neighbourCount, p.threshold);
    validateQuantization(p);
    if (ids.length * p.quantizationRange >= p.modulus) {
      throw secaggError(
        'SECAGG_MESSAGE_INVALID',
        `SecAgg+ client: ${ids.length} clients x quantizationRange ${p.quantizationRange} would wrap mod 2^32`,
      );
    }
    this.roundId = msg.roundId;
    this.params = p;
    this.neighbours = new Set(neighbourGraph(p.graphSeed, ids, p.neighbourCount).get(this.clientId));
    this.encryptionKeys = generateKeyPair();
    this.maskKeys = generateKeyPair();
    return {
      stage: 'setup',
      roundId: this.roundId,
      clientId: this.clientId,
      encryptionPublicKey: this.encryptionKeys.publicKey,
      maskPublicKey: this.maskKeys.publicKey,
    };
  }

  private async shareKeys(msg: ShareKeysRequest): Promise<ShareKeysReply> {
    const p = this.params!;
    const seenKeys = new Set<string>([hex(this.encryptionKeys!.publicKey), hex(this.maskKeys!.publicKey)]);
    for (const peer of msg.peers) {
      if (!this.neighbours.has(peer.clientId) || this.peers.has(peer.clientId)) {
        throw secaggError(
          'SECAGG_MESSAGE_INVALID',
          `SecAgg+ client: ${peer.clientId} is not a neighbour, or is listed twice`,
        );
      }
      // Bonawitz et al. (Fig. 4, round 1): all public keys must be distinct.
      for (const k of [peer.encryptionPublicKey, peer.maskPublicKey]) {
        if (seenKeys.has(hex(k)))
          throw secaggError('SECAGG_MESSAGE_INVALID', 'SecAgg+ client: two public keys are equal');
        seenKeys.add(hex(k));
      }
      this.peers.set(peer.clientId, {
        encryptionPublicKey: peer.encryptionPublicKey,
        maskPublicKey: peer.maskPublicKey,
      });
    }
    if (this.peers.size < p.threshold) {
      throw new TributaryError(
        'ROUND_QUORUM_NOT_MET',
        `SecAgg+ client: ${this.peers.size} neighbours left, the threshold is ${p.threshold}`,
      );
    }
    this.selfMaskSeed = randomSeed();
    const ids = [...this.peers.keys()];
    const selfShares = await splitSecret(this.selfMaskSeed, ids.length, p.threshold);
    const keyShares = await splitSecret(this.maskKeys!.secretKey, ids.length, p.threshold);
    const bundles = ids.map((to, i) => {
      const plaintext = JSON.stringify({
        v: 1,
        roundId: this.roundId,
        from: this.clientId,
        to,
        selfMaskShare: hex(selfShares[i]),
        maskKeyShare: hex(keyShares[i]),
      });
      const box = seal(
        Buffer.from(plaintext, 'utf8'),
        this.peers.get(to)!.encryptionPublicKey,
        this.encryptionKeys!.secretKey,
      );
      return { to, nonce: box.nonce, ciphertext: box.ciphertext };
    });
    return { stage: 'share-keys', roundId: this.roundId, clientId: this.clientId, bundles };
  }

  private collectMaskedVectors(msg: CollectMaskedVectorsRequest, input: Uint32Array): CollectMaskedVectorsReply {
    const p = this.params!;
    if (!(input instanceof Uint32Array) || input.length !== p.vectorLength) {
      throw new TributaryError(
        'VALIDATION_FAILED',
        `SecAgg+ client: expected a Uint32Array of ${p.vectorLength} values, got ${input?.length}`,
      );
    }
    for (let i = 0; i < input.length; i++) {
      if (input[i] > p.quantizationRange) {
        throw new TributaryError(
          'VALIDATION_FAILED',
          `SecAgg+ client: input value ${i} is ${input[i]}, above quantizationRange ${p.quantizationRange}; quantise first`,
        );
      }
    }
    for (const b of msg.bundles) {
      const peer = this.peers.get(b.from);
      if (!peer || this.held.has(b.from)) {
        throw secaggError(
          'SECAGG_MESSAGE_INVALID',
          `SecAgg+ client: unexpected or duplicate share bundle from ${b.from}`,
        );
      }
      const plain = open(
        { nonce: b.nonce, ciphertext: b.ciphertext },
        peer.encryptionPublicKey,
        this.encryptionKeys!.secretKey,
      );
      if (!plain)
        throw secaggError(
          'SECAGG_MESSAGE_INVALID',
          `SecAgg+ client: the share bundle from ${b.from} does not authenticate`,
        );
      let parsed: ShareBundlePlaintext;
      try {
        parsed = ShareBundlePlaintextSchema.parse(JSON.parse(Buffer.from(plain).toString('utf8')));
      } catch (err) {
        throw secaggError('SECAGG_MESSAGE_INVALID', `SecAgg+ client: the share bundle from ${b.from} is malformed`, {
          cause: String(err),
        });
      }
      if (parsed.from !== b.from || parsed.to !== this.clientId || parsed.roundId !== this.roundId) {
        throw secaggError(
          'SECAGG_MESSAGE_INVALID',
          `SecAgg+ client: the share bundle from ${b.from} names the wrong sender, recipient or round`,
        );
      }
      this.held.set(b.from, { selfMaskShare: unhex(parsed.selfMaskShare), maskKeyShare: unhex(parsed.maskKeyShare) });
    }
    if (this.held.size < p.threshold) {
      throw new TributaryError(
        'ROUND_QUORUM_NOT_MET',
        `SecAgg+ client: ${this.held.size} neighbours sent shares, the threshold is ${p.threshold}`,
      );
    }
    // y = x + PRG(b) + sum_{j > i} PRG(s_ij) - sum_{j < i} PRG(s_ij), over the neighbours that sent shares.
    const masked = Uint32Array.from(input);
    applyMask(masked, this.selfMaskSeed!, 1);
    for (const j of this.held.keys()) {
      const seed = pairwiseMaskSeed(this.maskKeys!.secretKey, this.peers.get(j)!.maskPublicKey, this.roundId);
      applyMask(masked, seed, this.clientId < j ? 1 : -1);
    }
    return {
      stage: 'collect-masked-vectors',
      roundId: this.roundId,
      clientId: this.clientId,
      maskedVector: vectorToBytes(masked),
    };
  }

  private unmask(msg: UnmaskRequest): UnmaskReply {
    const active = new Set(msg.activeIds);
    const dropped = new Set(msg.droppedIds);
    if (active.size !== msg.activeIds.length || dropped.size !== msg.droppedIds.length) {
      throw secaggError('SECAGG_MESSAGE_INVALID', 'SecAgg+ client: a neighbour is listed twice');
    }
    for (const id of [...active, ...dropped]) {
      // Never reveal both shares of one neighbour: that would let the server unmask its input.
      if (active.has(id) && dropped.has(id)) {
        throw secaggError('SECAGG_MESSAGE_INVALID', `SecAgg+ client: ${id} is listed both as active and as dropped`);
      }
      if (!this.held.has(id)) throw secaggError('SECAGG_MESSAGE_INVALID', `SecAgg+ client: holds no shares of ${id}`);
    }
    // This client sent its masked vector, so it counts among the survivors (Bonawitz et al., round 4 check).
    if (active.size + 1 < this.params!.threshold) {
      throw new TributaryError(
        'ROUND_QUORUM_NOT_MET',
        `SecAgg+ client: ${active.size + 1} active clients in the neighbourhood, the threshold is ${this.params!.threshold}`,
      );
    }
    const reply: UnmaskReply = {
      stage: 'unmask',
      roundId: this.roundId,
      clientId: this.clientId,
      selfMaskShares: [...active].map((ownerId) => ({ ownerId, share: this.held.get(ownerId)!.selfMaskShare })),
      maskKeyShares: [...dropped].map((ownerId) => ({ ownerId, share: this.held.get(ownerId)!.maskKeyShare })),
    };
    this.forgetSecrets();
    return reply;
  }

  private forgetSecrets(): void {
    this.encryptionKeys?.secretKey.fill(0);
    this.maskKeys?.secretKey.fill(0);
    this.selfMaskSeed?.fill(0);
    this.held.clear();
  }
}
