import type { DecryptedAttempt } from './keyHolderLedger';
import {
  checkDecryptRequest,
  checkNotDecryptedBefore,
  contributionsDigest,
  type JobStateView,
  ledgerEntry,
  type RequestView,
} from './keyHolderPolicy';

const id = (c: string) => c.repeat(64);
const [A, B, C, D, E] = ['a', 'b', 'c', 'd', 'e'].map(id);
const limits = { minClients: 3, maxClients: 5 };
const running: JobStateView = { status: 'running', currentRound: 0, rounds: [] };
const request = (over: Partial<RequestView> = {}): RequestView => ({
  round: 1,
  attempt: 0,
  selected: [A, B, C, D],
  contributors: [A, B, C],
  ...over,
});
const reasonOf = (r: RequestView, job: JobStateView = running, ledger: DecryptedAttempt[] = []) =>
  checkDecryptRequest(r, limits, job, ledger)?.reason ?? null;
const entry = (over: Partial<DecryptedAttempt>): DecryptedAttempt => ({
  ...ledgerEntry(request(), 'f'.repeat(64), new Date(0)),
  ...over,
});
const record = (
  round: number,
  attempt: number,
  status: 'completed' | 'failed',
  selected: string[],
  participants: string[],
) => ({
  round,
  attempt,
  status,
  selected,
  participants,
});

describe('the key holder policy', () => {
  it('accepts minClients distinct selected contributors for the next round attempt', () => {
    expect(reasonOf(request())).toBeNull();
    expect(reasonOf(request({ contributors: [A, B, C, D] }))).toBeNull();
  });

  it('refuses a single client, fewer than minClients, duplicates and more than maxClients', () => {
    expect(reasonOf(request({ contributors: [A] }))).toBe('too-few-clients');
    expect(reasonOf(request({ contributors: [A, B] }))).toBe('too-few-clients');
    expect(reasonOf(request({ contributors: [] }))).toBe('too-few-clients');
    expect(reasonOf(request({ contributors: [A, A, B] }))).toBe('duplicate-contributor');
    const six = ['1', '2', '3', '4', '5', '6'].map(id);
    expect(reasonOf(request({ contributors: six, selected: six }))).toBe('malformed');
  });

  it('refuses contributors outside the claimed selection, and selections that are not a job selection', () => {
    expect(reasonOf(request({ contributors: [A, B, E] }))).toBe('not-selected');
    expect(reasonOf(request({ selected: [] }))).toBe('not-selected');
    expect(reasonOf(request({ selected: [A, B, C, C] }))).toBe('not-selected');
    expect(reasonOf(request({ selected: [A, B, C, D, E, id('f')] }))).toBe('not-selected');
  });

  it('refuses rounds and attempts that are not the next, and jobs that are not running', () => {
    expect(reasonOf(request({ round: 2 }))).toBe('round-not-next');
    expect(reasonOf(request({ attempt: 1 }))).toBe('attempt-not-next');
    expect(reasonOf(request(), { ...running, status: 'completed' })).toBe('job-not-running');
    expect(reasonOf(request(), { ...running, status: 'pending' })).toBe('job-not-running');
    const afterOne: JobStateView = {
      status: 'running',
      currentRound: 1,
      rounds: [record(1, 0, 'completed', [A, B, C, D], [A, B, C])],
    };
    expect(reasonOf(request({ round: 1 }), afterOne)).toBe('round-not-next');
    expect(reasonOf(request({ round: 2 }), afterOne)).toBeNull();
    const oneFailed: JobStateView = { ...running, rounds: [record(1, 0, 'failed', [A, B, C, D], [])] };
    expect(reasonOf(request({ attempt: 0 }), oneFailed)).toBe('attempt-not-next');
    expect(reasonOf(request({ attempt: 2 }), oneFailed)).toBe('attempt-not-next');
    expect(reasonOf(request({ attempt: 1 }), oneFailed)).toBeNull();
  });

  it("refuses once an earlier decryption is missing from, or differs from, the coordinator's records", () => {
    const decrypted = [entry({ round: 1, attempt: 0, selected: [A, B, C, D].sort(), contributors: [A, B, C].sort() })];
    const honest: JobStateView = {
      status: 'running',
      currentRound: 1,
      rounds: [record(1, 0, 'completed', [D, C, B, A], [C, B, A])],
    };
    expect(reasonOf(request({ round: 2 }), honest, decrypted)).toBeNull();
    const otherSelection = { ...honest, rounds: [record(1, 0, 'completed', [A, B, C, E], [A, B, C])] };
    expect(reasonOf(request({ round: 2 }), otherSelection, decrypted)).toBe('record-diverges');
    const otherParticipants = { ...honest, rounds: [record(1, 0, 'completed', [A, B, C, D], [A, B, D])] };
    expect(reasonOf(request({ round: 2 }), otherParticipants, decrypted)).toBe('record-diverges');
    const unrecorded: JobStateView = { status: 'running', currentRound: 1, rounds: [] };
    expect(reasonOf(request({ round: 2 }), unrecorded, decrypted)).toBe('record-diverges');
    // A failed attempt's participants may differ from the contributors (nothing was committed); its selection may not.
    const failedAfter: JobStateView = { ...running, rounds: [record(1, 0, 'failed', [A, B, C, D], [A, B, C, D])] };
    expect(reasonOf(request({ attempt: 1 }), failedAfter, decrypted)).toBeNull();
  });

  it('refuses a retry whose contributors partly overlap a decrypted attempt of the same round; equal or disjoint sets pass', () => {
    const decrypted = [
      entry({ round: 1, attempt: 0, selected: [A, B, C, D, E].sort(), contributors: [A, B, C].sort() }),
    ];
    const job: JobStateView = { ...running, rounds: [record(1, 0, 'failed', [A, B, C, D, E], [A, B, C])] };
    const all = [A, B, C, D, E];
    expect(reasonOf(request({ attempt: 1, selected: all, contributors: [A, B, C, D] }), job, decrypted)).toBe(
      'overlaps-decrypted',
    );
    expect(reasonOf(request({ attempt: 1, selected: all, contributors: [C, B, A] }), job, decrypted)).toBeNull();
    const disjoint = [id('1'), id('2'), id('3')];
    expect(reasonOf(request({ attempt: 1, selected: disjoint, contributors: disjoint }), job, decrypted)).toBeNull();
  });

  it('refuses the same round attempt with other contributors or other ciphertexts, and allows an identical resend', () => {
    const digest = contributionsDigest('j', 1, 0, [
      { clientId: A, digest: '1'.repeat(64) },
      { clientId: B, digest: '2'.repeat(64) },
      { clientId: C, digest: '3'.repeat(64) },
    ]);
    const decrypted = [entry({ digest })];
    expect(reasonOf(request({ contributors: [A, B, D] }), running, decrypted)).toBe('already-decrypted');
    expect(reasonOf(request(), running, decrypted)).toBeNull();
    // The digest does not depend on the order of the contributions, and covers every ciphertext digest.
    const reordered = contributionsDigest('j', 1, 0, [
      { clientId: C, digest: '3'.repeat(64) },
      { clientId: A, digest: '1'.repeat(64) },
      { clientId: B, digest: '2'.repeat(64) },
    ]);
    expect(checkNotDecryptedBefore(1, 0, reordered, decrypted)).toBeNull();
    const other = contributionsDigest('j', 1, 0, [
      { clientId: A, digest: '1'.repeat(64) },
      { clientId: B, digest: '2'.repeat(64) },
      { clientId: C, digest: '4'.repeat(64) },
    ]);
    expect(checkNotDecryptedBefore(1, 0, other, decrypted)?.reason).toBe('already-decrypted');
    expect(checkNotDecryptedBefore(1, 1, other, decrypted)).toBeNull();
    expect(contributionsDigest('j', 1, 1, [{ clientId: A, digest: '1'.repeat(64) }])).not.toBe(
      contributionsDigest('j', 1, 0, [{ clientId: A, digest: '1'.repeat(64) }]),
    );
  });
});
