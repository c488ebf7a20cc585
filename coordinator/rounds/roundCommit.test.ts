import { contentHash, decodeTensors, encodeTensors } from '../../shared/codec/modelCodec';
import type { NamedTensor } from '../../shared/codec/tensors';
import { JobSpecSchema } from '../../shared/schemas/jobSpec';
import { MemoryStore } from '../store/memoryStore';
import type { JobRecord, Store } from '../store/store';
import { hasCode } from '../../shared/errors';
import { commitRound, completeClusterCommit, type RoundCommitInput } from './roundCommit';

const initial: NamedTensor[] = [{ name: 'w', shape: [2], data: new Float32Array([1, 1]) }];
const next: NamedTensor[] = [{ name: 'w', shape: [2], data: new Float32Array([2, 3]) }];

async function setup(): Promise<{ store: MemoryStore; job: JobRecord }> {
  const spec = JobSpecSchema.parse({
    name: 't',
    model: { kind: 'builtin', name: 'mlp' },
    input: { shape: [2], numClasses: 2 },
    rounds: 3,
    secureAggregation: 'none',
  });
  const store = new MemoryStore();
  const bytes = encodeTensors(initial);
  const now = new Date();
  const job: JobRecord = {
    id: 'job_commit',
    spec,
    status: 'running',
    currentRound: 0,
    modelHash: contentHash(bytes),
    weightManifest: [{ name: 'w', shape: [2] }],
    createdAt: now,
    updatedAt: now,
  };
  await store.createJob(job);
  await store.saveCheckpoint({ jobId: job.id, round: 0, modelHash: job.modelHash, weights: bytes, createdAt: now });
  return { store, job };
}

const input = (job: JobRecord): RoundCommitInput => ({
  job,
  record: {
    jobId: job.id,
    round: 1,
    attempt: 0,
    selected: ['a', 'b'],
    participants: ['a', 'b'],
    failures: [],
    metrics: { numExamples: 2 },
    startedAt: new Date(),
    finishedAt: new Date(),
  },
  weights: next,
  strategyState: [{ name: 'm/w', shape: [2], data: new Float32Array([0.5, 0.5]) }],
});

/** The store with every write recorded, failing (like a crash) at the `failAt`-th write. */
function recording(store: Store, failAt = Number.POSITIVE_INFINITY): { store: Store; writes: string[] } {
  const writes: string[] = [];
  const proxy = new Proxy(store, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== 'function' || !/^(save|update|create|append|count)/.test(String(key))) {
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return (...args: unknown[]) => {
        if (writes.length + 1 >= failAt) return Promise.reject(new Error(`crash before ${String(key)}`));
        writes.push(String(key));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store: proxy, writes };
}

describe('commitRound', () => {
  it('writes the checkpoint first, then the round record, the participants, and the job pointer last', async () => {
    const { store, job } = await setup();
    const rec = recording(store);
    const committed = await commitRound(rec.store, input(job));
    expect(rec.writes).toEqual(['saveCheckpoint', 'saveRound', 'countRoundCompleted', 'updateJob']);
    expect(committed.job.currentRound).toBe(1);
    expect(committed.job.modelHash).toBe(contentHash(encodeTensors(next)));
    expect(committed.record).toMatchObject({ status: 'completed', modelHash: committed.modelHash });
    const checkpoint = (await store.loadCheckpoint(job.id, 1))!;
    expect(Array.from(decodeTensors(checkpoint.weights)[0].data)).toEqual([2, 3]);
    expect(decodeTensors(checkpoint.strategyState!)[0].name).toBe('m/w');
    expect((await store.listParticipants(job.id)).map((p) => p.roundsCompleted)).toEqual([1, 1]);
  });

  it.each([1, 2, 3, 4])(
    'a crash at write %i leaves the job pointer on the previous round, so resume runs the round again',
    async (failAt) => {
      const { store, job } = await setup();
      await expect(commitRound(recording(store, failAt).store, input(job))).rejects.toThrow(/crash/);
      const after = (await store.getJob(job.id))!;
      expect(after.currentRound).toBe(0);
      expect(after.modelHash).toBe(job.modelHash);
      // The checkpoint the pointer names is still the previous model.
      const current = (await store.loadCheckpoint(job.id, after.currentRound))!;
      expect(current.modelHash).toBe(job.modelHash);
      // Running the round again commits it over whatever the crash left behind.
      const again = await commitRound(store, input(after));
      expect(again.job.currentRound).toBe(1);
      expect((await store.listRounds(job.id)).filter((r) => r.status === 'completed' && r.round === 1)).toHaveLength(1);
      // The round is counted once per participant even when the crash came after the counters.
      expect((await store.listParticipants(job.id)).map((p) => p.roundsCompleted)).toEqual([1, 1]);
    },
  );
});

describe('commitRound on a cluster (fenced by the lease token)', () => {
  const claim = (owner: string, now: number) => ({ owner, url: `http://${owner}`, ttlMs: 1_000, now: new Date(now) });

  it('appends the commit to the job log right after the checkpoint, then the record, counters and pointer', async () => {
    const { store, job } = await setup();
    const lease = (await store.acquireJobLease(job.id, claim('a', 0)))!;
    const rec = recording(store);
    const committed = await commitRound(rec.store, { ...input(job), fence: lease.token });
    expect(rec.writes).toEqual([
      'saveCheckpoint',
      'appendRoundCommit',
      'saveRound',
      'countRoundCompleted',
      'updateJob',
    ]);
    expect(committed.job.currentRound).toBe(1);
    expect((await store.lastRoundCommit(job.id))!.record).toEqual(committed.record);
  });

  it('refuses a former owner after a takeover: no record, no counter, no pointer', async () => {
    const { store, job } = await setup();
    const a = (await store.acquireJobLease(job.id, claim('a', 0)))!;
    await store.acquireJobLease(job.id, claim('b', 5_000));
    const err = await commitRound(store, { ...input(job), fence: a.token }).catch((e: unknown) => e);
    expect(hasCode(err, 'LEASE_LOST')).toBe(true);
    const after = (await store.getJob(job.id))!;
    expect(after.currentRound).toBe(0);
    expect(after.modelHash).toBe(job.modelHash);
    expect(await store.listRounds(job.id)).toEqual([]);
    expect(await store.listParticipants(job.id)).toEqual([]);
    expect(await store.lastRoundCommit(job.id)).toBeNull();
  });

  it.each([3, 4, 5])(
    'a crash at write %i (after the commit point) is completed by the next owner, the round committed once',
    async (failAt) => {
      const { store, job } = await setup();
      const a = (await store.acquireJobLease(job.id, claim('a', 0)))!;
      await expect(commitRound(recording(store, failAt).store, { ...input(job), fence: a.token })).rejects.toThrow(
        /crash/,
      );
      // Node b takes over once a's lease expired and completes what the log says was committed.
      const b = (await store.acquireJobLease(job.id, claim('b', 5_000)))!;
      const resumed = await completeClusterCommit(store, (await store.getJob(job.id))!, b.token);
      expect(resumed.currentRound).toBe(1);
      expect(resumed.modelHash).toBe(contentHash(encodeTensors(next)));
      const completed = (await store.listRounds(job.id)).filter((r) => r.status === 'completed');
      expect(completed.map((r) => r.round)).toEqual([1]);
      // Counters: the round counted exactly once per participant wherever the crash came.
      expect((await store.listParticipants(job.id)).map((p) => p.roundsCompleted)).toEqual([1, 1]);
      // Completing again changes nothing.
      const again = await completeClusterCommit(store, resumed, b.token);
      expect(again.currentRound).toBe(1);
      expect((await store.listRounds(job.id)).filter((r) => r.status === 'completed')).toHaveLength(1);
      expect((await store.listParticipants(job.id)).map((p) => p.roundsCompleted)).toEqual([1, 1]);
    },
  );
});
