import { TributaryError } from '../../shared/errors';
import type { JobSpec } from '../../shared/schemas/jobSpec';
import { CREATION_CLAIM_PENDING_MS, escrowScopeOf } from '../store/slotClaims';
import type { Store } from '../store/store';

/** The owner quota a new job counts against: pending or running jobs, cluster-wide. */
export interface JobQuota {
  owner: string;
  limit: number;
}

/**
 * Claims in the store, for a job about to be created, what must hold once per cluster: its escrow
 * job (one coordinator job per escrow job: ESCROW_ALREADY_BOUND) and a slot of its owner's job quota
 * (QUOTA_EXCEEDED). Both are unique inserts (Store.claimSlot), so two nodes admitting at once cannot
 * both pass. Returns the release to call if the creation then fails, so a failed creation burns
 * neither the escrow job nor a quota slot.
 */
export async function claimJobSlots(
  store: Store,
  jobId: string,
  spec: JobSpec,
  quota: JobQuota | undefined,
  now: Date = new Date(),
): Promise<() => Promise<void>> {
  const claimed: Array<() => Promise<void>> = [];
  const release = async () => {
    for (const undo of claimed) await undo();
  };
  const claim = { holder: jobId, now, pendingMs: CREATION_CLAIM_PENDING_MS };
  if (spec.chain) {
    const scope = escrowScopeOf(spec.chain);
    const result = await store.claimSlot({ ...claim, kind: 'escrow', scope, limit: 1 });
    if (result.outcome === 'refused') {
      throw new TributaryError(
        'ESCROW_ALREADY_BOUND',
        `chain: escrow job ${spec.chain.jobId} of ${spec.chain.escrow} (chain ${spec.chain.chainId}) already pays job ${result.holders[0]}; create a new escrow job.`,
      );
    }
    if (result.outcome === 'claimed') claimed.push(() => store.releaseSlot('escrow', scope, jobId));
  }
  if (quota) {
    const result = await store.claimSlot({ ...claim, kind: 'jobs', scope: quota.owner, limit: quota.limit });
    if (result.outcome === 'refused') {
      await release();
      throw new TributaryError(
        'QUOTA_EXCEEDED',
        `This identity owns ${result.holders.length} pending or running jobs; at most ${quota.limit} are allowed. Cancel or finish one first.`,
        { details: { resource: 'jobs', limit: quota.limit } },
      );
    }
    if (result.outcome === 'claimed') claimed.push(() => store.releaseSlot('jobs', quota.owner, jobId));
  }
  return release;
}
