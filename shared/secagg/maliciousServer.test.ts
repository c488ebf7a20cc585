/**
 * A malicious coordinator against the real SecAggPlusClient (sans-IO). The adversary runs the real
 * SecAggPlusServer where that helps, reads every message, rewrites requests, invents its own, and
 * controls any colluding clients' identities and shares. Each test asserts what the adversary can
 * reconstruct of a target's input, not only the error the honest clients raise.
 */
import type { Identity } from '../identity/keyPair';
import { SecAggOptionsSchema } from '../schemas/jobSpec';
import { generateKeyPair, open, type X25519KeyPair } from './keys';
import { applyMask } from './masks';
import {
  bytesToVector,
  type ClientToServer,
  type ServerToClient,
  ShareBundlePlaintextSchema,
  type ShareKeysRequest,
} from './messages';
import type { ClientId } from './neighbours';
import { type SecAggPolicy, secaggPolicyFor } from './policy';
import { heldShares, type Loot, recoverInput, takeShares } from './reconstruction';
import { SecAggPlusServer, type SecAggPlusServerOptions, type SecAggStep } from './serverProtocol';
import { combineShares } from './shamir';
import { advertisedKeysBytes, Ed25519Signer, setupDigest, survivorSetBytes } from './signatures';
import { fastIdentity, makeClient, makeIdentities, policyOf } from './testHarness';
import { UnmaskedRounds } from './unmaskedRounds';

const L = 32;

function randomInput(seed: number): Uint32Array {
  let s = seed;
  return Uint32Array.from({ length: L }, () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % 2 ** 22);
}
const same = (a: Uint32Array | null, b: Uint32Array) => a?.every((v, i) => v === b[i]) === true;
const sumOf = (vs: Uint32Array[]) => {
  const out = new Uint32Array(L);
  for (const v of vs) for (let i = 0; i < L; i++) out[i] = out[i] + v[i];
  return out;
};

/** A session of honest clients driven by the real server, every message recorded for the adversary. */
async function makeSession(
  n: number,
  opts: {
    roundId?: string;
    policy?: SecAggPolicy;
    identities?: Map<ClientId, Identity>;
    inputs?: Map<ClientId, Uint32Array>;
    guards?: Map<ClientId, UnmaskedRounds>;
    server?: Partial<SecAggPlusServerOptions>;
  } = {},
) {
  const roundId = opts.roundId ?? 'job7:1:0';
  const identities = opts.identities ?? makeIdentities(n);
  const ids = [...identities.keys()];
  const inputs = opts.inputs ?? new Map(ids.map((id, i) => [id, randomInput(i + 1)]));
  const server = new SecAggPlusServer({ roundId, clientIds: ids, vectorLength: L, graphSeed: 'g', ...opts.server });
  const policy = opts.policy ?? policyOf(server);
  const clients = new Map(
    ids.map((id) => [id, makeClient(identities.get(id)!, policy, roundId, opts.guards?.get(id))]),
  );
  const replies = new Map<string, Map<ClientId, ClientToServer>>();
  const digest = setupDigest({ roundId, params: server.params, clientIds: ids });
  const s = {
    roundId,
    identities,
    ids,
    inputs,
    server,
    clients,
    replies,
    digest,
    /** Sends each request (rewritten or withheld by `rewrite`) and forwards the replies to the server; returns the errors. */
    async deliver(step: SecAggStep, rewrite?: (id: ClientId, req: ServerToClient) => ServerToClient | null) {
      if (step.done) throw new Error('the session is over');
      const errors = new Map<ClientId, { code: string }>();
      const got = new Map<ClientId, ClientToServer>();
      replies.set(step.stage, got);
      for (const [id, req] of step.requests) {
        const msg = rewrite ? rewrite(id, req) : req;
        if (!msg) continue;
        try {
          const reply = await clients.get(id)!.handle(msg, inputs.get(id));
          got.set(id, reply);
          server.receive(reply);
        } catch (err) {
          errors.set(id, err as { code: string });
        }
      }
      return errors;
    },
    /** Runs setup, share-keys and collect-masked-vectors honestly; returns the consistency-check step. */
    async throughCollection() {
      let step = server.start();
      for (let i = 0; i < 3; i++) {
        await s.deliver(step);
        step = await server.advance();
      }
      expect(!step.done && step.stage).toBe('consistency-check');
      return step;
    },
    /** The public keys each client advertised at setup, as the adversary saw them. */
    publicKeys(which: 'maskPublicKey' | 'encryptionPublicKey'): Map<ClientId, Uint8Array> {
      const setup = replies.get('setup')!;
      return new Map([...setup].map(([id, r]) => [id, (r as Record<typeof which, Uint8Array>)[which]]));
    },
    maskKeys(): Map<ClientId, Uint8Array> {
      return s.publicKeys('maskPublicKey');
    },
    maskedVector(id: ClientId): Uint32Array | undefined {
      const r = replies.get('collect-masked-vectors')?.get(id) as { maskedVector: Uint8Array } | undefined;
      return r && bytesToVector(r.maskedVector);
    },
    /** A survivor-set signature the adversary makes with a colluder's identity. */
    forge(colluder: ClientId, set: readonly ClientId[]): string {
      return new Ed25519Signer(identities.get(colluder)!).sign(survivorSetBytes(roundId, digest, set));
    },
    /** The client's answer, or the coded error it refused with. */
    async ask(id: ClientId, msg: unknown): Promise<{ reply?: ClientToServer; code?: string }> {
      try {
        return { reply: await clients.get(id)!.handle(msg, inputs.get(id)) };
      } catch (err) {
        return { code: (err as { code: string }).code };
      }
    },
  };
  return s;
}
type Session = Awaited<ReturnType<typeof makeSession>>;

/** The unmask request an honest server would send `id` if `set` were the survivors, with the given signatures. */
function unmaskRequest(s: Session, id: ClientId, set: readonly ClientId[], signatures: Map<ClientId, string>) {
  const held = s.server.graph.get(id)!;
  return {
    stage: 'unmask' as const,
    roundId: s.roundId,
    activeIds: held.filter((j) => set.includes(j)),
    droppedIds: held.filter((j) => !set.includes(j)),
    signatures: held.filter((j) => signatures.has(j)).map((j) => ({ clientId: j, signature: signatures.get(j)! })),
  };
}

// n = 7 gives the complete graph: k = 6, t = 4.
describe('a malicious server substituting keys', () => {
  it.each([
    ['its own keys under the neighbours’ real signatures', 'keep'],
    ['its own keys, signed by its own identity', 'forge'],
    ['keys a sybil signed for itself, relayed under the neighbours’ ids', 'sybil'],
  ])('%s for t neighbours: the target refuses, and nothing of its secrets can be rebuilt', async (_name, variant) => {
    const s = await makeSession(7);
    const t = s.server.params.threshold;
    const [target, ...others] = s.ids;
    let step = s.server.start();
    await s.deliver(step);
    step = await s.server.advance();
    expect(!step.done && step.stage).toBe('share-keys');
    const fakes = new Map<ClientId, { enc: X25519KeyPair; mask: X25519KeyPair }>();
    const sybil = fastIdentity();
    const errors = await s.deliver(step, (id, req) => {
      if (id !== target) return req;
      const r = req as ShareKeysRequest;
      return {
        ...r,
        peers: r.peers.map((p, i) => {
          if (i >= t) return p;
          const fake = { enc: generateKeyPair(), mask: generateKeyPair() };
          fakes.set(p.clientId, fake);
          const keys = { encryptionPublicKey: fake.enc.publicKey, maskPublicKey: fake.mask.publicKey };
          const signedAs = variant === 'sybil' ? sybil.clientId : p.clientId;
          const bytes = advertisedKeysBytes(
            s.roundId,
            s.digest,
            signedAs,
            keys.encryptionPublicKey,
            keys.maskPublicKey,
          );
          const keySignature =
            variant === 'keep'
              ? p.keySignature
              : new Ed25519Signer(variant === 'sybil' ? sybil : fastIdentity()).sign(bytes);
          return { ...p, ...keys, keySignature };
        }),
      };
    });
    expect(fakes.size).toBe(t);
    expect(errors.get(target)?.code).toBe('SECAGG_SIGNATURE_INVALID');
    expect(s.clients.get(target)!.stage).toBe('aborted');
    // The adversary opens whatever the target sealed to the substituted keys: it sealed nothing.
    const loot: Loot = { selfMaskShares: [], maskKeyShares: [] };
    const sealed = s.replies.get('share-keys')!.get(target);
    expect(sealed).toBeUndefined();
    for (const b of (sealed as { bundles?: Array<{ to: ClientId; nonce: Uint8Array; ciphertext: Uint8Array }> })
      ?.bundles ?? []) {
      const fake = fakes.get(b.to);
      const plain = fake && open(b, s.publicKeys('encryptionPublicKey').get(target)!, fake.enc.secretKey);
      if (!plain) continue;
      const bundle = ShareBundlePlaintextSchema.parse(JSON.parse(Buffer.from(plain).toString('utf8')));
      loot.selfMaskShares.push(Buffer.from(bundle.selfMaskShare, 'hex'));
      loot.maskKeyShares.push(Buffer.from(bundle.maskKeyShare, 'hex'));
    }
    expect(loot.selfMaskShares).toHaveLength(0);
    // The honest clients go on without the target; its input is in no sum and its masked vector never exists.
    for (const stage of ['collect-masked-vectors', 'consistency-check', 'unmask']) {
      step = await s.server.advance();
      expect(!step.done && step.stage).toBe(stage);
      expect((await s.deliver(step)).size).toBe(0);
    }
    step = await s.server.advance();
    if (!step.done) throw new Error('expected the sum');
    expect(step.result.contributors).toEqual(others);
    expect(Array.from(step.result.sum)).toEqual(Array.from(sumOf(others.map((id) => s.inputs.get(id)!))));
    expect(s.maskedVector(target)).toBeUndefined();
    expect(await recoverInput(target, loot, s.maskedVector(target), s.maskKeys(), others, s.roundId)).toBeNull();
  });

  it('the recovery the adversary tries is real: t colluding neighbours (beyond the assumption) rebuild the input; t - 1 do not', async () => {
    const s = await makeSession(7);
    const [target, ...neighbours] = s.ids;
    await s.throughCollection();
    const loot = (n: number): Loot => {
      const shares = neighbours.slice(0, n).map((c) => heldShares(s.clients.get(c)!, target));
      return { selfMaskShares: shares.map((x) => x.selfMaskShare), maskKeyShares: shares.map((x) => x.maskKeyShare) };
    };
    const args = [s.maskedVector(target), s.maskKeys(), neighbours, s.roundId] as const;
    expect(same(await recoverInput(target, loot(4), ...args), s.inputs.get(target)!)).toBe(true);
    expect(await recoverInput(target, loot(3), ...args)).toBeNull();
  });
});

describe('a malicious server telling neighbours different survivor sets', () => {
  it('no colluders: every honest neighbour refuses, and the adversary holds no share at all', async () => {
    const s = await makeSession(7);
    const [target, h0, h1, h2, h3, h4, h5] = s.ids;
    await s.throughCollection();
    const s1 = [...s.ids]; // the target survived
    const s2 = s.ids.filter((id) => id !== target); // the target dropped
    const signatures = new Map<ClientId, string>();
    for (const [id, set] of [
      [target, s1],
      [h0, s1],
      [h1, s1],
      [h2, s1],
      [h3, s2],
      [h4, s2],
      [h5, s2],
    ] as const) {
      const { reply } = await s.ask(id, { stage: 'consistency-check', roundId: s.roundId, survivorIds: set });
      signatures.set(id, (reply as { signature: string }).signature);
    }
    const onS1 = new Map([...signatures].filter(([id]) => [target, h0, h1, h2].includes(id)));
    const onS2 = new Map([...signatures].filter(([id]) => [h3, h4, h5].includes(id)));
    const loot: Loot = { selfMaskShares: [], maskKeyShares: [] };
    // All six neighbours' signatures: three are over the other set and do not verify.
    const all = await s.ask(h0, unmaskRequest(s, h0, s1, signatures));
    expect(all.code).toBe('SECAGG_SIGNATURE_INVALID');
    for (const [id, set, sigs] of [
      [h1, s1, onS1],
      [h2, s1, onS1],
      [h3, s2, onS2],
      [h4, s2, onS2],
      [h5, s2, onS2],
    ] as const) {
      const r = await s.ask(id, unmaskRequest(s, id, set, sigs));
      expect([id, r.code]).toEqual([id, 'SECAGG_CONSISTENCY_FAILED']);
      takeShares(loot, target, r.reply);
    }
    for (const id of [h0, h1, h2, h3, h4, h5]) expect(s.clients.get(id)!.revealedShares.size).toBe(0);
    expect(loot).toEqual({ selfMaskShares: [], maskKeyShares: [] });
    const neighbours = s.ids.slice(1);
    expect(await recoverInput(target, loot, s.maskedVector(target), s.maskKeys(), neighbours, s.roundId)).toBeNull();
  });

  it('2t - k = 2 colluding neighbours: the self-mask seed falls, the mask key does not, and the input stays hidden', async () => {
    const s = await makeSession(7);
    const [target, h1, h2, h3, h4, c1, c2] = s.ids;
    await s.throughCollection();
    // Each set holds only clients that sign it: a neighbour's self mask comes off only with its own signature.
    const s1 = [target, h1, h2, c1, c2].sort();
    const s2 = s.ids.filter((id) => id !== target);
    const onS1 = new Map<ClientId, string>();
    const onS2 = new Map<ClientId, string>();
    for (const id of [target, h1, h2]) {
      const { reply } = await s.ask(id, { stage: 'consistency-check', roundId: s.roundId, survivorIds: s1 });
      onS1.set(id, (reply as { signature: string }).signature);
    }
    for (const id of [h3, h4]) {
      const { reply } = await s.ask(id, { stage: 'consistency-check', roundId: s.roundId, survivorIds: s2 });
      onS2.set(id, (reply as { signature: string }).signature);
    }
    // The colluders sign both sets and hand over both of their shares of the target.
    for (const c of [c1, c2]) {
      onS1.set(c, s.forge(c, s1));
      onS2.set(c, s.forge(c, s2));
    }
    const loot: Loot = { selfMaskShares: [], maskKeyShares: [] };
    for (const c of [c1, c2]) {
      const shares = heldShares(s.clients.get(c)!, target);
      loot.selfMaskShares.push(shares.selfMaskShare);
      loot.maskKeyShares.push(shares.maskKeyShare);
    }
    for (const id of [h1, h2]) {
      const r = await s.ask(id, unmaskRequest(s, id, s1, onS1)); // four neighbours signed S1: it reveals
      expect(r.code).toBeUndefined();
      takeShares(loot, target, r.reply);
      expect(s.clients.get(id)!.revealedShares.get(target)).toBe('self-mask');
    }
    for (const id of [h3, h4]) {
      const r = await s.ask(id, unmaskRequest(s, id, s2, onS2)); // three signatures over S2: it refuses
      expect(r.code).toBe('SECAGG_CONSISTENCY_FAILED');
      takeShares(loot, target, r.reply);
    }
    expect([loot.selfMaskShares.length, loot.maskKeyShares.length]).toEqual([4, 2]);
    const neighbours = s.ids.slice(1);
    expect(await recoverInput(target, loot, s.maskedVector(target), s.maskKeys(), neighbours, s.roundId)).toBeNull();
    // With the self mask removed the pairwise masks still hide the input.
    const partial = s.maskedVector(target)!;
    applyMask(partial, await combineShares(loot.selfMaskShares), -1);
    expect(same(partial, s.inputs.get(target)!)).toBe(false);
  });

  it('documents the bound: 2t - k + 1 = 3 colluding neighbours (still fewer than t) do rebuild the input', async () => {
    const s = await makeSession(7);
    const [target, h1, h2, h3, c1, c2, c3] = s.ids;
    await s.throughCollection();
    const s1 = [target, h1, c1, c2, c3].sort();
    const s2 = [h2, h3, c1, c2, c3].sort();
    const onS1 = new Map<ClientId, string>();
    const onS2 = new Map<ClientId, string>();
    for (const [id, set, into] of [
      [target, s1, onS1],
      [h1, s1, onS1],
      [h2, s2, onS2],
      [h3, s2, onS2],
    ] as const) {
      const { reply } = await s.ask(id, { stage: 'consistency-check', roundId: s.roundId, survivorIds: set });
      into.set(id, (reply as { signature: string }).signature);
    }
    const loot: Loot = { selfMaskShares: [], maskKeyShares: [] };
    for (const c of [c1, c2, c3]) {
      onS1.set(c, s.forge(c, s1));
      onS2.set(c, s.forge(c, s2));
      const shares = heldShares(s.clients.get(c)!, target);
      loot.selfMaskShares.push(shares.selfMaskShare);
      loot.maskKeyShares.push(shares.maskKeyShare);
    }
    takeShares(loot, target, (await s.ask(h1, unmaskRequest(s, h1, s1, onS1))).reply);
    takeShares(loot, target, (await s.ask(h2, unmaskRequest(s, h2, s2, onS2))).reply);
    expect(s.clients.get(h1)!.revealedShares.get(target)).toBe('self-mask');
    expect(s.clients.get(h2)!.revealedShares.get(target)).toBe('mask-key');
    const neighbours = s.ids.slice(1);
    const recovered = await recoverInput(target, loot, s.maskedVector(target), s.maskKeys(), neighbours, s.roundId);
    expect(same(recovered, s.inputs.get(target)!)).toBe(true);
  });
});

describe('a malicious server asking for both shares of one neighbour', () => {
  it('in one request, against the signed set, or in a second request: refused; at most one share kind per neighbour leaves', async () => {
    const s = await makeSession(7);
    const [target, a, b, c] = s.ids;
    await s.deliver(await s.throughCollection());
    const signatures = new Map(
      [...s.replies.get('consistency-check')!].map(([id, r]) => [id, (r as { signature: string }).signature]),
    );
    const set = [...s.ids];
    const loot: Loot = { selfMaskShares: [], maskKeyShares: [] };
    // Both kinds in one request.
    const both = unmaskRequest(s, a, set, signatures);
    const r1 = await s.ask(a, { ...both, droppedIds: [target] });
    expect(r1.code).toBe('SECAGG_MESSAGE_INVALID');
    // The mask-key share of a neighbour the signed set calls a survivor.
    const asDropped = unmaskRequest(s, b, set, signatures);
    const r2 = await s.ask(b, {
      ...asDropped,
      activeIds: asDropped.activeIds.filter((j) => j !== target),
      droppedIds: [target],
    });
    expect(r2.code).toBe('SECAGG_CONSISTENCY_FAILED');
    // An honest request, then a second one for the other kind.
    const r3 = await s.ask(c, unmaskRequest(s, c, set, signatures));
    takeShares(loot, target, r3.reply);
    const r4 = await s.ask(c, unmaskRequest(s, c, s.ids.slice(1), signatures));
    expect(r4.code).toBe('SECAGG_STAGE_OUT_OF_ORDER');
    expect([...s.clients.get(a)!.revealedShares]).toEqual([]);
    expect([...s.clients.get(b)!.revealedShares]).toEqual([]);
    expect(s.clients.get(c)!.revealedShares.get(target)).toBe('self-mask');
    expect([loot.selfMaskShares.length, loot.maskKeyShares.length]).toEqual([1, 0]);
    expect(
      await recoverInput(target, loot, s.maskedVector(target), s.maskKeys(), s.ids.slice(1), s.roundId),
    ).toBeNull();
  });
});

describe('a malicious server weakening the session', () => {
  const job = (secagg: Record<string, unknown>, minClients: number) =>
    secaggPolicyFor(SecAggOptionsSchema.parse(secagg ?? {}), minClients, L);

  it('a 3-member session of the victim and 2 sybils where the policy says 5: refused before any key leaves', async () => {
    const sybils = makeIdentities(2);
    const victim = fastIdentity();
    const identities = new Map([[victim.clientId, victim], ...sybils]);
    const s = await makeSession(3, { identities, policy: job({}, 5) });
    const step = s.server.start();
    const errors = await s.deliver(step, (id, req) => (id === victim.clientId ? req : null));
    expect(errors.get(victim.clientId)?.code).toBe('SECAGG_PARAMETERS_REFUSED');
    expect(s.clients.get(victim.clientId)!.stage).toBe('aborted');
    expect(s.replies.get('setup')!.size).toBe(0);
  });

  it('what the policy prevents: a victim whose job allows 3 members is unmasked by 2 sybils from the sum alone', async () => {
    const sybils = makeIdentities(2);
    const victim = fastIdentity();
    const identities = new Map([[victim.clientId, victim], ...sybils]);
    const s = await makeSession(3, { identities, policy: job({}, 3) });
    let step = s.server.start();
    while (!step.done) {
      await s.deliver(step);
      step = await s.server.advance();
    }
    const x = Uint32Array.from(step.result.sum);
    for (const id of sybils.keys()) for (let i = 0; i < L; i++) x[i] = x[i] - s.inputs.get(id)![i];
    expect(same(x, s.inputs.get(victim.clientId)!)).toBe(true);
  });

  it.each([
    ['a lower threshold', { threshold: 4 }, /threshold of at least 5/],
    ['fewer neighbours', { neighbourCount: 4, threshold: 3 }, /neighbour count of at least 6/],
    ['a wider clipping range', { quantization: { clippingRange: 8, quantizationRange: 2 ** 22 } }, /clippingRange 4/],
    ['coarser quantisation', { quantization: { clippingRange: 4, quantizationRange: 2 ** 16 } }, /quantizationRange/],
    ['a longer vector', { vectorLength: L + 1 }, /vectorLength 32/],
  ])(
    '%s than the spec: every client refuses at setup, so the server never gets a key',
    async (_name, over, pattern) => {
      const policy = job({ clippingRange: 4, neighbourCount: 6, threshold: 5 }, 7);
      const base = { neighbourCount: 6, threshold: 5, quantization: { clippingRange: 4, quantizationRange: 2 ** 22 } };
      const s = await makeSession(7, { policy, server: { ...base, ...over } as Partial<SecAggPlusServerOptions> });
      const step = s.server.start();
      const first = s.ids[0];
      const err = await s.clients
        .get(first)!
        .handle((step as { requests: Map<ClientId, ServerToClient> }).requests.get(first)!)
        .catch((e) => e);
      expect(err.message).toMatch(pattern);
      const errors = await s.deliver(step, (id, req) => (id === first ? null : req));
      expect([...errors.values()].map((e) => e.code)).toEqual(Array(6).fill('SECAGG_PARAMETERS_REFUSED'));
      await expect(s.server.advance()).rejects.toMatchObject({ code: 'ROUND_QUORUM_NOT_MET' });
      // The spec's own parameters are accepted.
      const ok = await makeSession(7, { policy, server: base });
      expect((await ok.deliver(ok.server.start())).size).toBe(0);
    },
  );
});

describe('a retried round reusing inputs', () => {
  const policy = secaggPolicyFor(SecAggOptionsSchema.parse({}), 3, L);
  const identities = makeIdentities(5);
  const ids = [...identities.keys()];
  const inputs = new Map(ids.map((id, i) => [id, randomInput(100 + i)])); // the same model and seed: the same input
  const target = ids[0];

  async function attempt(attemptNo: number, members: ClientId[], guards: Map<ClientId, UnmaskedRounds>) {
    const s = await makeSession(members.length, {
      roundId: `job7:2:${attemptNo}`,
      policy,
      identities: new Map(members.map((id) => [id, identities.get(id)!])),
      inputs,
      guards,
    });
    return s;
  }
  async function runToEnd(s: Session) {
    let step = s.server.start();
    const codes: string[] = [];
    while (!step.done) {
      for (const e of (await s.deliver(step)).values()) codes.push(e.code);
      const next = await s.server.advance().catch((e) => e);
      if (!('done' in next)) return { sum: null, codes, error: next.code as string };
      step = next;
    }
    return { sum: step.result.sum, codes };
  }

  it('without the per-job guard the two sums separate the target; with it the retry gets no second masked input', async () => {
    // Control: a client that keeps nothing across attempts (a fresh guard per session, as before).
    const fresh = () => new Map(ids.map((id) => [id, new UnmaskedRounds('job7')]));
    const a0 = await runToEnd(await attempt(0, ids, fresh()));
    const a1 = await runToEnd(await attempt(1, ids.slice(1), fresh()));
    const x = Uint32Array.from(a0.sum!);
    for (let i = 0; i < L; i++) x[i] = x[i] - a1.sum![i];
    expect(same(x, inputs.get(target)!)).toBe(true);
    // With one guard per client for the job, attempt 0 reached unmasking, so nobody masks again.
    const guards = new Map(ids.map((id) => [id, new UnmaskedRounds('job7')]));
    const b0 = await runToEnd(await attempt(0, ids, guards));
    expect(b0.sum).not.toBeNull();
    const retry = await attempt(1, ids.slice(1), guards);
    const b1 = await runToEnd(retry);
    expect(b1.codes).toEqual(Array(4).fill('SECAGG_INPUT_ALREADY_UNMASKED'));
    expect(b1.error).toBe('ROUND_QUORUM_NOT_MET');
    expect(b1.sum).toBeNull();
    for (const id of ids.slice(1)) expect(retry.maskedVector(id)).toBeUndefined();
  });

  it('a consistency check withheld from the target: its neighbours will not unmask it, so masking it again in the retry is safe', async () => {
    const guards = new Map(ids.map((id) => [id, new UnmaskedRounds('job7')]));
    const s0 = await attempt(0, ids, guards);
    await s0.throughCollection();
    const others = ids.slice(1);
    const signatures = new Map<ClientId, string>();
    for (const id of others) {
      const { reply } = await s0.ask(id, { stage: 'consistency-check', roundId: s0.roundId, survivorIds: ids });
      signatures.set(id, (reply as { signature: string }).signature);
    }
    const loot: Loot = { selfMaskShares: [], maskKeyShares: [] };
    for (const id of others) {
      const r = await s0.ask(id, unmaskRequest(s0, id, ids, signatures));
      expect([id, r.code]).toEqual([id, 'SECAGG_CONSISTENCY_FAILED']);
      takeShares(loot, target, r.reply);
    }
    // Without the target's own signature no self-mask share of anyone in the set left: no sum of attempt 0.
    for (const id of others) expect(s0.clients.get(id)!.revealedShares.size).toBe(0);
    expect(loot.selfMaskShares).toHaveLength(0);
    // The target never signed, so it masks again in attempt 1: its one sum; the others signed and refuse.
    const s1 = await attempt(1, ids, guards);
    const r1 = await runToEnd(s1);
    expect(r1.codes).toEqual(Array(4).fill('SECAGG_INPUT_ALREADY_UNMASKED'));
    expect(s1.maskedVector(target)).toBeDefined();
    expect(r1.sum).toBeNull();
  });

  it('an attempt abandoned after collection, before any unmasking (the round quorum failed), may be retried', async () => {
    const guards = new Map(ids.map((id) => [id, new UnmaskedRounds('job7')]));
    const s0 = await attempt(0, ids, guards);
    await s0.throughCollection();
    s0.server.cancel(); // the driver found the round short of its quorum and never sent the consistency check
    const s1 = await attempt(1, ids, guards);
    const r1 = await runToEnd(s1);
    expect(r1.codes).toEqual([]);
    expect(Array.from(r1.sum!)).toEqual(Array.from(sumOf(ids.map((id) => inputs.get(id)!))));
    // The abandoned attempt is over for every client: its consistency check is refused.
    const late = await s0.ask(target, { stage: 'consistency-check', roundId: s0.roundId, survivorIds: ids });
    expect(late.code).toBe('SECAGG_MESSAGE_INVALID');
  });
});
