/**
 * How many encryption threads a lone `he` provider should use (the client's default): one client on
 * its own machine trains (a fixed amount of CPU work on its event loop, ≈`trainMs` when idle), then encrypts one ≈100k-value update
 * (bgv-4096, 25 ciphertexts) in an HeEncryptionPool of 1 or 2 threads, round after round; the pool
 * refills its encryptions of zero during the next training, competing with it for the cores. Per
 * variant: the median wall time of training + encryption per round (rounds 2+; training slowed by the
 * refills shows here) and of the encryption alone, the variants interleaved `repeats` times with a
 * fresh pool each. TRAIN_MS=0: no time to refill, every ciphertext a full encryption.
 *
 * e.g. TRAIN_MS=500 ROUNDS=6 REPEATS=3 node -r tsx/cjs bench/heEncryptionThreads.bench.ts (about a minute)
 */
import { availableParallelism, loadavg } from 'node:os';
import { generateHeKeys, HE_PARAMETER_SETS, HeEncryptionPool } from '../shared/he';

/** Fixed CPU work on the event loop (a stand-in for training): `units` blocks of arithmetic. */
function train(units: number): number {
  let x = 0;
  for (let u = 0; u < units; u++) for (let i = 0; i < 10_000; i++) x += Math.sqrt(i + u);
  return x;
}

/** How many units of `train` take about `ms` here, measured once before the variants (best of 3). */
function unitsFor(ms: number): number {
  if (ms <= 0) return 0;
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < 3; r++) {
    const started = performance.now();
    train(200);
    best = Math.min(best, performance.now() - started);
  }
  return Math.max(1, Math.round((200 * ms) / best));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function heEncryptionThreadsBench(options: { trainMs?: number; rounds?: number; repeats?: number } = {}) {
  const trainMs = options.trainMs ?? 500;
  const rounds = options.rounds ?? 6;
  const repeats = options.repeats ?? 3;
  const set = HE_PARAMETER_SETS['bgv-4096'];
  const params = { set, bits: 16, clipRange: 1 };
  const { publicKey } = await generateHeKeys(set);
  const values = Float32Array.from({ length: 101_771 }, (_, i) => Math.sin(i) * 0.5);
  const variants = [1, 2];
  const units = unitsFor(trainMs);
  const results = new Map<number, { roundMs: number[]; encryptMs: number[]; precomputed: number[] }>(
    variants.map((t) => [t, { roundMs: [], encryptMs: [], precomputed: [] }]),
  );
  for (let r = 0; r < repeats; r++) {
    for (const threads of variants) {
      const pool = new HeEncryptionPool(set, publicKey, threads);
      const out = results.get(threads)!;
      try {
        for (let round = 0; round < rounds; round++) {
          const started = performance.now();
          train(units);
          const encryptStarted = performance.now();
          const { precomputed } = await pool.encrypt(values, params);
          const done = performance.now();
          if (round === 0) continue; // workers starting, no zeros in stock yet
          out.roundMs.push(Math.round(done - started));
          out.encryptMs.push(Math.round(done - encryptStarted));
          out.precomputed.push(precomputed);
        }
      } finally {
        await pool.close();
      }
    }
  }
  return {
    cores: availableParallelism(),
    loadAverage1mAtStart: loadavg()[0],
    trainMs,
    rounds,
    repeats,
    variants: variants.map((threads) => {
      const r = results.get(threads)!;
      return {
        threads,
        roundMsMedian: median(r.roundMs),
        encryptMsMedian: median(r.encryptMs),
        precomputedMedian: median(r.precomputed),
        roundMs: r.roundMs,
      };
    }),
  };
}

if (require.main === module) {
  const env = (name: string) => (process.env[name] ? Number(process.env[name]) : undefined);
  heEncryptionThreadsBench({ trainMs: env('TRAIN_MS'), rounds: env('ROUNDS'), repeats: env('REPEATS') }).then(
    (result) => process.stdout.write(`${JSON.stringify(result, null, 2)}\n`),
    (err) => {
      process.stderr.write(`${String((err as Error)?.stack ?? err)}\n`);
      process.exitCode = 1;
    },
  );
}
