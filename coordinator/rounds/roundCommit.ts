import { contentHash, encodeTensors } from '../../shared/codec/modelCodec';
import type { NamedTensor } from '../../shared/codec/tensors';
import type { RoundEvidence, RoundSealer } from '../ports';
import type { JobRecord, RoundRecord, Store } from '../store/store';

/** Everything a committed round stores. */
export interface RoundCommitInput {
  job: JobRecord;
  /** The round record, without `modelHash` (computed here from the weights) and `transcriptHash` (from the seal). */
  record: Omit<RoundRecord, 'modelHash' | 'status' | 'transcriptHash'>;
  weights: readonly NamedTensor[];
  strategyState?: readonly NamedTensor[];
  /** Signs and stores the round's transcript; absent: the round has no transcript (hash 0 on chain). */
  seal?: { sealer: RoundSealer; evidence: RoundEvidence };
}

export interface RoundCommitted {
  job: JobRecord;
  record: RoundRecord;
  /** The model's codec bytes and their hash (what the checkpoint holds). */
  bytes: Buffer;
  modelHash: string;
}

/**
 * The crash-safe commit of one round. Order matters for resume: the checkpoint first, then the signed
 * transcript, the round record (carrying the transcript's hash, which the chain worker commits), the
 * participants' counters, and the job's round pointer last — a crash before the pointer moves leaves
 * the round to be run again from the previous checkpoint, and a checkpoint, transcript or record of a
 * round the pointer never reached is simply overwritten then (the chain only commits rounds up to the
 * pointer, so an overwritten transcript was never committed).
 */
export async function commitRound(store: Store, input: RoundCommitInput): Promise<RoundCommitted> {
  const { job, record: partial, weights, strategyState, seal } = input;
  const bytes = encodeTensors(weights);
  const modelHash = contentHash(bytes);
  await store.saveCheckpoint({
    jobId: job.id,
    round: partial.round,
    modelHash,
    weights: bytes,
    strategyState: strategyState ? encodeTensors(strategyState) : undefined,
    createdAt: partial.finishedAt,
  });
  const transcriptHash = seal
    ? await seal.sealer.sealRound({ job, record: { ...partial, modelHash }, evidence: seal.evidence })
    : undefined;
  const record: RoundRecord = {
    ...partial,
    status: 'completed',
    modelHash,
    ...(transcriptHash ? { transcriptHash } : {}),
  };
  await store.saveRound(record);
  await bumpParticipants(store, job.id, record.participants, record.finishedAt);
  const updated = await store.updateJob(job.id, { currentRound: record.round, modelHash });
  return { job: updated, record, bytes, modelHash };
}

/** Adds one completed round to each participant's counter (keeping fields set at join, e.g. the payout address). */
async function bumpParticipants(store: Store, jobId: string, participants: readonly string[], at: Date): Promise<void> {
  const existing = new Map((await store.listParticipants(jobId)).map((p) => [p.clientId, p]));
  for (const clientId of participants) {
    const p = existing.get(clientId);
    await store.saveParticipant({
      ...p,
      jobId,
      clientId,
      joinedAt: p?.joinedAt ?? at,
      lastSeenAt: at,
      roundsCompleted: (p?.roundsCompleted ?? 0) + 1,
    });
  }
}
