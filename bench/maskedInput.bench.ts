/**
 * The part of a SecAgg+ client's work that is left after training, measured alone: the time of
 * SecAggPlusClient.handle(collect-masked-vectors) (open the share bundles, check the input, mask it)
 * for `clients` clients of one in-memory session, with every mask expanded in the event loop
 * (in-thread) and with the mask sum precomputed in a SecAggWorkerPool after share-keys (the pool has
 * finished before the clock starts, as it has when training takes longer than the masks). Medians
 * over the clients, best of `repeats` sessions; CPU-bound, so less at the mercy of a loaded machine
 * than whole rounds. Also one client's unmask stage (its neighbours' signatures, checked in the event
 * loop either way since a round trip to the worker measured slower there).
 */
import { quantize } from '../shared/secagg';
import type { SignedSeed } from '../shared/secagg/masks';
import { type MaskSumSource, SecAggWorkerPool } from '../shared/secagg/secaggWorkers';
import { SecAggPlusServer } from '../shared/secagg/serverProtocol';
import { makeClient, makeIdentities, policyOf } from '../shared/secagg/testHarness';
import { round } from './harness';

const median = (v: readonly number[]) => {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function session(
  clients: number,
  vectorLength: number,
  pool: SecAggWorkerPool | undefined,
): Promise<{ masking: number[]; unmask: number[] }> {
  const identities = makeIdentities(clients);
  const ids = [...identities.keys()];
  const server = new SecAggPlusServer({ roundId: `bench:1:0`, clientIds: ids, vectorLength, graphSeed: 'b' });
  const pending: Promise<Uint32Array>[] = [];
  const maskSums: MaskSumSource | undefined = pool && {
    maskSum: (masks: readonly SignedSeed[], length: number) => {
      const p = pool.maskSum(masks, length);
      pending.push(p);
      return p;
    },
  };
  const policy = policyOf(server);
  const cs = new Map(
    ids.map((id) => [
      id,
      makeClient(identities.get(id)!, policy, server.roundId, undefined, { maskSums, signatures: pool }),
    ]),
  );
  const inputs = new Map(
    ids.map((id, c) => [
      id,
      quantize(Float32Array.from({ length: vectorLength - 1 }, (_, i) => Math.sin(i + c))).values,
    ]),
  );
  const full = (id: string) => {
    const v = new Uint32Array(vectorLength);
    v.set(inputs.get(id)!);
    return v;
  };
  let step = server.start();
  const times = { masking: [] as number[], unmask: [] as number[] };
  while (!step.done) {
    const stage = step.stage;
    if (stage === 'collect-masked-vectors') await Promise.all(pending);
    for (const [id, request] of step.requests) {
      const t0 = performance.now();
      const reply = await cs.get(id)!.handle(request, stage === 'collect-masked-vectors' ? full(id) : undefined);
      if (stage === 'collect-masked-vectors') times.masking.push(performance.now() - t0);
      if (stage === 'unmask') times.unmask.push(performance.now() - t0);
      server.receive(reply);
    }
    step = await server.advance();
  }
  return times;
}

/**
 * Median ms of one client's collect-masked-vectors, masks expanded in the event loop vs precomputed
 * in the pool, and of its unmask stage (best of `repeats` sessions).
 */
export async function maskedInputBench(clients = 10, vectorLength = 101_111, repeats = 3) {
  const pool = new SecAggWorkerPool();
  try {
    const best = { inThread: Infinity, precomputed: Infinity, unmask: Infinity };
    for (let r = 0; r < repeats; r++) {
      const a = await session(clients, vectorLength, undefined);
      const b = await session(clients, vectorLength, pool);
      best.inThread = Math.min(best.inThread, median(a.masking));
      best.precomputed = Math.min(best.precomputed, median(b.masking));
      best.unmask = Math.min(best.unmask, median(a.unmask), median(b.unmask));
    }
    return {
      clients,
      vectorLength,
      inThreadMs: round(best.inThread),
      precomputedMs: round(best.precomputed),
      speedup: round(best.inThread / best.precomputed),
      unmaskMs: round(best.unmask),
    };
  } finally {
    await pool.close();
  }
}

if (require.main === module) {
  maskedInputBench().then(
    (r) => process.stdout.write(`${JSON.stringify(r, null, 2)}\n`),
    (err) => {
      process.stderr.write(`${String((err as Error)?.stack ?? err)}\n`);
      process.exitCode = 1;
    },
  );
}
