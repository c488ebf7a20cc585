/**
 * SecAgg+ server (the coordinator's half): secure aggregation of quantised vectors in Z_(2^32) with
 * dropout recovery over a sparse graph, secure against a malicious server. Follows Bonawitz et al.,
 * "Practical Secure Aggregation for Privacy-Preserving Machine Learning" (CCS 2017, Section 6 /
 * Fig. 5: the malicious-server protocol, rounds 0-4 with signed keys and the consistency check) with
 * the k-regular communication graph of Bell et al., "Secure Single-Server Aggregation with
 * (Poly)Logarithmic Overhead" (CCS 2020, Section 3; signatures counted per neighbourhood as in their
 * malicious variant), and the stage layout of Flower's SecAggPlusWorkflow. Clients are identified by
 * their Ed25519 public keys (64 hex characters) and sign with them (signatures.ts).
 *
 * Stages (each ends when the caller calls `advance()`, e.g. at a deadline; clients that did not
 * answer are recorded in `dropouts`, never thrown):
 * 1. setup (round 0 "AdvertiseKeys"): the server sends the parameters, the graph seed and the client
 *    list; each client checks them against its job's policy (policy.ts), computes its k neighbours (a
 *    Harary graph over a seeded permutation, Bell et al. Sec. 3.2) and answers two fresh X25519 public
 *    keys (encryption: sealing share bundles; mask: pairwise mask agreement), signed with its identity
 *    over (round id, setup digest, client id, both keys). The server checks the signature too.
 * 2. share-keys (round 1 "ShareKeys"): each client gets its surviving neighbours' keys with their
 *    signatures and verifies them (a substituted key is refused: SECAGG_SIGNATURE_INVALID), picks a
 *    self-mask seed b_i, Shamir-splits b_i and its mask secret key (threshold t among its neighbours)
 *    and seals one bundle per neighbour. The server only routes the ciphertexts.
 * 3. collect-masked-vectors (round 2 "MaskedInputCollection"): each client opens the bundles sent to
 *    it and answers y_i = x_i + PRG(b_i) + sum_{j>i} PRG(s_ij) - sum_{j<i} PRG(s_ij) over the
 *    neighbours j that sent it bundles; s_ij = HKDF-SHA256(X25519(mask keys), round id); PRG = ChaCha20.
 * 4. consistency-check (round 3 "ConsistencyCheck"): the server sends every survivor the survivor set
 *    S (the clients whose masked vectors arrived); each signs (round id, setup digest, S).
 *    A survivor the driver knows has left before that can be withdrawn (`withdraw`): it is then
 *    unmasked as a dropout.
 * 5. unmask (round 4 "Unmasking"): each signer gets its neighbours' signatures; it reveals shares only
 *    if at least t of them verify over the set it signed, and only as that set says: per neighbour,
 *    the b-share if it is in S, the mask-key share if not, never both (SECAGG_CONSISTENCY_FAILED
 *    otherwise). Stricter than Fig. 5, a b-share is revealed only with that neighbour's own signature
 *    over S (its consent, given after its UnmaskedRounds recorded the round): so every survivor must
 *    sign, and one that does not aborts the session (ROUND_QUORUM_NOT_MET) with nothing revealed. The server reconstructs (>= t shares each, a reconstructed mask key is checked
 *    against its public key), removes the survivors' self masks and their pairwise masks with the
 *    dropped clients, and returns the sum mod 2^32. With fewer than t shares for any client it aborts
 *    with ROUND_QUORUM_NOT_MET.
 *
 * Parameters: vectorLength; neighbourCount k (even, <= n - 1; default 2*ceil(log2 n), capped at
 * n - 1); threshold t (2t > k; default floor(k/2) + 1); quantisation (clippingRange,
 * quantizationRange; modulus fixed at 2^32 with n * quantizationRange < 2^32); minClients (default
 * max(t, 3)): fewer survivors at any stage aborts. The round id names the session
 * (`<job>:<round>:<attempt>[:c<cohort>]`, roundId.ts); clients refuse any other.
 *
 * What a malicious server cannot do (each has a test playing it, maliciousServer.test.ts): substitute
 * a neighbour's keys to open a client's share bundles (keys are signed by the neighbour's identity
 * for this round id and setup); tell neighbours different dropout stories to collect both shares of
 * one client (a client reveals only against the set it signed and only with t matching neighbour
 * signatures, one share kind per neighbour); run a session smaller or weaker than the job spec (the
 * client's policy); have a client's input in two unmasked sums of one round (UnmaskedRounds, exact
 * because a self mask comes off only with its owner's signature). The same attacks on real sockets:
 * test/secaggMaliciousCoordinator.e2e.test.ts.
 *
 * Remaining assumptions (docs/secure-aggregation.md): fewer than t of a client's k neighbours collude
 * with the server, and fewer than 2t - k of them when the server also lies about survivors (each
 * honest neighbour reveals one share kind, so it gets k + c of the 2t shares it needs; with the
 * default t that is one colluder, two in the complete graph); the client list is real, distinct
 * parties (sybils the server admits count as colluders: admission is the job's access policy, not
 * SecAgg's); the server picks the graph seed, so it could grind for a graph that gives a target
 * colluding neighbours (Bell et al. assume honest graph generation). The server learns the sum
 * of the survivors' inputs and who dropped: what the sum itself reveals (e.g. an input, given the
 * others) is not protected.
 * Sparse graphs cut per-client cost from O(n) to O(k) keys, masks and signatures at the price of
 * tolerating fewer colluders per neighbourhood.
 */
import { TributaryError } from '../errors';
import { SignatureVerifier } from '../identity/signing';
import { pairwiseMaskSeed, publicKeyOf } from './keys';
import { addInPlace, applyMask, applyMasks, type SignedSeed } from './masks';
import type { MaskSumSource } from './secaggWorkers';
import {
  bytesToVector,
  ClientToServerSchema,
  SECAGG_LIMITS,
  ClientIdSchema,
  type ClientToServer,
  type SecAggParameters,
  type ServerToClient,
  type ShareKeysReply,
  type UnmaskReply,
} from './messages';
import {
  neighbourGraph,
  recommendedNeighbourCount,
  recommendedThreshold,
  validateGraphParameters,
  type ClientId,
} from './neighbours';
import { DEFAULT_QUANTIZATION, MODULUS, validateQuantization, type QuantizationParameters } from './quantize';
import { parseSecAggRoundId } from './roundId';
import { combineShares } from './shamir';
import { advertisedKeysBytes, setupDigest, survivorSetBytes } from './signatures';
import {
  isServerTransition,
  SERVER_TRANSITIONS,
  secaggError,
  stageOutOfOrder,
  type SecAggStage,
  type ServerState,
} from './stages';

export interface SecAggPlusServerOptions {
  /** `<jobId>:<round>:<attempt>[:c<cohort>]` (secaggRoundId): unique per session, clients check it. */
  roundId: string;
  /** The clients sampled for this round (3 to 1023), by Ed25519 public key (64 lowercase hex). */
  clientIds: readonly ClientId[];
  vectorLength: number;
  /** @default min(n - 1, 2 * ceil(log2 n)) */
  neighbourCount?: number;
  /** @default floor(neighbourCount / 2) + 1 */
  threshold?: number;
  /** @default { clippingRange: 8, quantizationRange: 2 ** 22 } */
  quantization?: QuantizationParameters;
  /** Seed of the neighbour graph. @default a random 128-bit hex string */
  graphSeed?: string;
  /** Fewest clients allowed in the sum; fewer survivors at any stage abort. @default max(threshold, 3) */
  minClients?: number;
  /**
   * Where the survivors' self masks are expanded at unmask (a SecAggWorkerPool: off the event loop, while
   * this thread adds the masked vectors). Unset, or if it fails: in this thread. The sum is the same.
   */
  maskSums?: MaskSumSource;
}

export interface SecAggDropout {
  clientId: ClientId;
  /** The stage whose reply never came (or whose request could not be sent). */
  stage: SecAggStage;
  /** no-reply: silent at that stage; too-few-neighbours: too few shares could reach it; left: withdrawn after masking (`withdraw`). */
  reason: 'no-reply' | 'too-few-neighbours' | 'left';
}

export interface SecAggResult {
  /** Sum mod 2^32 of the contributors' quantised inputs; dequantise with dequantizeSum(sum, contributors.length). */
  sum: Uint32Array;
  contributors: ClientId[];
  dropouts: SecAggDropout[];
}

export type SecAggStep =
  | { done: false; stage: SecAggStage; requests: Map<ClientId, ServerToClient> }
  | { done: true; result: SecAggResult };

interface Keys {
  encryptionPublicKey: Uint8Array;
  maskPublicKey: Uint8Array;
  keySignature: string;
}

export class SecAggPlusServer {
  readonly params: Readonly<SecAggParameters>;
  readonly roundId: string;
  readonly clientIds: readonly ClientId[];
  readonly minClients: number;
  readonly graph: ReadonlyMap<ClientId, readonly ClientId[]>;
  private state: ServerState = 'idle';
  /** Clients a request went to in the current stage, and those that answered. */
  private expected = new Set<ClientId>();
  private replies = new Map<ClientId, ClientToServer>();
  private readonly drops: SecAggDropout[] = [];
  private keys = new Map<ClientId, Keys>();
  /** recipient -> sender -> bundle, from share-keys. */
  private bundlesTo = new Map<ClientId, Map<ClientId, ShareKeysReply['bundles'][number]>>();
  /** client -> neighbours whose bundles it was sent (and so masked with). */
  private maskedWith = new Map<ClientId, ClientId[]>();
  private maskedVectors = new Map<ClientId, Uint32Array>();
  /** The survivor set sent at the consistency check (sorted), and the signatures over it. */
  private survivorIds: ClientId[] = [];
  private survivorSignatures = new Map<ClientId, string>();
  private readonly digest: string;
  private readonly verifier = new SignatureVerifier(2048);
  private readonly maskSums: MaskSumSource | undefined;

  constructor(options: SecAggPlusServerOptions) {
    this.maskSums = options.maskSums;
    const ids = [...options.clientIds].sort();
    const n = ids.length;
    if (n > SECAGG_LIMITS.maxClients)
      throw new TributaryError('CONFIG_INVALID', `at most ${SECAGG_LIMITS.maxClients} clients, got ${n}`);
    if (new Set(ids).size !== n) throw new TributaryError('CONFIG_INVALID', 'client ids must be distinct');
    const badId = ids.find((id) => !ClientIdSchema.safeParse(id).success);
    if (badId !== undefined) {
      throw new TributaryError('CONFIG_INVALID', `client ids must be Ed25519 public keys in hex, got ${badId}`);
    }
    if (!parseSecAggRoundId(options.roundId)) {
      throw new TributaryError(
        'CONFIG_INVALID',
        `roundId must be <jobId>:<round>:<attempt>[:c<cohort>] (secaggRoundId), got ${options.roundId}`,
      );
    }
    const k = options.neighbourCount ?? recommendedNeighbourCount(n);
    const t = options.threshold ?? recommendedThreshold(k);
    validateGraphParameters(n, k, t);
    const q = validateQuantization(options.quantization ?? DEFAULT_QUANTIZATION);
    if (n * q.quantizationRange >= MODULUS) {
      throw new TributaryError(
        'CONFIG_INVALID',
        `${n} clients x quantizationRange ${q.quantizationRange} would wrap mod 2^32; lower quantizationRange`,
      );
    }
    const L = options.vectorLength;
    if (!Number.isInteger(L) || L < 1 || L > SECAGG_LIMITS.maxVectorLength) {
      throw new TributaryError(
        'CONFIG_INVALID',
        `vectorLength must be an integer in [1, ${SECAGG_LIMITS.maxVectorLength}], got ${L}`,
      );
    }
    const minClients = options.minClients ?? Math.max(t, 3);
    if (!Number.isInteger(minClients) || minClients < 2 || minClients > n) {
      throw new TributaryError('CONFIG_INVALID', `minClients must be an integer in [2, ${n}], got ${minClients}`);
    }
    const graphSeed = options.graphSeed ?? Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('hex');
    const params: SecAggParameters = {
      vectorLength: L,
      neighbourCount: k,
      threshold: t,
      clippingRange: q.clippingRange,
      quantizationRange: q.quantizationRange,
      modulus: MODULUS,
      graphSeed,
    };
    this.params = Object.freeze(params);
    this.roundId = options.roundId;
    this.clientIds = Object.freeze(ids);
    this.minClients = minClients;
    this.graph = neighbourGraph(graphSeed, ids, k);
    this.digest = setupDigest({ roundId: this.roundId, params, clientIds: ids });
  }

  get stage(): ServerState {
    return this.state;
  }

  /** Dropouts so far, as data. */
  get dropouts(): readonly SecAggDropout[] {
    return this.drops;
  }

  /**
   * The clients whose masked vectors arrived (sorted): set when collect-masked-vectors closes, i.e.
   * when advance() returns the consistency-check requests. A driver that must check a round-wide quorum
   * before any unmasking reads it then, and sends those requests only if the round may unmask.
   */
  get survivors(): readonly ClientId[] {
    return this.survivorIds;
  }

  /** Abandons the session without unmasking (e.g. the round's quorum failed elsewhere); state 'aborted'. */
  cancel(): void {
    if (this.state === 'done' || this.state === 'aborted') return;
    this.enter('aborted');
  }

  /**
   * Takes survivors the driver knows are gone (they sent a masked vector, then disconnected) out of
   * the survivor set before anyone answered the consistency check: their masked vectors are
   * discarded and they are unmasked as dropouts (mask keys, never self masks), so the others' sum
   * can still be unmasked without them. Returns the consistency-check requests for the smaller set;
   * aborts with ROUND_QUORUM_NOT_MET when too few remain.
   */
  withdraw(clientIds: Iterable<ClientId>): SecAggStep {
    if (this.state !== 'consistency-check' || this.replies.size > 0) {
      throw stageOutOfOrder('a consistency check nobody has answered yet', this.state, 'server');
    }
    for (const id of new Set(clientIds)) {
      if (!this.maskedVectors.delete(id)) continue;
      this.drops.push({ clientId: id, stage: 'consistency-check', reason: 'left' });
    }
    return this.consistencyCheck();
  }

  /** Starts the round: the setup request for every client. */
  start(): SecAggStep {
    this.enter('setup');
    const requests = new Map<ClientId, ServerToClient>();
    for (const id of this.clientIds) {
      requests.set(id, {
        stage: 'setup',
        roundId: this.roundId,
        params: { ...this.params },
        clientIds: [...this.clientIds],
      });
    }
    return this.expect('setup', requests);
  }

  /**
   * Accepts one client's reply for the current stage (validated with zod first). Throws, and keeps
   * nothing, for a malformed reply, a reply for another stage or round, from a client that was not
   * asked, or a second reply; the transport may then treat that client as dropped.
   */
  receive(message: unknown): void {
    const parsed = ClientToServerSchema.safeParse(message);
    if (!parsed.success) {
      throw secaggError(
        'SECAGG_MESSAGE_INVALID',
        `SecAgg+ server: malformed reply: ${parsed.error.issues[0]?.message}`,
        {
          issues: parsed.error.issues.slice(0, 5),
        },
      );
    }
    const reply = parsed.data;
    if (reply.stage !== this.state) throw stageOutOfOrder(this.state, reply.stage, 'server');
    const invalid = (why: string) =>
      secaggError('SECAGG_MESSAGE_INVALID', `SecAgg+ server: reply from ${reply.clientId}: ${why}`);
    if (reply.roundId !== this.roundId) throw invalid(`expected round ${this.roundId}, got ${reply.roundId}`);
    if (!this.expected.has(reply.clientId)) throw invalid(`not asked in the ${this.state} stage`);
    if (this.replies.has(reply.clientId)) throw invalid('a second reply');
    switch (reply.stage) {
      case 'share-keys': {
        const asked = (this.graph.get(reply.clientId) ?? []).filter((j) => this.keys.has(j));
        const to = reply.bundles.map((b) => b.to).sort();
        if (to.length !== asked.length || to.some((j, i) => j !== asked[i]))
          throw invalid('expected one bundle per neighbour it was sent');
        break;
      }
      case 'collect-masked-vectors':
        if (reply.maskedVector.length !== 4 * this.params.vectorLength) {
          throw invalid(`expected ${this.params.vectorLength} values, got ${reply.maskedVector.length / 4}`);
        }
        break;
      case 'unmask': {
        const holds = this.maskedWith.get(reply.clientId) ?? [];
        const want = (ids: ClientId[]) => ids.slice().sort().join(',');
        if (
          want(reply.selfMaskShares.map((s) => s.ownerId)) !== want(holds.filter((j) => this.maskedVectors.has(j))) ||
          want(reply.maskKeyShares.map((s) => s.ownerId)) !== want(holds.filter((j) => !this.maskedVectors.has(j)))
        ) {
          throw invalid('expected exactly the shares that were asked for');
        }
        break;
      }
      case 'setup': {
        const signed = advertisedKeysBytes(
          this.roundId,
          this.digest,
          reply.clientId,
          reply.encryptionPublicKey,
          reply.maskPublicKey,
        );
        if (!this.verifier.verifyBytes(reply.clientId, signed, reply.keySignature)) {
          throw secaggError(
            'SECAGG_SIGNATURE_INVALID',
            `SecAgg+ server: reply from ${reply.clientId}: its keys are not signed by it for this round and setup`,
          );
        }
        break;
      }
      case 'consistency-check': {
        const signed = survivorSetBytes(this.roundId, this.digest, this.survivorIds);
        if (!this.verifier.verifyBytes(reply.clientId, signed, reply.signature)) {
          throw secaggError(
            'SECAGG_SIGNATURE_INVALID',
            `SecAgg+ server: reply from ${reply.clientId}: its signature is not over the survivor set it was sent`,
          );
        }
        break;
      }
    }
    this.replies.set(reply.clientId, reply);
  }

  /**
   * Closes the current stage: records the clients that did not answer as dropouts, checks the
   * quorum, and returns the next stage's requests, or the result after unmask. Aborts (state
   * 'aborted') by throwing ROUND_QUORUM_NOT_MET when too few clients survive.
   */
  async advance(): Promise<SecAggStep> {
    for (const id of this.expected) {
      if (!this.replies.has(id))
        this.drops.push({ clientId: id, stage: this.state as SecAggStage, reason: 'no-reply' });
    }
    switch (this.state) {
      case 'setup':
        return this.afterSetup();
      case 'share-keys':
        return this.afterShareKeys();
      case 'collect-masked-vectors':
        return this.afterCollect();
      case 'consistency-check':
        return this.afterConsistencyCheck();
      case 'unmask':
        return this.afterUnmask();
      default:
        throw stageOutOfOrder('a SecAgg+ stage in progress', this.state, 'server');
    }
  }

  private afterSetup(): SecAggStep {
    for (const r of this.replies.values()) {
      if (r.stage === 'setup')
        this.keys.set(r.clientId, {
          encryptionPublicKey: r.encryptionPublicKey,
          maskPublicKey: r.maskPublicKey,
          keySignature: r.keySignature,
        });
    }
    const distinct = new Set(
      [...this.keys.values()].flatMap((k) =>
        [k.encryptionPublicKey, k.maskPublicKey].map((b) => Buffer.from(b).toString('hex')),
      ),
    );
    if (distinct.size !== 2 * this.keys.size) this.abort('share-keys', 'two clients advertised the same public key');
    this.checkQuorum(this.keys.size, 'share-keys');
    this.enter('share-keys');
    const requests = new Map<ClientId, ServerToClient>();
    for (const id of this.keys.keys()) {
      const peers = (this.graph.get(id) ?? []).filter((j) => this.keys.has(j));
      if (peers.length < this.params.threshold) {
        this.drops.push({ clientId: id, stage: 'share-keys', reason: 'too-few-neighbours' });
        continue;
      }
      requests.set(id, {
        stage: 'share-keys',
        roundId: this.roundId,
        peers: peers.map((j) => ({ clientId: j, ...this.keys.get(j)! })),
      });
    }
    this.checkQuorum(requests.size, 'share-keys');
    return this.expect('share-keys', requests);
  }

  private afterShareKeys(): SecAggStep {
    for (const r of this.replies.values()) {
      if (r.stage !== 'share-keys') continue;
      for (const b of r.bundles) {
        if (!this.bundlesTo.has(b.to)) this.bundlesTo.set(b.to, new Map());
        this.bundlesTo.get(b.to)!.set(r.clientId, b);
      }
    }
    const shared = new Set(this.replies.keys());
    this.checkQuorum(shared.size, 'collect-masked-vectors');
    this.enter('collect-masked-vectors');
    const requests = new Map<ClientId, ServerToClient>();
    for (const id of shared) {
      const from = [...(this.bundlesTo.get(id) ?? new Map()).entries()].filter(([j]) => shared.has(j));
      if (from.length < this.params.threshold) {
        this.drops.push({ clientId: id, stage: 'collect-masked-vectors', reason: 'too-few-neighbours' });
        continue;
      }
      this.maskedWith.set(
        id,
        from.map(([j]) => j),
      );
      requests.set(id, {
        stage: 'collect-masked-vectors',
        roundId: this.roundId,
        bundles: from.map(([j, b]) => ({ from: j, nonce: b.nonce, ciphertext: b.ciphertext })),
      });
    }
    this.checkQuorum(requests.size, 'collect-masked-vectors');
    return this.expect('collect-masked-vectors', requests);
  }

  private afterCollect(): SecAggStep {
    for (const r of this.replies.values()) {
      if (r.stage === 'collect-masked-vectors') this.maskedVectors.set(r.clientId, bytesToVector(r.maskedVector));
    }
    this.enter('consistency-check');
    return this.consistencyCheck();
  }

  /** The consistency-check requests for the clients whose masked vectors the server holds. */
  private consistencyCheck(): SecAggStep {
    this.checkQuorum(this.maskedVectors.size, 'consistency-check');
    // Abort now if some secret could not be reconstructed even if every survivor answered.
    this.checkHolders([...this.maskedVectors.keys()], 'consistency-check');
    this.survivorIds = [...this.maskedVectors.keys()].sort();
    const requests = new Map<ClientId, ServerToClient>();
    for (const id of this.survivorIds) {
      requests.set(id, { stage: 'consistency-check', roundId: this.roundId, survivorIds: [...this.survivorIds] });
    }
    return this.expect('consistency-check', requests);
  }

  private afterConsistencyCheck(): SecAggStep {
    for (const r of this.replies.values()) {
      if (r.stage === 'consistency-check') this.survivorSignatures.set(r.clientId, r.signature);
    }
    // Clients reveal a neighbour's self-mask share only with that neighbour's own signature over the
    // set (clientProtocol.ts unmask): a survivor that did not sign keeps the whole sum masked.
    const unsigned = this.survivorIds.filter((id) => !this.survivorSignatures.has(id));
    if (unsigned.length > 0) {
      this.abort(
        'unmask',
        `${unsigned.length} survivor(s) did not sign the survivor set (${unsigned[0]}${unsigned.length > 1 ? ', ...' : ''}); ` +
          'a self mask comes off only with its owner’s signature',
      );
    }
    // Every survivor signed, so every survivor is asked to unmask; each owner still needs t holders.
    const signers = [...this.survivorIds];
    this.checkHolders(signers, 'unmask');
    this.enter('unmask');
    const requests = new Map<ClientId, ServerToClient>();
    for (const id of signers) {
      const holds = this.maskedWith.get(id)!;
      requests.set(id, {
        stage: 'unmask',
        roundId: this.roundId,
        activeIds: holds.filter((j) => this.maskedVectors.has(j)),
        droppedIds: holds.filter((j) => !this.maskedVectors.has(j)),
        signatures: (this.graph.get(id) ?? [])
          .filter((j) => this.survivorSignatures.has(j))
          .map((j) => ({ clientId: j, signature: this.survivorSignatures.get(j)! })),
      });
    }
    return this.expect('unmask', requests);
  }

  /** Aborts unless every secret unmasking needs has at least t holders among `responders`. */
  private checkHolders(responders: ClientId[], stage: SecAggStage): void {
    for (const [owner, hs] of this.shareHolders(responders)) {
      if (hs.length < this.params.threshold) {
        this.abort(
          stage,
          `only ${hs.length} surviving neighbours hold shares of ${owner}; the threshold is ${this.params.threshold}`,
        );
      }
    }
  }

  /**
   * owner -> the given responders that hold a share of its secret, for every owner whose secret
   * unmasking needs: each survivor's self-mask seed, and the mask key of each dropped client that a
   * survivor masked with.
   */
  private shareHolders(responders: ClientId[]): Map<ClientId, ClientId[]> {
    const out = new Map<ClientId, ClientId[]>();
    for (const i of this.maskedVectors.keys()) {
      out.set(i, out.get(i) ?? []);
      for (const j of this.maskedWith.get(i) ?? []) if (!out.has(j)) out.set(j, []);
    }
    for (const i of responders) {
      for (const j of this.maskedWith.get(i) ?? []) out.get(j)?.push(i);
    }
    return out;
  }

  private async afterUnmask(): Promise<SecAggStep> {
    const t = this.params.threshold;
    const selfShares = new Map<ClientId, Uint8Array[]>();
    const keyShares = new Map<ClientId, Uint8Array[]>();
    for (const r of this.replies.values()) {
      const u = r as UnmaskReply;
      for (const s of u.selfMaskShares)
        (selfShares.get(s.ownerId) ?? selfShares.set(s.ownerId, []).get(s.ownerId)!).push(s.share);
      for (const s of u.maskKeyShares)
        (keyShares.get(s.ownerId) ?? keyShares.set(s.ownerId, []).get(s.ownerId)!).push(s.share);
    }
    // Remove each survivor's self mask (reconstructed first, then subtracted in fused passes).
    const selfMasks: SignedSeed[] = [];
    for (const j of this.maskedVectors.keys()) {
      const shares = selfShares.get(j) ?? [];
      if (shares.length < t)
        this.abort('unmask', `${shares.length} shares of ${j}'s self-mask seed arrived; the threshold is ${t}`);
      selfMasks.push({ seed: await this.reconstruct(shares, j), sign: -1 });
    }
    // -Σ PRG(b_j) in a worker (when there is one) while this thread adds the masked vectors.
    const length = this.params.vectorLength;
    const selfMaskSum = this.maskSums?.maskSum(selfMasks, length).then(
      (v) => v,
      () => null,
    );
    const sum = new Uint32Array(length);
    for (const y of this.maskedVectors.values()) addInPlace(sum, y);
    const expanded = selfMaskSum ? await selfMaskSum : null;
    if (expanded) addInPlace(sum, expanded);
    else applyMasks(sum, selfMasks);
    for (const m of selfMasks) m.seed.fill(0);
    // Remove the survivors' pairwise masks with clients that dropped after share-keys.
    const droppedOwners = new Set<ClientId>();
    for (const i of this.maskedVectors.keys())
      for (const j of this.maskedWith.get(i)!) if (!this.maskedVectors.has(j)) droppedOwners.add(j);
    for (const j of droppedOwners) {
      const shares = keyShares.get(j) ?? [];
      if (shares.length < t)
        this.abort('unmask', `${shares.length} shares of ${j}'s mask key arrived; the threshold is ${t}`);
      const secretKey = await this.reconstruct(shares, j);
      if (!Buffer.from(publicKeyOf(secretKey)).equals(Buffer.from(this.keys.get(j)!.maskPublicKey))) {
        this.enter('aborted');
        throw secaggError(
          'SECAGG_RECONSTRUCTION_FAILED',
          `SecAgg+ server: the mask key reconstructed for ${j} does not match its public key`,
          { clientId: j },
        );
      }
      for (const i of this.maskedVectors.keys()) {
        if (!this.maskedWith.get(i)!.includes(j)) continue;
        const seed = pairwiseMaskSeed(secretKey, this.keys.get(i)!.maskPublicKey, this.roundId);
        applyMask(sum, seed, i < j ? -1 : 1); // i applied +1 if i < j, so undo with the opposite sign
      }
      secretKey.fill(0);
    }
    this.enter('done');
    return {
      done: true,
      result: { sum, contributors: [...this.maskedVectors.keys()].sort(), dropouts: [...this.drops] },
    };
  }

  private async reconstruct(shares: Uint8Array[], owner: ClientId): Promise<Uint8Array> {
    try {
      return await combineShares(shares);
    } catch (err) {
      this.enter('aborted');
      throw secaggError(
        'SECAGG_RECONSTRUCTION_FAILED',
        `SecAgg+ server: cannot reconstruct a secret of ${owner}: ${(err as Error).message}`,
        { clientId: owner },
      );
    }
  }

  private expect(stage: SecAggStage, requests: Map<ClientId, ServerToClient>): SecAggStep {
    this.expected = new Set(requests.keys());
    this.replies = new Map();
    return { done: false, stage, requests };
  }

  private checkQuorum(survivors: number, stage: SecAggStage): void {
    if (survivors < this.minClients)
      this.abort(stage, `${survivors} clients left, at least ${this.minClients} are needed`);
  }

  private abort(stage: SecAggStage, why: string): never {
    this.state = 'aborted';
    throw new TributaryError('ROUND_QUORUM_NOT_MET', `SecAgg+ aborted before ${stage}: ${why}`, {
      details: { stage, dropouts: this.drops.map((d) => ({ ...d })) },
    });
  }

  private enter(to: ServerState): void {
    if (!isServerTransition(this.state, to)) {
      const allowed = SERVER_TRANSITIONS.filter(([a]) => a === this.state).map(([, b]) => b);
      throw stageOutOfOrder(allowed.join(' or ') || '(none: the round is over)', to, 'server');
    }
    this.state = to;
  }
}
