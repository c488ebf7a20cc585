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
  /**
   * The fencing token of this node's lease on the job (clustered coordinators, coordinator/cluster/).
   * Absent: a single coordinator, and the job pointer is the commit point, as always.
   */
  fence?: number;
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
 *
 * Clustered (`fence` set): the checkpoint and transcript are saved fenced (a newer owner's are never
 * replaced), then the commit point is one append to the job's log fenced by the lease token
 * (Store.appendRoundCommit, which refuses a former owner with LEASE_LOST); only after it come the
 * round record, the counters and the pointer, which `completeClusterCommit` redoes after a crash.
 * So a node that lost its lease writes no round record, moves no counter and no pointer, and its
 * observers (chain, contribution scoring) never hear of the round.
 */
export async function commitRound(store: Store, input: RoundCommitInput): Promise<RoundCommitted> {
  const { job, record: partial, weights, strategyState, seal, fence } = input;
  const bytes = encodeTensors(weights);
  const modelHash = contentHash(bytes);
  await store.saveCheckpoint({
    jobId: job.id,
    round: partial.round,
    modelHash,
    weights: bytes,
    strategyState: strategyState ? encodeTensors(strategyState) : undefined,
    createdAt: partial.finishedAt,
    ...(fence !== undefined ? { fence } : {}),
  });
  const transcriptHash = seal
    ? await seal.sealer.sealRound({
        job,
        record: { ...partial, modelHash },
        evidence: seal.evidence,
        ...(fence !== undefined ? { fence } : {}),
      })
    : undefined;
  const record: RoundRecord = {
    ...partial,
    status: 'completed',
    modelHash,
    ...(transcriptHash ? { transcriptHash } : {}),
  };
  if (fence !== undefined) {
    await store.appendRoundCommit(job.id, fence, record);
    const updated = await applyCommit(store, record, fence);
    return { job: updated, record, bytes, modelHash };
  }
  await store.saveRound(record);
  await store.countRoundCompleted(job.id, record.round, record.participants, record.finishedAt);
  const updated = await store.updateJob(job.id, { currentRound: record.round, modelHash });
  return { job: updated, record, bytes, modelHash };
}

/**
 * Clustered: brings a job's record, counters and pointer up to the last round its log says was
 * committed, for the node that just took the lease (a former owner may have died after the commit
 * point). Returns the job as it now stands. Counting a round is idempotent per participant
 * (Store.countRoundCompleted), so the counters are redone whole wherever the crash came.
 */
export async function completeClusterCommit(store: Store, job: JobRecord, fence: number): Promise<JobRecord> {
  const last = await store.lastRoundCommit(job.id);
  if (!last || last.record.round <= job.currentRound) return job;
  return applyCommit(store, last.record, fence);
}

/** After the commit point: the round record, the counters and the pointer. */
async function applyCommit(store: Store, record: RoundRecord, fence: number): Promise<JobRecord> {
  await store.saveRound(record, { fence });
  await store.countRoundCompleted(record.jobId, record.round, record.participants, record.finishedAt);
  return store.updateJob(record.jobId, { currentRound: record.round, modelHash: record.modelHash });
}
