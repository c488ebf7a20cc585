import { createHash } from 'node:crypto';
import { z } from 'zod';
import { LIMITS } from '../shared/schemas/jobSpec';
import type { DecryptRefusalReason } from '../shared/schemas/messages';
import type { DecryptedAttempt } from './keyHolderLedger';

/**
 * The key holder's rules for a decryption request, as pure functions of the request, the job's
 * state as the coordinator publishes it (REST) and the key holder's own ledger (no I/O here; the
 * I/O is client/keyHolder.ts). docs/secure-aggregation.md explains each rule and what it still
 * trusts. In order:
 * 1. the contributors are distinct, at least the job's minClients, at most its maxClients;
 * 2. the claimed selection is distinct, at most maxClients, and contains every contributor;
 * 3. the job is running, the round is its next round (currentRound + 1) and the attempt is the one
 *    after the round's recorded attempts;
 * 4. every attempt decrypted before is now in the coordinator's records with the selection it was
 *    claimed with (and, once completed, exactly its contributors as participants): a coordinator
 *    that showed the key holder another selection than the one it publishes is caught, and the key
 *    holder decrypts nothing more for the job;
 * 5. within one round, the contributors of two decrypted attempts are equal or disjoint, so the
 *    difference of two decrypted sums is never the sum of a smaller set of clients;
 * 6. (once the ciphertexts arrived) a round attempt is decrypted at most once: only the same
 *    contributions, resent after a reconnect, are decrypted again.
 * Signatures, ciphertext validity and the product are checked as the ciphertexts arrive.
 */

/** Domain tag of the digest that identifies one decryption's contributions. */
export const CONTRIBUTIONS_DIGEST_DOMAIN = 'tributary/paillier/v1/contributions';

/** A refusal: the coded reason and a message saying what was expected and what arrived. */
export interface Refusal {
  reason: DecryptRefusalReason;
  message: string;
}

const ClientIdList = z.array(z.string().max(64)).max(LIMITS.maxClientsPerRound);

/** GET /v1/jobs/:id, the fields the key holder reads (the coordinator's answers are a trust boundary). */
export const JobViewSchema = z.object({
  status: z.enum(['pending', 'running', 'completed', 'failed']),
  currentRound: z.number().int().min(0).max(LIMITS.maxRounds),
});

/** GET /v1/jobs/:id/rounds, the fields the key holder reads. */
export const RoundsViewSchema = z.object({
  rounds: z
    .array(
      z.object({
        round: z.number().int().positive().max(LIMITS.maxRounds),
        attempt: z.number().int().min(0),
        status: z.enum(['completed', 'failed']),
        selected: ClientIdList,
        participants: ClientIdList,
      }),
    )
    .max(1_000_000),
});

/** The job as its coordinator publishes it. */
export interface JobStateView {
  status: z.infer<typeof JobViewSchema>['status'];
  currentRound: number;
  rounds: z.infer<typeof RoundsViewSchema>['rounds'];
}

/** The part of a decryption request the rules look at. */
export interface RequestView {
  round: number;
  attempt: number;
  selected: readonly string[];
  contributors: readonly string[];
}

/** The job spec fields the rules use. */
export interface PolicyLimits {
  minClients: number;
  maxClients: number;
}

const sorted = (ids: Iterable<string>): string[] => [...ids].sort();
const sameSet = (a: readonly string[], b: readonly string[]): boolean => {
  const x = new Set(a);
  return x.size === new Set(b).size && b.every((id) => x.has(id));
};
const short = (id: string): string => `${id.slice(0, 12)}…`;

/** SHA-256 hex identifying a decryption's contributions: job, round, attempt, each (client id, ciphertext digest), sorted. */
export function contributionsDigest(
  jobId: string,
  round: number,
  attempt: number,
  contributions: readonly { clientId: string; digest: string }[],
): string {
  const pairs = contributions.map((c) => [c.clientId, c.digest]).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  return createHash('sha256')
    .update(JSON.stringify([CONTRIBUTIONS_DIGEST_DOMAIN, jobId, round, attempt, pairs]), 'utf8')
    .digest('hex');
}

/** Rules 1-5 (before any ciphertext is looked at): null when the request may proceed. */
export function checkDecryptRequest(
  request: RequestView,
  limits: PolicyLimits,
  job: JobStateView,
  ledger: readonly DecryptedAttempt[],
): Refusal | null {
  const { round, attempt } = request;
  const contributors = new Set(request.contributors);
  if (contributors.size !== request.contributors.length) {
    return { reason: 'duplicate-contributor', message: 'a client id appears twice among the contributors' };
  }
  if (contributors.size < limits.minClients) {
    return {
      reason: 'too-few-clients',
      message: `an aggregate of ${contributors.size} client(s) is fewer than the job's minClients (${limits.minClients})`,
    };
  }
  if (contributors.size > limits.maxClients) {
    return {
      reason: 'malformed',
      message: `${contributors.size} contributors are more than the job's maxClients (${limits.maxClients})`,
    };
  }
  const selected = new Set(request.selected);
  if (selected.size !== request.selected.length || selected.size > limits.maxClients) {
    return {
      reason: 'not-selected',
      message: `the claimed selection of ${request.selected.length} client(s) is not ${limits.maxClients} or fewer distinct clients`,
    };
  }
  const unselected = [...contributors].filter((id) => !selected.has(id));
  if (unselected.length > 0) {
    return {
      reason: 'not-selected',
      message: `${unselected.length} contributor(s) were not selected for round ${round} attempt ${attempt} (${unselected.map(short).join(', ')})`,
    };
  }
  if (job.status !== 'running') {
    return { reason: 'job-not-running', message: `the job is ${job.status}, not running` };
  }
  if (round !== job.currentRound + 1) {
    return {
      reason: 'round-not-next',
      message: `round ${round} is not the job's next round (${job.currentRound + 1}: ${job.currentRound} committed)`,
    };
  }
  const recorded = job.rounds.filter((r) => r.round === round);
  if (attempt !== recorded.length || recorded.some((r) => r.attempt >= attempt)) {
    return {
      reason: 'attempt-not-next',
      message: `attempt ${attempt} of round ${round} does not follow the ${recorded.length} recorded attempt(s) (the next is ${recorded.length})`,
    };
  }
  for (const earlier of ledger) {
    if (earlier.round === round && earlier.attempt === attempt) continue;
    const record = job.rounds.find((r) => r.round === earlier.round && r.attempt === earlier.attempt);
    const where = `round ${earlier.round} attempt ${earlier.attempt}`;
    if (!record) {
      return {
        reason: 'record-diverges',
        message: `${where} was decrypted but the coordinator has no record of it`,
      };
    }
    if (!sameSet(record.selected, earlier.selected)) {
      return {
        reason: 'record-diverges',
        message: `${where} was decrypted for a selection of ${earlier.selected.length} client(s); the coordinator records ${record.selected.length} other(s)`,
      };
    }
    if (record.status === 'completed' && !sameSet(record.participants, earlier.contributors)) {
      return {
        reason: 'record-diverges',
        message: `${where} was decrypted over ${earlier.contributors.length} contributor(s); the coordinator records other participants`,
      };
    }
  }
  for (const earlier of ledger) {
    if (earlier.round !== round || earlier.attempt === attempt) continue;
    const shared = earlier.contributors.filter((id) => contributors.has(id)).length;
    if (shared > 0 && !sameSet(earlier.contributors, [...contributors])) {
      return {
        reason: 'overlaps-decrypted',
        message: `${shared} contributor(s) also contributed to decrypted attempt ${earlier.attempt} of round ${round}, whose contributors differ: the difference of the two sums would be the sum of the clients in one and not the other`,
      };
    }
  }
  const same = ledger.find((e) => e.round === round && e.attempt === attempt);
  if (same && !sameSet(same.contributors, [...contributors])) {
    return {
      reason: 'already-decrypted',
      message: `round ${round} attempt ${attempt} was already decrypted with other contributors`,
    };
  }
  return null;
}

/** Rule 6 (the contributions' digest known): null when this attempt was not decrypted, or with exactly these contributions. */
export function checkNotDecryptedBefore(
  round: number,
  attempt: number,
  digest: string,
  ledger: readonly DecryptedAttempt[],
): Refusal | null {
  const same = ledger.find((e) => e.round === round && e.attempt === attempt);
  if (same && same.digest !== digest) {
    return {
      reason: 'already-decrypted',
      message: `round ${round} attempt ${attempt} was already decrypted with other ciphertexts`,
    };
  }
  return null;
}

/** The ledger entry of a decryption about to happen. */
export function ledgerEntry(request: RequestView, digest: string, now: Date): DecryptedAttempt {
  return {
    round: request.round,
    attempt: request.attempt,
    digest,
    contributors: sorted(request.contributors),
    selected: sorted(request.selected),
    decryptedAt: now.toISOString(),
  };
}
