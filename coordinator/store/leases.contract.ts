import { randomUUID } from 'node:crypto';
import { hasCode } from '../../shared/errors';
import { initialChainJobStatus } from '../chain/chainJobStatus';
import {
  chainLeaseLog,
  type ChainStateRecord,
  type CheckpointRecord,
  type JobRecord,
  type RoundRecord,
  type Store,
  type TranscriptRecord,
} from './store';

/*
 * The cluster part of the Store contract (registered by runStoreContract, so it runs against every
 * backend): job leases are taken with one conditional update (no lease or an expired one), renewed
 * only by their holder, and every takeover raises the fencing token; fenced writes (the round
 * pointer, checkpoints, transcripts) carrying an older token are refused with LEASE_LOST and change nothing.
 * Chain leases (a paid job's chain worker) follow the same rules on a log of their own, for a job of
 * any status until its chain work is stored as done; the stored chain state is fenced alike.
 */

const T0 = new Date(Date.UTC(2031, 0, 1, 0, 0, 0));
const at = (ms: number) => new Date(T0.getTime() + ms);
const claim = (owner: string, ms: number, ttlMs = 1_000) => ({
  owner,
  url: `http://${owner}.test`,
  ttlMs,
  now: at(ms),
});

function checkpoint(jobId: string, round: number, fence: number | undefined, byte: number): CheckpointRecord {
  return {
    jobId,
    round,
    modelHash: String(byte).padStart(64, '0'),
    weights: new Uint8Array([byte, byte, byte]),
    createdAt: at(round),
    ...(fence !== undefined ? { fence } : {}),
  };
}

function transcript(jobId: string, round: number, fence: number, text: string): TranscriptRecord {
  return {
    jobId,
    round,
    kind: 'round',
    hash: 'e'.repeat(64),
    text,
    signature: 'c'.repeat(128),
    signer: 'd'.repeat(64),
    fence,
    createdAt: at(0),
  };
}

async function expectLeaseLost(write: Promise<unknown>): Promise<void> {
  const err = await write.then(
    () => null,
    (e: unknown) => e,
  );
  expect(hasCode(err, 'LEASE_LOST')).toBe(true);
}

/** Registers the lease and fencing contract tests on the store `getStore` returns. */
export function describeLeaseContract(
  getStore: () => Store,
  makeJob: (overrides?: Partial<JobRecord>) => JobRecord,
  makeRound: (jobId: string, round: number, attempt: number) => RoundRecord,
): void {
  describe('job leases and fencing tokens', () => {
    const runningJob = async (): Promise<JobRecord> => {
      const job = makeJob({ id: `job_lease-${randomUUID()}`, status: 'running' });
      await getStore().createJob(job);
      return job;
    };

    it('grants a free lease with token 1, refuses a second node while it is live, hands it over with token 2 once expired', async () => {
      const store = getStore();
      const job = await runningJob();
      expect(await store.getJobLease(job.id)).toBeNull();
      const a = await store.acquireJobLease(job.id, claim('a', 0));
      expect(a).toEqual({ owner: 'a', url: 'http://a.test', token: 1, expiresAt: at(1_000) });
      expect(await store.acquireJobLease(job.id, claim('b', 999))).toBeNull();
      // The holder itself cannot re-acquire a live lease either: acquiring is a takeover, renewing is not.
      expect(await store.acquireJobLease(job.id, claim('a', 500))).toBeNull();
      const b = await store.acquireJobLease(job.id, claim('b', 1_000));
      expect(b).toEqual({ owner: 'b', url: 'http://b.test', token: 2, expiresAt: at(2_000) });
      expect(await store.getJobLease(job.id)).toEqual(b);
    });

    it('lets only one of many concurrent claimants win a free lease', async () => {
      const store = getStore();
      const job = await runningJob();
      const results = await Promise.all(
        ['n1', 'n2', 'n3', 'n4', 'n5'].map((n) => store.acquireJobLease(job.id, claim(n, 0))),
      );
      const winners = results.filter((r) => r !== null);
      expect(winners).toHaveLength(1);
      expect(winners[0]!.token).toBe(1);
      expect((await store.getJobLease(job.id))!.owner).toBe(winners[0]!.owner);
    });

    it('renews only for the holder with its token, and never after another node took over', async () => {
      const store = getStore();
      const job = await runningJob();
      const a = (await store.acquireJobLease(job.id, claim('a', 0)))!;
      expect(await store.renewJobLease(job.id, 'a', a.token, { ttlMs: 1_000, now: at(800) })).toMatchObject({
        expiresAt: at(1_800),
        token: 1,
      });
      expect(await store.renewJobLease(job.id, 'b', a.token, { ttlMs: 1_000, now: at(800) })).toBeNull();
      expect(await store.renewJobLease(job.id, 'a', a.token + 1, { ttlMs: 1_000, now: at(800) })).toBeNull();
      // Expired and taken: the old holder's renewal (a paused node waking up) fails.
      await store.acquireJobLease(job.id, claim('b', 1_800));
      expect(await store.renewJobLease(job.id, 'a', a.token, { ttlMs: 1_000, now: at(1_900) })).toBeNull();
      expect((await store.getJobLease(job.id))!.owner).toBe('b');
    });

    it('release expires the lease at once for the holder only', async () => {
      const store = getStore();
      const job = await runningJob();
      const a = (await store.acquireJobLease(job.id, claim('a', 0, 60_000)))!;
      await store.releaseJobLease(job.id, 'b', a.token);
      expect(await store.acquireJobLease(job.id, claim('b', 10))).toBeNull();
      await store.releaseJobLease(job.id, 'a', a.token);
      expect(await store.acquireJobLease(job.id, claim('b', 10))).toMatchObject({ owner: 'b', token: 2 });
    });

    it('preempts a live lease only when asked: the new token fences the holder out at once', async () => {
      const store = getStore();
      const job = await runningJob();
      const a = (await store.acquireJobLease(job.id, claim('a', 0, 60_000)))!;
      expect(await store.acquireJobLease(job.id, claim('b', 10))).toBeNull();
      const b = await store.acquireJobLease(job.id, { ...claim('b', 10), preempt: true });
      expect(b).toMatchObject({ owner: 'b', token: a.token + 1 });
      // The former holder, though its lease had not run out, can neither renew nor commit.
      expect(await store.renewJobLease(job.id, 'a', a.token, { ttlMs: 60_000, now: at(20) })).toBeNull();
      await expectLeaseLost(store.appendRoundCommit(job.id, a.token, makeRound(job.id, 1, 1)));
      expect(await store.lastRoundCommit(job.id)).toBeNull();
    });

    it('grants no lease on a job that is not running', async () => {
      const store = getStore();
      const job = makeJob({ id: `job_lease-${randomUUID()}`, status: 'completed' });
      await store.createJob(job);
      expect(await store.acquireJobLease(job.id, claim('a', 0))).toBeNull();
    });

    it('appends a round commit only for the current token: a former owner is refused and nothing is appended', async () => {
      const store = getStore();
      const job = await runningJob();
      expect(await store.lastRoundCommit(job.id)).toBeNull();
      const a = (await store.acquireJobLease(job.id, claim('a', 0)))!;
      const r1 = makeRound(job.id, 1, 0);
      await store.appendRoundCommit(job.id, a.token, r1);
      expect(await store.lastRoundCommit(job.id)).toEqual({ token: 1, record: r1 });
      const b = (await store.acquireJobLease(job.id, claim('b', 5_000)))!;
      // The former owner, paused past its lease, wakes up and commits round 2: refused.
      await expectLeaseLost(store.appendRoundCommit(job.id, a.token, makeRound(job.id, 2, 0)));
      expect(await store.lastRoundCommit(job.id)).toEqual({ token: 1, record: r1 });
      const r2 = makeRound(job.id, 2, 1);
      await store.appendRoundCommit(job.id, b.token, r2);
      expect(await store.lastRoundCommit(job.id)).toEqual({ token: 2, record: r2 });
      // A token no takeover ever issued is refused too.
      await expectLeaseLost(store.appendRoundCommit(job.id, 7, makeRound(job.id, 3, 0)));
      // The lease is the latest takeover even with commits after it.
      expect(await store.getJobLease(job.id)).toEqual(b);
    });

    it('lets exactly one of a racing takeover and a former owner commit win', async () => {
      const store = getStore();
      for (let i = 0; i < 5; i++) {
        const job = await runningJob();
        const a = (await store.acquireJobLease(job.id, claim('a', 0)))!;
        const [commit, takeover] = await Promise.allSettled([
          store.appendRoundCommit(job.id, a.token, makeRound(job.id, 1, 0)),
          store.acquireJobLease(job.id, claim('b', 2_000)),
        ]);
        const committed = commit.status === 'fulfilled';
        const took = takeover.status === 'fulfilled' && takeover.value !== null;
        if (committed) expect((await store.lastRoundCommit(job.id))!.token).toBe(1);
        else {
          // Refused only because the takeover got in first.
          expect(hasCode((commit as PromiseRejectedResult).reason, 'LEASE_LOST')).toBe(true);
          expect(took).toBe(true);
          expect(await store.lastRoundCommit(job.id)).toBeNull();
        }
        // Once the takeover is in, the former owner can commit nothing more.
        if (took) await expectLeaseLost(store.appendRoundCommit(job.id, a.token, makeRound(job.id, 2, 0)));
        expect(committed || took).toBe(true);
      }
    });

    it("refuses a checkpoint or transcript with an older fence than the stored one's, keeping the newer bytes", async () => {
      const store = getStore();
      const jobId = `job_fence-${randomUUID()}`;
      await store.saveCheckpoint(checkpoint(jobId, 3, 1, 11));
      // A newer owner (token 2) redoes round 3: allowed, it replaces the older tenure's checkpoint.
      await store.saveCheckpoint(checkpoint(jobId, 3, 2, 22));
      // The former owner (token 1) wakes up and writes round 3 again: refused.
      await expectLeaseLost(store.saveCheckpoint(checkpoint(jobId, 3, 1, 33)));
      const kept = (await store.loadCheckpoint(jobId, 3))!;
      expect([...kept.weights]).toEqual([22, 22, 22]);
      expect(kept.fence).toBe(2);
      // A fresh key is free for any fence; unfenced writes (a single node) are never refused.
      await store.saveCheckpoint(checkpoint(jobId, 4, 1, 44));
      await store.saveCheckpoint(checkpoint(jobId, 4, undefined, 55));
      expect([...(await store.loadCheckpoint(jobId, 4))!.weights]).toEqual([55, 55, 55]);

      // Round records: a former owner's failed attempt cannot replace the new owner's completed record.
      const done = makeRound(jobId, 3, 1);
      await store.saveRound(done, { fence: 2 });
      await expectLeaseLost(store.saveRound({ ...done, status: 'failed', failureReason: 'stale' }, { fence: 1 }));
      expect(await store.listRounds(jobId)).toEqual([done]);

      await store.saveTranscript(transcript(jobId, 3, 2, 'by b'));
      await expectLeaseLost(store.saveTranscript(transcript(jobId, 3, 1, 'by a')));
      expect((await store.loadTranscript(jobId, 3, 'round'))!.text).toBe('by b');
      await store.saveTranscript(transcript(jobId, 3, 3, 'by c'));
      expect((await store.loadTranscript(jobId, 3, 'round'))!.text).toBe('by c');
    });
  });
  describe('chain leases and the stored chain state', () => {
    const CHAIN = {
      jobId: '1',
      chainId: 31337,
      escrow: '0xAbCdEf0123456789aBcDeF0123456789AbCdEf01',
      authorization: { signature: `0x${'1b'.repeat(65)}` },
    };
    const paidJob = async (status: JobRecord['status']): Promise<JobRecord> => {
      const base = makeJob();
      const job = makeJob({ id: `job_chainlease-${randomUUID()}`, status, spec: { ...base.spec, chain: CHAIN } });
      await getStore().createJob(job);
      return job;
    };
    const state = (
      jobId: string,
      settlement: 'waiting' | 'settled',
      done: boolean,
      fence?: number,
    ): ChainStateRecord => {
      const status = initialChainJobStatus(CHAIN, '0x0000000000000000000000000000000000000001', true);
      status.settlement.status = settlement;
      return { jobId, status, done, updatedAt: at(0), ...(fence !== undefined ? { fence } : {}) };
    };

    it('grants a chain lease on a paid job of any status until its chain work is done, one winner among racing nodes', async () => {
      const store = getStore();
      // A completed job still has chain work (commits, settlement); an unpaid job has none.
      const job = await paidJob('completed');
      const unpaid = makeJob({ id: `job_chainlease-${randomUUID()}`, status: 'running' });
      await store.createJob(unpaid);
      expect(await store.acquireChainLease(unpaid.id, claim('a', 0))).toBeNull();
      const results = await Promise.all(
        ['n1', 'n2', 'n3', 'n4'].map((n) => store.acquireChainLease(job.id, claim(n, 0))),
      );
      const winners = results.filter((r) => r !== null);
      expect(winners).toHaveLength(1);
      expect(winners[0]!.token).toBe(1);
      expect(await store.getJobLease(chainLeaseLog(job.id))).toEqual(winners[0]);
      // Live: refused; expired: taken over with the next token.
      expect(await store.acquireChainLease(job.id, claim('x', 999))).toBeNull();
      const next = await store.acquireChainLease(job.id, claim('x', 1_000));
      expect(next).toMatchObject({ owner: 'x', token: 2 });
      // The former holder can no longer renew it.
      expect(
        await store.renewJobLease(chainLeaseLog(job.id), winners[0]!.owner, 1, { ttlMs: 1_000, now: at(1_100) }),
      ).toBeNull();
      // Once the chain state is stored as done, nobody takes the chain lease again, even expired.
      await store.saveChainState(state(job.id, 'settled', true, 2));
      expect(await store.acquireChainLease(job.id, claim('y', 60_000))).toBeNull();
    });

    it("keeps the job lease and the chain lease apart: neither's takeover fences the other", async () => {
      const store = getStore();
      const job = await paidJob('running');
      const runner = (await store.acquireJobLease(job.id, claim('a', 0)))!;
      const chain = (await store.acquireChainLease(job.id, claim('b', 0)))!;
      expect([runner.token, chain.token]).toEqual([1, 1]);
      await store.appendRoundCommit(job.id, runner.token, makeRound(job.id, 1, 0));
      expect(
        await store.renewJobLease(chainLeaseLog(job.id), 'b', chain.token, { ttlMs: 1_000, now: at(500) }),
      ).toMatchObject({
        owner: 'b',
      });
      expect(await store.getJobLease(job.id)).toMatchObject({ owner: 'a', token: 1 });
      await store.releaseJobLease(chainLeaseLog(job.id), 'b', chain.token);
      expect(await store.acquireChainLease(job.id, claim('c', 600))).toMatchObject({ owner: 'c', token: 2 });
      expect(await store.getJobLease(job.id)).toMatchObject({ owner: 'a', token: 1 });
    });

    it("refuses a chain state with an older fence than the stored one's, keeping the newer holder's", async () => {
      const store = getStore();
      const job = await paidJob('completed');
      expect(await store.loadChainState(job.id)).toBeNull();
      await store.saveChainState(state(job.id, 'waiting', false, 1));
      await store.saveChainState(state(job.id, 'settled', true, 2));
      // The former holder (token 1), paused past its lease, stores its stale view: refused.
      await expectLeaseLost(store.saveChainState(state(job.id, 'waiting', false, 1)));
      const kept = (await store.loadChainState(job.id))!;
      expect(kept).toMatchObject({ jobId: job.id, done: true, fence: 2 });
      expect(kept.status.settlement.status).toBe('settled');
      expect(kept.status.lastRpcError).toBeNull();
      expect(kept.status.commits).toEqual([]);
    });
  });
}
