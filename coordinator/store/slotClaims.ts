import { TributaryError } from '../../shared/errors';
import type { SlotClaim, SlotClaimResult, SlotKind } from './store';

/** One generation of a claim slot, as a backend stores it (unique on kind, scope, slot, generation). */
export interface SlotEntry {
  kind: SlotKind;
  scope: string;
  slot: number;
  generation: number;
  /** The record the slot was taken for; null: released. */
  holder: string | null;
  claimedAt: Date;
}

/** The three operations a Store backend provides for claim slots. */
export interface SlotBackend {
  /** Every stored generation of (kind, scope)'s slots, in any order. */
  slotEntries(kind: SlotKind, scope: string): Promise<SlotEntry[]>;
  /** Inserts `entry`; false if its (kind, scope, slot, generation) is taken (another claimant won). */
  insertSlot(entry: SlotEntry): Promise<boolean>;
  /**
   * For each of `holders` whose record exists: whether it still counts (a pending or running job, a
   * live key, a listing; any job for `escrow`). Holders without a record are left out.
   */
  holderStates(kind: SlotKind, holders: readonly string[], now: Date): Promise<Map<string, boolean>>;
}

/**
 * How long a claim holds before its record exists. Creating a job (initial weights, checkpoint), a
 * key or a listing takes seconds; a node that dies mid-creation frees its claims after this.
 */
export const CREATION_CLAIM_PENDING_MS = 10 * 60_000;

/** Contended claims re-read the slots at most this often before giving up (STORE_UNAVAILABLE: retry). */
const MAX_CLAIM_ROUNDS = 8;

/** The latest generation of each slot. */
function latestOf(entries: readonly SlotEntry[]): SlotEntry[] {
  const latest = new Map<number, SlotEntry>();
  for (const e of entries) {
    const seen = latest.get(e.slot);
    if (!seen || e.generation > seen.generation) latest.set(e.slot, e);
  }
  return [...latest.values()];
}

/** The latest entries whose holders still count, by `claim`'s clock. */
async function heldSlots(backend: SlotBackend, claim: SlotClaim, latest: readonly SlotEntry[]): Promise<SlotEntry[]> {
  const holders = latest.flatMap((e) => (e.holder === null ? [] : [e.holder]));
  const states = holders.length > 0 ? await backend.holderStates(claim.kind, holders, claim.now) : new Map();
  const now = claim.now.getTime();
  return latest.filter(
    (e) => e.holder !== null && (states.get(e.holder) ?? e.claimedAt.getTime() + claim.pendingMs > now),
  );
}

/**
 * Takes a free slot of (kind, scope) for `claim.holder`: the store-side half of every cluster-wide
 * admission rule (one job per escrow job, per-owner quotas). A quota of N is N slots; each slot is a
 * chain of generations, and taking a slot inserts its next generation under a unique key, so of
 * claimants racing for one slot, on one node or many, exactly one insert succeeds. No conditional
 * update is needed (FerretDB does not make those atomic; unique inserts it does, as the leases rely
 * on). Generations are never deleted: a claimant holding a stale view tries a generation that
 * exists and loses, which is what makes the insert a compare-and-swap. A slot is free when its
 * latest generation was released, its holder's record ended, or the record never appeared within
 * `pendingMs` (the creating node died mid-creation).
 */
export async function claimSlot(backend: SlotBackend, claim: SlotClaim): Promise<SlotClaimResult> {
  for (let round = 0; round < MAX_CLAIM_ROUNDS; round++) {
    const latest = latestOf(await backend.slotEntries(claim.kind, claim.scope));
    const held = await heldSlots(backend, claim, latest);
    if (held.some((e) => e.holder === claim.holder)) return { outcome: 'held' };
    if (held.length >= claim.limit) return { outcome: 'refused', holders: held.map((e) => e.holder as string) };
    const taken = new Set(held.map((e) => e.slot));
    for (let slot = 0; slot < claim.limit; slot++) {
      if (taken.has(slot)) continue;
      const generation = (latest.find((e) => e.slot === slot)?.generation ?? -1) + 1;
      const entry = {
        kind: claim.kind,
        scope: claim.scope,
        slot,
        generation,
        holder: claim.holder,
        claimedAt: claim.now,
      };
      if (await backend.insertSlot(entry)) return { outcome: 'claimed' };
    }
    // Every free slot went to another claimant meanwhile: look again.
  }
  throw new TributaryError(
    'STORE_UNAVAILABLE',
    `The ${claim.kind} slots of ${claim.scope.slice(0, 80)} are contended; retry shortly.`,
  );
}

/** Frees the slot `holder` holds by appending a released generation; a no-op if it holds none. */
export async function releaseSlot(backend: SlotBackend, kind: SlotKind, scope: string, holder: string): Promise<void> {
  const latest = latestOf(await backend.slotEntries(kind, scope));
  for (const e of latest) {
    if (e.holder !== holder) continue;
    // Losing this insert means another claimant already took the slot over: released either way.
    await backend.insertSlot({ ...e, generation: e.generation + 1, holder: null, claimedAt: new Date() });
  }
}

/** The scope of an escrow job's claim slot: one job per (chain, escrow contract, escrow job). */
export function escrowScopeOf(chain: { chainId: number; escrow: string; jobId: string }): string {
  return `${chain.chainId}:${chain.escrow.toLowerCase()}:${chain.jobId}`;
}
