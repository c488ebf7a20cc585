/**
 * Rounds of jobs with a `privacy` block, through the real round runner and the real `none` mode with
 * fake clients on a fake directory: the budget stop, central noise added exactly once per round, the
 * coordinator's own clipping against a client that skips it, adaptive C in the tasks, and what is
 * stored per round and per job.
 */
import { contentHash, decodeTensors, encodeTensors } from '../../shared/codec/modelCodec';
import { manifestOf, type NamedTensor } from '../../shared/codec/tensors';
import { nextClippingNorm } from '../../shared/privacy/adaptiveClipping';
import { addGaussianNoise, noisedCount } from '../../shared/privacy/gaussianNoise';
import { seededRandom } from '../../shared/privacy/randomSource';
import { RdpAccountant } from '../../shared/privacy/rdpAccountant';
import { privacyPlanOf, UNCLIPPED_METRIC } from '../../shared/aggregation/privateUpdate';
import { JobSpecSchema, type JobSpecInput } from '../../shared/schemas/jobSpec';
import type { RoundTask } from '../../shared/schemas/messages';
import { EVENTS } from '../../shared/schemas/protocol';
import { createNoneMode } from '../aggregation/none/noneMode';
import { createLogger } from '../logger';
import type { RoundCompletedEvent } from '../ports';
import { initialPrivacyState } from '../privacy/jobPrivacy';
import { MemoryStore } from '../store/memoryStore';
import type { JobRecord } from '../store/store';
import { createStrategy } from '../strategy/createStrategy';
import { ClientDirectory, type ClientLink } from '../transport/clientDirectory';
import { JobRunner } from './jobRunner';

const initial: NamedTensor[] = [
  { name: 'w', shape: [3], data: new Float32Array([1, 1, 1]) },
  { name: 'b', shape: [1], data: new Float32Array([0]) },
];
const DELTA = 1e-3;

async function setup(privacy: NonNullable<JobSpecInput['privacy']>, overrides: Partial<JobSpecInput> = {}) {
  const spec = JobSpecSchema.parse({
    name: 'dp',
    model: { kind: 'builtin', name: 'mlp' },
    input: { shape: [2], numClasses: 2 },
    rounds: 3,
    minClients: 2,
    maxClients: 2,
    secureAggregation: 'none',
    roundDeadlineMs: 5_000,
    quorumTimeoutMs: 5_000,
    privacy: { delta: DELTA, ...privacy },
    ...overrides,
  });
  const plan = privacyPlanOf(spec, 4)!;
  const store = new MemoryStore();
  const bytes = encodeTensors(initial);
  const now = new Date();
  const job: JobRecord = {
    id: 'job_dp',
    spec,
    status: 'running',
    currentRound: 0,
    modelHash: contentHash(bytes),
    weightManifest: manifestOf(initial),
    privacy: initialPrivacyState(plan),
    createdAt: now,
    updatedAt: now,
  };
  await store.createJob(job);
  await store.saveCheckpoint({ jobId: job.id, round: 0, modelHash: job.modelHash, weights: bytes, createdAt: now });
  const directory = new ClientDirectory();
  const completed: RoundCompletedEvent[] = [];
  const runner = new JobRunner(job, {
    store,
    directory,
    strategy: createStrategy(spec),
    mode: createNoneMode(),
    evaluator: { evaluate: async () => null },
    logger: createLogger('silent'),
    chunkBytes: 1024,
    // Parts asked for on every round: a DP round must still never hand them on.
    keepParts: () => true,
    privacyRandom: seededRandom('private-rounds'),
    onRoundCommitted: (e) => void completed.push(e),
  });
  return { store, directory, runner, plan, completed };
}

/** A fake client uploading `delta` (4 values: w then b) with the unclipped bit it claims. */
function fakeClient(
  directory: ClientDirectory,
  runner: JobRunner,
  id: string,
  delta: number[],
  tasks: RoundTask[] = [],
  unclipped = 1,
) {
  const link: ClientLink = {
    clientId: id,
    send(event, payload) {
      if (event !== EVENTS.roundTask) return;
      const task = payload as RoundTask;
      tasks.push(task);
      setImmediate(() => {
        const bytes = encodeTensors([
          { name: 'w', shape: [3], data: new Float32Array(delta.slice(0, 3)) },
          { name: 'b', shape: [1], data: new Float32Array(delta.slice(3)) },
        ]);
        const transferId = 'cd'.repeat(16);
        runner.receive(id, task.round, {
          name: 'updateChunk',
          body: { transferId, index: 0, count: 1, totalBytes: bytes.length },
          data: bytes,
        });
        runner.receive(id, task.round, {
          name: 'updateCommit',
          body: {
            transferId,
            updateHash: contentHash(bytes),
            numExamples: 1,
            metrics: { [UNCLIPPED_METRIC]: unclipped },
          },
          data: undefined,
        });
      });
    },
  };
  directory.connect(link);
  directory.join(id, 'job_dp');
}

const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
/** What the coordinator sums for one update under clipping norm c (PlaintextAggregator's factor, in float64 on float32 values). */
function clipped(delta: number[], c: number): number[] {
  const f32 = Array.from(new Float32Array(delta));
  const n = norm(f32);
  const factor = n > c ? (c * (1 - 1e-6)) / n : 1;
  return f32.map((x) => factor * x);
}
const modelAt = async (store: MemoryStore, round: number) =>
  decodeTensors((await store.loadCheckpoint('job_dp', round))!.weights).flatMap((t) => Array.from(t.data));

describe('private rounds in the round runner', () => {
  it('completes the job with PRIVACY_BUDGET_EXHAUSTED before the round that would exceed epsilon, never after it', async () => {
    const z = 2;
    const spentAfter = (k: number) => new RdpAccountant().step(1, z, k).epsilon(DELTA);
    // A budget between what 3 and 4 rounds spend: the 4th round must not run.
    const epsilon = (spentAfter(3) + spentAfter(4)) / 2;
    const { store, directory, runner, plan } = await setup(
      { epsilon, clippingNorm: 1, noiseMultiplier: z },
      { rounds: 6 },
    );
    expect(plan.plannedRounds).toBe(3);
    const tasks: RoundTask[] = [];
    fakeClient(directory, runner, 'a', [0.1, 0, 0, 0], tasks);
    fakeClient(directory, runner, 'b', [0, 0.1, 0, 0], tasks);
    const job = await runner.run();
    expect(job.status).toBe('completed');
    expect(job.currentRound).toBe(3);
    expect(job.failureReason).toMatch(/^PRIVACY_BUDGET_EXHAUSTED: .*one more at sampling rate 1\.00/);
    // No task of round 4 ever left the coordinator.
    expect(Math.max(...tasks.map((t) => t.round))).toBe(3);
    const rounds = await store.listRounds('job_dp');
    expect(rounds.map((r) => [r.round, r.status])).toEqual([
      [1, 'completed'],
      [2, 'completed'],
      [3, 'completed'],
    ]);
    rounds.forEach((r, i) => {
      expect(r.privacy).toMatchObject({ noise: 'central', rounds: i + 1, samplingRate: 1, noiseMultiplier: z });
      expect(r.privacy!.epsilon).toBeCloseTo(spentAfter(i + 1), 10);
      expect(r.privacy!.epsilon).toBeLessThanOrEqual(epsilon);
      expect(r.privacy!.epsilonBudget).toBe(epsilon);
    });
    // The job carries the accountant: three rounds composed.
    expect((await store.getJob('job_dp'))!.privacy!.accountant.rounds).toBe(3);
  });

  it('adds the central noise exactly once per round, after the mode summed the clipped updates', async () => {
    const c = 0.5;
    const { store, directory, runner, plan, completed } = await setup(
      { epsilon: 50, clippingNorm: c, noiseMultiplier: 1 },
      { rounds: 2 },
    );
    // One update inside C, one far outside it (norm 5): the second is clipped to C either way.
    const deltas = [
      [0.1, -0.2, 0.05, 0.1],
      [3, 4, 0, 0],
    ];
    fakeClient(directory, runner, 'a', deltas[0]);
    fakeClient(directory, runner, 'b', deltas[1]);
    const job = await runner.run();
    expect(job.status).toBe('completed');
    // The same draws the coordinator made, in its order: per tensor of the sum, then the count.
    const replay = seededRandom('private-rounds');
    let expected = Array.from(initial.flatMap((t) => Array.from(t.data)));
    for (let round = 1; round <= 2; round++) {
      const sum = deltas.map((d) => clipped(d, c)).reduce((a, b) => a.map((x, i) => x + b[i]));
      const w = Float64Array.from(sum.slice(0, 3));
      const b = Float64Array.from(sum.slice(3));
      addGaussianNoise(w, plan.updateNoiseMultiplier * c, replay);
      addGaussianNoise(b, plan.updateNoiseMultiplier * c, replay);
      const count = noisedCount(1, plan.clippedCountNoise, replay);
      expected = expected.map((x, i) => Math.fround(x + [...w, ...b][i] / 2));
      const model = await modelAt(store, round);
      model.forEach((x, i) => expect(x).toBeCloseTo(expected[i], 5));
      const record = (await store.listRounds('job_dp'))[round - 1];
      expect(record.privacy!.clippedFraction).toBeCloseTo(Math.min(1, Math.max(0, 1 - count / 2)), 10);
      expect(record.privacy!.clippingNorm).toBe(c);
    }
    // Twice the noise, or none, would have moved the model by about z C / 2 = 0.25 per value: far outside 1e-5.
    expect(completed.every((e) => e.parts === undefined && e.partKind === undefined)).toBe(true);
    // No per-client training metric reaches the round record under DP.
    const metrics = (await store.listRounds('job_dp')).map((r) => Object.keys(r.metrics));
    for (const keys of metrics) expect(keys.filter((k) => k.startsWith('train_'))).toEqual([]);
  });

  it('clips an update again at the coordinator: a client that skips clipping moves the sum by at most C', async () => {
    // Noise and budget so large that one round fits, and a noise multiplier tiny enough to read the sum.
    const c = 1;
    const { store, directory, runner } = await setup(
      { epsilon: 100, clippingNorm: c, noiseMultiplier: 0.1, clippedCountNoise: 0.1 },
      { rounds: 1 },
    );
    fakeClient(directory, runner, 'honest', [0, 0, 0, 0]);
    // The attacker's well-formed update of norm 1e4, claiming it was not clipped.
    fakeClient(directory, runner, 'attacker', [1e4, 0, 0, 0], [], 1);
    await runner.run();
    const model = await modelAt(store, 1);
    // Without the coordinator's clipping w[0] would move by 5000; clipped, by C / 2 plus noise (sd 0.1 C / 2).
    expect(Math.abs(model[0] - 1 - c / 2)).toBeLessThan(0.25);
    const record = (await store.listRounds('job_dp'))[0];
    // The attacker's bit counts as clipped: 1 of 2 unclipped (noise sd 0.1), so about half are reported clipped, not none.
    expect(Math.abs(record.privacy!.clippedFraction - 0.5)).toBeLessThan(0.2);
  });

  it('moves C by adaptive clipping, sends it in the next tasks, and keeps it with the job', async () => {
    const { store, directory, runner, plan } = await setup(
      {
        epsilon: 50,
        noiseMultiplier: 1,
        clippedCountNoise: 0.6,
        adaptiveClipping: { initialNorm: 0.5, learningRate: 0.5, targetQuantile: 0.5 },
      },
      { rounds: 3 },
    );
    const tasks: RoundTask[] = [];
    // Both updates (norm 2) are longer than every C in play: all clipped, so C grows each round.
    fakeClient(directory, runner, 'a', [2, 0, 0, 0], tasks, 0);
    fakeClient(directory, runner, 'b', [0, 2, 0, 0], [], 0);
    await runner.run();
    const rounds = await store.listRounds('job_dp');
    const norms = rounds.map((r) => r.privacy!.clippingNorm);
    expect(norms[0]).toBe(0.5);
    expect(tasks.map((t) => t.config.clippingNorm)).toEqual(norms);
    // The noised count drives each step: replay the coordinator's draws (4 update values, then the count).
    const replay = seededRandom('private-rounds');
    let c = norms[0];
    for (let k = 0; k < rounds.length; k++) {
      expect(norms[k]).toBeCloseTo(c, 10);
      addGaussianNoise(new Float64Array(3), 1, replay);
      addGaussianNoise(new Float64Array(1), 1, replay);
      const unclipped = noisedCount(0, plan.clippedCountNoise, replay);
      c = nextClippingNorm(c, unclipped, 2, { targetQuantile: 0.5, learningRate: 0.5 });
    }
    // Every update was clipped, so C grew towards the updates' norm.
    expect(norms[2]).toBeGreaterThan(norms[0]);
    // The job keeps the C of the round to come.
    const stored = (await store.getJob('job_dp'))!.privacy!;
    expect(stored.accountant.rounds).toBe(3);
    expect(stored.clippingNorm).toBeCloseTo(c, 10);
  });
});
