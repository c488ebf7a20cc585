import { contentHash, decodeTensors, encodeTensors } from '../../shared/codec/modelCodec';
import { manifestOf, type NamedTensor } from '../../shared/codec/tensors';
import { JobSpecSchema, type JobSpecInput } from '../../shared/schemas/jobSpec';
import type { RoundTask } from '../../shared/schemas/messages';
import { EVENTS } from '../../shared/schemas/protocol';
import { createNoneMode } from '../aggregation/none/noneMode';
import { createLogger } from '../logger';
import { MemoryStore } from '../store/memoryStore';
import type { JobRecord } from '../store/store';
import { createStrategy } from '../strategy/createStrategy';
import { ClientDirectory, type ClientLink } from '../transport/clientDirectory';
import type { RoundCompletedEvent } from '../ports';
import { JobRunner } from './jobRunner';

const initial: NamedTensor[] = [{ name: 'w', shape: [2], data: new Float32Array([1, 1]) }];

async function setup(overrides: Partial<JobSpecInput> = {}) {
  const spec = JobSpecSchema.parse({
    name: 't',
    model: { kind: 'builtin', name: 'mlp' },
    input: { shape: [2], numClasses: 2 },
    rounds: 2,
    minClients: 2,
    secureAggregation: 'none',
    roundDeadlineMs: 5_000,
    quorumTimeoutMs: 5_000,
    ...overrides,
  });
  const store = new MemoryStore();
  const bytes = encodeTensors(initial);
  const now = new Date();
  const job: JobRecord = {
    id: 'job_test',
    spec,
    status: 'running',
    currentRound: 0,
    modelHash: contentHash(bytes),
    weightManifest: manifestOf(initial),
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
    evaluator: { evaluate: async () => ({ accuracy: 0.5 }) },
    logger: createLogger('silent'),
    chunkBytes: 1024,
    onRoundCommitted: (e) => void completed.push(e),
  });
  return { store, directory, runner, job, completed };
}

/** A fake client that answers every task with a constant delta (or never, or by disconnecting). */
function fakeClient(
  directory: ClientDirectory,
  runner: () => JobRunner,
  id: string,
  behaviour: { delta?: number; examples?: number; silent?: boolean; leaveOnTask?: boolean },
) {
  const link: ClientLink = {
    clientId: id,
    send(event, payload) {
      if (event !== EVENTS.roundTask || behaviour.silent) return;
      const task = payload as RoundTask;
      setImmediate(() => {
        if (behaviour.leaveOnTask) return directory.disconnect(id, link, 'transport close');
        const bytes = encodeTensors([
          { name: 'w', shape: [2], data: new Float32Array([behaviour.delta ?? 0, behaviour.delta ?? 0]) },
        ]);
        const transferId = 'ab'.repeat(16);
        runner().receive(id, task.round, {
          name: 'updateChunk',
          body: { transferId, index: 0, count: 1, totalBytes: bytes.length },
          data: bytes,
        });
        runner().receive(id, task.round, {
          name: 'updateCommit',
          body: {
            transferId,
            updateHash: contentHash(bytes),
            numExamples: behaviour.examples ?? 1,
            metrics: { loss: 1 },
          },
          data: undefined,
        });
      });
    },
  };
  directory.connect(link);
  directory.join(id, 'job_test');
  return link;
}

describe('JobRunner', () => {
  it('runs every round, commits checkpoints in order and calls the round-completed hook', async () => {
    const { store, directory, runner, completed } = await setup();
    fakeClient(directory, () => runner, 'a', { delta: 1, examples: 1 });
    fakeClient(directory, () => runner, 'b', { delta: -1, examples: 3 });
    const job = await runner.run();
    expect(job.status).toBe('completed');
    expect(job.currentRound).toBe(2);
    const rounds = await store.listRounds('job_test');
    expect(rounds.map((r) => [r.round, r.status])).toEqual([
      [1, 'completed'],
      [2, 'completed'],
    ]);
    expect(rounds[0].metrics.validation_accuracy).toBe(0.5);
    expect(rounds[0].metrics.numExamples).toBe(4);
    // Each round moves w by (1*1 + 3*-1)/4 = -0.5.
    const last = decodeTensors((await store.loadCheckpoint('job_test'))!.weights);
    expect(Array.from(last[0].data)).toEqual([0, 0]);
    expect(completed.map((e) => e.round.round)).toEqual([1, 2]);
    expect((await store.listParticipants('job_test')).map((p) => p.roundsCompleted)).toEqual([2, 2]);
  });

  it('fails the job with a clear reason when the quorum never forms, after the allowed retries', async () => {
    const { store, directory, runner } = await setup({ quorumTimeoutMs: 100, maxRoundRetries: 2 });
    fakeClient(directory, () => runner, 'a', { delta: 1 });
    const job = await runner.run();
    expect(job.status).toBe('failed');
    expect(job.failureReason).toMatch(/ROUND_QUORUM_NOT_MET: 1 of the 2 required clients/);
    const rounds = await store.listRounds('job_test');
    expect(rounds.map((r) => [r.round, r.attempt, r.status])).toEqual([
      [1, 0, 'failed'],
      [1, 1, 'failed'],
      [1, 2, 'failed'],
    ]);
    expect((await store.getJob('job_test'))!.currentRound).toBe(0);
  });

  it('records silent and disconnecting clients as failures and aggregates the rest if enough answered', async () => {
    const { store, directory, runner } = await setup({ minClients: 2, rounds: 1, roundDeadlineMs: 300 });
    fakeClient(directory, () => runner, 'a', { delta: 1 });
    fakeClient(directory, () => runner, 'b', { delta: 1 });
    fakeClient(directory, () => runner, 'c', { silent: true });
    fakeClient(directory, () => runner, 'd', { leaveOnTask: true });
    const job = await runner.run();
    expect(job.status).toBe('completed');
    const [round] = await store.listRounds('job_test');
    expect(round.participants.sort()).toEqual(['a', 'b']);
    expect(round.failures).toEqual(
      expect.arrayContaining([
        { clientId: 'c', reason: 'DEADLINE_EXCEEDED' },
        { clientId: 'd', reason: 'DISCONNECTED: transport close' },
      ]),
    );
  });

  it('retries a round whose answers fall short of the minimum, then fails', async () => {
    const { store, directory, runner } = await setup({
      minClients: 2,
      rounds: 1,
      roundDeadlineMs: 150,
      maxRoundRetries: 1,
    });
    fakeClient(directory, () => runner, 'a', { delta: 1 });
    fakeClient(directory, () => runner, 'c', { silent: true });
    const job = await runner.run();
    expect(job.status).toBe('failed');
    expect(job.failureReason).toMatch(/Round 1 failed 2 time\(s\): ROUND_QUORUM_NOT_MET: 1 of the 2 required updates/);
    expect((await store.listRounds('job_test')).every((r) => r.status === 'failed')).toBe(true);
  });

  it('resumes from the last committed round', async () => {
    const { store, directory, job } = await setup({ rounds: 3 });
    const moved = encodeTensors([{ name: 'w', shape: [2], data: new Float32Array([5, 5]) }]);
    await store.saveCheckpoint({
      jobId: job.id,
      round: 2,
      modelHash: contentHash(moved),
      weights: moved,
      createdAt: new Date(),
    });
    const resumedJob = await store.updateJob(job.id, { currentRound: 2, modelHash: contentHash(moved) });
    const runner = new JobRunner(resumedJob, {
      store,
      directory,
      strategy: createStrategy(job.spec),
      mode: createNoneMode(),
      evaluator: { evaluate: async () => null },
      logger: createLogger('silent'),
      chunkBytes: 1024,
    });
    const tasks: RoundTask[] = [];
    const spy = (id: string) => {
      const link = fakeClient(directory, () => runner, id, { delta: 1 });
      const send = link.send.bind(link);
      link.send = (e, p) => {
        if (e === EVENTS.roundTask) tasks.push(p as RoundTask);
        send(e, p);
      };
    };
    spy('a');
    spy('b');
    const done = await runner.run();
    expect(done.currentRound).toBe(3);
    expect(tasks.map((t) => t.round)).toEqual([3, 3]);
    expect(tasks[0].modelHash).toBe(contentHash(moved));
    expect(Array.from(decodeTensors((await store.loadCheckpoint(job.id))!.weights)[0].data)).toEqual([6, 6]);
  });
});
