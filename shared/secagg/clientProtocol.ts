import { TributaryError } from '../errors';
import type { Identity } from '../identity/keyPair';
import { SignatureVerifier } from '../identity/signing';
import type { KeyObject } from 'node:crypto';
import {
  generateKeyPair,
  openWithKey,
  pairwiseMaskSeed,
  randomSeed,
  sealWithKey,
  shareBundleKey,
  type X25519KeyPair,
  x25519PublicKey,
} from './keys';
import { addInPlace, applyMasks, type SignedSeed } from './masks';
import type { MaskSumSource, SignatureBatchVerifier, SignatureCheck } from './secaggWorkers';
import {
  type ClientToServer,
  type CollectMaskedVectorsReply,
  type CollectMaskedVectorsRequest,
  type ConsistencyCheckReply,
  type ConsistencyCheckRequest,
  type SecAggParameters,
  type ServerToClient,
  ServerToClientSchema,
  type SetupReply,
  type SetupRequest,
  type ShareBundlePlaintext,
  ShareBundlePlaintextSchema,
  type ShareKeysReply,
  type ShareKeysRequest,
  type UnmaskReply,
  type UnmaskRequest,
  vectorBytesView,
} from './messages';
import { type ClientId, neighbourGraph, validateGraphParameters } from './neighbours';
import { checkSessionParameters, type SecAggPolicy } from './policy';
import { validateQuantization } from './quantize';
import { parseSecAggRoundId, type SecAggSessionRef } from './roundId';
import { splitSecret } from './shamir';
import { advertisedKeysBytes, Ed25519Signer, setupDigest, survivorSetBytes } from './signatures';
import {
  type ClientState,
  isClientTransition,
  type SecAggStage,
  STAGE_ORDER,
  secaggError,
  stageOutOfOrder,
} from './stages';
import type { UnmaskedRounds } from './unmaskedRounds';

interface PeerKeys {
  encryptionPublicKey: Uint8Array;
  maskPublicKey: Uint8Array;
  /** The same keys imported once into node:crypto. */
  encryptionKey: KeyObject;
  maskKey: KeyObject;
}

/** Which session a client expects: its job's round attempt (from the driver's request envelope) and the job's guard. */
export interface SecAggClientSession {
  jobId: string;
  round: number;
  attempt: number;
  /** The job's one-masked-input-per-round record, shared by every session of the job. */
  unmaskedRounds: UnmaskedRounds;
}

/** Which share of a neighbour's secrets a client revealed: its self-mask seed (it survived) or its mask key (it dropped). */
export type RevealedShare = 'self-mask' | 'mask-key';

/** How a SecAgg+ client computes its masks. */
export interface SecAggClientOptions {
  /**
   * Where the mask sum is precomputed right after share-keys (while the model trains): a SecAggWorkerPool
   * (sharedSecAggWorkers in production). Unset: every mask is expanded in this thread at masked input.
   */
  maskSums?: MaskSumSource;
  /**
   * Where the neighbours' signatures are checked, one batch per stage: their key signatures at
   * share-keys (while the model trains) and their survivor-set signatures at unmask (so clients that
   * share one process, or a client's other work, keep the event loop meanwhile). A SecAggWorkerPool;
   * unset, or if it fails: in this thread. The answers, and so every check and its error, are the same.
   */
  signatures?: SignatureBatchVerifier;
}

/** How this client's masked vector was (or will be) produced; see SecAggPlusClient. */
export type MaskPath = 'in-thread' | 'precomputed' | 'in-thread-after-worker-failure';

/** A mask sum asked for at share-keys: the neighbours it covers and the result, once it arrives. */
interface PendingMaskSum {
  covers: ReadonlySet<ClientId>;
  result: Promise<{ sum: Uint32Array } | { error: unknown }>;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

/**
 * The client half of SecAgg+ (see serverProtocol.ts for the protocol), secure against a malicious
 * server as in Bonawitz et al. CCS 2017 Section 6 with Bell et al. CCS 2020's neighbourhoods. One
 * instance per session: `handle` takes each server message in order and returns the reply; a message
 * for any stage but the next one is refused ("expected X stage, got Y stage") and changes nothing;
 * a message that fails any other check aborts the client (state 'aborted', secrets wiped).
 *
 * What it checks, beyond the semi-honest protocol:
 * - setup: the round id names the expected job/round/attempt, and every parameter is at least as
 *   strong as the job's policy (checkSessionParameters); its keys go out signed by its identity;
 * - share-keys: each neighbour's keys carry that neighbour's signature for this round and setup;
 * - collect-masked-vectors: the job's UnmaskedRounds allows masking this round's input;
 * - consistency-check: the survivor set includes it and covers at least policy.minClients; it signs it;
 * - unmask: at least t of its neighbours signed that same set, every neighbour whose self-mask share
 *   is asked for is among them (its own consent: see unmask), the shares asked for are exactly those
 *   that set implies, and it never reveals both shares of one neighbour (kept for the whole session).
 * The quantised input is needed only at collect-masked-vectors. Secrets (encryption key, mask key,
 * self-mask seed, held shares) never leave this object except as Shamir shares sealed to neighbours
 * or revealed at unmask, and are wiped after unmask, an abort or `dispose`.
 *
 * Precomputed masks (options.maskSums): right after answering share-keys, the client derives the
 * pairwise seeds of every neighbour whose signed keys arrived and has PRG(b) + Σ ±PRG(s_ij) summed in
 * a worker thread while it trains; at collect-masked-vectors it subtracts the masks of neighbours that
 * sent no share bundle (they dropped after share-keys; the in-thread path never adds those) and adds
 * the input: the same vector, byte for byte, one pass over it instead of one per four masks. The
 * pending sum is secret (it is the input's one-time pad): it becomes the masked vector, or is zeroed
 * on abort, unmask or dispose. It costs 4 bytes a parameter from share-keys to masked input. A worker
 * failure (SECAGG_MASK_WORKER_FAILED) falls back to masking in this thread (`precomputeFailure`).
 */
export class SecAggPlusClient {
  readonly clientId: ClientId;
  readonly policy: SecAggPolicy;
  private readonly signer: Ed25519Signer;
  private readonly verifier = new SignatureVerifier(1024);
  private readonly session: SecAggClientSession;
  private state: ClientState = 'idle';
  private ref: SecAggSessionRef = { jobId: '', round: 0, attempt: 0 };
  private roundId = '';
  private digest = '';
  private params?: SecAggParameters;
  private members = new Set<ClientId>();
  private neighbours = new Set<ClientId>();
  private encryptionKeys?: X25519KeyPair;
  private maskKeys?: X25519KeyPair;
  /** The two secret keys as node:crypto KeyObjects (imported once; dropped with the secrets). */
  private encryptionPrivateKey?: KeyObject;
  private maskPrivateKey?: KeyObject;
  private selfMaskSeed?: Uint8Array;
  /** Neighbours whose signed keys arrived at share-keys. */
  private peers = new Map<ClientId, PeerKeys>();
  /**
   * The secretbox key shared with each neighbour (shareBundleKey: symmetric), derived when sealing
   * its bundle at share-keys and used again to open its bundle to this client at collect-masked-vectors.
   */
  private bundleKeys = new Map<ClientId, Uint8Array>();
  /** Shares this client holds for each neighbour that sent it a bundle. */
  private held = new Map<ClientId, { selfMaskShare: Uint8Array; maskKeyShare: Uint8Array }>();
  /** The survivor set this client signed at the consistency check. */
  private signedSurvivors?: ReadonlySet<ClientId>;
  /** What it revealed of each neighbour, kept for the whole session (never cleared). */
  private readonly revealed = new Map<ClientId, RevealedShare>();
  private readonly maskSums: MaskSumSource | undefined;
  private readonly batchVerifier: SignatureBatchVerifier | undefined;
  /** The mask sum asked for at share-keys, until masked input takes it (or the secrets are wiped). */
  private pendingMaskSum?: PendingMaskSum;
  private path: MaskPath = 'in-thread';
  /** Set once the secrets are wiped (unmask answered, abort, dispose): a stage still awaiting a worker then stops. */
  private wiped = false;
  private workerFailure: unknown;

  constructor(
    identity: Identity,
    policy: SecAggPolicy,
    session: SecAggClientSession,
    options: SecAggClientOptions = {},
  ) {
    this.maskSums = options.maskSums;
    this.batchVerifier = options.signatures;
    this.signer = new Ed25519Signer(identity);
    this.clientId = identity.clientId;
    this.policy = policy;
    if (session.unmaskedRounds.jobId !== session.jobId) {
      throw new TributaryError(
        'CONFIG_INVALID',
        `the UnmaskedRounds guard is job ${session.unmaskedRounds.jobId}'s, the session is job ${session.jobId}'s`,
      );
    }
    this.session = session;
  }

  /** The last stage this client answered ('idle' before setup, 'aborted' once it refused a message). */
  get stage(): ClientState {
    return this.state;
  }

  /** How the masked vector was produced (or will be, before collect-masked-vectors). */
  get maskPath(): MaskPath {
    return this.path;
  }

  /** Why the precomputed mask sum could not be used (the error of the worker), if it could not. */
  get precomputeFailure(): unknown {
    return this.workerFailure;
  }

  /** Wipes the secrets (and a pending mask sum) of a session that will not go on; the client is then 'aborted'. */
  dispose(): void {
    if (this.state !== 'unmask') this.state = 'aborted';
    this.forgetSecrets();
  }

  /** The share kind this client revealed for each neighbour (at most one per neighbour). */
  get revealedShares(): ReadonlyMap<ClientId, RevealedShare> {
    return new Map(this.revealed);
  }

  /**
   * Validates a server message (zod), checks it is the next stage, and answers it. `input` (quantised,
   * length params.vectorLength, every value <= quantizationRange unless the policy's `modularInput`) is
   * required at collect-masked-vectors.
   */
  async handle(message: unknown, input?: Uint32Array): Promise<ClientToServer> {
    const parsed = ServerToClientSchema.safeParse(message);
    if (!parsed.success) {
      throw secaggError(
        'SECAGG_MESSAGE_INVALID',
        `SecAgg+ client: malformed server message: ${parsed.error.issues[0]?.message}`,
        { issues: parsed.error.issues.slice(0, 5) },
      );
    }
    const msg: ServerToClient = parsed.data;
    this.enter(msg.stage);
    try {
      if (msg.stage !== 'setup') {
        if (msg.roundId !== this.roundId) {
          throw secaggError(
            'SECAGG_MESSAGE_INVALID',
            `SecAgg+ client: expected round ${this.roundId}, got ${msg.roundId}`,
          );
        }
        this.session.unmaskedRounds.assertCurrent(this.ref, this.roundId);
      }
      switch (msg.stage) {
        case 'setup':
          return this.setup(msg);
        case 'share-keys':
          return await this.shareKeys(msg);
        case 'collect-masked-vectors':
          if (!input)
            throw new TributaryError(
              'VALIDATION_FAILED',
              'SecAgg+ client: collect-masked-vectors needs the quantised input',
            );
          return await this.collectMaskedVectors(msg, input);
        case 'consistency-check':
          return this.consistencyCheck(msg);
        case 'unmask':
          return await this.unmask(msg);
      }
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  private enter(stage: SecAggStage): void {
    if (!isClientTransition(this.state, stage)) {
      const next =
        this.state === 'aborted'
          ? '(none: the client aborted)'
          : this.state === 'idle'
            ? STAGE_ORDER[0]
            : STAGE_ORDER[STAGE_ORDER.indexOf(this.state) + 1];
      throw stageOutOfOrder(next ?? '(none: the round is over)', stage, 'client');
    }
    this.state = stage;
  }

  /** Bonawitz et al. Fig. 5 round 0 (AdvertiseKeys), with the signature of the malicious-server variant. */
  private setup(msg: SetupRequest): SetupReply {
    const p = msg.params;
    const ids = msg.clientIds;
    const ref = parseSecAggRoundId(msg.roundId);
    const { jobId, round, attempt } = this.session;
    if (!ref || ref.jobId !== jobId || ref.round !== round || ref.attempt !== attempt) {
      throw secaggError(
        'SECAGG_MESSAGE_INVALID',
        `SecAgg+ client: expected a round id ${jobId}:${round}:${attempt}[:c<cohort>], got ${msg.roundId}`,
      );
    }
    if (!ids.includes(this.clientId)) {
      throw secaggError('SECAGG_MESSAGE_INVALID', `SecAgg+ client: ${this.clientId} is not among the round's clients`);
    }
    if (new Set(ids).size !== ids.length) {
      throw secaggError('SECAGG_MESSAGE_INVALID', 'SecAgg+ client: the client list names a client twice');
    }
    try {
      validateGraphParameters(ids.length, p.neighbourCount, p.threshold);
      validateQuantization(p);
    } catch (err) {
      throw secaggError('SECAGG_PARAMETERS_REFUSED', `SecAgg+ client: ${(err as Error).message}`);
    }
    if (ids.length * p.quantizationRange >= p.modulus) {
      throw secaggError(
        'SECAGG_PARAMETERS_REFUSED',
        `SecAgg+ client: ${ids.length} clients x quantizationRange ${p.quantizationRange} would wrap mod 2^32`,
      );
    }
    checkSessionParameters(this.policy, ids.length, p);
    this.session.unmaskedRounds.open(ref, msg.roundId);
    this.ref = ref;
    this.roundId = msg.roundId;
    this.params = p;
    this.members = new Set(ids);
    this.digest = setupDigest({ roundId: msg.roundId, params: p, clientIds: ids });
    this.neighbours = new Set(neighbourGraph(p.graphSeed, ids, p.neighbourCount).get(this.clientId));
    const { privateKey: encryptionPrivateKey, ...encryptionKeys } = generateKeyPair();
    const { privateKey: maskPrivateKey, ...maskKeys } = generateKeyPair();
    this.encryptionKeys = encryptionKeys;
    this.maskKeys = maskKeys;
    this.encryptionPrivateKey = encryptionPrivateKey;
    this.maskPrivateKey = maskPrivateKey;
    const { publicKey: encryptionPublicKey } = encryptionKeys;
    const { publicKey: maskPublicKey } = maskKeys;
    return {
      stage: 'setup',
      roundId: this.roundId,
      clientId: this.clientId,
      encryptionPublicKey,
      maskPublicKey,
      keySignature: this.signer.sign(
        advertisedKeysBytes(this.roundId, this.digest, this.clientId, encryptionPublicKey, maskPublicKey),
      ),
    };
  }

  /** Round 1 (ShareKeys): verify each neighbour's signed keys, then Shamir-share b_i and the mask key among them. */
  private async shareKeys(msg: ShareKeysRequest): Promise<ShareKeysReply> {
    const p = this.params!;
    const seenKeys = new Set<string>([hex(this.encryptionKeys!.publicKey), hex(this.maskKeys!.publicKey)]);
    const valid = await this.verifyAll(
      msg.peers.map((peer) => ({
        publicKeyHex: peer.clientId,
        bytes: advertisedKeysBytes(
          this.roundId,
          this.digest,
          peer.clientId,
          peer.encryptionPublicKey,
          peer.maskPublicKey,
        ),
        signatureHex: peer.keySignature,
      })),
    );
    this.assertLive();
    for (const [i, peer] of msg.peers.entries()) {
      if (!this.neighbours.has(peer.clientId) || this.peers.has(peer.clientId)) {
        throw secaggError(
          'SECAGG_MESSAGE_INVALID',
          `SecAgg+ client: ${peer.clientId} is not a neighbour, or is listed twice`,
        );
      }
      if (!valid[i]) {
        throw secaggError(
          'SECAGG_SIGNATURE_INVALID',
          `SecAgg+ client: the keys relayed for ${peer.clientId} are not signed by it for round ${this.roundId} ` +
            'and this setup (substituted, moved from another client, or replayed)',
          { peer: peer.clientId },
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
        encryptionKey: x25519PublicKey(peer.encryptionPublicKey),
        maskKey: x25519PublicKey(peer.maskPublicKey),
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
      const key = shareBundleKey(this.encryptionPrivateKey!, this.peers.get(to)!.encryptionKey);
      this.bundleKeys.set(to, key);
      const box = sealWithKey(Buffer.from(plaintext, 'utf8'), key);
      return { to, nonce: box.nonce, ciphertext: box.ciphertext };
    });
    if (this.maskSums) this.precomputeMaskSum(this.maskSums, ids);
    return { stage: 'share-keys', roundId: this.roundId, clientId: this.clientId, bundles };
  }

  /** Whether each signature verifies: in the worker pool when there is one, else (or if it fails) in this thread. */
  private async verifyAll(checks: SignatureCheck[]): Promise<boolean[]> {
    if (this.batchVerifier && checks.length > 0) {
      try {
        return await this.batchVerifier.verifyAll(checks);
      } catch (error) {
        this.workerFailure ??= error;
      }
    }
    return checks.map((c) => this.verifier.verifyBytes(c.publicKeyHex, c.bytes, c.signatureHex));
  }

  /** The signed seeds of the self mask and the pairwise masks with `neighbours` (Bonawitz et al. Section 4). */
  private maskSeeds(neighbours: Iterable<ClientId>): SignedSeed[] {
    const masks: SignedSeed[] = [{ seed: this.selfMaskSeed!, sign: 1 }];
    for (const j of neighbours) {
      const seed = pairwiseMaskSeed(this.maskPrivateKey!, this.peers.get(j)!.maskKey, this.roundId);
      masks.push({ seed, sign: this.clientId < j ? 1 : -1 });
    }
    return masks;
  }

  /** Asks the pool for PRG(b) + Σ ±PRG(s_ij) over every neighbour whose keys arrived, to be ready at masked input. */
  private precomputeMaskSum(pool: MaskSumSource, neighbours: readonly ClientId[]): void {
    const masks = this.maskSeeds(neighbours);
    let result: PendingMaskSum['result'];
    try {
      result = pool.maskSum(masks, this.params!.vectorLength).then(
        (sum) => ({ sum }),
        (error: unknown) => ({ error }),
      );
    } catch (error) {
      result = Promise.resolve({ error });
    } finally {
      // The pool copied the seeds out; the self-mask seed is kept (Shamir-shared, needed for a fallback).
      for (const m of masks.slice(1)) m.seed.fill(0);
    }
    const pending: PendingMaskSum = { covers: new Set(neighbours), result };
    this.pendingMaskSum = pending;
    this.path = 'precomputed';
  }

  /** y = x + mask sum: the precomputed sum, corrected to the neighbours that sent shares, or null when there is none. */
  private async maskedFromPrecomputed(input: Uint32Array): Promise<Uint32Array | null> {
    const pending = this.pendingMaskSum;
    if (!pending) return null;
    const outcome = await pending.result;
    if (this.pendingMaskSum !== pending) {
      // Wiped while the worker ran (abort or dispose): forgetSecrets zeroes the sum.
      throw secaggError(
        'SECAGG_MESSAGE_INVALID',
        'SecAgg+ client: the session was aborted while its masks were computed',
      );
    }
    this.pendingMaskSum = undefined;
    if ('error' in outcome) {
      this.workerFailure = outcome.error;
      this.path = 'in-thread-after-worker-failure';
      return null;
    }
    const sum = outcome.sum;
    // Neighbours that sent their keys but no share bundle dropped after share-keys: take their masks off.
    const gone = [...pending.covers].filter((j) => !this.held.has(j));
    if (gone.length > 0) {
      const masks = this.maskSeeds(gone)
        .slice(1)
        .map((m): SignedSeed => ({ seed: m.seed, sign: m.sign === 1 ? -1 : 1 }));
      applyMasks(sum, masks);
      for (const m of masks) m.seed.fill(0);
    }
    // The pad becomes the masked vector: nothing secret is left in it once the input is added.
    return addInPlace(sum, input);
  }

  /** Round 2 (MaskedInputCollection), after the one-input-per-round guard allows it. */
  private async collectMaskedVectors(
    msg: CollectMaskedVectorsRequest,
    input: Uint32Array,
  ): Promise<CollectMaskedVectorsReply> {
    const p = this.params!;
    if (!(input instanceof Uint32Array) || input.length !== p.vectorLength) {
      throw new TributaryError(
        'VALIDATION_FAILED',
        `SecAgg+ client: expected a Uint32Array of ${p.vectorLength} values, got ${input?.length}`,
      );
    }
    // A modular input (distributed DP noise) may be any element of Z_(2^32); quantised ones stay in [0, R].
    const above = this.policy.modularInput ? -1 : indexAbove(input, p.quantizationRange);
    if (above >= 0) {
      throw new TributaryError(
        'VALIDATION_FAILED',
        `SecAgg+ client: input value ${above} is ${input[above]}, above quantizationRange ${p.quantizationRange}; quantise first`,
      );
    }
    for (const b of msg.bundles) {
      const peer = this.peers.get(b.from);
      if (!peer || this.held.has(b.from)) {
        throw secaggError(
          'SECAGG_MESSAGE_INVALID',
          `SecAgg+ client: unexpected or duplicate share bundle from ${b.from}`,
        );
      }
      const key = this.bundleKeys.get(b.from) ?? shareBundleKey(this.encryptionPrivateKey!, peer.encryptionKey);
      const plain = openWithKey({ nonce: b.nonce, ciphertext: b.ciphertext }, key);
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
    this.session.unmaskedRounds.beforeMasking(this.ref, this.roundId);
    // y = x + PRG(b) + sum_{j > i} PRG(s_ij) - sum_{j < i} PRG(s_ij), over the neighbours that sent shares.
    let masked = await this.maskedFromPrecomputed(input);
    if (!masked) {
      const masks = this.maskSeeds(this.held.keys());
      masked = applyMasks(new Uint32Array(input), masks);
      for (const m of masks.slice(1)) m.seed.fill(0);
    }
    return {
      stage: 'collect-masked-vectors',
      roundId: this.roundId,
      clientId: this.clientId,
      maskedVector: vectorBytesView(masked), // masked is this call's own array
    };
  }

  /** Round 3 (ConsistencyCheck, Bonawitz et al. Fig. 5): sign the survivor set the server claims. */
  private consistencyCheck(msg: ConsistencyCheckRequest): ConsistencyCheckReply {
    const ids = msg.survivorIds;
    for (let i = 0; i < ids.length; i++) {
      if (i > 0 && ids[i - 1] >= ids[i]) {
        throw secaggError('SECAGG_MESSAGE_INVALID', 'SecAgg+ client: the survivor set must be sorted and distinct');
      }
      if (!this.members.has(ids[i])) {
        throw secaggError(
          'SECAGG_MESSAGE_INVALID',
          `SecAgg+ client: survivor ${ids[i]} is not among the round's clients`,
        );
      }
    }
    if (!ids.includes(this.clientId)) {
      throw secaggError(
        'SECAGG_CONSISTENCY_FAILED',
        `SecAgg+ client: the survivor set leaves out ${this.clientId}, which sent its masked vector`,
      );
    }
    if (ids.length < this.policy.minClients) {
      throw secaggError(
        'SECAGG_PARAMETERS_REFUSED',
        `SecAgg+ client: the job's policy needs at least ${this.policy.minClients} clients in the sum, the survivor set has ${ids.length}`,
      );
    }
    this.session.unmaskedRounds.beforeUnmasking(this.ref, this.roundId);
    this.signedSurvivors = new Set(ids);
    return {
      stage: 'consistency-check',
      roundId: this.roundId,
      clientId: this.clientId,
      signature: this.signer.sign(survivorSetBytes(this.roundId, this.digest, ids)),
    };
  }

  /** Round 4 (Unmasking): only against the set it signed, with t neighbours agreeing; one share kind per neighbour. */
  private async unmask(msg: UnmaskRequest): Promise<UnmaskReply> {
    const p = this.params!;
    const survivors = this.signedSurvivors!;
    const active = new Set(msg.activeIds);
    const dropped = new Set(msg.droppedIds);
    if (active.size !== msg.activeIds.length || dropped.size !== msg.droppedIds.length) {
      throw secaggError('SECAGG_MESSAGE_INVALID', 'SecAgg+ client: a neighbour is listed twice');
    }
    for (const id of [...active, ...dropped]) {
      // Never reveal both shares of one neighbour: that would let the server unmask its input.
      const kind: RevealedShare = active.has(id) ? 'self-mask' : 'mask-key';
      if ((active.has(id) && dropped.has(id)) || (this.revealed.has(id) && this.revealed.get(id) !== kind)) {
        throw secaggError(
          'SECAGG_MESSAGE_INVALID',
          `SecAgg+ client: asked for both the self-mask and the mask-key share of ${id}; it reveals one kind per neighbour`,
          { neighbour: id },
        );
      }
      if (!this.held.has(id)) throw secaggError('SECAGG_MESSAGE_INVALID', `SecAgg+ client: holds no shares of ${id}`);
    }
    // Bonawitz et al. Fig. 5 round 4: at least t valid signatures over the same set, here by neighbours (Bell et al.).
    // The entries are checked in order, each for its signer then its signature, the first failure
    // throwing: the signatures before the first misplaced entry are verified as one batch (in the pool
    // when there is one), then the answers are read in that same order, so the error is the in-order one.
    const signers = new Set<ClientId>();
    const signed = survivorSetBytes(this.roundId, this.digest, [...survivors]);
    const listed = new Set<ClientId>();
    let wellPlaced = 0;
    for (const { clientId } of msg.signatures) {
      if (listed.has(clientId) || !this.neighbours.has(clientId)) break;
      listed.add(clientId);
      wellPlaced++;
    }
    const valid = await this.verifyAll(
      msg.signatures
        .slice(0, wellPlaced)
        .map(({ clientId, signature }) => ({ publicKeyHex: clientId, bytes: signed, signatureHex: signature })),
    );
    this.assertLive();
    for (const [i, { clientId }] of msg.signatures.entries()) {
      if (i >= wellPlaced) {
        throw secaggError(
          'SECAGG_MESSAGE_INVALID',
          `SecAgg+ client: the survivor-set signature of ${clientId} is not a neighbour's, or is listed twice`,
        );
      }
      if (!valid[i]) {
        throw secaggError(
          'SECAGG_SIGNATURE_INVALID',
          `SecAgg+ client: ${clientId}'s signature is not over the survivor set this client signed`,
          { signer: clientId },
        );
      }
      signers.add(clientId);
    }
    if (signers.size < p.threshold) {
      throw secaggError(
        'SECAGG_CONSISTENCY_FAILED',
        `SecAgg+ client: ${signers.size} neighbours signed the survivor set it signed, the threshold is ${p.threshold}`,
        { signers: signers.size, threshold: p.threshold },
      );
    }
    // Consent (stricter than Bonawitz et al.'s round 4, which reveals b_j for every j in the set): a
    // neighbour's self mask comes off only with its own signature over the set, which it gives only
    // after its UnmaskedRounds recorded the round as unmasking. So an input is in a sum only in the
    // one session its owner signed for, and a coordinator that withholds the consistency check from
    // a client cannot unmask it and then have it mask the same round's input again.
    for (const id of active) {
      if (!signers.has(id)) {
        throw secaggError(
          'SECAGG_CONSISTENCY_FAILED',
          `SecAgg+ client: asked for the self-mask share of ${id}, which has not signed the survivor set; ` +
            "a client's input is unmasked only with its own signature over the set",
          { neighbour: id },
        );
      }
    }
    for (const id of this.held.keys()) {
      if (survivors.has(id) ? !active.has(id) : !dropped.has(id)) {
        throw secaggError(
          'SECAGG_CONSISTENCY_FAILED',
          `SecAgg+ client: asked to unmask ${id} as ${survivors.has(id) ? 'dropped' : 'active'}, the survivor set it signed says otherwise`,
          { neighbour: id },
        );
      }
    }
    // This client sent its masked vector, so it counts among the survivors (Bonawitz et al., round 4 check).
    if (active.size + 1 < p.threshold) {
      throw new TributaryError(
        'ROUND_QUORUM_NOT_MET',
        `SecAgg+ client: ${active.size + 1} active clients in the neighbourhood, the threshold is ${p.threshold}`,
      );
    }
    for (const id of active) this.revealed.set(id, 'self-mask');
    for (const id of dropped) this.revealed.set(id, 'mask-key');
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

  /** Throws if the session was disposed while this stage awaited a worker (its secrets are gone). */
  private assertLive(): void {
    if (this.state === 'aborted' || this.wiped) {
      throw secaggError(
        'SECAGG_MESSAGE_INVALID',
        'SecAgg+ client: the session was aborted while its signatures were checked',
      );
    }
  }

  private abort(): void {
    this.state = 'aborted';
    this.forgetSecrets();
  }

  private forgetSecrets(): void {
    this.wiped = true;
    this.encryptionKeys?.secretKey.fill(0);
    this.maskKeys?.secretKey.fill(0);
    // KeyObjects cannot be overwritten: drop them (OpenSSL clears the key when it is freed).
    this.encryptionPrivateKey = undefined;
    this.maskPrivateKey = undefined;
    for (const key of this.bundleKeys.values()) key.fill(0);
    this.bundleKeys.clear();
    this.selfMaskSeed?.fill(0);
    this.held.clear();
    const pending = this.pendingMaskSum;
    this.pendingMaskSum = undefined;
    // Zeroed when it arrives, if the worker is still computing it.
    void pending?.result.then((r) => {
      if ('sum' in r) r.sum.fill(0);
    });
  }
}

/** The first index whose value exceeds `limit`, or -1 (its own small function, which V8 optimises apart from the long method). */
function indexAbove(values: Uint32Array, limit: number): number {
  for (let i = 0; i < values.length; i++) if (values[i] > limit) return i;
  return -1;
}
