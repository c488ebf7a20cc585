/**
 * The three aggregation modes end to end over real sockets on 127.0.0.1: one in-process coordinator
 * (cpu backend), `clients` in-process TributaryClients with tiny datasets (so local training is
 * short) on a ≈100k-parameter MLP, and, for `paillier`, an in-process KeyHolder. Runs one job per
 * mode (`none`, then `secagg`, then `paillier`) and reports per mode the median round time
 * (RoundRecord metrics.durationMs), its ratio to the plaintext job of the same run, and the bytes the
 * coordinator's socket.io engine received per client per round (every packet: string lengths and
 * binary attachment lengths; the job's join/auth traffic is included, amortised over its rounds; the
 * key holder's traffic is counted apart).
 *
 * Caveat: the clients share this process (one event loop, `availableParallelism()` cores), so their
 * work in a round (training, SecAgg+ masking, Paillier encryption) runs one client after another
 * rather than in parallel as on separate machines; round times overstate a real deployment's, most
 * of all for paillier, whose client encryption dominates.
 */
import { availableParallelism } from 'node:os';
import { createBuyerClient, createJob } from '../client/buyer';
import { KeyHolder, generateKeyHolderKeys, keyHolderSpecFields, type KeyHolderKeys } from '../client/keyHolder';
import { TributaryClient } from '../client/tributaryClient';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import type { Dataset } from '../shared/data/dataset';
import { generateIdentity } from '../shared/identity/keyPair';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import { defaultSecAggWorkerThreads, setSecAggWorkerThreads } from '../shared/secagg';
import { round } from './harness';
import { maskedInputBench } from './maskedInput.bench';

type Mode = 'none' | 'secagg' | 'paillier';

export interface SecureModesOptions {
  clients?: number;
  inputFeatures?: number;
  hiddenUnits?: number;
  numClasses?: number;
  examplesPerClient?: number;
  /** Rounds of the `none` and `secagg` jobs. */
  rounds?: number;
  /** Rounds of the `paillier` job (client encryption of 100k values takes seconds per client). */
  paillierRounds?: number;
  keyBits?: number;
  /** Wall-clock bound per job; a job still running then is abandoned (the coordinator closes at the end). */
  jobTimeoutMs?: number;
  /** The modes to run, in this order (`none` first: the others' ratios are to it). @default all three */
  modes?: readonly Mode[];
  /**
   * Then `none` and `secagg` again at this many clients (same model, `rounds` rounds), reported as
   * `atScale` in the same shape; 0 skips it. @default 100
   */
  scaleClients?: number;
  /** Threads of the process-wide SecAgg+ mask pool (setSecAggWorkerThreads); 0: clients mask in the event loop. @default defaultSecAggWorkerThreads() */
  maskThreads?: number;
}

function dataset(count: number, features: number, classes: number, seed: number): Dataset {
  let s = seed >>> 0 || 1;
  const rand = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
  const x = new Float32Array(count * features);
  const y = new Int32Array(count);
  for (let i = 0; i < x.length; i++) x[i] = rand() * 2 - 1;
  for (let r = 0; r < count; r++) y[r] = Math.floor(rand() * classes);
  return { x, y, count, exampleShape: [features] };
}

const medianOf = (values: readonly number[]) => {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function packetBytes(data: unknown): number {
  if (typeof data === 'string') return Buffer.byteLength(data);
  if (Buffer.isBuffer(data)) return data.length;
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (ArrayBuffer.isView(data)) return data.byteLength;
  return 0;
}

export async function secureModesBench(options: SecureModesOptions = {}) {
  const clients = options.clients ?? 10;
  const features = options.inputFeatures ?? 1000;
  const hidden = options.hiddenUnits ?? 100;
  const classes = options.numClasses ?? 10;
  const examples = options.examplesPerClient ?? 32;
  const rounds = options.rounds ?? 3;
  const paillierRounds = options.paillierRounds ?? 2;
  const keyBits = options.keyBits ?? 2048;
  const jobTimeoutMs = options.jobTimeoutMs ?? 120_000;
  const scaleClients = options.scaleClients ?? 100;
  const maskThreads = options.maskThreads ?? defaultSecAggWorkerThreads();
  setSecAggWorkerThreads(maskThreads);
  const parameters = features * hidden + hidden + hidden * classes + classes;
  const keyHolderThreads = availableParallelism();
  const datasetsFor = (count: number) =>
    Array.from({ length: count }, (_, i) => dataset(examples, features, classes, 101 + i));

  const t0 = performance.now();
  const keys: KeyHolderKeys = await generateKeyHolderKeys(keyBits);
  const keygenSeconds = (performance.now() - t0) / 1000;

  const coordinator: Coordinator = await startCoordinator({
    port: 0,
    host: '127.0.0.1',
    logLevel: 'silent',
    backend: 'cpu',
  });
  // Every packet the coordinator's engine receives, per raw connection; `keyHolderPhase` tags the
  // connections opened while only the key holder is connecting.
  let keyHolderPhase = false;
  let clientBytes = 0;
  let keyHolderBytes = 0;
  let clientPackets = 0;
  coordinator.io.engine.on('connection', (raw: { on(e: string, f: (p: { data?: unknown }) => void): void }) => {
    const isKeyHolder = keyHolderPhase;
    raw.on('packet', (packet) => {
      const n = packetBytes(packet.data);
      if (isKeyHolder) keyHolderBytes += n;
      else {
        clientBytes += n;
        clientPackets++;
      }
    });
  });

  const spec = (mode: Mode, clients: number): JobSpecInput =>
    ({
      name: `bench-secure-modes-${mode}`,
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [hidden] },
      input: { shape: [features], numClasses: classes },
      rounds: mode === 'paillier' ? paillierRounds : rounds,
      minClients: clients,
      maxClients: clients,
      localEpochs: 1,
      batchSize: examples,
      learningRate: 0.05,
      roundDeadlineMs: jobTimeoutMs,
      quorumTimeoutMs: 30_000,
      maxRoundRetries: 0,
      seed: 7,
      secureAggregation: mode,
      ...(mode === 'secagg' ? { secagg: { stageTimeoutMs: 60_000, maxExampleWeight: examples } } : {}),
      ...(mode === 'paillier'
        ? { paillier: { ...keyHolderSpecFields(keys), maxExampleWeight: examples, decryptTimeoutMs: jobTimeoutMs } }
        : {}),
    }) as JobSpecInput;

  async function runMode(mode: Mode, clients: number) {
    // The buyer SDK signs the request with a fresh buyer key, which then owns the job.
    const buyer = createBuyerClient({ url: coordinator.url, identity: generateIdentity() });
    const jobId = (await createJob(buyer, { spec: spec(mode, clients) })).id;
    const datasets = datasetsFor(clients);
    clientBytes = 0;
    keyHolderBytes = 0;
    clientPackets = 0;
    const started: Array<TributaryClient | KeyHolder> = [];
    const errors: string[] = [];
    let stoppedEarly: string | undefined;
    let timer: NodeJS.Timeout | undefined;
    const start = performance.now();
    try {
      if (mode === 'paillier') {
        keyHolderPhase = true;
        const holder = new KeyHolder({ url: coordinator.url, jobId, keys, threads: keyHolderThreads });
        started.push(holder);
        const joined = new Promise((resolve) => holder.once('joined', resolve));
        holder.run().catch((e: unknown) => errors.push(`key holder: ${String((e as Error)?.message ?? e)}`));
        const ok = await Promise.race([
          joined.then(() => true),
          new Promise((r) => setTimeout(() => r(false), 15_000)),
        ]);
        keyHolderPhase = false;
        if (!ok) throw new Error('paillier: the key holder did not join within 15 s');
      }
      for (const [i, data] of datasets.entries()) {
        const client = new TributaryClient({
          url: coordinator.url,
          jobId,
          identity: generateIdentity(),
          dataset: data,
          backend: 'cpu',
          allowPlaintext: mode === 'none', // the plaintext baseline
        });
        started.push(client);
        client.run().catch((e: unknown) => errors.push(`client ${i}: ${String((e as Error)?.message ?? e)}`));
      }
      const outcome = await Promise.race([
        coordinator.jobs.waitForJob(jobId).then((job) => job.status as string),
        new Promise<string>((resolve) => (timer = setTimeout(() => resolve('timeout'), jobTimeoutMs))),
      ]);
      if (outcome !== 'completed')
        stoppedEarly = outcome === 'timeout' ? `still running after ${jobTimeoutMs / 1000} s` : `job ${outcome}`;
    } finally {
      if (timer) clearTimeout(timer);
      keyHolderPhase = false;
      for (const c of started) c.close();
    }
    const wallSeconds = (performance.now() - start) / 1000;
    const records = (await coordinator.store.listRounds(jobId)).filter(
      (r) => r.status === 'completed' && r.round >= 1 && Number.isFinite(r.metrics.durationMs),
    );
    const durations = records.map((r) => r.metrics.durationMs);
    const n = records.length;
    return {
      mode,
      roundsCompleted: n,
      roundMs: durations.map((d) => round(d)),
      roundMsMedian: round(medianOf(durations)),
      jobWallSeconds: round(wallSeconds),
      /** Everything the coordinator's engine received from the clients, divided by clients × completed rounds. */
      bytesPerClientPerRound: n > 0 ? Math.round(clientBytes / (clients * n)) : null,
      packetsPerClientPerRound: n > 0 ? round(clientPackets / (clients * n)) : null,
      keyHolderBytesPerRound: mode === 'paillier' && n > 0 ? Math.round(keyHolderBytes / n) : undefined,
      stoppedEarly,
      errors: errors.slice(0, 5),
    };
  }

  async function runModes(list: readonly Mode[], count: number) {
    const modes = [];
    for (const mode of list) {
      try {
        modes.push(await runMode(mode, count));
      } catch (err) {
        modes.push({ mode, error: String((err as Error)?.message ?? err) });
      }
    }
    const plain = modes.find((m) => m.mode === 'none');
    const plainMs = plain && 'roundMsMedian' in plain ? plain.roundMsMedian : NaN;
    const plainBytes = plain && 'bytesPerClientPerRound' in plain ? (plain.bytesPerClientPerRound ?? NaN) : NaN;
    return modes.map((m) =>
      'error' in m
        ? m
        : {
            ...m,
            roundTimeVsPlaintext: round(m.roundMsMedian / plainMs),
            bytesVsPlaintext: m.bytesPerClientPerRound === null ? null : round(m.bytesPerClientPerRound / plainBytes),
          },
    );
  }

  // Before the jobs (the pool threads are its own): the post-training masking work of one client alone.
  const maskedInput = await maskedInputBench(clients, parameters + 1);
  let modes: Awaited<ReturnType<typeof runModes>> = [];
  let atScale: { clients: number; modes: typeof modes } | undefined;
  try {
    modes = await runModes(options.modes ?? ['none', 'secagg', 'paillier'], clients);
    if (scaleClients > 0) atScale = { clients: scaleClients, modes: await runModes(['none', 'secagg'], scaleClients) };
  } finally {
    await coordinator.close();
  }

  return {
    clients,
    parameters,
    model: `mlp ${features}-${hidden}-${classes}`,
    examplesPerClient: examples,
    keyBits,
    keygenSeconds: round(keygenSeconds),
    keyHolderThreads,
    maskThreads,
    plaintextFloat32Bytes: parameters * 4,
    modes,
    atScale,
    maskedInput,
  };
}

if (require.main === module) {
  // e.g. MODES=none,secagg CLIENTS=10 ROUNDS=5 SCALE_CLIENTS=0 MASK_THREADS=0 node -r tsx/cjs bench/secureModes.bench.ts
  const keyBits = Number(process.env.KEY_BITS ?? 2048);
  const env = (name: string) => (process.env[name] ? Number(process.env[name]) : undefined);
  const modes = process.env.MODES?.split(',').filter(Boolean) as Mode[] | undefined;
  secureModesBench({
    keyBits,
    modes,
    clients: env('CLIENTS'),
    rounds: env('ROUNDS'),
    scaleClients: env('SCALE_CLIENTS'),
    maskThreads: env('MASK_THREADS'),
  }).then(
    (result) => process.stdout.write(`${JSON.stringify(result, null, 2)}\n`),
    (err) => {
      process.stderr.write(`${String((err as Error)?.stack ?? err)}\n`);
      process.exitCode = 1;
    },
  );
}
