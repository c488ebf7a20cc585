/**
 * The `he` aggregation mode (packed BGV/BFV through node-seal) in one run:
 *
 * 1. `primitives`: encrypt, add and decrypt throughput in values per second, one thread, for each HE
 *    parameter set and for packed Paillier (2048-bit, 16-bit values, 88 per ciphertext) on the same
 *    kind of vector. HE: one client's 100k-value update encrypted (best of 2), ten such updates added
 *    (the coordinator's CiphertextSum, checks included) and their sum decrypted by the key holder.
 *    Paillier is timed on samples (100 ciphertexts encrypted, 50 decrypted; its full figures are in
 *    the `paillier` section) and extrapolated per value; `heVsPaillier` gives HE / Paillier per step.
 * 2. `rounds`: jobs over real sockets on 127.0.0.1 with `clients` in-process TributaryClients on a
 *    ≈100k-parameter MLP (bench/modeRounds.ts, the secureModes setup): `none`, `secagg`, `he` with one
 *    encryption worker per process (the client default), `he` with one per core (and `paillier`, one
 *    job of one round, with HE_BENCH_PAILLIER=1), interleaved 3 times, 5 rounds each; per mode the
 *    median round time (RoundRecord metrics.durationMs) and CPU time per round (the process, all
 *    threads) over all rounds and over rounds 2+ (steady: round 1 also starts the workers), their
 *    ratios to `none`, each repeat's ratio (spread), and the bytes the coordinator received per
 *    client per round. The ten clients, the coordinator and the key holder share this process and the
 *    machine's cores, so the clients' encryption competes with everyone's work, unlike clients on
 *    machines of their own.
 *
 * About two minutes here (2 cores). `npm run bench -- --only he` reruns just this section.
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import {
  CiphertextSum,
  ciphertextLayout,
  generateHeKeys,
  HE_PARAMETER_SETS,
  HeDecryptor,
  HeEncryptor,
  type HeParameterSetName,
  heCiphertextCount,
} from '../shared/he';
import {
  createPackedPaillierParams,
  decryptSum,
  encryptVector,
  FastEncryptor,
  generatePaillierKeys,
  sumEncrypted,
} from '../shared/paillier';
import { bestOf, bestOfAsync, round } from './harness';
import { type ModeJob, RoundBench } from './modeRounds';

const seconds = (t0: number) => (performance.now() - t0) / 1000;

function update(length: number, seed: number): Float32Array {
  return Float32Array.from({ length }, (_, i) => Math.sin(i * 0.37 + seed) * 0.9);
}

async function hePrimitives(name: HeParameterSetName, parameters: number, clients: number) {
  const set = HE_PARAMETER_SETS[name];
  const params = { set, bits: 16, clipRange: 1 };
  const t0 = performance.now();
  const keys = await generateHeKeys(set);
  const keygenSeconds = seconds(t0);
  const encryptor = await HeEncryptor.create(set, keys.publicKey);
  const decryptor = await HeDecryptor.create(set, keys.secretKey);
  try {
    const values = update(parameters + 1, 1);
    let ciphertexts: Uint8Array = new Uint8Array(0);
    const encryptSeconds = bestOf(2, () => {
      ciphertexts = encryptor.encrypt(values, params).ciphertexts;
    });
    const count = heCiphertextCount(set, values.length);
    let sum = new CiphertextSum(ciphertextLayout(set), count);
    const addSeconds = bestOf(2, () => {
      sum = new CiphertextSum(ciphertextLayout(set), count);
      for (let c = 0; c < clients; c++) sum.add(ciphertexts);
    });
    const sumBytes = sum.toBytes();
    let noiseBudgetBits = 0;
    const decryptSeconds = bestOf(2, () => {
      noiseBudgetBits = decryptor.decryptSum(sumBytes, params, clients, values.length).noiseBudgetBits;
    });
    return {
      set: name,
      keygenSeconds: round(keygenSeconds),
      publicKeyBytes: keys.publicKey.length,
      values: values.length,
      ciphertexts: count,
      bytesPerValue: round(ciphertexts.length / values.length),
      encryptSeconds: round(encryptSeconds),
      encryptValuesPerSecond: round(values.length / encryptSeconds),
      /** Adding `clients` updates into the coordinator's sum, the layout and range checks included. */
      addSeconds: round(addSeconds),
      addValuesPerSecond: round((values.length * clients) / addSeconds),
      ciphertextAdditionsPerSecond: round((count * clients) / addSeconds),
      decryptSeconds: round(decryptSeconds),
      decryptValuesPerSecond: round(values.length / decryptSeconds),
      noiseBudgetBitsAfterSum: noiseBudgetBits,
    };
  } finally {
    encryptor.delete();
    decryptor.delete();
  }
}

async function paillierPrimitives(keyBits: number) {
  const { publicKey, privateKey } = await generatePaillierKeys(keyBits);
  const params = createPackedPaillierParams({ keyBits, bits: 16, clipRange: 1, maxClients: 100 });
  const perCiphertext = params.slotsPerCiphertext;
  const sample = update(100 * perCiphertext, 2);
  const encryptor = new FastEncryptor(publicKey);
  let encrypted: bigint[] = [];
  const encryptSeconds = await bestOfAsync(2, async () => {
    encrypted = (await encryptVector(publicKey, sample, params, { encryptor })).ciphertexts;
  });
  const other = (await encryptVector(publicKey, update(sample.length, 3), params, { encryptor })).ciphertexts;
  const addSeconds = bestOf(3, () => void sumEncrypted(publicKey, [encrypted, other]));
  const decryptCount = 50;
  const toDecrypt = encrypted.slice(0, decryptCount);
  const decryptSeconds = await bestOfAsync(2, async () => {
    await decryptSum(privateKey, toDecrypt, params, 1, decryptCount * perCiphertext);
  });
  return {
    keyBits,
    valuesPerCiphertext: perCiphertext,
    bytesPerValue: round(Math.ceil((2 * keyBits) / 8) / perCiphertext),
    encryptValuesPerSecond: round(sample.length / encryptSeconds),
    addValuesPerSecond: round(sample.length / addSeconds),
    ciphertextAdditionsPerSecond: round(encrypted.length / addSeconds),
    decryptValuesPerSecond: round((decryptCount * perCiphertext) / decryptSeconds),
    sample: { encrypted: encrypted.length, decrypted: decryptCount },
  };
}

export interface HeRoundsOptions {
  clients?: number;
  rounds?: number;
  /** Jobs to run, in order; a mode may appear twice with other encryption threads. */
  modes?: ModeJob[];
  jobTimeoutMs?: number;
  /** How many times the list of jobs runs, in turn. @default 3 */
  repeats?: number;
}

/** The jobs of `modes` interleaved `repeats` times (bench/modeRounds.ts), 10 clients, `rounds` rounds each. */
async function heRounds(options: HeRoundsOptions = {}) {
  const clients = options.clients ?? 10;
  const rounds = options.rounds ?? 5;
  const repeats = options.repeats ?? 3;
  const jobs = options.modes ?? [{ mode: 'none' }, { mode: 'secagg' }, { mode: 'he' }];
  const bench = await RoundBench.start({ jobTimeoutMs: options.jobTimeoutMs });
  try {
    const modes = await bench.interleaved(jobs, clients, rounds, repeats);
    return {
      clients,
      parameters: bench.parameters,
      model: `mlp ${bench.features}-${bench.hidden}-${bench.classes}`,
      repeats,
      roundsPerJob: rounds,
      modes,
    };
  } finally {
    await bench.close();
  }
}

export async function heBench(parameters = 100_000, clients = 10) {
  // Two passes over the sets, alternating, keeping each set's faster pass: a loaded machine then
  // penalises neither set for running first.
  const best = new Map<HeParameterSetName, Awaited<ReturnType<typeof hePrimitives>>>();
  for (let pass = 0; pass < 2; pass++) {
    for (const name of Object.keys(HE_PARAMETER_SETS) as HeParameterSetName[]) {
      const r = await hePrimitives(name, parameters, clients);
      const previous = best.get(name);
      best.set(
        name,
        previous && previous.encryptSeconds + previous.decryptSeconds < r.encryptSeconds + r.decryptSeconds
          ? previous
          : r,
      );
    }
  }
  const he = [...best.values()];

  const paillier = await paillierPrimitives(2048);
  const heVsPaillier = Object.fromEntries(
    he.map((h) => [
      h.set,
      {
        encrypt: round(h.encryptValuesPerSecond / paillier.encryptValuesPerSecond),
        add: round(h.addValuesPerSecond / paillier.addValuesPerSecond),
        decrypt: round(h.decryptValuesPerSecond / paillier.decryptValuesPerSecond),
        bytesPerValue: round(h.bytesPerValue / paillier.bytesPerValue),
      },
    ]),
  );
  const modes: ModeJob[] = [
    { mode: 'none' },
    { mode: 'secagg' },
    { mode: 'he' },
    { mode: 'he', encryptionThreads: availableParallelism() },
    ...(process.env.HE_BENCH_PAILLIER === '1' ? [{ mode: 'paillier' as const, rounds: 1, repeats: 1 }] : []),
  ];
  const rounds = await heRounds({ clients, modes });
  return { primitives: { parameters, clients, he, paillier, heVsPaillier }, rounds };
}

if (require.main === module) {
  // `node -r tsx/cjs bench/he.bench.ts` writes bench/he-results.json (with the machine's load) and prints it.
  const startedAt = new Date().toISOString();
  const loadAverage1mAtStart = round(loadavg()[0]);
  heBench().then(
    (result) => {
      const out = {
        machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, node: process.version, loadAverage1mAtStart },
        startedAt,
        ...result,
      };
      writeFileSync(join(__dirname, 'he-results.json'), `${JSON.stringify(out, null, 2)}\n`);
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    },
    (err) => {
      process.stderr.write(`${String((err as Error)?.stack ?? err)}\n`);
      process.exitCode = 1;
    },
  );
}

type HeBenchResult = Awaited<ReturnType<typeof heBench>>;

/** The table rows `npm run bench` prints for this section. */
export function heBenchRows(r: HeBenchResult): Array<[string, string, string?]> {
  const n = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : x.toLocaleString('en-US'));
  const { primitives: p, rounds } = r;
  const rows: Array<[string, string, string?]> = [];
  for (const h of p.he) {
    const ratio = p.heVsPaillier[h.set];
    rows.push(
      [
        `${h.set} encrypt`,
        `${n(h.encryptValuesPerSecond)} values/s`,
        `${n(ratio.encrypt)} x Paillier; ${h.ciphertexts} ciphertexts per update`,
      ],
      [`${h.set} add (coordinator)`, `${n(h.addValuesPerSecond)} values/s`, `${n(ratio.add)} x Paillier`],
      [
        `${h.set} decrypt (key holder)`,
        `${n(h.decryptValuesPerSecond)} values/s`,
        `${n(ratio.decrypt)} x Paillier; ${h.noiseBudgetBitsAfterSum} bits of noise budget left after ${p.clients}`,
      ],
      [`${h.set} bytes per value`, n(h.bytesPerValue), `Paillier ${n(p.paillier.bytesPerValue)}, plaintext 4`],
    );
  }
  for (const m of rounds.modes) {
    if (m.jobs.length === 0) {
      rows.push([`round ${m.mode}`, 'error', m.errors[0] ?? 'no job ran']);
      continue;
    }
    const label = `round ${m.mode}${m.mode === 'he' || m.mode === 'paillier' ? ` (${m.encryptionThreads} encryption threads)` : ''}`;
    const spread = m.ratioSpread ? `; per repeat ${n(m.ratioSpread.wallMin)}-${n(m.ratioSpread.wallMax)} x` : '';
    rows.push(
      [
        label,
        `${n(m.steadyRoundMsMedian)} ms`,
        `rounds 2+: ${n(m.steadyRoundTimeVsPlaintext)} x plaintext${spread} (all rounds ${n(m.roundTimeVsPlaintext)} x); ${n(m.bytesVsPlaintext)} x its bytes`,
      ],
      [
        `${label}: cpu`,
        `${n(m.steadyCpuMsMedian)} ms`,
        `rounds 2+: ${n(m.steadyCpuVsPlaintext)} x plaintext's CPU per round (all threads)`,
      ],
    );
  }
  return rows;
}
