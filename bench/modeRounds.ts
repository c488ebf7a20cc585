/**
 * Round benchmarks of the aggregation modes, robust to a noisy shared machine: one in-process
 * coordinator (cpu backend) on 127.0.0.1, jobs of `clients` in-process TributaryClients on the
 * ≈100k-parameter MLP with tiny datasets, and the modes' jobs interleaved (none, secagg, he, none,
 * secagg, he, ... `repeats` times) so a change in the machine's load weighs on every mode alike.
 *
 * Per round: the wall time (RoundRecord metrics.durationMs) and the process's CPU time between the
 * commits of the previous round (or the job's start) and this one (`process.cpuUsage()`: every
 * thread of the process, the clients' worker threads and the key holder's included). The clients,
 * the coordinator and the key holder share this process, so a round's CPU time is the whole round's
 * work, which waiting for a core (another engineer's job) does not inflate; and the main thread's own
 * CPU time (Linux /proc, 10 ms ticks), the event loop they all share, which sets the wall time when
 * a core is free for the worker threads (work moved to workers leaves it). Summaries: medians over
 * rounds 2+ of every job (round 1 also starts workers and warms the JIT), their ratios to `none`,
 * and the same ratio per repeat (each repeat's own `none` job), whose spread says how far one
 * ratio can be trusted.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createBuyerClient, createJob } from '../client/buyer';
import {
  generateHeKeyHolderKeys,
  HeKeyHolder,
  type HeKeyHolderKeys,
  heKeyHolderSpecFields,
} from '../client/heKeyHolder';
import { KeyHolder, generateKeyHolderKeys, keyHolderSpecFields, type KeyHolderKeys } from '../client/keyHolder';
import { TributaryClient } from '../client/tributaryClient';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import type { Dataset } from '../shared/data/dataset';
import { generateIdentity } from '../shared/identity/keyPair';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import { median, round } from './harness';

export type RoundMode = 'none' | 'secagg' | 'he' | 'paillier';

/** One job kind of the interleaved list: a mode, and for he/paillier the clients' encryption threads. */
export interface ModeJob {
  mode: RoundMode;
  /** TributaryClient's paillierThreads (he and paillier encryption workers per client). @default 1 */
  encryptionThreads?: number;
  /** Rounds of this job kind. @default the bench's `rounds` */
  rounds?: number;
  /** Runs in the first this-many repeats only (a slow mode, e.g. paillier: 1). @default every repeat */
  repeats?: number;
}

export interface RoundBenchOptions {
  inputFeatures?: number;
  hiddenUnits?: number;
  numClasses?: number;
  examplesPerClient?: number;
  /** Wall-clock bound per job; a job still running then is abandoned and reported `timeout`. */
  jobTimeoutMs?: number;
  /** Paillier key size when a paillier job runs. @default 2048 */
  keyBits?: number;
}

/** One round of one job. */
export interface RoundSample {
  round: number;
  /** RoundRecord metrics.durationMs. */
  ms: number;
  /** Process CPU time (user + system, all threads) from the previous commit (or the job's start) to this round's commit. */
  cpuMs: number;
  /** The same for the main thread alone (the event loop every client and the coordinator share); NaN off Linux. */
  mainCpuMs: number;
}

/** One job's outcome. */
export interface JobRun {
  mode: RoundMode;
  encryptionThreads: number;
  clients: number;
  /** `completed`, `failed`, `timeout`, ... */
  outcome: string;
  rounds: RoundSample[];
  wallSeconds: number;
  clientBytes: number;
  clientPackets: number;
  keyHolderBytes: number;
  decryptMs: number[];
  errors: string[];
  /** When the job did not complete: the last SecAgg+/mode step each client reported, counted by step. */
  lastSteps?: Record<string, number>;
  /** When the job did not complete: the clients' last warnings (at most 5). */
  warnings?: string[];
  /** Warnings the clients emitted (retried downloads, clipped values, ...), and the first three. */
  warningCount: number;
  firstWarnings: string[];
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

function packetBytes(data: unknown): number {
  if (typeof data === 'string') return Buffer.byteLength(data);
  if (ArrayBuffer.isView(data)) return data.byteLength;
  if (data instanceof ArrayBuffer) return data.byteLength;
  return 0;
}

/** CPU ms so far of the whole process (every thread) and of its main thread (Linux /proc, 10 ms ticks; NaN elsewhere). */
const cpuMsNow = (): { all: number; main: number } => {
  const u = process.cpuUsage();
  return { all: (u.user + u.system) / 1000, main: mainThreadCpuMs() };
};

/** utime + stime of the main thread (its task id is the pid) from /proc, in ms (USER_HZ is 100 on Linux). */
function mainThreadCpuMs(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat(5); the slice starts at field 3.
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

/** A coordinator that runs bench jobs of any mode and measures their rounds (wall, CPU, bytes). */
export class RoundBench {
  readonly features: number;
  readonly hidden: number;
  readonly classes: number;
  readonly examples: number;
  readonly parameters: number;
  readonly jobTimeoutMs: number;
  readonly keyBits: number;
  private heKeys?: HeKeyHolderKeys;
  private paillierKeys?: KeyHolderKeys;
  private keyHolderPhase = false;
  private clientBytes = 0;
  private clientPackets = 0;
  private keyHolderBytes = 0;
  /** CPU time at the last commit (or start) of each running job. */
  private readonly cpuMark = new Map<string, { all: number; main: number }>();
  private readonly cpuByRound = new Map<string, Map<number, { all: number; main: number }>>();

  private constructor(
    readonly coordinator: Coordinator,
    options: RoundBenchOptions,
  ) {
    this.features = options.inputFeatures ?? 1000;
    this.hidden = options.hiddenUnits ?? 100;
    this.classes = options.numClasses ?? 10;
    this.examples = options.examplesPerClient ?? 32;
    this.jobTimeoutMs = options.jobTimeoutMs ?? 120_000;
    this.keyBits = options.keyBits ?? 2048;
    this.parameters = this.features * this.hidden + this.hidden + this.hidden * this.classes + this.classes;
    // Every packet the coordinator's engine receives, per raw connection; `keyHolderPhase` tags the
    // connections opened while only the key holder is connecting.
    coordinator.io.engine.on('connection', (raw: { on(e: string, f: (p: { data?: unknown }) => void): void }) => {
      const isKeyHolder = this.keyHolderPhase;
      raw.on('packet', (packet) => {
        const n = packetBytes(packet.data);
        if (isKeyHolder) this.keyHolderBytes += n;
        else {
          this.clientBytes += n;
          this.clientPackets++;
        }
      });
    });
    coordinator.jobs.observe({
      roundCommitted: ({ job, round }) => {
        const mark = this.cpuMark.get(job.id);
        if (mark === undefined) return;
        const now = cpuMsNow();
        this.cpuMark.set(job.id, now);
        let rounds = this.cpuByRound.get(job.id);
        if (!rounds) this.cpuByRound.set(job.id, (rounds = new Map()));
        rounds.set(round.round, { all: now.all - mark.all, main: now.main - mark.main });
      },
    });
  }

  static async start(options: RoundBenchOptions = {}): Promise<RoundBench> {
    const coordinator = await startCoordinator({
      port: 0,
      host: '127.0.0.1',
      logLevel: 'silent',
      backend: 'cpu',
      // Every in-process client comes from 127.0.0.1: 100 of them download ~1,700 models a minute,
      // past the per-IP default of 1,200 (each client's own identity limit still applies).
      rateLimitPerIp: 1_000_000,
    });
    return new RoundBench(coordinator, options);
  }

  async close(): Promise<void> {
    await this.coordinator.close();
  }

  /** Keys made once per bench (keygen is not part of any round). */
  async prepare(modes: readonly RoundMode[]): Promise<{ paillierKeygenSeconds?: number }> {
    if (modes.includes('he') && !this.heKeys) this.heKeys = await generateHeKeyHolderKeys();
    if (modes.includes('paillier') && !this.paillierKeys) {
      const t0 = performance.now();
      this.paillierKeys = await generateKeyHolderKeys(this.keyBits);
      return { paillierKeygenSeconds: round((performance.now() - t0) / 1000) };
    }
    return {};
  }

  private spec(job: ModeJob, clients: number, rounds: number): JobSpecInput {
    const { mode } = job;
    const { jobTimeoutMs, examples } = this;
    return {
      name: `bench-rounds-${mode}`,
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [this.hidden] },
      input: { shape: [this.features], numClasses: this.classes },
      rounds,
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
      ...(mode === 'he' && this.heKeys
        ? {
            he: { ...heKeyHolderSpecFields(this.heKeys), maxExampleWeight: examples, decryptTimeoutMs: jobTimeoutMs },
          }
        : {}),
      ...(mode === 'paillier' && this.paillierKeys
        ? {
            paillier: {
              ...keyHolderSpecFields(this.paillierKeys),
              maxExampleWeight: examples,
              decryptTimeoutMs: jobTimeoutMs,
            },
          }
        : {}),
    } as JobSpecInput;
  }

  /** Runs one job of `job.mode` with `clients` clients for `rounds` rounds and measures it. */
  async runJob(job: ModeJob, clients: number, rounds: number): Promise<JobRun> {
    const { mode } = job;
    const threads = job.encryptionThreads ?? 1;
    await this.prepare([mode]);
    // The buyer SDK signs the request with a fresh buyer key, which then owns the job.
    const buyer = createBuyerClient({ url: this.coordinator.url, identity: generateIdentity() });
    const jobId = (await createJob(buyer, { spec: this.spec(job, clients, rounds) })).id;
    const datasets = Array.from({ length: clients }, (_, i) =>
      dataset(this.examples, this.features, this.classes, 101 + i),
    );
    this.clientBytes = 0;
    this.clientPackets = 0;
    this.keyHolderBytes = 0;
    const started: Array<{ close(): void }> = [];
    const errors: string[] = [];
    const decryptMs: number[] = [];
    const lastStep = new Map<number, string>();
    const warnings: string[] = [];
    let timer: NodeJS.Timeout | undefined;
    let outcome = 'completed';
    const start = performance.now();
    try {
      if (mode === 'he' || mode === 'paillier') {
        this.keyHolderPhase = true;
        const holder =
          mode === 'he'
            ? new HeKeyHolder({ url: this.coordinator.url, jobId, keys: this.heKeys as HeKeyHolderKeys })
            : new KeyHolder({
                url: this.coordinator.url,
                jobId,
                keys: this.paillierKeys as KeyHolderKeys,
                threads: availableParallelism(),
              });
        started.push(holder);
        holder.on('decrypted', (e: { ms: number }) => decryptMs.push(e.ms));
        const joined = new Promise((resolve) => holder.once('joined', resolve));
        holder.run().catch((e: unknown) => errors.push(`key holder: ${String((e as Error)?.message ?? e)}`));
        const ok = await Promise.race([
          joined.then(() => true),
          new Promise((r) => setTimeout(() => r(false), 15_000)),
        ]);
        this.keyHolderPhase = false;
        if (!ok) throw new Error(`${mode}: the key holder did not join within 15 s`);
      }
      this.cpuMark.set(jobId, cpuMsNow());
      for (const [i, data] of datasets.entries()) {
        const client = new TributaryClient({
          url: this.coordinator.url,
          jobId,
          identity: generateIdentity(),
          dataset: data,
          backend: 'cpu',
          allowPlaintext: mode === 'none', // the plaintext baseline
          paillierThreads: threads,
          heThreads: threads,
        });
        started.push(client);
        client.on('modeStep', (s: { round: number; attempt: number; stage: string }) =>
          lastStep.set(i, `round ${s.round}.${s.attempt} ${s.stage}`),
        );
        client.on('warning', (m: string) => warnings.push(`client ${i}: ${m}`));
        client.run().catch((e: unknown) => errors.push(`client ${i}: ${String((e as Error)?.message ?? e)}`));
      }
      outcome = await Promise.race([
        this.coordinator.jobs.waitForJob(jobId).then((j) => j.status as string),
        new Promise<string>((resolve) => (timer = setTimeout(() => resolve('timeout'), this.jobTimeoutMs))),
      ]);
    } finally {
      if (timer) clearTimeout(timer);
      this.keyHolderPhase = false;
      for (const c of started) c.close();
    }
    const wallSeconds = (performance.now() - start) / 1000;
    const cpu = this.cpuByRound.get(jobId) ?? new Map<number, { all: number; main: number }>();
    this.cpuMark.delete(jobId);
    this.cpuByRound.delete(jobId);
    const records = (await this.coordinator.store.listRounds(jobId)).filter(
      (r) => r.status === 'completed' && r.round >= 1 && Number.isFinite(r.metrics.durationMs),
    );
    let lastSteps: Record<string, number> | undefined;
    if (outcome !== 'completed') {
      lastSteps = {};
      for (const step of lastStep.values()) lastSteps[step] = (lastSteps[step] ?? 0) + 1;
      lastSteps['no step reported'] = clients - lastStep.size;
    }
    return {
      mode,
      encryptionThreads: threads,
      clients,
      outcome,
      rounds: records.map((r) => ({
        round: r.round,
        ms: r.metrics.durationMs,
        cpuMs: cpu.get(r.round)?.all ?? NaN,
        mainCpuMs: cpu.get(r.round)?.main ?? NaN,
      })),
      wallSeconds,
      clientBytes: this.clientBytes,
      clientPackets: this.clientPackets,
      keyHolderBytes: this.keyHolderBytes,
      decryptMs,
      errors: errors.slice(0, 5),
      lastSteps,
      warnings: outcome === 'completed' ? undefined : warnings.slice(-5),
      warningCount: warnings.length,
      firstWarnings: warnings.slice(0, 3),
    };
  }

  /**
   * The job kinds in `jobs` in turn, `repeats` times (none, secagg, he, none, secagg, he, ...);
   * a job that throws is recorded as an error of its kind and the others still run.
   */
  async interleaved(jobs: readonly ModeJob[], clients: number, rounds: number, repeats: number) {
    await this.prepare(jobs.map((j) => j.mode));
    const runs: Array<{ repeat: number; key: string; run?: JobRun; error?: string }> = [];
    for (let repeat = 0; repeat < repeats; repeat++) {
      for (const job of jobs) {
        if (job.repeats !== undefined && repeat >= job.repeats) continue;
        const key = jobKey(job);
        try {
          runs.push({ repeat, key, run: await this.runJob(job, clients, job.rounds ?? rounds) });
        } catch (err) {
          runs.push({ repeat, key, error: String((err as Error)?.message ?? err) });
        }
      }
    }
    return summarize(jobs, runs, clients);
  }
}

const jobKey = (job: ModeJob) => `${job.mode}/${job.encryptionThreads ?? 1}`;
const finite = (values: readonly number[]) => values.filter((v) => Number.isFinite(v));
const med = (values: readonly number[]) => (finite(values).length > 0 ? round(median(finite(values))) : null);
const ratio = (a: number | null, b: number | null) => (a !== null && b !== null && b > 0 ? round(a / b) : null);
const steady = (run: JobRun) => run.rounds.filter((r) => r.round >= 2);

/** Per job kind: pooled round figures, ratios to `none`, and the per-repeat ratios with their spread. */
function summarize(
  jobs: readonly ModeJob[],
  runs: ReadonlyArray<{ repeat: number; key: string; run?: JobRun; error?: string }>,
  clients: number,
) {
  const steadyOf = (repeat: number, key: string) => {
    const run = runs.find((r) => r.repeat === repeat && r.key === key)?.run;
    return run
      ? {
          wall: med(steady(run).map((r) => r.ms)),
          cpu: med(steady(run).map((r) => r.cpuMs)),
          mainCpu: med(steady(run).map((r) => r.mainCpuMs)),
        }
      : undefined;
  };
  const base = (list: ReadonlyArray<JobRun>) => {
    const rounds = list.flatMap((r) => r.rounds);
    const steadyRounds = list.flatMap(steady);
    const n = rounds.length;
    const bytes = list.reduce((a, r) => a + r.clientBytes, 0);
    const packets = list.reduce((a, r) => a + r.clientPackets, 0);
    return {
      rounds,
      steadyRounds,
      n,
      bytesPerClientPerRound: n > 0 ? Math.round(bytes / (clients * n)) : null,
      packetsPerClientPerRound: n > 0 ? round(packets / (clients * n)) : null,
    };
  };
  const plainRuns = runs.filter((r) => r.key === 'none/1' && r.run).map((r) => r.run as JobRun);
  const plain = base(plainRuns);
  const plainSteadyWall = med(plain.steadyRounds.map((r) => r.ms));
  const plainSteadyCpu = med(plain.steadyRounds.map((r) => r.cpuMs));
  const plainSteadyMainCpu = med(plain.steadyRounds.map((r) => r.mainCpuMs));
  const plainAllWall = med(plain.rounds.map((r) => r.ms));
  return jobs.map((job) => {
    const key = jobKey(job);
    const mine = runs.filter((r) => r.key === key);
    const list = mine.filter((r) => r.run).map((r) => r.run as JobRun);
    const b = base(list);
    const roundMsMedian = med(b.rounds.map((r) => r.ms));
    const steadyRoundMsMedian = med(b.steadyRounds.map((r) => r.ms));
    const steadyCpuMsMedian = med(b.steadyRounds.map((r) => r.cpuMs));
    const steadyMainThreadCpuMsMedian = med(b.steadyRounds.map((r) => r.mainCpuMs));
    const perRepeat = [...new Set(mine.map((r) => r.repeat))].map((repeat) => {
      const m = steadyOf(repeat, key);
      const p = steadyOf(repeat, 'none/1');
      return {
        wall: ratio(m?.wall ?? null, p?.wall ?? null),
        cpu: ratio(m?.cpu ?? null, p?.cpu ?? null),
        mainCpu: ratio(m?.mainCpu ?? null, p?.mainCpu ?? null),
      };
    });
    const walls = finite(perRepeat.map((r) => r.wall ?? NaN));
    const cpus = finite(perRepeat.map((r) => r.cpu ?? NaN));
    const decrypts = list.flatMap((r) => r.decryptMs);
    const failed = list.filter((r) => r.outcome !== 'completed');
    return {
      mode: job.mode,
      encryptionThreads: job.encryptionThreads ?? 1,
      /** Each job's outcome, in run order. */
      jobs: list.map((r) => r.outcome),
      roundsCompleted: b.n,
      roundMs: b.rounds.map((r) => round(r.ms)),
      roundMsMedian,
      /** Median over rounds 2+ of every job. */
      steadyRoundMsMedian,
      /** Process CPU ms per round (all threads), in the order of roundMs. */
      cpuMsPerRound: b.rounds.map((r) => (Number.isFinite(r.cpuMs) ? round(r.cpuMs) : null)),
      steadyCpuMsMedian,
      /** Main-thread CPU ms per round (the shared event loop, which sets the wall time here), in the order of roundMs. */
      mainThreadCpuMsPerRound: b.rounds.map((r) => (Number.isFinite(r.mainCpuMs) ? round(r.mainCpuMs) : null)),
      steadyMainThreadCpuMsMedian,
      jobWallSeconds: med(list.map((r) => r.wallSeconds)),
      bytesPerClientPerRound: b.bytesPerClientPerRound,
      packetsPerClientPerRound: b.packetsPerClientPerRound,
      keyHolderBytesPerRound:
        (job.mode === 'he' || job.mode === 'paillier') && b.n > 0
          ? Math.round(list.reduce((a, r) => a + r.keyHolderBytes, 0) / b.n)
          : undefined,
      keyHolderDecryptMsMedian: decrypts.length > 0 ? round(median(decrypts)) : undefined,
      /** Median over all rounds / plaintext's. */
      roundTimeVsPlaintext: ratio(roundMsMedian, plainAllWall),
      /** Rounds 2+: wall median / plaintext's, and CPU median / plaintext's. */
      steadyRoundTimeVsPlaintext: ratio(steadyRoundMsMedian, plainSteadyWall),
      steadyCpuVsPlaintext: ratio(steadyCpuMsMedian, plainSteadyCpu),
      /** Rounds 2+: main-thread CPU median / plaintext's (work moved to worker threads leaves it). */
      steadyMainThreadCpuVsPlaintext: ratio(steadyMainThreadCpuMsMedian, plainSteadyMainCpu),
      /** The rounds 2+ ratios of each repeat, to that repeat's own plaintext job. */
      perRepeat,
      ratioSpread:
        walls.length > 0
          ? {
              wallMin: Math.min(...walls),
              wallMax: Math.max(...walls),
              cpuMin: cpus.length > 0 ? Math.min(...cpus) : null,
              cpuMax: cpus.length > 0 ? Math.max(...cpus) : null,
            }
          : null,
      bytesVsPlaintext: ratio(b.bytesPerClientPerRound, plain.bytesPerClientPerRound),
      /** Jobs that did not complete, one line each (a string, as before). */
      stoppedEarly:
        failed.length > 0
          ? failed
              .map(
                (r) =>
                  `${r.outcome} after ${r.rounds.length} rounds; last steps ${JSON.stringify(r.lastSteps)}; ${(r.warnings ?? []).join(' | ')}`,
              )
              .join(' || ')
          : undefined,
      errors: [...mine.flatMap((r) => (r.error ? [r.error] : [])), ...list.flatMap((r) => r.errors)].slice(0, 3),
      /** Client warnings over its jobs (e.g. a model download retried), and the first three. */
      clientWarnings: list.reduce((a, r) => a + r.warningCount, 0),
      firstClientWarnings: list.flatMap((r) => r.firstWarnings).slice(0, 3),
    };
  });
}

export type ModeRoundsSummary = Awaited<ReturnType<RoundBench['interleaved']>>;
