/**
 * SecAgg+ against a malicious coordinator, on real sockets (issue 12, "Done means"): a real
 * coordinator whose `secagg` mode is replaced by a scripted adversary (support/maliciousCoordinator.ts)
 * drives the project's own TributaryClients, in process, over socket.io on 127.0.0.1. Each scenario
 * asserts on what the adversary could reconstruct from everything it received (the reconstruction
 * tools of shared/secagg/reconstruction.ts against the clients' recorded quantised inputs) and that
 * the honest clients stop with coded errors (their `modeStepFailed` events).
 *
 * Sessions use the complete graph (n <= 7): n = 4: k = 3, t = 2; n = 5: k = 4, t = 3; n = 7: k = 6, t = 4.
 */
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { generateIdentity } from '../shared/identity/keyPair';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import {
  addInPlace,
  advertisedKeysBytes,
  applyMask,
  type ClientId,
  combineShares,
  Ed25519Signer,
  generateKeyPair,
  MODULUS,
  SecAggPlusServer,
  type SecAggStep,
  type ServerToClient,
  secaggRoundId,
  setupDigest,
  survivorSetBytes,
} from '../shared/secagg';
import { noLoot, openSealedShares, recoverInput, takeHeldShares, takeShares } from '../shared/secagg/reconstruction';
import { fastIdentity, makeClient, policyOf } from '../shared/secagg/testHarness';
import {
  type Answer,
  type AttemptContext,
  deliver,
  MaliciousSecAgg,
  maskedVectorOf,
  type Sybil,
} from './support/maliciousCoordinator';
import { RecordingClient } from './support/recordingClient';
import { createJob } from './support/rest';
import { separableDataset } from './support/syntheticCsv';

jest.setTimeout(240_000);

const FEATURES = 4;
const MAX_EXAMPLE_WEIGHT = 1000;
const CLIPPING_RANGE = 8;
const QUANTIZATION = { clippingRange: CLIPPING_RANGE, quantizationRange: 2 ** 22 };

/** A one-round secagg job of exactly `clients` clients; `sessionMinimum` is the policy's smallest session (cohortSize). */
function spec(name: string, clients: number, sessionMinimum: number, retries = 0): JobSpecInput {
  return {
    name,
    model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
    input: { shape: [FEATURES], numClasses: 2 },
    rounds: 1,
    minClients: clients,
    maxClients: clients,
    localEpochs: 1,
    batchSize: 16,
    learningRate: 0.1,
    roundDeadlineMs: 120_000,
    quorumTimeoutMs: 120_000,
    maxRoundRetries: retries,
    seed: 11,
    secureAggregation: 'secagg',
    secagg: {
      maxExampleWeight: MAX_EXAMPLE_WEIGHT,
      clippingRange: CLIPPING_RANGE,
      // cohortSize is what the clients' policy takes as the smallest session (else minClients).
      ...(sessionMinimum < clients ? { cohortSize: sessionMinimum } : {}),
    },
  };
}

const same = (a: Uint32Array | null | undefined, b: Uint32Array) =>
  !!a && a.length === b.length && a.every((v, i) => v === b[i]);
const sumOf = (vs: Uint32Array[]) => {
  const out = new Uint32Array(vs[0].length);
  for (const v of vs) addInPlace(out, v);
  return out;
};
const minus = (a: Uint32Array, b: Uint32Array) => Uint32Array.from(a, (v, i) => (v - b[i] + MODULUS) % MODULUS);

describe('SecAgg+ against a malicious coordinator, on real sockets', () => {
  const adversary = new MaliciousSecAgg();
  let coordinator: Coordinator;
  const started: RecordingClient[] = [];

  beforeAll(async () => {
    coordinator = await startCoordinator({ port: 0, logLevel: 'error' }, { modes: { secagg: adversary.factory } });
  });

  afterAll(async () => {
    for (const c of started) c.close();
    await coordinator?.close();
  });

  /** Starts `n` honest recording clients on the job; returns them by client id. */
  function startClients(jobId: string, n: number): Map<ClientId, RecordingClient> {
    const clients = new Map<ClientId, RecordingClient>();
    for (let i = 0; i < n; i++) {
      const client = new RecordingClient(
        {
          url: coordinator.url,
          jobId,
          identity: generateIdentity(),
          dataset: separableDataset(40 + 8 * i, FEATURES, 100 + started.length),
          backend: 'cpu',
        },
        { maxExampleWeight: MAX_EXAMPLE_WEIGHT, clippingRange: CLIPPING_RANGE },
      );
      adversary.watch(client);
      client.run().catch(() => undefined);
      started.push(client);
      clients.set(client.clientId, client);
    }
    return clients;
  }

  /** Creates the job, plans the attacks, starts the clients, and waits until every attack ran and the job ended. */
  async function runAttack(jobSpec: JobSpecInput, attacks: Array<(a: AttemptContext) => Promise<void>>, n: number) {
    const jobId = await createJob(coordinator.url, jobSpec);
    const done = adversary.plan(jobId, attacks);
    const clients = startClients(jobId, n);
    await done;
    const job = await coordinator.jobs.waitForJob(jobId);
    expect(job.status).toBe('failed'); // the adversary never lets a round commit
    return { jobId, clients };
  }

  /** An honest SecAgg+ server over `members` for this attempt (the adversary's own instrument). */
  function serverFor(a: AttemptContext, members: readonly ClientId[], cohort?: number) {
    return new SecAggPlusServer({
      roundId: secaggRoundId({ jobId: a.jobId, round: a.round, attempt: a.attempt, cohort }),
      clientIds: members,
      vectorLength: a.vectorLength,
      quantization: QUANTIZATION,
      graphSeed: 'adversary',
    });
  }

  /** Sybils (identities of the coordinator's own) for a session, played with the project's SecAggPlusClient. */
  function sybilsFor(
    server: SecAggPlusServer,
    ids: readonly ClientId[],
    identities: Map<ClientId, ReturnType<typeof fastIdentity>>,
  ) {
    const policy = policyOf(server);
    return new Map<ClientId, Sybil>(
      ids.map((id, i) => [
        id,
        {
          client: makeClient(identities.get(id)!, policy, server.roundId),
          input: Uint32Array.from({ length: server.params.vectorLength }, (_, j) => (j * 7919 + i * 104729) % 2 ** 22),
        },
      ]),
    );
  }
  const sybilIdentities = (n: number) => {
    const ids = Array.from({ length: n }, fastIdentity);
    return new Map(ids.map((i) => [i.clientId, i]));
  };

  /** Runs the stages until `stage` (its step is returned, nothing of it sent). */
  async function runUntil(a: AttemptContext, server: SecAggPlusServer, stage: string, sybils?: Map<ClientId, Sybil>) {
    let step: SecAggStep = server.start();
    const answers = new Map<string, Map<ClientId, Answer>>();
    while (!step.done && step.stage !== stage) {
      answers.set(step.stage, await deliver(a, server, step, { sybils }));
      step = await server.advance();
    }
    return { step, answers };
  }

  /** Runs a session to its end, each stage's requests through `rewrite`; the result, or the code it aborted with. */
  async function runToEnd(a: AttemptContext, server: SecAggPlusServer, options: Parameters<typeof deliver>[3] = {}) {
    let step: SecAggStep = server.start();
    const answers = new Map<string, Map<ClientId, Answer>>();
    while (!step.done) {
      answers.set(step.stage, await deliver(a, server, step, options));
      try {
        step = await server.advance();
      } catch (err) {
        return { answers, error: (err as { code: string }).code };
      }
    }
    return { answers, result: step.result };
  }

  /** The unmask request an honest server would send `id` if `set` were the survivors, with the given signatures. */
  function unmaskRequest(
    server: SecAggPlusServer,
    id: ClientId,
    set: readonly ClientId[],
    signatures: ReadonlyMap<ClientId, string>,
  ): ServerToClient {
    const neighbours = server.graph.get(id)!;
    return {
      stage: 'unmask',
      roundId: server.roundId,
      activeIds: neighbours.filter((j) => set.includes(j)),
      droppedIds: neighbours.filter((j) => !set.includes(j)),
      signatures: neighbours
        .filter((j) => signatures.has(j))
        .map((j) => ({ clientId: j, signature: signatures.get(j)! })),
    };
  }

  const signatureOf = (answer: Answer | undefined) =>
    answer?.reply?.stage === 'consistency-check' ? answer.reply.signature : undefined;

  it('key substitution for t of a target’s neighbours: the target refuses at share-keys and nothing of it can be rebuilt', async () => {
    const seen: {
      target?: ClientId;
      targetCode?: string;
      lateCode?: string;
      loot: ReturnType<typeof noLoot>;
      sealed?: Answer;
      contributors?: ClientId[];
      sum?: Uint32Array;
      masked: Map<ClientId, Uint32Array>;
    } = { loot: noLoot(), masked: new Map() };
    const attack = async (a: AttemptContext) => {
      const server = serverFor(a, a.selected); // n = 5: k = 4, t = 3
      const t = server.params.threshold;
      const [target] = server.clientIds;
      seen.target = target;
      const { step, answers } = await runUntil(a, server, 'share-keys');
      const setup = answers.get('setup')!;
      const targetKeys = setup.get(target)!.reply as { encryptionPublicKey: Uint8Array };
      // The coordinator's own keys for t of the target's neighbours, signed with its own identity.
      const forger = new Ed25519Signer(fastIdentity());
      const digest = setupDigest({ roundId: server.roundId, params: server.params, clientIds: server.clientIds });
      const fakes = new Map<ClientId, Uint8Array>();
      const shareKeys = await deliver(a, server, step, {
        rewrite: (id, request) => {
          if (id !== target || request.stage !== 'share-keys') return request;
          return {
            ...request,
            peers: request.peers.map((p, i) => {
              if (i >= t) return p;
              const enc = generateKeyPair();
              const mask = generateKeyPair();
              fakes.set(p.clientId, enc.secretKey);
              const bytes = advertisedKeysBytes(server.roundId, digest, p.clientId, enc.publicKey, mask.publicKey);
              return {
                ...p,
                encryptionPublicKey: enc.publicKey,
                maskPublicKey: mask.publicKey,
                keySignature: forger.sign(bytes),
              };
            }),
          };
        },
      });
      expect(fakes.size).toBe(t);
      seen.targetCode = shareKeys.get(target)?.code;
      seen.sealed = shareKeys.get(target);
      // Whatever the target sealed to the substituted keys, the adversary opens.
      openSealedShares(seen.loot, shareKeys.get(target)?.reply, targetKeys.encryptionPublicKey, fakes);
      // The others go on without the target; the target is asked for a masked vector anyway.
      let next = await server.advance();
      if (next.done || next.stage !== 'collect-masked-vectors') throw new Error('expected collection');
      const collected = await deliver(a, server, next);
      for (const [id, answer] of collected) {
        const v = maskedVectorOf(answer);
        if (v) seen.masked.set(id, v);
      }
      const late = await a.ask(target, { stage: 'collect-masked-vectors', roundId: server.roundId, bundles: [] });
      seen.lateCode = late.code;
      const v = maskedVectorOf(late);
      if (v) seen.masked.set(target, v);
      for (;;) {
        next = await server.advance();
        if (next.done) break;
        await deliver(a, server, next);
      }
      seen.contributors = next.result.contributors;
      seen.sum = next.result.sum;
    };
    const { clients } = await runAttack(spec('malicious-key-substitution', 5, 4), [attack], 5);
    const target = seen.target!;
    const others = [...clients.keys()].filter((id) => id !== target).sort();
    expect(seen.targetCode).toBe('SECAGG_SIGNATURE_INVALID');
    expect(seen.sealed?.reply).toBeUndefined(); // it sealed nothing
    expect(seen.lateCode).toBe('SECAGG_STAGE_OUT_OF_ORDER'); // it aborted for good
    expect(adversary.codesOf(target)).toEqual(['SECAGG_SIGNATURE_INVALID', 'SECAGG_STAGE_OUT_OF_ORDER']);
    for (const id of others) expect(adversary.codesOf(id)).toEqual([]);
    // Nothing of the target's secrets, no masked vector, no sum with its input in it.
    expect(seen.loot).toEqual(noLoot());
    expect(seen.masked.has(target)).toBe(false);
    expect(await recoverInput(target, seen.loot, seen.masked.get(target), new Map(), others, 'x:1:0')).toBeNull();
    // The session still ran for the others: its sum is exactly theirs (the recorded inputs are the real ones).
    expect(seen.contributors).toEqual(others);
    expect(same(seen.sum, sumOf(others.map((id) => clients.get(id)!.inputOf(0))))).toBe(true);
  });

  it('inconsistent survivor sets, with 2t - k = 2 sybil colluders: some neighbours refuse, the self mask falls, the input stays hidden', async () => {
    const seen = {
      target: '',
      loot: noLoot(),
      codes: new Map<ClientId, string | undefined>(),
      masked: undefined as Uint32Array | undefined,
      maskKeys: new Map<ClientId, Uint8Array>(),
      neighbours: [] as ClientId[],
      roundId: '',
      selfMaskSeed: undefined as Uint8Array | undefined,
    };
    const attack = async (a: AttemptContext) => {
      const identities = sybilIdentities(2);
      const server = serverFor(a, [...a.selected, ...identities.keys()]); // n = 7: k = 6, t = 4
      const sybils = sybilsFor(server, [...identities.keys()], identities);
      const honest = [...a.selected].sort();
      const [target, h1, h2, h3, h4] = honest;
      const [c1, c2] = [...sybils.keys()];
      seen.target = target;
      seen.roundId = server.roundId;
      seen.neighbours = server.graph.get(target)!.slice();
      const { answers } = await runUntil(a, server, 'consistency-check', sybils);
      for (const [id, ans] of answers.get('setup')!) {
        const r = ans.reply as { maskPublicKey: Uint8Array };
        seen.maskKeys.set(id, r.maskPublicKey);
      }
      seen.masked = maskedVectorOf(answers.get('collect-masked-vectors')!.get(target));
      // Story 1 (the target survived) to the target, h1, h2; story 2 (it dropped) to h3, h4. The
      // colluders sign both and hand over their shares of the target.
      const s1 = [target, h1, h2, c1, c2].sort();
      const s2 = server.clientIds.filter((id) => id !== target);
      const digest = setupDigest({ roundId: server.roundId, params: server.params, clientIds: server.clientIds });
      const on1 = new Map<ClientId, string>();
      const on2 = new Map<ClientId, string>();
      for (const c of [c1, c2]) {
        const signer = new Ed25519Signer(identities.get(c)!);
        on1.set(c, signer.sign(survivorSetBytes(server.roundId, digest, s1)));
        on2.set(c, signer.sign(survivorSetBytes(server.roundId, digest, s2)));
        takeHeldShares(seen.loot, sybils.get(c)!.client, target);
      }
      const check = (set: ClientId[]) => ({
        stage: 'consistency-check' as const,
        roundId: server.roundId,
        survivorIds: set,
      });
      for (const [id, set, into] of [
        [target, s1, on1],
        [h1, s1, on1],
        [h2, s1, on1],
        [h3, s2, on2],
        [h4, s2, on2],
      ] as const) {
        const signature = signatureOf(await a.ask(id, check(set)));
        if (signature) into.set(id, signature);
      }
      for (const [id, set, sigs] of [
        [h1, s1, on1],
        [h2, s1, on1],
        [h3, s2, on2],
        [h4, s2, on2],
      ] as const) {
        const answer = await a.ask(id, unmaskRequest(server, id, set, sigs));
        seen.codes.set(id, answer.code);
        takeShares(seen.loot, target, answer.reply);
      }
      if (seen.loot.selfMaskShares.length >= server.params.threshold)
        seen.selfMaskSeed = await combineShares(seen.loot.selfMaskShares);
    };
    const { clients } = await runAttack(spec('malicious-survivor-sets', 5, 5), [attack], 5);
    const [, h1, h2, h3, h4] = [...clients.keys()].sort();
    const target = seen.target;
    // h1 and h2 saw four neighbours sign their set (t = 4) and revealed the target's self-mask share;
    // h3 and h4 saw three and refused.
    expect([...seen.codes]).toEqual([
      [h1, undefined],
      [h2, undefined],
      [h3, 'SECAGG_CONSISTENCY_FAILED'],
      [h4, 'SECAGG_CONSISTENCY_FAILED'],
    ]);
    for (const id of [h3, h4]) expect(adversary.codesOf(id)).toEqual(['SECAGG_CONSISTENCY_FAILED']);
    expect([seen.loot.selfMaskShares.length, seen.loot.maskKeyShares.length]).toEqual([4, 2]);
    const input = clients.get(target)!.inputOf(0);
    expect(await recoverInput(target, seen.loot, seen.masked, seen.maskKeys, seen.neighbours, seen.roundId)).toBeNull();
    // The self mask does come off, but the pairwise masks still hide the input.
    const partial = Uint32Array.from(seen.masked!);
    applyMask(partial, seen.selfMaskSeed!, -1);
    expect(same(partial, input)).toBe(false);
  });

  it('both kinds of share of one peer, in one request or across requests: refused, at most one kind leaves each client', async () => {
    const seen = { target: '', codes: new Map<string, string | undefined>(), loot: noLoot(), revealed: 0 };
    const attack = async (a: AttemptContext) => {
      const server = serverFor(a, a.selected); // n = 5: k = 4, t = 3
      const ids = server.clientIds;
      const [target, p, q, r, u] = ids;
      seen.target = target;
      const { step } = await runUntil(a, server, 'consistency-check');
      if (step.done) throw new Error('expected the consistency check');
      const signatures = new Map<ClientId, string>();
      for (const [id, answer] of await deliver(a, server, step)) signatures.set(id, signatureOf(answer)!);
      const set = [...ids];
      const honest = (id: ClientId) =>
        unmaskRequest(server, id, set, signatures) as Extract<ServerToClient, { stage: 'unmask' }>;
      const ask = async (label: string, id: ClientId, request: ServerToClient) => {
        const answer = await a.ask(id, request);
        seen.codes.set(label, answer.code);
        takeShares(seen.loot, target, answer.reply);
      };
      // Both kinds of the target's shares in one request.
      await ask('both in one request', p, { ...honest(p), droppedIds: [target] });
      // The target's mask-key share, against the set the client signed (which says the target survived).
      const asDropped = honest(q);
      await ask('mask key against the signed set', q, {
        ...asDropped,
        activeIds: asDropped.activeIds.filter((j) => j !== target),
        droppedIds: [target],
      });
      // ... and an honest request to the same client afterwards.
      await ask('honest request after a refusal', q, honest(q));
      // An honest request, then a second one for the other kind.
      await ask('honest request', r, honest(r));
      await ask('second request for the other kind', r, {
        ...honest(r),
        activeIds: honest(r).activeIds.filter((j) => j !== target),
        droppedIds: [target],
      });
      seen.revealed = seen.loot.selfMaskShares.length + seen.loot.maskKeyShares.length;
      void u;
    };
    const { clients } = await runAttack(spec('malicious-both-shares', 5, 5), [attack], 5);
    expect([...seen.codes]).toEqual([
      ['both in one request', 'SECAGG_MESSAGE_INVALID'],
      ['mask key against the signed set', 'SECAGG_CONSISTENCY_FAILED'],
      ['honest request after a refusal', 'SECAGG_STAGE_OUT_OF_ORDER'],
      ['honest request', undefined],
      ['second request for the other kind', 'SECAGG_STAGE_OUT_OF_ORDER'],
    ]);
    // One self-mask share of the target (t = 3 are needed), no mask-key share.
    expect([seen.loot.selfMaskShares.length, seen.loot.maskKeyShares.length]).toEqual([1, 0]);
    expect(seen.revealed).toBe(1);
    expect(clients.size).toBe(5);
  });

  describe('a 3-member session of a victim and 2 sybils', () => {
    /** Puts every honest client in its own session with two sybils; returns what each session yielded. */
    function sybilSessions(seen: Map<ClientId, { code?: string; keysLeft: boolean; recovered?: Uint32Array }>) {
      return async (a: AttemptContext) => {
        const victims = [...a.selected].sort();
        for (const [cohort, victim] of victims.entries()) {
          const identities = sybilIdentities(2);
          const server = serverFor(a, [victim, ...identities.keys()], cohort);
          const sybils = sybilsFor(server, [...identities.keys()], identities);
          let step: SecAggStep = server.start();
          const first = await deliver(a, server, step, { sybils });
          const entry: { code?: string; keysLeft: boolean; recovered?: Uint32Array } = {
            code: first.get(victim)?.code,
            keysLeft: !!first.get(victim)?.reply,
          };
          seen.set(victim, entry);
          if (entry.code) continue;
          step = await server.advance();
          while (!step.done) {
            await deliver(a, server, step, { sybils });
            step = await server.advance();
          }
          // The sum minus the sybils' own inputs is the victim's input.
          let x = step.result.sum;
          for (const s of sybils.values()) x = minus(x, s.input);
          entry.recovered = x;
        }
      };
    }

    it('under a spec whose policy says 5: every victim refuses at setup, before any key leaves', async () => {
      const seen = new Map<ClientId, { code?: string; keysLeft: boolean; recovered?: Uint32Array }>();
      const { clients } = await runAttack(spec('malicious-sybils', 5, 5), [sybilSessions(seen)], 5);
      expect(seen.size).toBe(5);
      for (const id of clients.keys()) {
        expect(seen.get(id)).toEqual({ code: 'SECAGG_PARAMETERS_REFUSED', keysLeft: false });
        expect(adversary.codesOf(id)).toEqual(['SECAGG_PARAMETERS_REFUSED']);
      }
    });

    it('what that policy prevents: where the spec allows 3, the two sybils subtract their inputs and get the victim’s exactly', async () => {
      const seen = new Map<ClientId, { code?: string; keysLeft: boolean; recovered?: Uint32Array }>();
      const { clients } = await runAttack(spec('malicious-sybils-allowed', 3, 3), [sybilSessions(seen)], 3);
      for (const [id, client] of clients) {
        expect(seen.get(id)?.code).toBeUndefined();
        expect(same(seen.get(id)?.recovered, client.inputOf(0))).toBe(true);
      }
    });
  });

  it('a retried round re-using inputs: no client’s input ends up in two unmasked sums, even when the consistency check is withheld from it', async () => {
    /** Every sum the adversary unmasked, with its members. */
    const sums: Array<{ attempt: number; members: ClientId[]; sum: Uint32Array }> = [];
    const seen = {
      target: '',
      attempt0: new Map<ClientId, string | undefined>(),
      attempt1: new Map<ClientId, string | undefined>(),
    };
    /**
     * Unmasks a session whose every member sent its masked vector: the survivors' self masks off
     * (their pairwise masks cancel). Null unless t self-mask shares of every member arrived.
     */
    async function unmaskAll(
      server: SecAggPlusServer,
      masked: Map<ClientId, Uint32Array>,
      replies: Iterable<Answer>,
    ): Promise<Uint32Array | null> {
      const sum = new Uint32Array(server.params.vectorLength);
      for (const v of masked.values()) addInPlace(sum, v);
      for (const owner of masked.keys()) {
        const loot = noLoot();
        for (const r of replies) takeShares(loot, owner, r.reply);
        if (loot.selfMaskShares.length < server.params.threshold) return null;
        applyMask(sum, await combineShares(loot.selfMaskShares), -1);
      }
      return sum;
    }

    // Attempt 0: the target T and three others (n = 4, t = 2); T is kept out of the consistency
    // check, so it never learns the others were asked to unmask it. D, E, F are left out.
    const attempt0 = async (a: AttemptContext) => {
      const ids = [...a.selected].sort();
      const members = ids.slice(0, 4);
      const [target, ...others] = members;
      seen.target = target;
      const server = serverFor(a, members, 0);
      const { answers } = await runUntil(a, server, 'consistency-check');
      const masked = new Map<ClientId, Uint32Array>();
      for (const [id, ans] of answers.get('collect-masked-vectors')!) masked.set(id, maskedVectorOf(ans)!);
      const signatures = new Map<ClientId, string>();
      for (const id of others) {
        const sig = signatureOf(
          await a.ask(id, { stage: 'consistency-check', roundId: server.roundId, survivorIds: members }),
        );
        if (sig) signatures.set(id, sig);
      }
      const replies: Answer[] = [];
      for (const id of others) {
        const answer = await a.ask(id, unmaskRequest(server, id, members, signatures));
        seen.attempt0.set(id, answer.code);
        replies.push(answer);
      }
      const sum = await unmaskAll(server, masked, replies);
      if (sum) sums.push({ attempt: 0, members, sum });
    };
    // Attempt 1: the same clients are asked to mask again: A, B, C with a sybil, T with D, E, F.
    const attempt1 = async (a: AttemptContext) => {
      const [target, ...rest] = [...a.selected].sort();
      const again = rest.slice(0, 3);
      const identities = sybilIdentities(1);
      const burned = serverFor(a, [...again, ...identities.keys()], 0);
      const sybils = sybilsFor(burned, [...identities.keys()], identities);
      const b = await runToEnd(a, burned, { sybils });
      for (const id of again) seen.attempt1.set(id, b.answers.get('collect-masked-vectors')?.get(id)?.code);
      const members = [target, ...rest.slice(3)];
      const run = await runToEnd(a, serverFor(a, members, 1));
      seen.attempt1.set(target, run.answers.get('collect-masked-vectors')?.get(target)?.code);
      if (run.result) sums.push({ attempt: 1, members: run.result.contributors, sum: run.result.sum });
    };
    const { clients } = await runAttack(spec('malicious-retry', 7, 4, 1), [attempt0, attempt1], 7);
    const ids = [...clients.keys()].sort();
    const target = seen.target;
    // Every sum the adversary got is a real one (the recorded inputs add up to it).
    for (const s of sums) {
      expect(same(s.sum, sumOf(s.members.map((id) => clients.get(id)!.inputOf(s.attempt))))).toBe(true);
    }
    // A, B, C signed the survivor set in attempt 0, but would not reveal T's self-mask share without
    // T's own signature over it; they reached unmasking, so they refuse to mask the round's input again.
    for (const id of ids.slice(1, 4)) {
      expect(seen.attempt0.get(id)).toBe('SECAGG_CONSISTENCY_FAILED');
      expect(seen.attempt1.get(id)).toBe('SECAGG_INPUT_ALREADY_UNMASKED');
    }
    // T's input was never unmasked in attempt 0, so it may (and does) enter attempt 1's sum.
    expect(seen.attempt1.get(target)).toBeUndefined();
    expect(sums.map((s) => [s.attempt, s.members])).toEqual([[1, [target, ...ids.slice(4)].sort()]]);
    // One unmasked sum per client per round, whatever the coordinator withheld.
    const count = new Map<ClientId, number>();
    for (const s of sums) for (const id of s.members) count.set(id, (count.get(id) ?? 0) + 1);
    expect([...count].filter(([, c]) => c > 1)).toEqual([]);
    expect(target).toBe(ids[0]);
  });
});
