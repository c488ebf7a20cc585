import { randomUUID } from 'node:crypto';
import { canonicalSpecHash } from '../../contracts/escrowBinding';
import { TributaryError } from '../../shared/errors';
import type { JobSpec } from '../../shared/schemas/jobSpec';
import { describeAccessControlContract } from './accessControl.contract';
import { describeListingContract } from './listings.contract';
import { describeLeaseContract } from './leases.contract';
import { describeSlotClaimContract } from './slotClaims.contract';
import { describeTranscriptContract } from './transcripts.contract';
import type { CheckpointRecord, JobRecord, ParticipantRecord, RoundRecord, Store } from './store';

/*
 * The one behavioural contract every Store backend must meet. A backend's test file calls
 * `runStoreContract` with a factory; the same tests then run against it.
 *
 * Every test works on fresh, unique job ids, so backends that share one database across tests (and
 * across test runs) stay correct: list results are filtered down to the ids a test created.
 */

/**
 * Registers the Store contract suite (jest describe/it) for one backend. `makeStore` may be called
 * more than once (most tests share the first store); every store it returns is closed in afterAll,
 * then `cleanup` runs. `sameData` opens another connection to the first store's data (two nodes on
 * one database); without it the races run on the first store alone.
 */
export function runStoreContract(
  name: string,
  makeStore: () => Promise<Store>,
  cleanup?: () => Promise<void>,
  sameData?: () => Promise<Store>,
): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    const opened: Store[] = [];
    const open = async (): Promise<Store> => {
      const s = await makeStore();
      opened.push(s);
      return s;
    };

    beforeAll(async () => {
      store = await open();
    });

    afterAll(async () => {
      for (const s of opened) await s.close();
      await cleanup?.();
    });

    describe('jobs', () => {
      it('creates a job and gets back an equal record with real Dates and no extra fields', async () => {
        const job = makeJob();
        await store.createJob(job);
        const got = await store.getJob(job.id);
        expect(got).toStrictEqual(job);
        expect(Object.keys(got!).sort()).toEqual(Object.keys(job).sort());
        expect(got!.createdAt).toBeInstanceOf(Date);
        expect(got!.createdAt.getTime()).toBe(job.createdAt.getTime());
        expect(got!.updatedAt.getTime()).toBe(job.updatedAt.getTime());
      });

      it('returns null for an unknown job id', async () => {
        expect(await store.getJob(uid('missing'))).toBeNull();
      });

      it('round-trips a nested JobSpec exactly (discriminated unions, free-form topology, empty objects)', async () => {
        const spec = nestedSpec();
        const job = makeJob({ spec, failureReason: 'kept as given' });
        await store.createJob(job);
        const got = await store.getJob(job.id);
        expect(got!.spec).toStrictEqual(nestedSpec());
        expect(got!.failureReason).toBe('kept as given');
        // The same spec must come back through listJobs and updateJob too.
        const listed = (await store.listJobs()).find((j) => j.id === job.id);
        expect(listed!.spec).toStrictEqual(nestedSpec());
        const updated = await store.updateJob(job.id, { status: 'running' });
        expect(updated.spec).toStrictEqual(nestedSpec());
      });

      it("keeps a paid job's spec hash: the canonical hash of the stored spec equals the one the buyer signed", async () => {
        const base = makeJob().spec;
        const spec: JobSpec = {
          ...base,
          // Key order differs from the canonical one on purpose; the hash must not care.
          chain: {
            jobId: '7',
            chainId: 31337,
            escrow: '0xAbCdEf0123456789aBcDeF0123456789AbCdEf01',
            budgetWei: '1000000000000000001',
            authorization: { signature: `0x${'1b'.repeat(65)}` },
          },
        };
        const job = makeJob({ spec });
        await store.createJob(job);
        const got = await store.getJob(job.id);
        expect(got!.spec.chain).toStrictEqual(spec.chain);
        expect(canonicalSpecHash(got!.spec)).toBe(canonicalSpecHash(spec));
      });

      it('rejects a second job with the same id and keeps the first', async () => {
        const job = makeJob({ modelHash: 'first' });
        await store.createJob(job);
        await expect(store.createJob({ ...job, modelHash: 'second' })).rejects.toBeInstanceOf(TributaryError);
        expect((await store.getJob(job.id))!.modelHash).toBe('first');
      });

      it('lists jobs newest first (ties by id) and filters by status', async () => {
        const tag = uid('list');
        const t = Date.UTC(2030, 0, 1);
        const jobs = [
          makeJob({ id: `${tag}-b`, status: 'running', createdAt: new Date(t + 1000) }),
          makeJob({ id: `${tag}-d`, status: 'pending', createdAt: new Date(t) }),
          makeJob({ id: `${tag}-c`, status: 'running', createdAt: new Date(t + 2000) }),
          makeJob({ id: `${tag}-a`, status: 'failed', createdAt: new Date(t + 1000) }),
        ];
        for (const job of jobs) await store.createJob(job);
        const mine = (list: JobRecord[]) => list.filter((j) => j.id.startsWith(tag)).map((j) => j.id);

        expect(mine(await store.listJobs())).toEqual([`${tag}-c`, `${tag}-a`, `${tag}-b`, `${tag}-d`]);
        expect(mine(await store.listJobs({}))).toEqual([`${tag}-c`, `${tag}-a`, `${tag}-b`, `${tag}-d`]);

        const running = await store.listJobs({ status: 'running' });
        expect(mine(running)).toEqual([`${tag}-c`, `${tag}-b`]);
        expect(running.every((j) => j.status === 'running')).toBe(true);
        expect(mine(await store.listJobs({ status: 'completed' }))).toEqual([]);
      });

      it('updates a job: applies the patch, bumps updatedAt, leaves everything else alone', async () => {
        const old = new Date(Date.UTC(2020, 5, 1));
        const job = makeJob({ createdAt: old, updatedAt: old });
        await store.createJob(job);
        const before = Date.now();

        const updated = await store.updateJob(job.id, {
          status: 'failed',
          currentRound: 7,
          modelHash: 'f'.repeat(64),
          failureReason: 'quorum not met',
        });
        expect(updated).toMatchObject({
          id: job.id,
          status: 'failed',
          currentRound: 7,
          modelHash: 'f'.repeat(64),
          failureReason: 'quorum not met',
        });
        expect(updated.updatedAt).toBeInstanceOf(Date);
        expect(updated.updatedAt.getTime()).toBeGreaterThanOrEqual(before);
        expect(updated.createdAt.getTime()).toBe(old.getTime());
        expect(updated.spec).toStrictEqual(job.spec);
        expect(updated.weightManifest).toStrictEqual(job.weightManifest);
        expect(await store.getJob(job.id)).toStrictEqual(updated);

        // A key given as undefined is not a change.
        const again = await store.updateJob(job.id, { currentRound: 8, failureReason: undefined });
        expect(again.currentRound).toBe(8);
        expect(again.failureReason).toBe('quorum not met');
        expect(again.status).toBe('failed');
      });

      it("round-trips a DP job's privacy state from creation and through updates (a resumed job continues from it)", async () => {
        const privacy = {
          accountant: { orders: [1.5, 2, 64], rdp: [0, 0, 0], rounds: 0 },
          clippingNorm: 0.1,
        };
        const job = makeJob({ privacy });
        await store.createJob(job);
        expect(await store.getJob(job.id)).toStrictEqual(job);
        const spent = {
          accountant: { orders: [1.5, 2, 64], rdp: [0.012345678901234, 0.5, 17.25], rounds: 3 },
          clippingNorm: 0.1234567890123,
        };
        const updated = await store.updateJob(job.id, { privacy: spent });
        expect(updated.privacy).toStrictEqual(spent);
        // Changing what was passed in changes nothing stored.
        spent.accountant.rdp[0] = 99;
        spent.clippingNorm = 5;
        const got = await store.getJob(job.id);
        expect(got!.privacy).toStrictEqual({
          accountant: { orders: [1.5, 2, 64], rdp: [0.012345678901234, 0.5, 17.25], rounds: 3 },
          clippingNorm: 0.1234567890123,
        });
        // Other patches leave it alone; a job without a privacy block has none.
        expect((await store.updateJob(job.id, { currentRound: 4 })).privacy).toStrictEqual(got!.privacy);
        const plain = makeJob();
        await store.createJob(plain);
        expect('privacy' in (await store.getJob(plain.id))!).toBe(false);
      });

      it('throws JOB_NOT_FOUND when updating an unknown job', async () => {
        const id = uid('missing');
        const attempt = store.updateJob(id, { status: 'running' });
        await expect(attempt).rejects.toBeInstanceOf(TributaryError);
        await expect(attempt).rejects.toMatchObject({ code: 'JOB_NOT_FOUND' });
        expect(await store.getJob(id)).toBeNull();
      });
    });

    describe('rounds', () => {
      it('upserts by (jobId, round, attempt) and lists by round then attempt', async () => {
        const jobId = uid('rounds');
        await store.saveRound(makeRound(jobId, 2, 1));
        await store.saveRound(makeRound(jobId, 1, 2));
        await store.saveRound(
          makeRound(jobId, 1, 1, {
            status: 'failed',
            failureReason: 'timeout',
            failures: [{ clientId: 'c9', reason: 'disconnect' }],
          }),
        );
        await store.saveRound(makeRound(jobId, 0, 1, { metrics: {} }));

        let rounds = await store.listRounds(jobId);
        expect(rounds.map((r) => [r.round, r.attempt])).toEqual([
          [0, 1],
          [1, 1],
          [1, 2],
          [2, 1],
        ]);
        expect(rounds[0]).toStrictEqual(makeRound(jobId, 0, 1, { metrics: {} }));
        expect(rounds[1].failures).toEqual([{ clientId: 'c9', reason: 'disconnect' }]);
        expect(rounds[1].startedAt).toBeInstanceOf(Date);

        // Redo of (1, 1): replaced whole, so the old failureReason and failures are gone.
        const redo = makeRound(jobId, 1, 1, { status: 'completed', metrics: { validationAccuracy: 0.91 } });
        await store.saveRound(redo);
        rounds = await store.listRounds(jobId);
        expect(rounds).toHaveLength(4);
        expect(rounds[1]).toStrictEqual(redo);
        expect(rounds[1].failureReason).toBeUndefined();
      });

      it('round-trips secure-aggregation cohort membership', async () => {
        const jobId = uid('cohorts');
        const cohorts = [['c1', 'c3', 'c5'], ['c2', 'c4', 'c6', 'c7'], []];
        await store.saveRound(makeRound(jobId, 1, 1, { cohorts }));
        await store.saveRound(makeRound(jobId, 2, 1));
        const rounds = await store.listRounds(jobId);
        expect(rounds[0]).toStrictEqual(makeRound(jobId, 1, 1, { cohorts }));
        expect(rounds[1].cohorts).toBeUndefined();
        expect('cohorts' in rounds[1]).toBe(false);
      });

      it("round-trips a round's contribution scoring, added by a later upsert", async () => {
        const jobId = uid('contribution');
        const plain = makeRound(jobId, 1, 1, { cohorts: [['c1', 'c2']] });
        await store.saveRound(plain);
        const contribution = {
          method: 'exact' as const,
          metric: 'loss' as const,
          baseline: -0.75,
          improvement: 0.125,
          evaluations: 4,
          values: [
            { members: ['c1'], value: 0.25 },
            { members: ['c2', 'c3'], value: -0.125 },
          ],
        };
        await store.saveRound({ ...plain, contribution });
        const rounds = await store.listRounds(jobId);
        expect(rounds).toHaveLength(1);
        expect(rounds[0]).toStrictEqual({ ...plain, contribution });
        await store.saveRound(makeRound(jobId, 2, 1));
        expect('contribution' in (await store.listRounds(jobId))[1]).toBe(false);
      });

      it("round-trips a round's transcript hash, and omits it when absent", async () => {
        const jobId = uid('transcript');
        const transcriptHash = 'ab'.repeat(32);
        await store.saveRound(makeRound(jobId, 1, 1, { transcriptHash }));
        await store.saveRound(makeRound(jobId, 2, 1));
        const rounds = await store.listRounds(jobId);
        expect(rounds[0]).toStrictEqual(makeRound(jobId, 1, 1, { transcriptHash }));
        expect('transcriptHash' in rounds[1]).toBe(false);
      });

      it("round-trips a DP round's privacy accounting, and omits it when absent", async () => {
        const jobId = uid('privacy');
        const privacy = {
          noise: 'distributed' as const,
          epsilon: 1.2345678901234,
          delta: 1e-5,
          epsilonBudget: 3,
          noiseMultiplier: 1.1,
          samplingRate: 0.25,
          clippingNorm: 0.75,
          clippedFraction: 0.4,
          rounds: 2,
        };
        await store.saveRound(makeRound(jobId, 1, 0, { privacy }));
        await store.saveRound(makeRound(jobId, 2, 0));
        const rounds = await store.listRounds(jobId);
        expect(rounds[0]).toStrictEqual(makeRound(jobId, 1, 0, { privacy }));
        expect('privacy' in rounds[1]).toBe(false);
      });

      it('lists no rounds for a job without any', async () => {
        expect(await store.listRounds(uid('none'))).toEqual([]);
      });
    });

    describe('participants', () => {
      it('upserts by (jobId, clientId) and lists by clientId', async () => {
        const jobId = uid('participants');
        const t = Date.UTC(2031, 2, 3);
        const alice = makeParticipant(jobId, 'alice', t);
        const bob = makeParticipant(jobId, 'bob', t);
        await store.saveParticipant(bob);
        await store.saveParticipant(alice);
        const aliceLater = { ...alice, lastSeenAt: new Date(t + 60_000), roundsCompleted: 3 };
        await store.saveParticipant(aliceLater);

        const list = await store.listParticipants(jobId);
        expect(list.map((p) => p.clientId)).toEqual(['alice', 'bob']);
        const byId = new Map(list.map((p) => [p.clientId, p]));
        expect(byId.get('alice')).toStrictEqual(aliceLater);
        expect(byId.get('bob')).toStrictEqual(bob);
        expect(byId.get('alice')!.lastSeenAt).toBeInstanceOf(Date);
        expect(await store.getParticipant(jobId, 'alice')).toStrictEqual(aliceLater);
        expect(await store.getParticipant(jobId, 'dave')).toBeNull();
        expect(await store.getParticipant(uid('other'), 'alice')).toBeNull();
      });

      it('keeps one record when the same participant is saved concurrently', async () => {
        const jobId = uid('concurrent');
        const t = Date.UTC(2031, 2, 3);
        await Promise.all(
          [1, 2, 3, 4, 5].map((n) =>
            store.saveParticipant({ ...makeParticipant(jobId, 'carol', t), roundsCompleted: n }),
          ),
        );
        const list = await store.listParticipants(jobId);
        expect(list).toHaveLength(1);
        expect([1, 2, 3, 4, 5]).toContain(list[0].roundsCompleted);
      });

      it('lists no participants for a job without any', async () => {
        expect(await store.listParticipants(uid('none'))).toEqual([]);
      });

      it("keeps a participant's payout address", async () => {
        const jobId = uid('payout-address');
        const dave = {
          ...makeParticipant(jobId, 'dave', Date.UTC(2031, 2, 3)),
          payoutAddress: '0x00000000000000000000000000000000000000aa',
        };
        await store.saveParticipant(dave);
        expect(await store.listParticipants(jobId)).toStrictEqual([dave]);
      });

      it('records a join: created with 0 rounds, a rejoin keeps joinedAt, counters and the address unless given', async () => {
        const jobId = uid('join');
        const t0 = new Date(Date.UTC(2031, 0, 1));
        const t1 = new Date(Date.UTC(2031, 0, 2));
        const t2 = new Date(Date.UTC(2031, 0, 3));
        const address = '0x00000000000000000000000000000000000000bb';
        await store.recordJoin({ jobId, clientId: 'erin', at: t0, payoutAddress: address });
        expect(await store.getParticipant(jobId, 'erin')).toStrictEqual({
          jobId,
          clientId: 'erin',
          joinedAt: t0,
          lastSeenAt: t0,
          roundsCompleted: 0,
          payoutAddress: address,
        });
        await store.countRoundCompleted(jobId, 1, ['erin'], t1);
        await store.recordJoin({ jobId, clientId: 'erin', at: t2 });
        expect(await store.getParticipant(jobId, 'erin')).toStrictEqual({
          jobId,
          clientId: 'erin',
          joinedAt: t0,
          lastSeenAt: t2,
          roundsCompleted: 1,
          payoutAddress: address,
        });
        const other = '0x00000000000000000000000000000000000000cc';
        await store.recordJoin({ jobId, clientId: 'erin', at: t2, payoutAddress: other });
        expect((await store.getParticipant(jobId, 'erin'))?.payoutAddress).toBe(other);
        expect(await store.listParticipants(jobId)).toHaveLength(1);
      });

      it('records every one of many concurrent joins exactly once', async () => {
        const jobId = uid('joins');
        const at = new Date(Date.UTC(2031, 1, 1));
        const ids = Array.from({ length: 120 }, (_, i) => `c${String(i).padStart(3, '0')}`);
        // Each client joins twice at once (a reconnect racing its first join).
        await Promise.all([...ids, ...ids].map((clientId) => store.recordJoin({ jobId, clientId, at })));
        const list = await store.listParticipants(jobId);
        expect(list.map((p) => p.clientId)).toEqual(ids);
        expect(list.every((p) => p.roundsCompleted === 0 && p.joinedAt.getTime() === at.getTime())).toBe(true);
      });

      it('counts a committed round once per participant, however often it is counted', async () => {
        const jobId = uid('count');
        const t = (d: number) => new Date(Date.UTC(2031, 3, d));
        await store.recordJoin({ jobId, clientId: 'a', at: t(1) });
        await store.recordJoin({ jobId, clientId: 'b', at: t(1) });
        await store.countRoundCompleted(jobId, 1, ['a', 'b'], t(2));
        await store.countRoundCompleted(jobId, 1, ['a', 'b'], t(3));
        // 'c' never joined: created by the count, with the round's time as joinedAt.
        await store.countRoundCompleted(jobId, 2, ['a', 'c'], t(4));
        await store.countRoundCompleted(jobId, 2, ['a', 'c'], t(5));
        expect(await store.listParticipants(jobId)).toStrictEqual([
          { jobId, clientId: 'a', joinedAt: t(1), lastSeenAt: t(4), roundsCompleted: 2 },
          { jobId, clientId: 'b', joinedAt: t(1), lastSeenAt: t(2), roundsCompleted: 1 },
          { jobId, clientId: 'c', joinedAt: t(4), lastSeenAt: t(4), roundsCompleted: 1 },
        ]);
      });
    });

    describe('payout plans', () => {
      it('stores the first plan of a job and ignores later ones', async () => {
        const jobId = uid('plan');
        const plan = {
          jobId,
          root: `0x${'ab'.repeat(32)}`,
          totalWei: '999',
          poolWei: '1000',
          dustWei: '1',
          scoreLabel: 'participation',
          allocations: [
            {
              account: '0x00000000000000000000000000000000000000aa',
              amountWei: '999',
              proof: [`0x${'cd'.repeat(32)}`],
              clientIds: ['alice'],
              score: 2,
            },
          ],
          createdAt: new Date(Date.UTC(2031, 2, 3)),
        };
        expect(await store.loadPayoutPlan(jobId)).toBeNull();
        await store.savePayoutPlan(plan);
        await store.savePayoutPlan({ ...plan, root: `0x${'ef'.repeat(32)}`, totalWei: '1' });
        const loaded = await store.loadPayoutPlan(jobId);
        expect(loaded).toStrictEqual(plan);
        expect(loaded!.createdAt).toBeInstanceOf(Date);
      });
    });

    describe('checkpoints', () => {
      it('returns null when a job has no checkpoint', async () => {
        const jobId = uid('nockpt');
        expect(await store.loadCheckpoint(jobId)).toBeNull();
        expect(await store.loadCheckpoint(jobId, 0)).toBeNull();
      });

      it('loads the highest round by default and a specific round on request', async () => {
        const jobId = uid('ckpt');
        const c2 = makeCheckpoint(jobId, 2, { strategyState: pattern(64, 2) });
        const c10 = makeCheckpoint(jobId, 10);
        const c1 = makeCheckpoint(jobId, 1);
        // Out of order, and 10 > 2 numerically but not as a string.
        await store.saveCheckpoint(c2);
        await store.saveCheckpoint(c10);
        await store.saveCheckpoint(c1);

        expectCheckpoint(await store.loadCheckpoint(jobId), c10);
        expectCheckpoint(await store.loadCheckpoint(jobId, 1), c1);
        expectCheckpoint(await store.loadCheckpoint(jobId, 2), c2);
        expect(await store.loadCheckpoint(jobId, 3)).toBeNull();
      });

      it('overwrites a checkpoint saved again for the same round (redo after a crash)', async () => {
        const jobId = uid('redo');
        const first = makeCheckpoint(jobId, 4, { modelHash: 'a'.repeat(64), strategyState: pattern(128, 9) });
        await store.saveCheckpoint(first);
        const second = makeCheckpoint(jobId, 4, { modelHash: 'b'.repeat(64), weights: pattern(333, 77) });
        await store.saveCheckpoint(second);

        const got = await store.loadCheckpoint(jobId, 4);
        expectCheckpoint(got, second);
        expect(got!.strategyState).toBeUndefined();
        expectCheckpoint(await store.loadCheckpoint(jobId), second);
      });

      it('stores exactly the bytes a view covers, not its whole underlying buffer', async () => {
        const jobId = uid('view');
        const backing = pattern(1000, 5);
        const view = backing.subarray(100, 350);
        const checkpoint = makeCheckpoint(jobId, 1, { weights: view, strategyState: backing.subarray(999) });
        await store.saveCheckpoint(checkpoint);
        const got = await store.loadCheckpoint(jobId, 1);
        expect(got!.weights.byteLength).toBe(250);
        expectSameBytes(got!.weights, view);
        expectSameBytes(got!.strategyState!, backing.subarray(999));
      });

      it('round-trips a 10M-parameter (40 MB) checkpoint exactly', async () => {
        // A store of its own: on a backend that scans (FerretDB has no secondary-index lookups), 40 MB
        // left in the shared store would slow every later test.
        const own = await open();
        const jobId = uid('large');
        const floats = new Float32Array(10_000_000);
        // Position-dependent values, so a reordered or dropped chunk cannot go unnoticed.
        for (let i = 0; i < floats.length; i++) floats[i] = ((i * 7919) % 100_003) - 50_000 + i / 8;
        const weights = new Uint8Array(floats.buffer);
        const checkpoint = makeCheckpoint(jobId, 1, { weights });
        await own.saveCheckpoint(checkpoint);

        const got = await own.loadCheckpoint(jobId);
        expect(got!.weights.byteLength).toBe(40_000_000);
        expectSameBytes(got!.weights, weights);
        expect(got!.modelHash).toBe(checkpoint.modelHash);
        await own.close();
      }, 120_000);
    });

    describe('validation sets', () => {
      it('returns null before one is saved, then the latest saved bytes', async () => {
        const jobId = uid('valset');
        expect(await store.loadValidationSet(jobId)).toBeNull();

        const first = pattern(5000, 1);
        await store.saveValidationSet(jobId, first);
        expectSameBytes((await store.loadValidationSet(jobId))!, first);

        const second = pattern(1200, 2);
        await store.saveValidationSet(jobId, second);
        const got = await store.loadValidationSet(jobId);
        expect(got!.byteLength).toBe(1200);
        expectSameBytes(got!, second);
      });

      it('keeps an empty validation set as empty bytes, not as missing', async () => {
        const jobId = uid('empty');
        await store.saveValidationSet(jobId, new Uint8Array(0));
        const got = await store.loadValidationSet(jobId);
        expect(got).not.toBeNull();
        expect(got!.byteLength).toBe(0);
      });
    });

    it('keeps jobs isolated from each other', async () => {
      const a = uid('iso-a');
      const b = uid('iso-b');
      const t = Date.UTC(2032, 0, 1);
      await store.saveRound(makeRound(a, 1, 1));
      await store.saveParticipant(makeParticipant(a, 'only-a', t));
      await store.saveCheckpoint(makeCheckpoint(a, 1, { weights: pattern(10, 1) }));
      await store.saveValidationSet(a, pattern(10, 3));
      await store.saveRound(makeRound(b, 5, 1));
      await store.saveCheckpoint(makeCheckpoint(b, 1, { weights: pattern(10, 2) }));

      expect((await store.listRounds(a)).map((r) => r.round)).toEqual([1]);
      expect((await store.listRounds(b)).map((r) => r.round)).toEqual([5]);
      expect((await store.listParticipants(a)).map((p) => p.clientId)).toEqual(['only-a']);
      expect(await store.listParticipants(b)).toEqual([]);
      expectSameBytes((await store.loadCheckpoint(a))!.weights, pattern(10, 1));
      expectSameBytes((await store.loadCheckpoint(b))!.weights, pattern(10, 2));
      expect(await store.loadValidationSet(b)).toBeNull();
    });

    describe('copies', () => {
      it('does not let callers change a stored job through what they passed or got back', async () => {
        const job = makeJob();
        await store.createJob(job);
        // Mutating the input after the write ...
        job.spec.name = 'mutated input';
        job.weightManifest[0].shape[0] = 999;
        job.createdAt.setTime(0);
        // ... and the output after the read.
        const got = (await store.getJob(job.id))!;
        got.spec.name = 'mutated output';
        got.weightManifest[0].shape.push(5);
        got.updatedAt.setTime(0);
        const listed = (await store.listJobs()).find((j) => j.id === job.id)!;
        listed.spec.rounds = 12345;

        const fresh = (await store.getJob(job.id))!;
        expect(fresh.spec.name).toBe(makeJob().spec.name);
        expect(fresh.spec.rounds).toBe(makeJob().spec.rounds);
        expect(fresh.weightManifest).toStrictEqual(makeJob().weightManifest);
        expect(fresh.createdAt.getTime()).toBe(makeJob().createdAt.getTime());
        expect(fresh.updatedAt.getTime()).toBe(makeJob().updatedAt.getTime());
      });

      it('does not let callers change stored rounds, participants, checkpoints or validation sets', async () => {
        const jobId = uid('copies');
        const round = makeRound(jobId, 1, 1);
        await store.saveRound(round);
        round.selected.push('intruder');
        round.metrics.validationAccuracy = -1;
        (await store.listRounds(jobId))[0].participants.push('intruder');

        const participant = makeParticipant(jobId, 'dave', Date.UTC(2031, 0, 1));
        await store.saveParticipant(participant);
        participant.roundsCompleted = 99;
        (await store.listParticipants(jobId))[0].lastSeenAt.setTime(0);

        const weights = pattern(32, 4);
        await store.saveCheckpoint(makeCheckpoint(jobId, 1, { weights }));
        weights[0] ^= 0xff;
        (await store.loadCheckpoint(jobId))!.weights[1] ^= 0xff;

        const valSet = pattern(16, 6);
        await store.saveValidationSet(jobId, valSet);
        valSet[0] ^= 0xff;
        (await store.loadValidationSet(jobId))![1] ^= 0xff;

        expect(await store.listRounds(jobId)).toStrictEqual([makeRound(jobId, 1, 1)]);
        expect(await store.listParticipants(jobId)).toStrictEqual([
          makeParticipant(jobId, 'dave', Date.UTC(2031, 0, 1)),
        ]);
        expectSameBytes((await store.loadCheckpoint(jobId))!.weights, pattern(32, 4));
        expectSameBytes((await store.loadValidationSet(jobId))!, pattern(16, 6));
      });

      it('returns plain Uint8Arrays for binary fields', async () => {
        const jobId = uid('plain');
        await store.saveCheckpoint(makeCheckpoint(jobId, 1, { strategyState: pattern(8, 1) }));
        await store.saveValidationSet(jobId, Buffer.from(pattern(8, 2)));
        const checkpoint = (await store.loadCheckpoint(jobId))!;
        expect(Object.getPrototypeOf(checkpoint.weights)).toBe(Uint8Array.prototype);
        expect(Object.getPrototypeOf(checkpoint.strategyState)).toBe(Uint8Array.prototype);
        expect(Object.getPrototypeOf(await store.loadValidationSet(jobId))).toBe(Uint8Array.prototype);
      });
    });

    describeListingContract(() => store);
    describeAccessControlContract(() => store);
    describeTranscriptContract(() => store);
    describeLeaseContract(() => store, makeJob, makeRound);
    describeSlotClaimContract(
      () => store,
      async () => {
        if (!sameData) return store;
        const s = await sameData();
        opened.push(s);
        return s;
      },
      makeJob,
    );

    it('rejects operations after close with STORE_UNAVAILABLE, and closing twice is fine', async () => {
      const s = await open();
      const job = makeJob();
      await s.createJob(job);
      await s.close();
      await s.close();
      await expect(s.getJob(job.id)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      await expect(s.saveRound(makeRound(job.id, 1, 1))).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    });
  });
}

// ---- fixtures -------------------------------------------------------------------------------------

function uid(prefix: string): string {
  return `${prefix}-${randomUUID()}`;
}

/** A JobSpec with every nesting the schema allows: unions, optional arrays, a deep free-form topology. */
function nestedSpec(): JobSpec {
  return {
    name: 'nested ✓ spec',
    model: {
      kind: 'layers-json',
      topology: {
        class_name: 'Sequential',
        config: {
          name: 'seq',
          layers: [
            {
              class_name: 'Dense',
              config: {
                units: 10,
                activation: 'relu',
                use_bias: true,
                batch_input_shape: [null, 13],
                kernel_initializer: { class_name: 'GlorotUniform', config: { seed: null } },
                kernel_regularizer: null,
                bias_constraint: {},
                dtype: 'float32',
              },
            },
            {
              class_name: 'Dropout',
              config: { rate: 0.25, noise_shape: [], name: 'drop' },
              // Functional-model topologies nest arrays three deep.
              inbound_nodes: [[['dense_1', 0, 0, {}]]],
            },
          ],
        },
        keras_version: 'tfjs-layers 4.22.0',
        backend: 'tensor_flow.js',
        big: 2 ** 40 + 1,
        tiny: 1e-300,
      },
    },
    input: {
      shape: [13],
      featureColumns: Array.from({ length: 13 }, (_, i) => `f${i}`),
      labelColumn: 'y',
      numClasses: 3,
    },
    rounds: 5,
    minClients: 2,
    maxClients: 10,
    fractionFit: 0.5,
    roundDeadlineMs: 30_000,
    quorumTimeoutMs: 10_000,
    maxRoundRetries: 1,
    localEpochs: 2,
    batchSize: 16,
    learningRate: 0.05,
    strategy: { name: 'fedadam', serverLearningRate: 0.01, beta1: 0.9, beta2: 0.99, tau: 0.001 },
    secureAggregation: 'none',
    none: { maxExampleWeight: 100_000 },
    seed: 2 ** 31 - 1,
  };
}

export function makeJob(overrides: Partial<JobRecord> = {}): JobRecord {
  const when = new Date(Date.UTC(2029, 11, 31, 23, 59, 59, 123));
  return {
    id: uid('job'),
    spec: {
      name: 'mlp job',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [64, 32] },
      input: { shape: [4], labelColumn: 'label', numClasses: 2 },
      rounds: 3,
      minClients: 2,
      maxClients: 100,
      fractionFit: 1,
      roundDeadlineMs: 60_000,
      quorumTimeoutMs: 60_000,
      maxRoundRetries: 2,
      localEpochs: 1,
      batchSize: 32,
      learningRate: 0.01,
      strategy: { name: 'fedprox', mu: 0.1 },
      secureAggregation: 'none',
      none: { maxExampleWeight: 100_000 },
      seed: 42,
    },
    status: 'pending',
    currentRound: 0,
    modelHash: '0'.repeat(64),
    weightManifest: [
      { name: 'dense/kernel', shape: [4, 64] },
      { name: 'dense/bias', shape: [64] },
    ],
    createdAt: new Date(when),
    updatedAt: new Date(when),
    ...overrides,
  };
}

function makeRound(jobId: string, round: number, attempt: number, overrides: Partial<RoundRecord> = {}): RoundRecord {
  const start = Date.UTC(2030, 6, 1) + round * 60_000 + attempt * 1000;
  return {
    jobId,
    round,
    attempt,
    status: 'completed',
    selected: ['c1', 'c2', 'c3'],
    participants: ['c1', 'c2'],
    failures: [],
    metrics: { validationAccuracy: 0.5 + round / 100, validationLoss: 1.25, numExamples: 600 },
    modelHash: `${round}`.padStart(64, '0'),
    startedAt: new Date(start),
    finishedAt: new Date(start + 500),
    ...overrides,
  };
}

function makeParticipant(jobId: string, clientId: string, t: number): ParticipantRecord {
  return { jobId, clientId, joinedAt: new Date(t), lastSeenAt: new Date(t + 1000), roundsCompleted: 0 };
}

function makeCheckpoint(jobId: string, round: number, overrides: Partial<CheckpointRecord> = {}): CheckpointRecord {
  return {
    jobId,
    round,
    modelHash: `${round}`.padStart(64, 'c'),
    weights: pattern(256 + round, round),
    createdAt: new Date(Date.UTC(2030, 1, 1) + round),
    ...overrides,
  };
}

/** Deterministic, position-dependent bytes. */
function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function expectSameBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect(actual.byteLength).toBe(expected.byteLength);
  // Buffer.equals is a memcmp; jest's deep equality would walk 40 MB element by element.
  const a = Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength);
  const b = Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength);
  expect(a.equals(b)).toBe(true);
}

function expectCheckpoint(actual: CheckpointRecord | null, expected: CheckpointRecord): void {
  expect(actual).not.toBeNull();
  expect(actual!.jobId).toBe(expected.jobId);
  expect(actual!.round).toBe(expected.round);
  expect(actual!.modelHash).toBe(expected.modelHash);
  expect(actual!.createdAt).toBeInstanceOf(Date);
  expect(actual!.createdAt.getTime()).toBe(expected.createdAt.getTime());
  expectSameBytes(actual!.weights, expected.weights);
  if (expected.strategyState === undefined) {
    expect(actual!.strategyState).toBeUndefined();
  } else {
    expectSameBytes(actual!.strategyState!, expected.strategyState);
  }
}
