/**
 * How many encryption threads a lone `he` provider should use (the client's default): one client on
 * its own machine trains (busy on its event loop for `trainMs`), then encrypts one ≈100k-value update
 * (bgv-4096, 25 ciphertexts) in an HeEncryptionPool of 1 or 2 threads, round after round; the pool
 * refills its encryptions of zero during the next training, competing with it for the cores. Per
 * variant: the median wall time of training + encryption per round (rounds 2+) and of the encryption
 * alone, the variants interleaved `repeats` times with a fresh pool each.
 *
 * e.g. TRAIN_MS=500 ROUNDS=6 REPEATS=3 node -r tsx/cjs bench/heEncryptionThreads.bench.ts (about a minute)
 */
import { availableParallelism, loadavg } from 'node:os';
import { generateHeKeys, HE_PARAMETER_SETS, HeEncryptionPool } from '../shared/he';

/** The event loop busy for `ms` (a stand-in for training: the main thread's CPU work). */
function busy(ms: number): number {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) for (let i = 0; i < 10_000; i++) x += Math.sqrt(i);
  return x;
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
          busy(trainMs);
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
