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
 *    ≈100k-parameter MLP (the secureModes setup), one job per mode (`none`, `secagg`, `he` with one
 *    encryption worker per process (the client default), `he` with one per core, and `paillier` with
 *    HE_BENCH_PAILLIER=1), each `rounds` rounds; per mode the median round time (RoundRecord
 *    metrics.durationMs) over all rounds and over rounds 2+ (steady: round 1 also starts the workers),
 *    their ratios to `none`, and the bytes the coordinator received per client per round. The ten
 *    clients, the coordinator and the key holder share this process and the machine's cores, so the
 *    clients' encryption competes with everyone's work, unlike clients on machines of their own.
 *
 * About a minute here (2 cores). `npm run bench -- --only he` reruns just this section.
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import {
  generateHeKeyHolderKeys,
  HeKeyHolder,
  type HeKeyHolderKeys,
  heKeyHolderSpecFields,
} from '../client/heKeyHolder';
import { createBuyerClient, createJob } from '../client/buyer';
import { KeyHolder, generateKeyHolderKeys, keyHolderSpecFields, type KeyHolderKeys } from '../client/keyHolder';
import { TributaryClient } from '../client/tributaryClient';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import type { Dataset } from '../shared/data/dataset';
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
import { generateIdentity } from '../shared/identity/keyPair';
import {
  createPackedPaillierParams,
  decryptSum,
  encryptVector,
  FastEncryptor,
  generatePaillierKeys,
  sumEncrypted,
} from '../shared/paillier';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import { bestOf, bestOfAsync, median, round } from './harness';

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

type Mode = 'none' | 'secagg' | 'he' | 'paillier';

function dataset(count: number, features: number, classes: number, seed: number): Dataset {
  let s = seed >>> 0 || 1;
  const rand = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
  const x = new Float32Array(count * features);
  const y = new Int32Array(count);
  for (let i = 0; i < x.length; i++) x[i] = rand() * 2 - 1;
  for (let r = 0; r < count; r++) y[r] = Math.floor(rand() * classes);
  return { x, y, count, exampleShape: [features] };
}

function packetBytes(data: unknown): number {
  if (typeof data === 'string') return Buffer.byteLength(data);
  if (ArrayBuffer.isView(data)) return data.byteLength;
  if (data instanceof ArrayBuffer) return data.byteLength;
  return 0;
}

export interface HeRoundsOptions {
  clients?: number;
  rounds?: number;
  /** Jobs to run, in order; a mode may appear twice with other encryption threads. */
  modes?: Array<Mode | { mode: Mode; encryptionThreads: number }>;
  jobTimeoutMs?: number;
  /** How many times the list of jobs runs, in turn. @default 2 */
  repeats?: number;
  /** Worker threads each client encrypts with (he, paillier: TributaryClient's paillierThreads, whose default is 1). @default 1 */
  encryptionThreads?: number;
}

async function heRounds(options: HeRoundsOptions = {}) {
  const clients = options.clients ?? 10;
  const rounds = options.rounds ?? 5;
  const repeats = options.repeats ?? 2;
  const modes = options.modes ?? ['none', 'secagg', 'he'];
  const jobTimeoutMs = options.jobTimeoutMs ?? 120_000;
  const encryptionThreads = options.encryptionThreads ?? 1;
  const [features, hidden, classes, examples] = [1000, 100, 10, 32];
  const parameters = features * hidden + hidden + hidden * classes + classes;
  const datasets = Array.from({ length: clients }, (_, i) => dataset(examples, features, classes, 101 + i));
  const heKeys: HeKeyHolderKeys = await generateHeKeyHolderKeys();
  const paillierKeys: KeyHolderKeys | undefined = modes.includes('paillier')
    ? await generateKeyHolderKeys(2048)
    : undefined;
  const coordinator: Coordinator = await startCoordinator({
    port: 0,
    host: '127.0.0.1',
    logLevel: 'silent',
    backend: 'cpu',
  });
  let keyHolderPhase = false;
  let clientBytes = 0;
  coordinator.io.engine.on('connection', (raw: { on(e: string, f: (p: { data?: unknown }) => void): void }) => {
    const isKeyHolder = keyHolderPhase;
    raw.on('packet', (packet) => {
      if (!isKeyHolder) clientBytes += packetBytes(packet.data);
    });
  });
  const spec = (mode: Mode): JobSpecInput =>
    ({
      name: `bench-he-${mode}`,
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [hidden] },
      input: { shape: [features], numClasses: classes },
      rounds: mode === 'paillier' ? 1 : rounds,
      minClients: clients,
      maxClients: clients,
      batchSize: examples,
      learningRate: 0.05,
      roundDeadlineMs: jobTimeoutMs,
      quorumTimeoutMs: 30_000,
      maxRoundRetries: 0,
      seed: 7,
      secureAggregation: mode,
      ...(mode === 'secagg' ? { secagg: { stageTimeoutMs: 60_000, maxExampleWeight: examples } } : {}),
      ...(mode === 'he'
        ? { he: { ...heKeyHolderSpecFields(heKeys), maxExampleWeight: examples, decryptTimeoutMs: jobTimeoutMs } }
        : {}),
      ...(mode === 'paillier' && paillierKeys
        ? {
            paillier: {
              ...keyHolderSpecFields(paillierKeys),
              maxExampleWeight: examples,
              decryptTimeoutMs: jobTimeoutMs,
            },
          }
        : {}),
    }) as JobSpecInput;

  async function runMode(mode: Mode, threads: number) {
    // The buyer SDK signs the request with a fresh buyer key, which then owns the job.
    const buyer = createBuyerClient({ url: coordinator.url, identity: generateIdentity() });
    const jobId = (await createJob(buyer, { spec: spec(mode) })).id;
    clientBytes = 0;
    const started: Array<{ close(): void }> = [];
    const errors: string[] = [];
    let timer: NodeJS.Timeout | undefined;
    let outcome = 'completed';
    const decryptMs: number[] = [];
    try {
      if (mode === 'he' || mode === 'paillier') {
        keyHolderPhase = true;
        const holder =
          mode === 'he'
            ? new HeKeyHolder({ url: coordinator.url, jobId, keys: heKeys })
            : new KeyHolder({
                url: coordinator.url,
                jobId,
                keys: paillierKeys as KeyHolderKeys,
                threads: availableParallelism(),
              });
        started.push(holder);
        holder.on('decrypted', (e: { ms: number }) => decryptMs.push(e.ms));
        const joined = new Promise((resolve) => holder.once('joined', resolve));
        holder.run().catch((e: unknown) => errors.push(`key holder: ${String((e as Error)?.message ?? e)}`));
        await joined;
        keyHolderPhase = false;
      }
      for (const [i, data] of datasets.entries()) {
        const client = new TributaryClient({
          url: coordinator.url,
          jobId,
          identity: generateIdentity(),
          dataset: data,
          backend: 'cpu',
          allowPlaintext: mode === 'none', // the plaintext baseline
          paillierThreads: threads,
        });
        started.push(client);
        client.run().catch((e: unknown) => errors.push(`client ${i}: ${String((e as Error)?.message ?? e)}`));
      }
      outcome = await Promise.race([
        coordinator.jobs.waitForJob(jobId).then((job) => job.status as string),
        new Promise<string>((resolve) => (timer = setTimeout(() => resolve('timeout'), jobTimeoutMs))),
      ]);
    } finally {
      if (timer) clearTimeout(timer);
      keyHolderPhase = false;
      for (const c of started) c.close();
    }
    const records = (await coordinator.store.listRounds(jobId)).filter((r) => r.status === 'completed');
    return {
      outcome,
      roundMs: records.map((r) => r.metrics.durationMs),
      /** Rounds after the first (which also starts the encryption workers and warms the JIT). */
      steadyRoundMs: records.filter((r) => r.round > 1).map((r) => r.metrics.durationMs),
      decryptMs,
      clientBytes,
      rounds: records.length,
      errors,
    };
  }

  // The jobs run `repeats` times in turn (none, secagg, he, he, none, ...), so that a change in the
  // machine's load between jobs weighs on every mode alike; each mode's rounds are pooled.
  type Pooled = {
    mode: Mode;
    encryptionThreads: number;
    runs: Array<Awaited<ReturnType<typeof runMode>>>;
    errors: string[];
  };
  const pooled = new Map<string, Pooled>();
  try {
    for (let repeat = 0; repeat < repeats; repeat++) {
      for (const entry of modes) {
        const { mode, encryptionThreads: threads } =
          typeof entry === 'string' ? { mode: entry, encryptionThreads } : entry;
        const key = `${mode}/${threads}`;
        let p = pooled.get(key);
        if (!p) pooled.set(key, (p = { mode, encryptionThreads: threads, runs: [], errors: [] }));
        try {
          p.runs.push(await runMode(mode, threads));
        } catch (err) {
          p.errors.push(String((err as Error)?.message ?? err));
        }
      }
    }
  } finally {
    await coordinator.close();
  }
  const summaries = [...pooled.values()].map((p) => {
    const all = p.runs.flatMap((r) => r.roundMs);
    const steady = p.runs.flatMap((r) => r.steadyRoundMs);
    const rounds = p.runs.reduce((a, r) => a + r.rounds, 0);
    const decrypts = p.runs.flatMap((r) => r.decryptMs);
    return {
      mode: p.mode,
      encryptionThreads: p.encryptionThreads,
      jobs: p.runs.map((r) => r.outcome),
      roundMs: all.map((d) => round(d)),
      roundMsMedian: round(median(all)),
      steadyRoundMsMedian: round(median(steady)),
      keyHolderDecryptMsMedian: decrypts.length > 0 ? round(median(decrypts)) : undefined,
      bytesPerClientPerRound:
        rounds > 0 ? Math.round(p.runs.reduce((a, r) => a + r.clientBytes, 0) / (clients * rounds)) : null,
      errors: [...p.errors, ...p.runs.flatMap((r) => r.errors)].slice(0, 3),
    };
  });
  const plain = summaries.find((m) => m.mode === 'none');
  return {
    clients,
    parameters,
    model: `mlp ${features}-${hidden}-${classes}`,
    repeats,
    roundsPerJob: rounds,
    modes: summaries.map((m) => ({
      ...m,
      roundTimeVsPlaintext: plain ? round(m.roundMsMedian / plain.roundMsMedian) : null,
      steadyRoundTimeVsPlaintext: plain ? round(m.steadyRoundMsMedian / plain.steadyRoundMsMedian) : null,
      bytesVsPlaintext:
        plain?.bytesPerClientPerRound && m.bytesPerClientPerRound !== null
          ? round(m.bytesPerClientPerRound / plain.bytesPerClientPerRound)
          : null,
    })),
  };
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
  const modes: NonNullable<HeRoundsOptions['modes']> = [
    'none',
    'secagg',
    'he',
    { mode: 'he', encryptionThreads: availableParallelism() },
    ...(process.env.HE_BENCH_PAILLIER === '1' ? (['paillier'] as const) : []),
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
    rows.push([
      label,
      `${n(m.steadyRoundMsMedian)} ms`,
      `rounds 2+: ${n(m.steadyRoundTimeVsPlaintext)} x plaintext (all rounds ${n(m.roundTimeVsPlaintext)} x); ${n(m.bytesVsPlaintext)} x its bytes`,
    ]);
  }
  return rows;
}
