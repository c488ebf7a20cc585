/**
 * The aggregation modes end to end over real sockets on 127.0.0.1 (bench/modeRounds.ts): one
 * in-process coordinator (cpu backend), `clients` in-process TributaryClients with tiny datasets (so
 * local training is short) on a ≈100k-parameter MLP, and for `he` / `paillier` an in-process key
 * holder. The `none`, `secagg` and `he` jobs run interleaved (none, secagg, he, none, ... `repeats`
 * times, `rounds` rounds each), then one `paillier` job (its client encryption takes seconds); per
 * mode the round time (RoundRecord metrics.durationMs) and the process's CPU time per round (all
 * threads), medians over all rounds and over rounds 2+, their ratios to plaintext, the ratio of each
 * repeat (spread), and the bytes the coordinator's socket.io engine received per client per round
 * (every packet: string lengths and binary attachment lengths; the job's join/auth traffic is
 * included, amortised over its rounds; the key holder's traffic is counted apart). Then `none` and
 * `secagg` again at `scaleClients` clients (`atScale`, same shape).
 *
 * Caveat: the clients share this process (one event loop, `availableParallelism()` cores), so their
 * work in a round (training, SecAgg+ masking, HE/Paillier encryption) competes for the same cores
 * rather than running in parallel as on separate machines: a round's ratio here is close to its
 * ratio of total CPU work, which `steadyCpuVsPlaintext` reports without the machine's load.
 */
import { availableParallelism } from 'node:os';
import { defaultSecAggWorkerThreads, setSecAggWorkerThreads } from '../shared/secagg';
import { maskedInputBench } from './maskedInput.bench';
import { type ModeJob, RoundBench, type RoundMode } from './modeRounds';

export interface SecureModesOptions {
  clients?: number;
  inputFeatures?: number;
  hiddenUnits?: number;
  numClasses?: number;
  examplesPerClient?: number;
  /** Rounds of each interleaved job. @default 5 */
  rounds?: number;
  /** Times the interleaved list runs. @default 3 */
  repeats?: number;
  /** Rounds of the one `paillier` job (client encryption of 100k values takes seconds per client). */
  paillierRounds?: number;
  keyBits?: number;
  /** Wall-clock bound per job; a job still running then is abandoned (the coordinator closes at the end). */
  jobTimeoutMs?: number;
  /** The modes to run (`none` first: the others' ratios are to it; paillier runs once). @default none, secagg, he, paillier */
  modes?: readonly RoundMode[];
  /**
   * Then `none` and `secagg` again at this many clients (same model), reported as `atScale` in the
   * same shape; 0 skips it. @default 100
   */
  scaleClients?: number;
  /** Rounds and repeats of the `atScale` jobs. @default 3 rounds, 2 repeats */
  scaleRounds?: number;
  scaleRepeats?: number;
  /** Threads of the process-wide SecAgg+ mask pool (setSecAggWorkerThreads); 0: clients mask in the event loop. @default defaultSecAggWorkerThreads() */
  maskThreads?: number;
}

export async function secureModesBench(options: SecureModesOptions = {}) {
  const clients = options.clients ?? 10;
  const rounds = options.rounds ?? 5;
  const repeats = options.repeats ?? 3;
  const paillierRounds = options.paillierRounds ?? 2;
  const scaleClients = options.scaleClients ?? 100;
  const maskThreads = options.maskThreads ?? defaultSecAggWorkerThreads();
  setSecAggWorkerThreads(maskThreads);
  const bench = await RoundBench.start({
    inputFeatures: options.inputFeatures,
    hiddenUnits: options.hiddenUnits,
    numClasses: options.numClasses,
    examplesPerClient: options.examplesPerClient,
    jobTimeoutMs: options.jobTimeoutMs,
    keyBits: options.keyBits,
  });
  const { parameters } = bench;
  const list = options.modes ?? ['none', 'secagg', 'he', 'paillier'];
  const jobs: ModeJob[] = list.map((mode) =>
    mode === 'paillier' ? { mode, rounds: paillierRounds, repeats: 1 } : { mode },
  );

  let modes: Awaited<ReturnType<RoundBench['interleaved']>> = [];
  let atScale: { clients: number; rounds: number; repeats: number; modes: typeof modes } | undefined;
  let keygenSeconds: number | undefined;
  let maskedInput: Awaited<ReturnType<typeof maskedInputBench>> | undefined;
  try {
    // Before the jobs (the pool threads are its own): the post-training masking work of one client alone.
    maskedInput = await maskedInputBench(clients, parameters + 1);
    keygenSeconds = (await bench.prepare(list)).paillierKeygenSeconds;
    modes = await bench.interleaved(jobs, clients, rounds, repeats);
    if (scaleClients > 0) {
      const scaleRounds = options.scaleRounds ?? 3;
      const scaleRepeats = options.scaleRepeats ?? 2;
      atScale = {
        clients: scaleClients,
        rounds: scaleRounds,
        repeats: scaleRepeats,
        modes: await bench.interleaved([{ mode: 'none' }, { mode: 'secagg' }], scaleClients, scaleRounds, scaleRepeats),
      };
    }
  } finally {
    await bench.close();
  }

  return {
    clients,
    parameters,
    model: `mlp ${bench.features}-${bench.hidden}-${bench.classes}`,
    examplesPerClient: bench.examples,
    rounds,
    repeats,
    keyBits: bench.keyBits,
    keygenSeconds,
    keyHolderThreads: availableParallelism(),
    maskThreads,
    plaintextFloat32Bytes: parameters * 4,
    modes,
    atScale,
    maskedInput,
  };
}

if (require.main === module) {
  // e.g. MODES=none,secagg CLIENTS=10 ROUNDS=5 REPEATS=3 SCALE_CLIENTS=0 MASK_THREADS=0 node -r tsx/cjs bench/secureModes.bench.ts
  const keyBits = Number(process.env.KEY_BITS ?? 2048);
  const env = (name: string) => (process.env[name] ? Number(process.env[name]) : undefined);
  const modes = process.env.MODES?.split(',').filter(Boolean) as RoundMode[] | undefined;
  secureModesBench({
    keyBits,
    modes,
    clients: env('CLIENTS'),
    rounds: env('ROUNDS'),
    repeats: env('REPEATS'),
    scaleRounds: env('SCALE_ROUNDS'),
    scaleRepeats: env('SCALE_REPEATS'),
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
