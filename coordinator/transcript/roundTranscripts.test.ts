import { createHash } from 'node:crypto';
import { canonicalSpecHash } from '../../contracts/escrowBinding';
import { contentHash, encodeTensors } from '../../shared/codec/modelCodec';
import type { NamedTensor } from '../../shared/codec/tensors';
import { generateIdentity } from '../../shared/identity/keyPair';
import { JobSpecSchema } from '../../shared/schemas/jobSpec';
import type { ScoredRound } from '../contribution/contributionScorer';
import { commitRound } from '../rounds/roundCommit';
import { MemoryStore } from '../store/memoryStore';
import type { JobRecord, RoundRecord, Store } from '../store/store';
import type { AggregatedUpdates } from '../strategy/strategy';
import { aggregateDigest } from './aggregateDigest';
import { RoundTranscripts } from './roundTranscripts';
import { RoundTranscriptSchema, ScoringTranscriptSchema } from './transcriptSchema';
import { transcriptHash, verifyTranscriptSignature } from './transcriptSigning';

const initial: NamedTensor[] = [{ name: 'w', shape: [2], data: new Float32Array([1, 1]) }];
const next: NamedTensor[] = [{ name: 'w', shape: [2], data: new Float32Array([2, 3]) }];
const sum: AggregatedUpdates = { weightedDeltaSum: [Float64Array.from([3, 6])], totalWeight: 3, clientCount: 2 };

async function setup() {
  const spec = JobSpecSchema.parse({
    name: 't',
    model: { kind: 'builtin', name: 'mlp' },
    input: { shape: [2], numClasses: 2 },
    rounds: 3,
    secureAggregation: 'none',
  });
  const store = new MemoryStore();
  const bytes = encodeTensors(initial);
  const now = new Date(Date.UTC(2031, 0, 1));
  const job: JobRecord = {
    id: 'job_transcripts',
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
  for (const [clientId, payoutAddress] of [
    ['b', '0x00000000000000000000000000000000000000bb'],
    ['a', '0x00000000000000000000000000000000000000aa'],
    ['z', '0x00000000000000000000000000000000000000ff'],
  ])
    await store.saveParticipant({
      jobId: job.id,
      clientId,
      payoutAddress,
      joinedAt: now,
      lastSeenAt: now,
      roundsCompleted: 0,
    });
  return { store, job, transcripts: new RoundTranscripts(store, generateIdentity()) };
}

const record = (job: JobRecord, extra: Partial<RoundRecord> = {}) => ({
  jobId: job.id,
  round: 1,
  attempt: 1,
  selected: ['a', 'b', 'c'],
  participants: ['b', 'a'],
  failures: [{ clientId: 'c', reason: `DISCONNECTED: ${'x'.repeat(3000)}` }],
  metrics: { numExamples: 3, validation_accuracy: 0.75, validation_loss: Number.NaN },
  startedAt: new Date(Date.UTC(2031, 0, 1, 0, 0, 1)),
  finishedAt: new Date(Date.UTC(2031, 0, 1, 0, 0, 2)),
  ...extra,
});

/** Records the order of store writes. */
function recording(store: Store): { store: Store; writes: string[] } {
  const writes: string[] = [];
  const proxy = new Proxy(store, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== 'function') return value;
      if (/^(save|update|create)/.test(String(key))) writes.push(String(key));
      return value.bind(target);
    },
  });
  return { store: proxy, writes };
}

describe('round transcripts at commit', () => {
  it('signs and stores the transcript after the checkpoint and before the round record, which carries its hash', async () => {
    const { store, job } = await setup();
    const rec = recording(store);
    // The sealer writes through the same (recorded) store as the commit.
    const transcripts = new RoundTranscripts(rec.store, generateIdentity());
    await store.saveValidationSet(job.id, new Uint8Array([1, 2, 3]));
    await store.saveRound({
      ...record(job),
      attempt: 0,
      status: 'failed',
      failureReason: 'ROUND_QUORUM_NOT_MET: 1 of 2',
      participants: ['a'],
    });
    const committed = await commitRound(rec.store, {
      job,
      record: record(job),
      weights: next,
      seal: {
        sealer: transcripts,
        evidence: {
          sum,
          submissions: [
            { clientId: 'b', digest: 'b'.repeat(64) },
            { clientId: 'a', digest: 'a'.repeat(64) },
          ],
        },
      },
    });
    expect(rec.writes.slice(0, 3)).toEqual(['saveCheckpoint', 'saveTranscript', 'saveRound']);
    const stored = (await store.loadTranscript(job.id, 1, 'round'))!;
    expect(committed.record.transcriptHash).toBe(stored.hash);
    expect((await store.listRounds(job.id)).find((r) => r.status === 'completed')!.transcriptHash).toBe(stored.hash);
    const body = JSON.parse(stored.text);
    expect(transcriptHash(body)).toBe(stored.hash);
    expect(verifyTranscriptSignature(body, transcripts.publicKey, stored.signature)).toBe(true);
    const t = RoundTranscriptSchema.parse(body);
    expect(t).toMatchObject({
      coordinatorKey: transcripts.publicKey,
      jobId: job.id,
      specHash: canonicalSpecHash(job.spec),
      round: 1,
      attempt: 1,
      selected: ['a', 'b', 'c'],
      participants: ['b', 'a'],
      previousModelHash: job.modelHash,
      modelHash: contentHash(encodeTensors(next)),
      aggregate: { digest: aggregateDigest(sum), totalWeight: 3, clientCount: 2 },
      // A non-finite metric has no JSON form: null.
      metrics: { numExamples: 3, validation_accuracy: 0.75, validation_loss: null },
      submissions: [
        { clientId: 'a', digest: 'a'.repeat(64) },
        { clientId: 'b', digest: 'b'.repeat(64) },
      ],
      // Only the round's participants, by client id.
      payoutAddresses: [
        { clientId: 'a', address: '0x00000000000000000000000000000000000000aa' },
        { clientId: 'b', address: '0x00000000000000000000000000000000000000bb' },
      ],
      validationSet: createHash('sha256')
        .update(new Uint8Array([1, 2, 3]))
        .digest('hex'),
      cohorts: null,
      failedAttempts: [
        { attempt: 0, reason: 'ROUND_QUORUM_NOT_MET: 1 of 2', selected: ['a', 'b', 'c'], participants: ['a'] },
      ],
    });
    expect(t.failures[0].reason).toHaveLength(1000);
  });

  it('says null for what the round did not have (submissions, validation set) and keeps cohorts', async () => {
    const { store, job, transcripts } = await setup();
    const committed = await commitRound(store, {
      job,
      record: record(job, { cohorts: [['b', 'a']] }),
      weights: next,
      seal: { sealer: transcripts, evidence: { sum } },
    });
    const t = RoundTranscriptSchema.parse(JSON.parse((await store.loadTranscript(job.id, 1, 'round'))!.text));
    expect(t).toMatchObject({ submissions: null, validationSet: null, cohorts: [['b', 'a']], failedAttempts: [] });
    expect(committed.record.transcriptHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('commits without a transcript when no sealer is given (the chain then commits a zero hash)', async () => {
    const { store, job } = await setup();
    const committed = await commitRound(store, { job, record: record(job), weights: next });
    expect(committed.record.transcriptHash).toBeUndefined();
    expect(await store.listTranscripts(job.id)).toEqual([]);
  });

  it('signs a scoring transcript naming the round transcript, with the utilities sorted; none for a round without one', async () => {
    const { store, job, transcripts } = await setup();
    const committed = await commitRound(store, {
      job,
      record: record(job),
      weights: next,
      seal: { sealer: transcripts, evidence: { sum } },
    });
    const scored: ScoredRound = {
      job,
      round: {
        ...committed.record,
        contribution: {
          method: 'exact',
          metric: 'loss',
          baseline: -0.7,
          improvement: 0.3,
          evaluations: 4,
          values: [
            { members: ['b'], value: 0.2 },
            { members: ['a'], value: 0.1 },
          ],
        },
      },
      basis: 'parts',
      seed: 42,
      utilities: [
        { coalition: [1, 0], utility: 0.3 },
        { coalition: [1], utility: 0.1 },
        { coalition: [], utility: 0 },
        { coalition: [0], utility: 0.2 },
      ],
    };
    const hash = await transcripts.sealScoring(scored);
    const stored = (await store.loadTranscript(job.id, 1, 'scoring'))!;
    expect(stored.hash).toBe(hash);
    const s = ScoringTranscriptSchema.parse(JSON.parse(stored.text));
    expect(s.roundTranscriptHash).toBe(committed.record.transcriptHash);
    expect(s.utilities.map((u) => u.coalition)).toEqual([[], [0], [1], [0, 1]]);
    expect(verifyTranscriptSignature(JSON.parse(stored.text), transcripts.publicKey, stored.signature)).toBe(true);
    const { transcriptHash: _none, ...unsealed } = scored.round;
    expect(await transcripts.sealScoring({ ...scored, round: unsealed })).toBeNull();
  });
});

describe('aggregateDigest', () => {
  it('changes with any value, the weight or the count, and not with how the sum is held', () => {
    const base = aggregateDigest(sum);
    expect(aggregateDigest({ ...sum, weightedDeltaSum: [Float64Array.from([3, 6])] })).toBe(base);
    expect(aggregateDigest({ ...sum, weightedDeltaSum: [Float64Array.from([3, 6 + 2 ** -40])] })).not.toBe(base);
    expect(aggregateDigest({ ...sum, totalWeight: 3.5 })).not.toBe(base);
    expect(aggregateDigest({ ...sum, clientCount: 3 })).not.toBe(base);
    // Split differently across tensors: the lengths are in the header.
    expect(aggregateDigest({ ...sum, weightedDeltaSum: [Float64Array.from([3]), Float64Array.from([6])] })).not.toBe(
      base,
    );
  });
});
