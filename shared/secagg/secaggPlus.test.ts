import { TributaryError } from '../errors';
import { SecAggPlusClient } from './clientProtocol';
import { bytesToVector, type ServerToClient } from './messages';
import { recommendedNeighbourCount, recommendedThreshold } from './neighbours';
import { dequantizeSum, quantize, sumErrorBound, DEFAULT_QUANTIZATION, MODULUS } from './quantize';
import { SecAggPlusServer } from './serverProtocol';
import { runInMemoryRound } from './testHarness';
import type { SecAggStage } from './stages';

function makeInputs(n: number, L: number, seed = 1) {
  let s = seed;
  const rand = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const ids = Array.from({ length: n }, (_, i) => `client-${String(i).padStart(3, '0')}`);
  const floats = new Map(ids.map((id) => [id, Float32Array.from({ length: L }, () => (rand() - 0.5) * 4)]));
  const quantised = new Map(ids.map((id) => [id, quantize(floats.get(id)!).values]));
  return { ids, floats, quantised };
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
    const { ids, floats, quantised } = makeInputs(n, L);
    const k = recommendedNeighbourCount(n);
    const { result, server } = await runInMemoryRound(
      { roundId: 'r1', clientIds: ids, vectorLength: L, graphSeed: 'g' },
      quantised,
    );
    expect(server.params.neighbourCount).toBe(k);
    expect(k).toBe(n === 5 ? 4 : 10);
    expect(result.contributors).toEqual(ids);
    expect(result.dropouts).toEqual([]);
    expect(Array.from(result.sum)).toEqual(Array.from(plainSum([...quantised.values()], L)));
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
  const stages: SecAggStage[] = ['setup', 'share-keys', 'collect-masked-vectors', 'unmask'];

  it.each(stages.flatMap((stage) => [1, 2, 3].map((d) => [stage, d] as const)))(
    'dropouts at %s: %i clients',
    async (stage, drop) => {
      const { ids, quantised } = makeInputs(n, L, 7);
      const k = recommendedNeighbourCount(n);
      const t = recommendedThreshold(k);
      expect([k, t]).toEqual([6, 4]);
      const dropAt = new Map(ids.slice(0, drop).map((id) => [id, stage]));
      const run = runInMemoryRound(
        { roundId: 'r2', clientIds: ids, vectorLength: L, graphSeed: 's' },
        quantised,
        dropAt,
      );
      // A client's secrets need t of its k neighbours: up to k - t = 2 may drop at any stage.
      const tolerated = drop <= k - t;
      if (!tolerated) {
        await expect(run).rejects.toMatchObject({ code: 'ROUND_QUORUM_NOT_MET' });
        return;
      }
      const { result } = await run;
      const inSum = stage === 'unmask' ? ids : ids.slice(drop);
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
    },
  );

  it('beyond the threshold: aborts with the typed error, as data on the error', async () => {
    const { ids, quantised } = makeInputs(n, L, 9);
    const dropAt = new Map(ids.slice(0, 4).map((id) => [id, 'collect-masked-vectors' as SecAggStage]));
    const err = await runInMemoryRound({ roundId: 'r3', clientIds: ids, vectorLength: L }, quantised, dropAt).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(TributaryError);
    expect(err.code).toBe('ROUND_QUORUM_NOT_MET');
    expect((err.details as { stage: string }).stage).toBe('unmask');
  });

  it('sparse graph (n = 30): several dropouts at every stage still give the exact sum', async () => {
    const { ids, quantised } = makeInputs(30, 32, 3);
    const dropAt = new Map<string, SecAggStage>([
      [ids[0], 'setup'],
      [ids[10], 'share-keys'],
      [ids[20], 'collect-masked-vectors'],
      [ids[25], 'unmask'],
    ]);
    const { result } = await runInMemoryRound(
      { roundId: 'r4', clientIds: ids, vectorLength: 32, graphSeed: 'x' },
      quantised,
      dropAt,
    );
    const inSum = ids.filter((id) => ![ids[0], ids[10], ids[20]].includes(id));
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

describe('SecAgg+ privacy checks', () => {
  it('masked vectors differ from the inputs and look uniform (chi-square on the top byte)', async () => {
    const L = 2000;
    const ids = ['a', 'b', 'c', 'd', 'e'];
    // Worst case for uniformity: constant inputs.
    const inputs = new Map(ids.map((id) => [id, new Uint32Array(L).fill(12345)]));
    const masked: Uint32Array[] = [];
    await runInMemoryRound(
      { roundId: 'p', clientIds: ids, vectorLength: L },
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
  const ids = ['a', 'b', 'c', 'd', 'e'];
  const L = 8;
  const inputs = new Map(ids.map((id) => [id, new Uint32Array(L).fill(1)]));

  /** Requests for each stage from a real run, and clients left in each state. */
  async function recordRun() {
    const requests = new Map<string, ServerToClient>();
    const server = new SecAggPlusServer({ roundId: 'm', clientIds: ids, vectorLength: L });
    const clients = new Map(ids.map((id) => [id, new SecAggPlusClient(id)]));
    let step = server.start();
    while (!step.done) {
      requests.set(step.stage, step.requests.get('a')!);
      for (const [id, req] of step.requests) server.receive(await clients.get(id)!.handle(req, inputs.get(id)));
      step = await server.advance();
    }
    return requests;
  }

  it('the client accepts only the next stage: every other (state, stage) pair is refused', async () => {
    const requests = await recordRun();
    const order = ['setup', 'share-keys', 'collect-masked-vectors', 'unmask'] as const;
    const states = ['idle', ...order] as const;
    for (let s = 0; s < states.length; s++) {
      for (const incoming of order) {
        const valid = order.indexOf(incoming) === s; // state s accepts order[s]
        if (valid) continue;
        // Drive a fresh client (with the server's real messages for 'a') to state s.
        const server = new SecAggPlusServer({ roundId: 'm', clientIds: ids, vectorLength: L });
        void server;
        const c = new SecAggPlusClient('a');
        const err = await (async () => {
          for (let i = 0; i < s; i++) await c.handle(requests.get(order[i])!, inputs.get('a')).catch(() => undefined);
          expect(c.stage).toBe(states[s]);
          return c.handle(requests.get(incoming)!, inputs.get('a')).then(
            () => null,
            (e) => e,
          );
        })();
        expect(err).toBeInstanceOf(TributaryError);
        expect(err.message).toContain(`got ${incoming} stage`);
        expect(err.code).toBe('SECAGG_STAGE_OUT_OF_ORDER');
      }
    }
  });

  it('the server accepts replies only for its current stage and refuses advance() outside a stage', async () => {
    const server = new SecAggPlusServer({ roundId: 'm', clientIds: ids, vectorLength: L });
    const clients = new Map(ids.map((id) => [id, new SecAggPlusClient(id)]));
    const repliesByStage = new Map<string, unknown>();
    await expect(server.advance()).rejects.toMatchObject({ code: 'SECAGG_STAGE_OUT_OF_ORDER' });
    // Collect one real reply per stage first (from a separate run) to replay out of order.
    const other = new SecAggPlusServer({ roundId: 'm', clientIds: ids, vectorLength: L });
    const otherClients = new Map(ids.map((id) => [id, new SecAggPlusClient(id)]));
    let s = other.start();
    while (!s.done) {
      for (const [id, req] of s.requests) {
        const reply = await otherClients.get(id)!.handle(req, inputs.get(id));
        if (id === 'a') repliesByStage.set(s.stage, reply);
        other.receive(reply);
      }
      s = await other.advance();
    }
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
});

describe('SecAgg+ server parameters', () => {
  const ids = ['a', 'b', 'c', 'd', 'e'];
  it.each([
    [{ threshold: 1 }, /threshold/],
    [{ threshold: 2, neighbourCount: 4 }, /more than half/],
    [{ threshold: 5 }, /threshold/],
    [{ neighbourCount: 3 }, /even/],
    [{ neighbourCount: 5 }, /neighbourCount/],
    [{ vectorLength: 0 }, /vectorLength/],
    [{ quantization: { clippingRange: 0, quantizationRange: 2 ** 22 } }, /clippingRange/],
    [{ quantization: { clippingRange: 8, quantizationRange: 3000 } }, /power of 2/],
    [{ quantization: { clippingRange: 8, quantizationRange: 2 ** 31 } }, /wrap mod 2\^32/],
    [{ clientIds: ['a', 'b'] }, /at least 3/],
    [{ clientIds: ['a', 'a', 'b', 'c'] }, /distinct/],
    [{ minClients: 9 }, /minClients/],
  ])('%o is refused', (bad, pattern) => {
    expect(() => new SecAggPlusServer({ roundId: 'r', clientIds: ids, vectorLength: 4, ...bad })).toThrow(pattern);
    expect(MODULUS).toBe(2 ** 32);
  });
});
