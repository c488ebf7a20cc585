/**
 * Bounded influence in mode `paillier` (issue 13), end to end over real sockets: an in-process
 * coordinator on 127.0.0.1, an in-process key holder (1024-bit keys for speed) and in-process
 * production clients, one of them an attacker. The coordinator multiplies ciphertexts and sees one
 * decrypted aggregate per round: no parts, so no robust rule and no one to name.
 * - Issue 13's first attack through the stock client half: 1e9 examples with delta -5 count as
 *   maxExampleWeight, and the attacker's own client clips -5 to the clipping range (1): the step is
 *   exactly what cap and clip give; `maxUpdateNorm` bounds it further.
 * - Issue 13's second attack: the planted `negative-weight` attacker encrypts a negative weight
 *   ratio that cancels its peers'. The decrypted aggregate is refused (ROUND_AGGREGATE_INVALID), each
 *   attempt fails, the job ends failed with that code, and no model after the initial one is committed.
 * - Issue 13's third attack: the planted `overflow` attacker (FLT_MAX deltas, 1e9 examples) is clipped by
 *   its own encryptor: the committed model stays finite, each weight moves by at most the clip range.
 */
import { KeyHolder, generateKeyHolderKeys, keyHolderSpecFields, type KeyHolderKeys } from '../client/keyHolder';
import type { TributaryClient } from '../client/tributaryClient';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import {
  EXAMPLES,
  HONEST_DELTA,
  influenceSpec,
  modelIsFinite,
  type Role,
  roundStep,
  startFederation,
  worstStepError,
} from './support/influence';
import { createJob } from './support/rest';

jest.setTimeout(180_000);

const MAX_EXAMPLE_WEIGHT = 1000;
/** Paillier's 16-bit quantisation of 4 clients errs by ~1e-4 on these steps; the attacks would move weights by >= 0.3. */
const STEP_TOLERANCE = 3e-4;
const honest = (n: number): Role[] => Array.from({ length: n }, () => ({ kind: 'scripted', value: HONEST_DELTA }));

describe('bounded influence in mode paillier (issue 13) end to end', () => {
  let coordinator: Coordinator;
  let keys: KeyHolderKeys;
  const clients: TributaryClient[] = [];
  const holders: KeyHolder[] = [];

  beforeAll(async () => {
    keys = await generateKeyHolderKeys(1024);
    coordinator = await startCoordinator({ port: 0, logLevel: 'error', backend: 'cpu' });
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    for (const h of holders) h.close();
    await coordinator?.close();
  });

  /** Runs a job of four clients (the last, the attacker, joins first) with its key holder. */
  async function run(name: string, roles: Role[], overrides: Record<string, unknown> = {}) {
    const jobId = await createJob(
      coordinator.url,
      influenceSpec(name, {
        secureAggregation: 'paillier',
        minClients: roles.length,
        paillier: { ...keyHolderSpecFields(keys), maxExampleWeight: MAX_EXAMPLE_WEIGHT, decryptTimeoutMs: 20_000 },
        ...overrides,
      }),
    );
    const holder = new KeyHolder({ url: coordinator.url, jobId, keys });
    holders.push(holder);
    const joined = new Promise((resolve) => holder.once('joined', resolve));
    holder.run().catch(() => undefined);
    await joined;
    const started = await startFederation(coordinator.url, jobId, roles, clients, [roles.length - 1]);
    const job = await coordinator.jobs.waitForJob(jobId);
    return { jobId, job, rounds: await coordinator.store.listRounds(jobId), ids: started.map((c) => c.clientId) };
  }

  it('weight inflation: the attacker counts maxExampleWeight and its -5 is clipped to -1; maxUpdateNorm bounds the step', async () => {
    const roles: Role[] = [...honest(3), { kind: 'scripted', value: -5, examples: 1e9 }];
    const { jobId, job, rounds } = await run('inflation', roles, { rounds: 1 });
    expect(job.status).toBe('completed');
    expect(rounds[0].metrics.numExamples).toBe(MAX_EXAMPLE_WEIGHT + 3 * EXAMPLES);
    // (3 x 100 x 0.01 - 1000 x 1) / 1300 = -0.76692 per weight (uncapped and unclipped: -4.99999).
    const expected = (3 * EXAMPLES * HONEST_DELTA - MAX_EXAMPLE_WEIGHT * 1) / (MAX_EXAMPLE_WEIGHT + 3 * EXAMPLES);
    expect(await worstStepError(coordinator.store, jobId, 1, expected)).toBeLessThanOrEqual(STEP_TOLERANCE);

    const bounded = await run('inflation-norm-bound', roles, {
      rounds: 1,
      strategy: { name: 'fedavg', maxUpdateNorm: 0.05 },
    });
    expect(bounded.job.status).toBe('completed');
    const step = await roundStep(coordinator.store, bounded.jobId, 1);
    expect(Math.hypot(...step)).toBeLessThanOrEqual(0.05 * (1 + 1e-4));
    expect(Math.hypot(...step)).toBeGreaterThan(0.05 * (1 - 1e-3));
  });

  it('a negative weight ratio inside the ciphertexts (planted negative-weight): every attempt is refused with ROUND_AGGREGATE_INVALID and the model never moves', async () => {
    const { jobId, job, rounds } = await run('negative-weight', [
      ...honest(3),
      { kind: 'attacker', attack: 'negative-weight' },
    ]);
    expect(job.status).toBe('failed');
    expect(job.failureReason).toMatch(
      /^Round 1 failed 2 time\(s\): ROUND_AGGREGATE_INVALID: Not using the Paillier aggregate/,
    );
    expect(job.currentRound).toBe(0);
    expect(rounds.map((r) => [r.round, r.status])).toEqual([
      [1, 'failed'],
      [1, 'failed'],
    ]);
    for (const r of rounds) {
      expect(r.selected).toHaveLength(4);
      // 3 x 0.1 - 0.3: one quantisation step, below the 4 / 1000 four honest clients give at least.
      expect(r.failureReason).toMatch(/its summed weight is 0\.0000305\d* .* between 0\.003938 and 4\.000/);
    }
    expect(await coordinator.store.loadCheckpoint(jobId, 1)).toBeNull();
  });

  it("FLT_MAX deltas claiming 1e9 (planted overflow) are clipped by the attacker's own encryptor: the model stays finite and moves by at most the clip range", async () => {
    const { jobId, job, rounds } = await run('overflow', [...honest(3), { kind: 'attacker', attack: 'overflow' }]);
    expect(job.status).toBe('completed');
    expect(rounds.every((r) => r.status === 'completed')).toBe(true);
    // (3 x 100 x 0.01 + 1000 x 1) / 1300 = +0.77154 per weight: bounded by clipRange 1, not by FLT_MAX.
    const expected = (3 * EXAMPLES * HONEST_DELTA + MAX_EXAMPLE_WEIGHT * 1) / (MAX_EXAMPLE_WEIGHT + 3 * EXAMPLES);
    for (const round of [1, 2]) {
      expect(await modelIsFinite(coordinator.store, jobId, round)).toBe(true);
      expect(await worstStepError(coordinator.store, jobId, round, expected)).toBeLessThanOrEqual(STEP_TOLERANCE);
    }
  });
});
