import { TributaryError } from '../errors';
import { bytesToVector, type ServerToClient } from './messages';
import { recommendedNeighbourCount, recommendedThreshold } from './neighbours';
import { DEFAULT_QUANTIZATION, dequantizeSum, MODULUS, quantize, sumErrorBound } from './quantize';
import { SecAggPlusServer, type SecAggStep } from './serverProtocol';
import {
  CLIENT_STATES,
  type ClientState,
  isClientTransition,
  isServerTransition,
  SERVER_STATES,
  type SecAggStage,
  STAGE_ORDER,
  type ServerState,
} from './stages';
import { makeClient, makeIdentities, policyOf, runInMemoryRound } from './testHarness';

function makeInputs(n: number, L: number, seed = 1, identitySeed?: string) {
  let s = seed;
  const rand = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const identities = makeIdentities(n, identitySeed);
  const ids = [...identities.keys()];
  const floats = new Map(ids.map((id) => [id, Float32Array.from({ length: L }, () => (rand() - 0.5) * 4)]));
  const quantised = new Map(ids.map((id) => [id, quantize(floats.get(id)!).values]));
  return { identities, ids, floats, quantised };
}

function plainSum(vs: Uint32Array[], L: number): Uint32Array {
  const out = new Uint32Array(L);
  for (const v of vs) for (let i = 0; i < L; i++) out[i] = out[i] + v[i];
  return out;
}

describe('SecAgg+ round, in memory', () => {
  it.each([
    [5, 500],
    [30, 200],
  ])('n = %i: the unmasked sum equals the plain sum exactly and dequantises within the bound', async (n, L) => {
    const { identities, ids, floats, quantised } = makeInputs(n, L);
    const k = recommendedNeighbourCount(n);
    const { result, server, clients } = await runInMemoryRound(
      { roundId: 'job1:1:0', clientIds: ids, vectorLength: L, graphSeed: 'g' },
      identities,
      quantised,
    );
    expect(server.params.neighbourCount).toBe(k);
    expect(k).toBe(n === 5 ? 4 : 10);
    expect(result.contributors).toEqual(ids);
    expect(result.dropouts).toEqual([]);
    expect(Array.from(result.sum)).toEqual(Array.from(plainSum([...quantised.values()], L)));
    // Everyone survived: every client revealed exactly the self-mask share of each of its k neighbours.
    for (const [id, c] of clients) {
      expect(c.stage).toBe('unmask');
      expect([...c.revealedShares.keys()].sort()).toEqual([...server.graph.get(id)!].sort());
      expect(new Set(c.revealedShares.values())).toEqual(new Set(['self-mask']));
    }
    const deq = dequantizeSum(result.sum, n);
    const bound = sumErrorBound(n, DEFAULT_QUANTIZATION) + 1e-9;
    for (let i = 0; i < L; i++) {
      let exact = 0;
      for (const f of floats.values()) exact += f[i];
      expect(Math.abs(deq[i] - exact)).toBeLessThanOrEqual(bound);
    }
  });

  const n = 7; // k = 6, t = 4: each client's secrets survive up to 2 lost neighbours
  const L = 64;

  it.each(STAGE_ORDER.flatMap((stage) => [1, 2, 3].map((d) => [stage, d] as const)))(
    'dropouts at %s: %i clients',
    async (stage, drop) => {
      const { identities, ids, quantised } = makeInputs(n, L, 7);
      const k = recommendedNeighbourCount(n);
      const t = recommendedThreshold(k);
      expect([k, t]).toEqual([6, 4]);
      const dropAt = new Map(ids.slice(0, drop).map((id) => [id, stage]));
      const run = runInMemoryRound(
        { roundId: 'job1:2:0', clientIds: ids, vectorLength: L, graphSeed: 's' },
        identities,
        quantised,
        dropAt,
      );
      // A client's secrets need t of its k neighbours: up to k - t = 2 may drop at any stage.
      const tolerated = drop <= k - t;
      if (!tolerated) {
        await expect(run).rejects.toMatchObject({ code: 'ROUND_QUORUM_NOT_MET' });
        return;
      }
      const { result, clients } = await run;
      // A masked vector that arrived counts if its sender signed the survivor set (it dropped at
      // unmask); one whose sender left before the consistency check is withdrawn with its input.
      const afterCollection = stage === 'unmask';
      const inSum = afterCollection ? ids : ids.slice(drop);
      expect(result.contributors).toEqual(inSum);
      expect(result.dropouts.map((d) => d.clientId).sort()).toEqual(ids.slice(0, drop));
      expect(Array.from(result.sum)).toEqual(
        Array.from(
          plainSum(
            inSum.map((id) => quantised.get(id)!),
            L,
          ),
        ),
      );
      // Survivors revealed one share kind per neighbour: self-mask for those in the sum, mask key for the others.
      for (const id of ids.slice(drop)) {
        for (const [peer, kind] of clients.get(id)!.revealedShares) {
          expect(kind).toBe(inSum.includes(peer) ? 'self-mask' : 'mask-key');
        }
      }
    },
  );

  it('beyond the threshold: aborts with the typed error, as data on the error', async () => {
    const { identities, ids, quantised } = makeInputs(n, L, 9);
    const dropAt = new Map(ids.slice(0, 4).map((id) => [id, 'collect-masked-vectors' as SecAggStage]));
    const err = await runInMemoryRound(
      { roundId: 'job1:3:0', clientIds: ids, vectorLength: L },
      identities,
      quantised,
      dropAt,
    ).catch((e) => e);
    expect(err).toBeInstanceOf(TributaryError);
    expect(err.code).toBe('ROUND_QUORUM_NOT_MET');
    expect((err.details as { stage: string }).stage).toBe('consistency-check');
  });

  it('sparse graph (n = 30): several dropouts at every stage still give the exact sum', async () => {
    // Pinned identities: with random ones about 4 % of graphs leave some client 5 shares of its
    // threshold 6 after these dropouts (a correct abort, but not what this test is about).
    const { identities, ids, quantised } = makeInputs(30, 32, 3, 'sparse-graph');
    const dropAt = new Map<string, SecAggStage>([
      [ids[0], 'setup'],
      [ids[10], 'share-keys'],
      [ids[20], 'collect-masked-vectors'],
      [ids[23], 'consistency-check'],
      [ids[25], 'unmask'],
    ]);
    const { result } = await runInMemoryRound(
      { roundId: 'job1:4:0:c1', clientIds: ids, vectorLength: 32, graphSeed: 'x' },
      identities,
      quantised,
      dropAt,
    );
    const inSum = ids.filter((id) => ![ids[0], ids[10], ids[20], ids[23]].includes(id));
    expect(result.contributors).toEqual(inSum);
    expect(Array.from(result.sum)).toEqual(
      Array.from(
        plainSum(
          inSum.map((id) => quantised.get(id)!),
          32,
        ),
      ),
    );
  });
});

describe('SecAgg+ survivors that do not sign the survivor set', () => {
  it('one silent at the consistency check aborts the session with a coded error, and no share is revealed', async () => {
    const { identities, ids, quantised } = makeInputs(7, 16, 5);
    const server = new SecAggPlusServer({ roundId: 'job1:5:0', clientIds: ids, vectorLength: 16, graphSeed: 's' });
    const clients = new Map(ids.map((id) => [id, makeClient(identities.get(id)!, policyOf(server), server.roundId)]));
    let step = server.start();
    while (!step.done && step.stage !== 'unmask') {
      for (const [id, request] of step.requests) {
        if (step.stage === 'consistency-check' && id === ids[0]) continue; // sent its masked vector, never signs
        server.receive(await clients.get(id)!.handle(request, quantised.get(id)));
      }
      const next = await server.advance().catch((e) => e);
      if (!('done' in next)) {
        expect(next).toMatchObject({ code: 'ROUND_QUORUM_NOT_MET', details: { stage: 'unmask' } });
        expect(next.message).toMatch(/did not sign the survivor set/);
        break;
      }
      step = next;
    }
    expect(server.stage).toBe('aborted');
    for (const c of clients.values()) expect(c.revealedShares.size).toBe(0);
  });

  it('withdraw: a survivor that left before the consistency check is unmasked as a dropout; refused once a reply arrived', async () => {
    const { identities, ids, quantised } = makeInputs(7, 16, 6);
    const server = new SecAggPlusServer({ roundId: 'job1:6:0', clientIds: ids, vectorLength: 16, graphSeed: 's' });
    const clients = new Map(ids.map((id) => [id, makeClient(identities.get(id)!, policyOf(server), server.roundId)]));
    let step = server.start();
    for (let i = 0; i < 3 && !step.done; i++) {
      for (const [id, request] of step.requests)
        server.receive(await clients.get(id)!.handle(request, quantised.get(id)));
      step = await server.advance();
    }
    expect(server.survivors).toEqual(ids);
    step = server.withdraw([ids[0], 'not-a-member']);
    if (step.done) throw new Error('expected the consistency check');
    expect([...step.requests.keys()]).toEqual(ids.slice(1));
    expect(server.survivors).toEqual(ids.slice(1));
    expect(server.dropouts).toEqual([{ clientId: ids[0], stage: 'consistency-check', reason: 'left' }]);
    const first = ids[1];
    server.receive(await clients.get(first)!.handle(step.requests.get(first)!));
    expect(() => server.withdraw([ids[2]])).toThrow(expect.objectContaining({ code: 'SECAGG_STAGE_OUT_OF_ORDER' }));
    for (const [id, request] of step.requests) if (id !== first) server.receive(await clients.get(id)!.handle(request));
    step = await server.advance();
    if (step.done) throw new Error('expected unmask');
    for (const [id, request] of step.requests) server.receive(await clients.get(id)!.handle(request));
    step = await server.advance();
    if (!step.done) throw new Error('expected the sum');
    expect(step.result.contributors).toEqual(ids.slice(1));
    expect(Array.from(step.result.sum)).toEqual(
      Array.from(
        plainSum(
          ids.slice(1).map((id) => quantised.get(id)!),
          16,
        ),
      ),
    );
    // Its neighbours revealed its mask key, never its self mask: its input stays hidden.
    for (const id of ids.slice(1)) expect(clients.get(id)!.revealedShares.get(ids[0])).toBe('mask-key');
  });
});

describe('SecAgg+ privacy checks', () => {
  it('masked vectors differ from the inputs and look uniform (chi-square on the top byte)', async () => {
    const L = 2000;
    const identities = makeIdentities(5);
    const ids = [...identities.keys()];
    // Worst case for uniformity: constant inputs.
    const inputs = new Map(ids.map((id) => [id, new Uint32Array(L).fill(12345)]));
    const masked: Uint32Array[] = [];
    await runInMemoryRound(
      { roundId: 'job1:1:0', clientIds: ids, vectorLength: L },
      identities,
      inputs,
      new Map(),
      (stage, _id, reply) => {
        if (stage === 'collect-masked-vectors')
          masked.push(bytesToVector((reply as { maskedVector: Uint8Array }).maskedVector));
      },
    );
    expect(masked).toHaveLength(5);
    const chi = (vs: Uint32Array[]) => {
      const counts = new Array(256).fill(0);
      let total = 0;
      for (const v of vs) for (const x of v) counts[x >>> 24]++, total++;
      const e = total / 256;
      return counts.reduce((acc, c) => acc + (c - e) ** 2 / e, 0);
    };
    for (const v of masked) {
      let equal = 0;
      for (let i = 0; i < L; i++) if (v[i] === 12345) equal++;
      expect(equal).toBeLessThan(3);
    }
    // df = 255: mean 255, sd ~22.6; 420 is ~7 sd (false failure ~1e-9). Constant inputs score ~2.5e6.
    expect(chi(masked)).toBeLessThan(420);
    expect(chi([...inputs.values()])).toBeGreaterThan(1e5);
  });
});

describe('SecAgg+ stage machine', () => {
  const identities = makeIdentities(5);
  const ids = [...identities.keys()];
  const a = ids[0];
  const L = 8;
  const roundId = 'job1:1:0';
  const inputs = new Map(ids.map((id) => [id, new Uint32Array(L).fill(1)]));
  const options = { roundId, clientIds: ids, vectorLength: L, graphSeed: 'm' };

  /**
   * A real round in which every client answers the first `stages` stages: returns client a (then in
   * the state after those stages) and the server. With stages = 5 the round completes.
   */
  async function driveTo(stages: number) {
    const server = new SecAggPlusServer(options);
    const policy = policyOf(server);
    const clients = new Map(ids.map((id) => [id, makeClient(identities.get(id)!, policy, roundId)]));
    const requests = new Map<SecAggStage, ServerToClient>();
    let step = server.start();
    for (let s = 0; s < stages && !step.done; s++) {
      requests.set(step.stage, step.requests.get(a)!);
      for (const [id, req] of step.requests) server.receive(await clients.get(id)!.handle(req, inputs.get(id)));
      step = await server.advance();
    }
    return { client: clients.get(a)!, server, requests, step };
  }

  it('the transition tables list exactly the valid transitions; every other pair fails', () => {
    const client: Array<[ClientState, ClientState]> = [
      ['idle', 'setup'],
      ['setup', 'share-keys'],
      ['share-keys', 'collect-masked-vectors'],
      ['collect-masked-vectors', 'consistency-check'],
      ['consistency-check', 'unmask'],
      ...STAGE_ORDER.map((s): [ClientState, ClientState] => [s, 'aborted']),
    ];
    const server: Array<[ServerState, ServerState]> = [
      ['idle', 'setup'],
      ['setup', 'share-keys'],
      ['share-keys', 'collect-masked-vectors'],
      ['collect-masked-vectors', 'consistency-check'],
      ['consistency-check', 'unmask'],
      ['unmask', 'done'],
      ...STAGE_ORDER.map((s): [ServerState, ServerState] => [s, 'aborted']),
    ];
    const has = <T>(list: Array<[T, T]>, a: T, b: T) => list.some(([x, y]) => x === a && y === b);
    let valid = 0;
    for (const from of CLIENT_STATES)
      for (const to of CLIENT_STATES) {
        expect([from, to, isClientTransition(from, to)]).toEqual([from, to, has(client, from, to)]);
        if (has(client, from, to)) valid++;
      }
    expect(valid).toBe(client.length);
    for (const from of SERVER_STATES)
      for (const to of SERVER_STATES)
        expect([from, to, isServerTransition(from, to)]).toEqual([from, to, has(server, from, to)]);
  });

  it('the client accepts only the next stage: every other (state, stage) pair is refused and changes nothing', async () => {
    const { requests } = await driveTo(5);
    expect([...requests.keys()]).toEqual(STAGE_ORDER);
    const states: ClientState[] = ['idle', ...STAGE_ORDER];
    for (let s = 0; s < states.length; s++) {
      for (const incoming of STAGE_ORDER) {
        if (STAGE_ORDER.indexOf(incoming) === s) continue; // state s accepts STAGE_ORDER[s]
        const { client } = await driveTo(s);
        expect(client.stage).toBe(states[s]);
        const err = await client.handle(requests.get(incoming)!, inputs.get(a)).catch((e) => e);
        expect(err).toBeInstanceOf(TributaryError);
        expect(err.code).toBe('SECAGG_STAGE_OUT_OF_ORDER');
        expect(err.message).toContain(`got ${incoming} stage`);
        expect(client.stage).toBe(states[s]);
      }
    }
  });

  it('a client that refused a message is aborted: it answers nothing more, and its secrets are wiped', async () => {
    const { client, step } = await driveTo(1);
    expect(step.done).toBe(false);
    if (step.done) return;
    const shareKeys = step.requests.get(a) as Extract<ServerToClient, { stage: 'share-keys' }>;
    const tampered = {
      ...shareKeys,
      peers: shareKeys.peers.map((p, i) => (i === 0 ? { ...p, keySignature: 'ab'.repeat(64) } : p)),
    };
    await expect(client.handle(tampered)).rejects.toMatchObject({ code: 'SECAGG_SIGNATURE_INVALID' });
    expect(client.stage).toBe('aborted');
    expect((client as unknown as { encryptionKeys: { secretKey: Uint8Array } }).encryptionKeys.secretKey).toEqual(
      new Uint8Array(32),
    );
    for (const stage of STAGE_ORDER) {
      const err = await client.handle({ ...shareKeys, stage }).catch((e) => e);
      // Malformed for that stage or not, nothing is answered.
      expect(err).toBeInstanceOf(TributaryError);
    }
    const again = await client.handle(shareKeys).catch((e) => e);
    expect(again.code).toBe('SECAGG_STAGE_OUT_OF_ORDER');
    expect(again.message).toContain('(none: the client aborted)');
  });

  it('the server accepts replies only for its current stage and refuses advance() outside a stage', async () => {
    const server = new SecAggPlusServer(options);
    const policy = policyOf(server);
    const clients = new Map(ids.map((id) => [id, makeClient(identities.get(id)!, policy, roundId)]));
    const repliesByStage = new Map<string, unknown>();
    await expect(server.advance()).rejects.toMatchObject({ code: 'SECAGG_STAGE_OUT_OF_ORDER' });
    // Collect one real reply per stage first (from a separate run) to replay out of order.
    const other = new SecAggPlusServer(options);
    const otherClients = new Map(ids.map((id) => [id, makeClient(identities.get(id)!, policy, roundId)]));
    let s = other.start();
    while (!s.done) {
      for (const [id, req] of s.requests) {
        const reply = await otherClients.get(id)!.handle(req, inputs.get(id));
        if (id === a) repliesByStage.set(s.stage, reply);
        other.receive(reply);
      }
      s = await other.advance();
    }
    expect([...repliesByStage.keys()]).toEqual(STAGE_ORDER);
    let step = server.start();
    expect(() => server.start()).toThrow(/expected share-keys or aborted stage, got setup stage/);
    while (!step.done) {
      for (const [stage, reply] of repliesByStage) {
        if (stage === step.stage) continue;
        expect(() => server.receive(reply)).toThrow(`expected ${step.stage} stage, got ${stage} stage`);
      }
      for (const [id, req] of step.requests) server.receive(await clients.get(id)!.handle(req, inputs.get(id)));
      step = await server.advance();
    }
    expect(server.stage).toBe('done');
    await expect(server.advance()).rejects.toMatchObject({ code: 'SECAGG_STAGE_OUT_OF_ORDER' });
    for (const reply of repliesByStage.values()) expect(() => server.receive(reply)).toThrow(/expected done stage/);
  });

  it('the server refuses a setup reply whose key signature does not verify, and a survivor signature over another set', async () => {
    const server = new SecAggPlusServer(options);
    const policy = policyOf(server);
    const clients = new Map(ids.map((id) => [id, makeClient(identities.get(id)!, policy, roundId)]));
    const first = server.start();
    if (first.done) throw new Error('ended early');
    let step: SecAggStep = first;
    const setupReply = (await clients.get(a)!.handle(first.requests.get(a)!)) as { keySignature: string };
    expect(() => server.receive({ ...setupReply, keySignature: 'cd'.repeat(64) })).toThrow(
      expect.objectContaining({ code: 'SECAGG_SIGNATURE_INVALID' }),
    );
    server.receive(setupReply); // the refused reply kept nothing: the real one is still accepted
    for (const [id, req] of first.requests) if (id !== a) server.receive(await clients.get(id)!.handle(req));
    for (let s = 1; s < 3; s++) {
      step = await server.advance();
      if (step.done) throw new Error('ended early');
      for (const [id, req] of step.requests) server.receive(await clients.get(id)!.handle(req, inputs.get(id)));
    }
    step = await server.advance();
    if (step.done) throw new Error('ended early');
    expect(step.stage).toBe('consistency-check');
    expect(server.survivors).toEqual(ids);
    // A client shown another set signs that set; the server, which sent the real one, refuses its signature.
    const fresh = await driveTo(3);
    const wrongSet = { stage: 'consistency-check', roundId, survivorIds: ids.slice(0, 4) };
    const signed = await fresh.client.handle(wrongSet);
    expect(() => server.receive(signed)).toThrow(expect.objectContaining({ code: 'SECAGG_SIGNATURE_INVALID' }));
  });

  it('cancel() abandons a session before unmasking', async () => {
    const { server, step } = await driveTo(3);
    expect(!step.done && step.stage).toBe('consistency-check');
    server.cancel();
    expect(server.stage).toBe('aborted');
    await expect(server.advance()).rejects.toMatchObject({ code: 'SECAGG_STAGE_OUT_OF_ORDER' });
  });
});

describe('SecAgg+ server parameters', () => {
  const ids = [...makeIdentities(5).keys()];
  it.each([
    ['threshold 1', { threshold: 1 }, /threshold/],
    ['threshold 2 of 4', { threshold: 2, neighbourCount: 4 }, /more than half/],
    ['threshold 5', { threshold: 5 }, /threshold/],
    ['3 neighbours', { neighbourCount: 3 }, /even/],
    ['5 neighbours', { neighbourCount: 5 }, /neighbourCount/],
    ['vectorLength 0', { vectorLength: 0 }, /vectorLength/],
    ['clippingRange 0', { quantization: { clippingRange: 0, quantizationRange: 2 ** 22 } }, /clippingRange/],
    ['quantizationRange 3000', { quantization: { clippingRange: 8, quantizationRange: 3000 } }, /power of 2/],
    ['quantizationRange 2^31', { quantization: { clippingRange: 8, quantizationRange: 2 ** 31 } }, /wrap mod 2\^32/],
    ['2 clients', { clientIds: ids.slice(0, 2) }, /at least 3/],
    ['a repeated client', { clientIds: [ids[0], ids[0], ids[1], ids[2]] }, /distinct/],
    ['client ids that are not keys', { clientIds: ['a', 'b', 'c'] }, /Ed25519 public keys/],
    ['a round id of another form', { roundId: 'r1' }, /roundId must be/],
    ['minClients 9', { minClients: 9 }, /minClients/],
  ])('%s is refused', (_name, bad, pattern) => {
    expect(() => new SecAggPlusServer({ roundId: 'job1:1:0', clientIds: ids, vectorLength: 4, ...bad })).toThrow(
      pattern,
    );
    expect(MODULUS).toBe(2 ** 32);
  });
});
